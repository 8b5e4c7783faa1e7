//! GGUF v3: a zero-copy reader over a borrowed byte slice and (with `std`) a streaming writer.
//!
//! STUB: the public API below is the contract; bodies are filled in by the GGUF work.

use crate::tensor::GgmlType;

/// `GGUF` as the first four bytes of a file.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// The only format version this crate reads and writes.
pub const GGUF_VERSION: u32 = 3;
/// Alignment of the tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Maximum number of dimensions of a tensor (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;

/// Type tag of a metadata value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
#[allow(missing_docs)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

/// A metadata value borrowed from the file.
#[derive(Clone, Copy, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum Value<'a> {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(&'a str),
    Array(ArrayValue<'a>),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// An array value: its element type, length and the (already validated) bytes of its elements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArrayValue<'a> {
    elem_type: ValueType,
    len: u64,
    data: &'a [u8],
}

/// One tensor's header and its bytes inside the data section.
#[derive(Clone, Copy, Debug)]
pub struct TensorInfo<'a> {
    /// Tensor name, for example `blk.0.ssm_in.weight`.
    pub name: &'a str,
    /// Element type.
    pub dtype: GgmlType,
    /// Dimensions in ggml order (`dims[0]` is the contiguous one); unused ones are 1.
    pub dims: [u64; MAX_DIMS],
    /// Number of dimensions stored in the file (1 to 4).
    pub n_dims: u32,
    /// Offset of the data relative to the start of the data section.
    pub offset: u64,
    /// The tensor's bytes, exactly `n_elements / block_size * block_bytes` long.
    pub data: &'a [u8],
}

/// A parsed GGUF file borrowing `bytes`.
#[derive(Clone, Copy, Debug)]
pub struct Gguf<'a> {
    bytes: &'a [u8],
}
