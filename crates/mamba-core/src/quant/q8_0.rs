//! Q8_0: blocks of 32 weights, each stored as `d * q` with one f16 scale `d` and a signed
//! 8-bit `q`.

use bytemuck::{Pod, Zeroable};

use super::QK8_0;
use super::float::{f16_to_f32, f32_to_f16};
use crate::tensor::GgmlType;

/// One Q8_0 block as ggml lays it out: the f16 scale, then 32 signed quants.
///
/// `d` contains f16 bits. In GGUF bytes it is little-endian, so use [`BlockQ8_0::from_bytes`]
/// and [`BlockQ8_0::to_bytes`] to read and write tensor data, which may also be unaligned.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Zeroable, Pod)]
pub struct BlockQ8_0 {
    /// Scale as f16 bits.
    pub d: u16,
    /// Quants: weight `j` is `d * qs[j]`.
    pub qs: [i8; QK8_0],
}

const _: () = assert!(size_of::<BlockQ8_0>() == BlockQ8_0::BYTES);
const _: () = assert!(BlockQ8_0::BYTES == GgmlType::Q8_0.block_bytes());

impl BlockQ8_0 {
    /// Size of one block in bytes.
    pub const BYTES: usize = 2 + QK8_0;

    /// Reads a block from its GGUF bytes.
    pub fn from_bytes(bytes: &[u8; Self::BYTES]) -> Self {
        let mut qs = [0i8; QK8_0];
        for (q, &byte) in qs.iter_mut().zip(&bytes[2..]) {
            *q = i8::from_le_bytes([byte]);
        }
        Self {
            d: u16::from_le_bytes([bytes[0], bytes[1]]),
            qs,
        }
    }

    /// Returns the block's GGUF bytes.
    pub fn to_bytes(&self) -> [u8; Self::BYTES] {
        let mut bytes = [0u8; Self::BYTES];
        bytes[..2].copy_from_slice(&self.d.to_le_bytes());
        for (byte, &q) in bytes[2..].iter_mut().zip(&self.qs) {
            *byte = q.to_le_bytes()[0];
        }
        bytes
    }

    /// Returns the scale `d` as f32.
    pub fn scale(&self) -> f32 {
        f16_to_f32(self.d)
    }

    /// Quantizes 32 finite values the way gguf 0.19.0 `quants.Q8_0` does.
    ///
    /// The scale is `d = max|x| / 127` in f32, stored rounded to f16. Each quant is
    /// `x * (1 / d)` in f32, rounded half away from zero. An all-zero block gets `d = 0` and
    /// zero quants. The rounding uses the f32 scale, not the stored f16 one.
    ///
    /// Non-finite inputs give an unspecified block. [`quantize_row`](super::quantize_row)
    /// rejects them, and also rejects blocks whose scale overflows f16.
    pub fn quantize(x: &[f32; QK8_0]) -> Self {
        let d = scale_of(x);
        let inverse = if d == 0.0 { 0.0 } else { 1.0 / d };
        Self {
            d: f32_to_f16(d),
            qs: core::array::from_fn(|j| round_to_i8(x[j] * inverse)),
        }
    }

    /// Writes the 32 weights `d * q` to `out`.
    pub fn dequantize(&self, out: &mut [f32; QK8_0]) {
        let d = self.scale();
        for (value, &q) in out.iter_mut().zip(&self.qs) {
            *value = f32::from(q) * d;
        }
    }
}

/// Returns the f32 scale `max|x| / 127` before rounding to f16.
pub(super) fn scale_of(x: &[f32]) -> f32 {
    let max_abs = x.iter().fold(0.0f32, |max, v| max.max(v.abs()));
    max_abs / 127.0
}

/// Rounds half away from zero, as gguf's `np_roundf` does, and converts to i8.
///
/// NOTE: when `max|x| / 127` is an f32 subnormal below `1 / f32::MAX` (max|x| < 3.7e-37),
/// `1 / d` overflows to infinity and `v` is ±infinity or NaN. numpy on x86_64 casts those to
/// int8 as 0, so this returns 0 too. The block's f16 scale is then 0 either way.
fn round_to_i8(v: f32) -> i8 {
    if !v.is_finite() {
        return 0;
    }

    // Here |v| exceeds 127 by at most a rounding error, so the casts are exact.
    let magnitude = v.abs();
    let whole = magnitude as i32;
    let fraction = magnitude - whole as f32;
    let rounded = whole + i32::from(fraction >= 0.5);
    let signed = if v < 0.0 { -rounded } else { rounded };

    // Unreachable for a finite scale, but keeps the cast from wrapping.
    signed.clamp(i8::MIN.into(), i8::MAX.into()) as i8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_to_i8_rounds_ties_away_from_zero() {
        assert_eq!(round_to_i8(0.5), 1);
        assert_eq!(round_to_i8(-0.5), -1);
        assert_eq!(round_to_i8(2.5), 3);
        assert_eq!(round_to_i8(-2.5), -3);
        assert_eq!(round_to_i8(0.49999997), 0);
        assert_eq!(round_to_i8(126.5), 127);
        assert_eq!(round_to_i8(-0.3), 0);
    }

    #[test]
    fn round_to_i8_maps_non_finite_to_zero() {
        assert_eq!(round_to_i8(f32::INFINITY), 0);
        assert_eq!(round_to_i8(f32::NEG_INFINITY), 0);
        assert_eq!(round_to_i8(f32::NAN), 0);
    }

    #[test]
    fn bytes_round_trip() {
        let block = BlockQ8_0 {
            d: 0x3c01,
            qs: core::array::from_fn(|j| j as i8 - 16),
        };
        let bytes = block.to_bytes();
        assert_eq!(bytes[0], 0x01);
        assert_eq!(bytes[1], 0x3c);
        assert_eq!(bytes[2], 0xf0);
        assert_eq!(BlockQ8_0::from_bytes(&bytes), block);
    }
}
