//! ggml block formats: Q8_0 and Q4_0 layouts, quantization and dequantization, and the
//! F16/BF16 row conversions.
//!
//! Quantization matches the `gguf` Python package (version 0.19.0, `gguf.quants`) byte for
//! byte on every row that [`quantize_row`] accepts. It rejects the rows that gguf would turn
//! into NaN or infinite weights. The tests compare against gguf outputs stored under
//! `tests/data/quant`. Every function here works on caller-owned slices and never
//! allocates.

mod error;
mod float;
mod q4_0;
mod q8_0;

pub use error::QuantError;
pub use float::{F16_MAX, bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
pub use q4_0::BlockQ4_0;
pub use q8_0::BlockQ8_0;

use crate::tensor::GgmlType;

/// Weights per Q8_0 block.
pub const QK8_0: usize = 32;
/// Weights per Q4_0 block.
pub const QK4_0: usize = 32;

/// Converts one row of f32 values to `dtype`'s bytes, as `gguf.quants.quantize` does.
///
/// `dst.len()` must equal `dtype.row_bytes(src.len())`. The whole row is checked before
/// anything is written, so `dst` is unchanged on error.
///
/// # Errors
/// - [`QuantError::PartialBlock`] when `src.len()` is not a multiple of the block size.
/// - [`QuantError::ByteLength`] when `dst` has the wrong length.
/// - [`QuantError::NonFinite`] for the first NaN or infinite element, for every `dtype`.
/// - [`QuantError::OutOfRange`] for the first element that f16 cannot hold (magnitude above
///   65504), that rounds to infinity in bf16, or whose Q8_0 or Q4_0 block scale overflows
///   f16.
pub fn quantize_row(dtype: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    check_lengths(dtype, src.len(), dst.len())?;
    check_values(dtype, src)?;

    match dtype {
        GgmlType::F32 => {
            for (bytes, &x) in dst.as_chunks_mut::<4>().0.iter_mut().zip(src) {
                *bytes = x.to_le_bytes();
            }
        }
        GgmlType::F16 => {
            for (bytes, &x) in dst.as_chunks_mut::<2>().0.iter_mut().zip(src) {
                *bytes = f32_to_f16(x).to_le_bytes();
            }
        }
        GgmlType::BF16 => {
            for (bytes, &x) in dst.as_chunks_mut::<2>().0.iter_mut().zip(src) {
                *bytes = f32_to_bf16(x).to_le_bytes();
            }
        }
        GgmlType::Q8_0 => {
            let blocks = dst.as_chunks_mut::<{ BlockQ8_0::BYTES }>().0;
            for (bytes, x) in blocks.iter_mut().zip(src.as_chunks::<QK8_0>().0) {
                *bytes = BlockQ8_0::quantize(x).to_bytes();
            }
        }
        GgmlType::Q4_0 => {
            let blocks = dst.as_chunks_mut::<{ BlockQ4_0::BYTES }>().0;
            for (bytes, x) in blocks.iter_mut().zip(src.as_chunks::<QK4_0>().0) {
                *bytes = BlockQ4_0::quantize(x).to_bytes();
            }
        }
    }
    Ok(())
}

/// Converts one row of `dtype`'s bytes to f32, as `gguf.quants.dequantize` does.
///
/// `dst.len()` is the element count, and `src.len()` must equal `dtype.row_bytes(dst.len())`.
/// The bytes are not checked further: a NaN or infinite value or scale in `src` comes out as
/// NaN or infinity.
///
/// # Errors
/// - [`QuantError::PartialBlock`] when `dst.len()` is not a multiple of the block size.
/// - [`QuantError::ByteLength`] when `src` has the wrong length.
pub fn dequantize_row(dtype: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    check_lengths(dtype, dst.len(), src.len())?;

    match dtype {
        GgmlType::F32 => {
            for (x, bytes) in dst.iter_mut().zip(src.as_chunks::<4>().0) {
                *x = f32::from_le_bytes(*bytes);
            }
        }
        GgmlType::F16 => {
            for (x, bytes) in dst.iter_mut().zip(src.as_chunks::<2>().0) {
                *x = f16_to_f32(u16::from_le_bytes(*bytes));
            }
        }
        GgmlType::BF16 => {
            for (x, bytes) in dst.iter_mut().zip(src.as_chunks::<2>().0) {
                *x = bf16_to_f32(u16::from_le_bytes(*bytes));
            }
        }
        GgmlType::Q8_0 => {
            let blocks = src.as_chunks::<{ BlockQ8_0::BYTES }>().0;
            for (x, bytes) in dst.as_chunks_mut::<QK8_0>().0.iter_mut().zip(blocks) {
                BlockQ8_0::from_bytes(bytes).dequantize(x);
            }
        }
        GgmlType::Q4_0 => {
            let blocks = src.as_chunks::<{ BlockQ4_0::BYTES }>().0;
            for (x, bytes) in dst.as_chunks_mut::<QK4_0>().0.iter_mut().zip(blocks) {
                BlockQ4_0::from_bytes(bytes).dequantize(x);
            }
        }
    }
    Ok(())
}

/// Checks that `elements` is a whole number of blocks that take exactly `bytes` bytes.
fn check_lengths(dtype: GgmlType, elements: usize, bytes: usize) -> Result<(), QuantError> {
    let Some(expected) = dtype.row_bytes(elements) else {
        return Err(QuantError::PartialBlock { dtype, elements });
    };
    if bytes != expected {
        return Err(QuantError::ByteLength {
            dtype,
            elements,
            expected,
            actual: bytes,
        });
    }
    Ok(())
}

/// Rejects values that `dtype` cannot represent. The length must already be checked.
fn check_values(dtype: GgmlType, src: &[f32]) -> Result<(), QuantError> {
    if let Some(index) = src.iter().position(|x| !x.is_finite()) {
        return Err(QuantError::NonFinite {
            index,
            value: src[index],
        });
    }

    let out_of_range = |index: usize| QuantError::OutOfRange {
        dtype,
        index,
        value: src[index],
    };
    match dtype {
        GgmlType::F32 => {}
        GgmlType::F16 => {
            if let Some(index) = src.iter().position(|x| x.abs() > F16_MAX) {
                return Err(out_of_range(index));
            }
        }
        GgmlType::BF16 => {
            if let Some(index) = src
                .iter()
                .position(|&x| bf16_to_f32(f32_to_bf16(x)).is_infinite())
            {
                return Err(out_of_range(index));
            }
        }
        GgmlType::Q8_0 => {
            for (block_index, block) in src.chunks_exact(QK8_0).enumerate() {
                if f16_to_f32(f32_to_f16(q8_0::scale_of(block))).is_infinite() {
                    return Err(out_of_range(block_index * QK8_0 + max_abs_index(block)));
                }
            }
        }
        GgmlType::Q4_0 => {
            for (block_index, block) in src.chunks_exact(QK4_0).enumerate() {
                let max_index = max_abs_index(block);
                if f16_to_f32(f32_to_f16(block[max_index] / -8.0)).is_infinite() {
                    return Err(out_of_range(block_index * QK4_0 + max_index));
                }
            }
        }
    }
    Ok(())
}

/// Returns the index of the first element with the largest magnitude, as numpy's
/// `abs(x).argmax()` does. `x` must not be empty.
fn max_abs_index(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in x.iter().enumerate().skip(1) {
        if v.abs() > x[best].abs() {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_abs_index_prefers_first_on_tie() {
        assert_eq!(max_abs_index(&[1.0, -3.0, 3.0]), 1);
        assert_eq!(max_abs_index(&[1.0, 3.0, -3.0]), 1);
        assert_eq!(max_abs_index(&[-0.0, 0.0]), 0);
    }
}
