//! The engine session behind a session handle, on the CPU or on a Vulkan GPU.

use mamba_core::Session;

use crate::error::{FfiError, FfiResult};

/// `MambaSessionParams::backend` value for the CPU.
pub const MAMBA_BACKEND_CPU: u32 = 0;
/// `MambaSessionParams::backend` value for a Vulkan GPU; needs a library built with the
/// `vulkan` feature.
pub const MAMBA_BACKEND_VULKAN: u32 = 1;

/// A session on one backend, with every operation the C API uses.
#[allow(clippy::large_enum_variant, reason = "one per session handle, created once and never moved in a loop")]
pub(crate) enum Engine {
    /// Borrows the model of the handle's `Arc<ModelInner>`.
    Cpu(Session<'static, Vec<f32>>),
    /// Holds an `Arc` of the weights the model handle uploaded to the device.
    #[cfg(feature = "vulkan")]
    Vulkan(Box<mamba_vulkan::GpuSession>),
}

impl Engine {
    pub fn prefill(&mut self, function: &str, tokens: &[u32]) -> FfiResult {
        match self {
            Self::Cpu(session) => session.prefill(tokens).map(drop).map_err(|e| FfiError::core(function, e)),
            #[cfg(feature = "vulkan")]
            Self::Vulkan(session) => session.prefill(tokens).map(drop).map_err(|e| FfiError::vulkan(function, e)),
        }
    }

    pub fn step(&mut self, function: &str, token: u32) -> FfiResult {
        match self {
            Self::Cpu(session) => session.step(token).map(drop).map_err(|e| FfiError::core(function, e)),
            #[cfg(feature = "vulkan")]
            Self::Vulkan(session) => session.step(token).map(drop).map_err(|e| FfiError::vulkan(function, e)),
        }
    }

    pub fn logits(&self) -> Option<&[f32]> {
        match self {
            Self::Cpu(session) => session.logits(),
            #[cfg(feature = "vulkan")]
            Self::Vulkan(session) => session.logits(),
        }
    }

    #[cfg_attr(not(feature = "vulkan"), allow(unused_variables))]
    pub fn reset(&mut self, function: &str) -> FfiResult {
        match self {
            Self::Cpu(session) => {
                session.reset();
                Ok(())
            }
            #[cfg(feature = "vulkan")]
            Self::Vulkan(session) => session.reset().map_err(|e| FfiError::vulkan(function, e)),
        }
    }

    pub fn n_past(&self) -> u64 {
        match self {
            Self::Cpu(session) => session.n_past(),
            #[cfg(feature = "vulkan")]
            Self::Vulkan(session) => session.n_past(),
        }
    }

    pub fn state_bytes_len(&self) -> usize {
        match self {
            Self::Cpu(session) => session.state_bytes_len(),
            #[cfg(feature = "vulkan")]
            Self::Vulkan(session) => session.state_bytes_len(),
        }
    }

    pub fn save_state(&self, function: &str, out: &mut [u8]) -> FfiResult<usize> {
        match self {
            Self::Cpu(session) => session.save_state(out).map_err(|e| FfiError::core(function, e)),
            #[cfg(feature = "vulkan")]
            Self::Vulkan(session) => session.save_state(out).map_err(|e| FfiError::vulkan(function, e)),
        }
    }

    pub fn load_state(&mut self, function: &str, bytes: &[u8]) -> FfiResult {
        match self {
            Self::Cpu(session) => session.load_state(bytes).map_err(|e| FfiError::core(function, e)),
            #[cfg(feature = "vulkan")]
            Self::Vulkan(session) => session.load_state(bytes).map_err(|e| FfiError::vulkan(function, e)),
        }
    }
}
