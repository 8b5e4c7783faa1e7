//! Sizes of the buffers a session runs on, computable at compile time.
//!
//! Without an allocator the caller provides a session's state and scratch buffers, usually as
//! `static` arrays. [`BufferSizes::new`] is a `const fn`, so firmware can size those arrays
//! from a [`Config`] written as a constant:
//!
//! ```
//! use mamba_core::buffers::BufferSizes;
//! use mamba_core::Config;
//!
//! // The hyperparameters of models/micro.
//! const CONFIG: Config = Config::mamba1(128, 3, 256, 16, 8, 4, 512);
//! const SIZES: BufferSizes = BufferSizes::new(&CONFIG, 1);
//! static mut STATE: [f32; SIZES.state_len] = [0.0; SIZES.state_len];
//! static mut SCRATCH: [f32; SIZES.scratch_len] = [0.0; SIZES.scratch_len];
//! assert_eq!(SIZES.state_bytes(), 58_368);
//! ```
//!
//! [`Session::with_buffers`](crate::Session::with_buffers) checks the buffers against the
//! loaded model and returns [`Error::BufferTooSmall`](crate::Error::BufferTooSmall), with the
//! bytes needed, when a model does not fit them.

use crate::model::{Arch, Config};
use crate::session::ScratchLayout;

/// Bytes of one f32 value.
const F32_BYTES: usize = core::mem::size_of::<f32>();

impl Config {
    /// Returns the hyperparameters of a Mamba-1 model with the default RMSNorm epsilon
    /// (1e-5), for sizing buffers at compile time. A model loaded from a file has its own
    /// epsilon, which does not change any buffer size.
    pub const fn mamba1(
        d_model: usize,
        n_layer: usize,
        d_inner: usize,
        d_state: usize,
        dt_rank: usize,
        d_conv: usize,
        n_vocab: usize,
    ) -> Self {
        Self {
            arch: Arch::Mamba,
            d_model,
            n_layer,
            d_inner,
            d_state,
            dt_rank,
            n_head: d_inner,
            head_dim: 1,
            n_group: 1,
            dt_b_c_rms: false,
            dt_b_c_rms_eps: 1e-5,
            dt_min: 0.0,
            dt_max: f32::INFINITY,
            d_conv,
            n_vocab,
            rms_eps: 1e-5,
            context_length: 0,
        }
    }

    /// Bytes of one session's recurrent state: [`Config::state_len`] f32 values.
    pub const fn state_bytes(&self) -> usize {
        BufferSizes::new(self, 1).state_bytes()
    }
}

impl ScratchLayout {
    /// Bytes the scratch buffer needs: [`ScratchLayout::len`] f32 values.
    pub const fn bytes(&self) -> usize {
        self.len().saturating_mul(F32_BYTES)
    }
}

/// The f32 buffers of one session whose prompt chunks hold up to `max_batch` tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferSizes {
    /// f32 values of the recurrent state buffer.
    pub state_len: usize,
    /// f32 values of the scratch buffer.
    pub scratch_len: usize,
}

impl BufferSizes {
    /// Computes the buffer sizes for `config` and chunks of `max_batch` tokens (clamped as
    /// [`ScratchLayout::new`] clamps it). Sizes saturate at `usize::MAX` instead of
    /// overflowing.
    pub const fn new(config: &Config, max_batch: usize) -> Self {
        let conv_state_len = config.conv_dim().saturating_mul(config.d_conv.saturating_sub(1));
        let layer_state_len = conv_state_len.saturating_add(config.d_inner.saturating_mul(config.d_state));
        let state_len = config.n_layer.saturating_mul(layer_state_len);
        Self { state_len, scratch_len: ScratchLayout::new(config, max_batch).len() }
    }

    /// Bytes of the state buffer.
    pub const fn state_bytes(&self) -> usize {
        self.state_len.saturating_mul(F32_BYTES)
    }

    /// Bytes of the scratch buffer.
    pub const fn scratch_bytes(&self) -> usize {
        self.scratch_len.saturating_mul(F32_BYTES)
    }

    /// Bytes of both buffers together.
    pub const fn total_bytes(&self) -> usize {
        self.state_bytes().saturating_add(self.scratch_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_model_sizes() {
        let config = Config::mamba1(128, 3, 256, 16, 8, 4, 512);
        let sizes = BufferSizes::new(&config, 1);
        assert_eq!(sizes.state_bytes(), 58_368);
        // hidden, normed, out: d_model each; xz: 2 d_inner; xc, dt, y: d_inner each;
        // dbc: dt_rank + 2 d_state; dt_in: dt_rank; logits: n_vocab.
        let scratch = 3 * 128 + 2 * 256 + 3 * 256 + (8 + 32) + 8 + 512;
        assert_eq!(sizes.scratch_len, scratch);
        assert_eq!(sizes.total_bytes(), 58_368 + 4 * scratch);
    }

    #[test]
    fn huge_config_saturates() {
        let config = Config::mamba1(usize::MAX, usize::MAX, usize::MAX, 16, 8, 4, usize::MAX);
        let sizes = BufferSizes::new(&config, 4096);
        assert_eq!(sizes.state_bytes(), usize::MAX);
        assert_eq!(config.state_bytes(), usize::MAX);
        assert_eq!(sizes.scratch_bytes(), usize::MAX);
        assert_eq!(sizes.total_bytes(), usize::MAX);
    }
}
