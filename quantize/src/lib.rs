//! `mamba-quantize`: converts Hugging Face Mamba-1 checkpoints to GGUF.
//!
//! This stage parses the config and tokenizer, maps tensor names and plans each tensor's type.

mod error;
pub mod names;
pub mod params;
pub mod plan;
pub mod tokenizer;

pub use error::{ConvertError, Result};
