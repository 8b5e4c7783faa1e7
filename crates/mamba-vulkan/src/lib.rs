//! `mamba-vulkan`: runs Mamba-1 models on a GPU through Vulkan compute shaders.
//!
//! [`Gpu`] opens a Vulkan device and builds the compute pipelines. [`GpuModel`] uploads a
//! model's weights once, in their GGUF block layouts (F32, F16, BF16, Q8_0, Q4_0), and
//! [`GpuSession`] runs sequences on it with the session state kept in GPU memory. A
//! session's state saved with [`GpuSession::save_state_to_vec`] uses the same layout as the
//! CPU [`mamba_core::Session`], so either backend restores what the other saved.
//!
//! Every shader reads its buffers as 32-bit words and computes in f32, so the backend needs
//! only core Vulkan 1.0 compute: no 8-bit or 16-bit storage and no float16 arithmetic.
//! [`ops`] runs each shader alone on host data, for the tests against the CPU reference.
//!
//! NOTE: Mamba-2 models are rejected with [`VulkanError::UnsupportedArchitecture`].
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod error;
mod gpu;
mod model;
pub mod ops;
mod pipelines;
mod record;
mod session;

pub use error::VulkanError;
pub use gpu::{DeviceInfo, Gpu, list_devices};
pub use model::GpuModel;
pub use pipelines::SHADER_COMPILER;
pub use record::Epilogue;
pub use session::GpuSession;
