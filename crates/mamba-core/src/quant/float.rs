//! Conversions between f32 and the 16-bit float formats, as raw bit patterns.
//!
//! Both directions round to nearest, ties to even, which is what numpy's
//! `astype(np.float16)` and gguf's BF16 `quantize_blocks` do.

use half::{bf16, f16};

/// Largest finite f16 value.
pub const F16_MAX: f32 = 65504.0;

/// Converts `x` to f16 bits, rounding to nearest even. Magnitudes from 65520 up become
/// infinity, and those between [`F16_MAX`] and 65520 round down to it.
pub fn f32_to_f16(x: f32) -> u16 {
    f16::from_f32(x).to_bits()
}

/// Widens f16 bits to f32. The conversion is exact.
pub fn f16_to_f32(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// Converts `x` to bf16 bits, rounding to nearest even. A NaN stays NaN with the quiet
/// bit set, and finite values from 0x7f7f8000 (as f32 bits) up round to infinity.
pub fn f32_to_bf16(x: f32) -> u16 {
    bf16::from_f32(x).to_bits()
}

/// Widens bf16 bits to f32 by placing them in the upper half. The conversion is exact.
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}
