//! Q4_0: blocks of 32 weights, each stored as `d * (q - 8)` with one f16 scale `d` and an
//! unsigned 4-bit `q`.

use bytemuck::{Pod, Zeroable};

use super::float::{f16_to_f32, f32_to_f16};
use super::{QK4_0, max_abs_index};
use crate::tensor::GgmlType;

/// One Q4_0 block as ggml lays it out: the f16 scale, then 16 bytes of packed nibbles.
///
/// Byte `j` of `qs` contains weight `j` in its low nibble and weight `j + 16` in its high
/// nibble. `d` contains f16 bits. In GGUF bytes it is little-endian, so use
/// [`BlockQ4_0::from_bytes`] and [`BlockQ4_0::to_bytes`] to read and write tensor data,
/// which may also be unaligned.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Zeroable, Pod)]
pub struct BlockQ4_0 {
    /// Scale as f16 bits.
    pub d: u16,
    /// Packed quants: weight `j` is `d * (q - 8)`.
    pub qs: [u8; QK4_0 / 2],
}

const _: () = assert!(size_of::<BlockQ4_0>() == BlockQ4_0::BYTES);
const _: () = assert!(BlockQ4_0::BYTES == GgmlType::Q4_0.block_bytes());

impl BlockQ4_0 {
    /// Size of one block in bytes.
    pub const BYTES: usize = 2 + QK4_0 / 2;

    /// Reads a block from its GGUF bytes.
    pub fn from_bytes(bytes: &[u8; Self::BYTES]) -> Self {
        let mut qs = [0u8; QK4_0 / 2];
        qs.copy_from_slice(&bytes[2..]);
        Self {
            d: u16::from_le_bytes([bytes[0], bytes[1]]),
            qs,
        }
    }

    /// Returns the block's GGUF bytes.
    pub fn to_bytes(&self) -> [u8; Self::BYTES] {
        let mut bytes = [0u8; Self::BYTES];
        bytes[..2].copy_from_slice(&self.d.to_le_bytes());
        bytes[2..].copy_from_slice(&self.qs);
        bytes
    }

    /// Returns the scale `d` as f32.
    pub fn scale(&self) -> f32 {
        f16_to_f32(self.d)
    }

    /// Quantizes 32 finite values the way gguf 0.19.0 `quants.Q4_0` does.
    ///
    /// `max` is the element of largest magnitude, with its sign (the first one on a tie).
    /// The scale is `d = max / -8` in f32, stored rounded to f16, so `max` itself maps to
    /// quant 0. Each quant is `trunc(x * (1 / d) + 8.5)` in f32, clipped to 15, so ties round
    /// up. Values of the opposite sign within 1/16 of `|max|` reach 16 and are clipped. An
    /// all-zero block gets quants of 8 and a scale of `±0`, with the sign taken from `-x[0]`.
    ///
    /// Non-finite inputs give an unspecified block. [`quantize_row`](super::quantize_row)
    /// rejects them, and also rejects blocks whose scale overflows f16.
    pub fn quantize(x: &[f32; QK4_0]) -> Self {
        let d = scale_of(x);
        let inverse = if d == 0.0 { 0.0 } else { 1.0 / d };
        let quant = |v: f32| -> u8 {
            let shifted = v * inverse + 8.5;
            // NOTE: an f32-subnormal `d` makes `inverse` infinite and `shifted` ±inf or NaN.
            // numpy on x86_64 casts those to uint8 as 0, so this does too.
            if shifted.is_finite() {
                (shifted as u8).min(15)
            } else {
                0
            }
        };

        let half = QK4_0 / 2;
        let qs = core::array::from_fn(|j| quant(x[j]) | (quant(x[j + half]) << 4));
        Self {
            d: f32_to_f16(d),
            qs,
        }
    }

    /// Writes the 32 weights `d * (q - 8)` to `out`.
    pub fn dequantize(&self, out: &mut [f32; QK4_0]) {
        let d = self.scale();
        let (low, high) = out.split_at_mut(QK4_0 / 2);
        for ((first, second), &byte) in low.iter_mut().zip(high).zip(&self.qs) {
            *first = d * f32::from((byte & 0x0f) as i8 - 8);
            *second = d * f32::from((byte >> 4) as i8 - 8);
        }
    }
}

/// Returns the f32 scale `max / -8` before rounding to f16, where `max` is the first
/// element of largest magnitude.
pub(super) fn scale_of(x: &[f32]) -> f32 {
    x[max_abs_index(x)] / -8.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nibbles_pack_first_half_low() {
        let mut x = [0.0f32; QK4_0];
        x[0] = -8.0;
        x[16] = 4.0;
        let block = BlockQ4_0::quantize(&x);
        assert_eq!(block.scale(), 1.0);
        // x[0] maps to quant 0 and x[16] to 12; zeros map to 8.
        assert_eq!(block.qs[0], 0xc0);
        assert_eq!(block.qs[1], 0x88);
    }
}
