//! `mamba-core`: a `no_std` inference engine for Mamba selective state space models.
//!
//! The crate reads GGUF files from a borrowed byte slice, runs the Mamba-1 and Mamba-2 recurrences on
//! caller-owned buffers and samples tokens. It never opens files, and starts threads only in a
//! [`pool::ThreadPool`] that the caller creates, so the same code serves the CLI, the C API
//! and microcontroller firmware.
//!
//! Features: `alloc` adds owned sessions and the tensor index; `std` (default) adds the
//! GGUF writer, the thread pool and `std::error::Error` implementations.
#![no_std]
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]
// Errors carry tensor names inline (no heap in no_std), which makes them large; they are
// returned only on the cold path of loading and checking input.
#![allow(clippy::result_large_err)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod buffers;
pub mod config;
pub mod detokenize;
pub mod error;
pub mod gguf;
pub mod kernels;
pub mod model;
pub mod ops;
pub mod pool;
pub mod quant;
pub mod sampling;
pub mod session;
pub mod stop;
pub mod tensor;

pub use error::{Error, ModelError, StateError};
pub use kernels::Inputs;
pub use model::{Arch, Config, Model};
pub use pool::Parallel;
pub use sampling::{Sampler, SamplerParams};
pub use session::Session;
pub use tensor::{GgmlType, Matrix};
