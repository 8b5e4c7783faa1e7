//! `mamba-quantize`: converts Mamba-1, Mamba-2 and Falcon-Mamba checkpoints (Hugging Face
//! safetensors, or for Mamba-1 and Mamba-2 the original `mamba_ssm` format with
//! `pytorch_model.bin`), or existing GGUF files, to GGUF files that both mamba-edge and
//! llama.cpp load.
//!
//! The output follows llama.cpp's converter (`convert_hf_to_gguf.py`, `MambaModel`): the
//! same tensor names, shapes and types per tensor, the same `mamba.*` metadata and the
//! `tokenizer.ggml.*` arrays. It also embeds `tokenizer.json` as `tokenizer.huggingface.json`.
//!
//! ```no_run
//! use mamba_quantize::{NoProgress, Options, convert};
//! use mamba_core::GgmlType;
//!
//! let options = Options {
//!     input: "mamba-130m-hf".into(),
//!     output: "mamba-130m-q8_0.gguf".into(),
//!     target: GgmlType::Q8_0,
//!     tokenizer: None,
//! };
//! let summary = convert(&options, &mut NoProgress)?;
//! println!("{} tensors, {} bytes", summary.tensors_written, summary.bytes_out);
//! # Ok::<(), mamba_quantize::ConvertError>(())
//! ```

mod convert;
mod error;
mod gguf_input;
mod hf;
pub mod metadata;
pub mod names;
pub mod params;
pub mod pickle;
pub mod plan;
pub mod safetensors_input;
pub mod state_spaces;
pub mod tokenizer;
pub mod torch_input;
pub mod zip_archive;

pub use convert::{NoProgress, Options, Progress, Summary, convert};
pub use error::{ConvertError, Result};
