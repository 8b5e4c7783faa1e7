//! ggml block formats: Q8_0 and Q4_0 layouts, quantization and dequantization, and the
//! F16/BF16 row conversions.
//!
//! STUB: filled in by the quantization work.

/// Weights per Q8_0 block.
pub const QK8_0: usize = 32;
/// Weights per Q4_0 block.
pub const QK4_0: usize = 32;
