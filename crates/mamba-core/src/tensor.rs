//! Tensor element types as GGUF numbers them, and borrowed views of tensor data.

use crate::quant::{QK4_0, QK8_0};

/// A tensor element type with ggml's numbering (the `type` field of a GGUF tensor info).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GgmlType {
    /// 32-bit IEEE float.
    F32 = 0,
    /// 16-bit IEEE float.
    F16 = 1,
    /// Blocks of 32 weights: one f16 scale and 32 4-bit values (18 bytes).
    Q4_0 = 2,
    /// Blocks of 32 weights: one f16 scale and 32 signed 8-bit values (34 bytes).
    Q8_0 = 8,
    /// bfloat16: the upper half of an f32.
    BF16 = 30,
}

impl GgmlType {
    /// Every type this crate reads and writes.
    pub const ALL: [GgmlType; 5] = [Self::F32, Self::F16, Self::BF16, Self::Q8_0, Self::Q4_0];

    /// Maps a ggml type number to a supported type, or `None` for any other number.
    pub fn from_u32(value: u32) -> Option<Self> {
        match value {
            0 => Some(Self::F32),
            1 => Some(Self::F16),
            2 => Some(Self::Q4_0),
            8 => Some(Self::Q8_0),
            30 => Some(Self::BF16),
            _ => None,
        }
    }

    /// Number of elements in one block (1 for the float types).
    pub const fn block_size(self) -> usize {
        match self {
            Self::F32 | Self::F16 | Self::BF16 => 1,
            Self::Q4_0 => QK4_0,
            Self::Q8_0 => QK8_0,
        }
    }

    /// Bytes in one block.
    pub const fn block_bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
            Self::Q4_0 => 18,
            Self::Q8_0 => 34,
        }
    }

    /// Bytes taken by a row of `n` elements, or `None` when `n` is not a whole number of
    /// blocks or the size overflows `usize`.
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        if !n.is_multiple_of(self.block_size()) {
            return None;
        }
        (n / self.block_size()).checked_mul(self.block_bytes())
    }

    /// Returns the lower-case name llama.cpp uses (`f32`, `q8_0`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Q4_0 => "q4_0",
            Self::Q8_0 => "q8_0",
            Self::BF16 => "bf16",
        }
    }

    /// Parses a name as [`GgmlType::name`] writes it, ignoring ASCII case.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(name))
    }
}

impl core::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A row-major matrix of `rows × cols` elements stored in one of the [`GgmlType`] layouts.
///
/// In GGUF order the shape is `[cols, rows]` (`ne0` is the row length). Each row takes
/// `dtype.row_bytes(cols)` bytes, and `data` contains exactly `rows` of them.
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    /// Element type and block layout of `data`.
    pub dtype: GgmlType,
    /// Number of rows (output features of a projection).
    pub rows: usize,
    /// Number of elements per row (input features of a projection).
    pub cols: usize,
    /// Raw bytes, `rows * dtype.row_bytes(cols)` long.
    pub data: &'a [u8],
}

impl<'a> Matrix<'a> {
    /// Wraps `data` as a matrix, or returns `None` when its length does not match the shape
    /// or `cols` is not a whole number of blocks.
    pub fn new(dtype: GgmlType, rows: usize, cols: usize, data: &'a [u8]) -> Option<Self> {
        let expected = dtype.row_bytes(cols)?.checked_mul(rows)?;
        (data.len() == expected).then_some(Self { dtype, rows, cols, data })
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.data.len() / self.rows.max(1)
    }

    /// Returns the raw bytes of row `i`.
    ///
    /// # Panics
    /// Panics when `i >= self.rows`.
    pub fn row(&self, i: usize) -> &'a [u8] {
        let n = self.row_bytes();
        &self.data[i * n..(i + 1) * n]
    }
}
