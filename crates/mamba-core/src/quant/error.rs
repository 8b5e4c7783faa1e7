//! The error returned when a row cannot be quantized or dequantized.

use core::fmt;

use crate::tensor::GgmlType;

/// Why [`quantize_row`](super::quantize_row) or [`dequantize_row`](super::dequantize_row)
/// rejected its input.
///
/// Element indices count from the start of the row. The `Display` text names the value and
/// what to change.
#[derive(Clone, Debug, PartialEq)]
pub enum QuantError {
    /// An input element is NaN or infinite.
    NonFinite {
        /// Position of the element in the row.
        index: usize,
        /// The element itself.
        value: f32,
    },
    /// An input element is finite but the target format cannot hold it: above 65504 in
    /// magnitude for f16, rounding to infinity for bf16, or making a Q8_0 or Q4_0 block
    /// scale overflow f16. For the block formats `index` is the element that sets the scale.
    OutOfRange {
        /// The target format.
        dtype: GgmlType,
        /// Position of the element in the row.
        index: usize,
        /// The element itself.
        value: f32,
    },
    /// The element count is not a multiple of the format's block size.
    PartialBlock {
        /// The block format.
        dtype: GgmlType,
        /// Elements in the row.
        elements: usize,
    },
    /// The byte buffer is not the size that the element count needs.
    ByteLength {
        /// The format of the bytes.
        dtype: GgmlType,
        /// Elements in the row.
        elements: usize,
        /// `dtype.row_bytes(elements)`.
        expected: usize,
        /// Length of the byte buffer passed in.
        actual: usize,
    },
}

impl fmt::Display for QuantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NonFinite { index, value } => write!(
                f,
                "element {index} is {value}, but only finite values can be quantized; \
                 check the source weights for NaN or infinity"
            ),
            Self::OutOfRange {
                dtype,
                index,
                value,
            } => {
                write!(f, "element {index} is {value}, ")?;
                match dtype {
                    GgmlType::F16 => f.write_str(
                        "outside the f16 range of ±65504; store this tensor as bf16 or f32",
                    ),
                    GgmlType::BF16 => {
                        f.write_str("which rounds to infinity in bf16; store this tensor as f32")
                    }
                    GgmlType::Q8_0 => f.write_str(
                        "so the q8_0 block scale (max |x| / 127) overflows f16; \
                         store this tensor as bf16 or f32",
                    ),
                    GgmlType::Q4_0 => f.write_str(
                        "so the q4_0 block scale (x / -8) overflows f16; \
                         store this tensor as bf16 or f32",
                    ),
                    GgmlType::F32 => f.write_str("outside the f32 range"),
                }
            }
            Self::PartialBlock { dtype, elements } => {
                let block = dtype.block_size();
                write!(
                    f,
                    "a row of {elements} elements is not a whole number of {dtype} blocks of \
                     {block}; use a row length that is a multiple of {block}, or store this \
                     tensor as f16, bf16 or f32"
                )
            }
            Self::ByteLength {
                dtype,
                elements,
                expected,
                actual,
            } => write!(
                f,
                "{elements} {dtype} elements take {expected} bytes, but the buffer has \
                 {actual}; size it with GgmlType::row_bytes"
            ),
        }
    }
}

impl core::error::Error for QuantError {}
