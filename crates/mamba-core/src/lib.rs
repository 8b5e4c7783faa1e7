//! `mamba-core`: a `no_std` inference engine for Mamba selective state space models.
//!
//! The crate reads GGUF files from a borrowed byte slice, runs the Mamba-1 recurrence on
//! caller-owned buffers and samples tokens. It never opens files or starts threads, so the
//! same code serves the CLI, the C API and microcontroller firmware.
//!
//! Features: `alloc` adds owned sessions and the tensor index; `std` (default) adds the
//! GGUF writer and `std::error::Error` implementations.
#![no_std]
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod config;
pub mod gguf;
pub mod kernels;
pub mod quant;
pub mod tensor;

pub use tensor::{GgmlType, Matrix};
