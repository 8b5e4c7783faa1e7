//! GGUF v3: a zero-copy reader over a borrowed byte slice and (with `std`) a streaming writer.
//!
//! [`Gguf::parse`] validates the whole file once, without allocating, and the accessors then
//! re-walk the validated bytes lazily. Every problem in the file is a [`GgufError`] whose
//! message names the field, its byte offset, the value found and the allowed range.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! "GGUF"  u32 version  u64 tensor_count  u64 metadata_kv_count
//! metadata_kv_count × { string key, u32 value type, value }
//! tensor_count × { string name, u32 n_dims, n_dims × u64 dim, u32 ggml type, u64 offset }
//! padding to general.alignment, then the data section
//! ```
//!
//! A string is a u64 byte length followed by UTF-8 bytes without a terminating NUL. An array
//! is a u32 element type, a u64 element count and the elements. Tensor offsets are relative
//! to the data section and are multiples of the alignment.
//!
//! # Limits
//!
//! The reader rejects files beyond these limits, and the writer rejects input that would
//! exceed them. A file has at most [`MAX_METADATA_KEYS`] keys and [`MAX_TENSORS`] tensors,
//! and arrays nest at most [`MAX_ARRAY_DEPTH`] levels deep. Keys are at most
//! [`MAX_KEY_LEN`] bytes long and tensor names at most [`MAX_TENSOR_NAME_LEN`] bytes. The
//! two counts bound the time and stack space of the duplicate checks, which cannot use a
//! hash set without an allocator.

mod error;
mod reader;
mod value;
#[cfg(feature = "std")]
mod writer;

pub use error::{Field, GgufError, ShortName};
pub use reader::{Gguf, TensorInfo};
pub use value::{ArrayValue, Value, ValueType};
#[cfg(feature = "std")]
pub use writer::{FillError, GgufWriteError, GgufWriter, MetaValue};

/// `GGUF` as the first four bytes of a file.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// The only format version this crate reads and writes.
pub const GGUF_VERSION: u32 = 3;
/// Alignment of the tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Maximum number of dimensions of a tensor (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;
/// The metadata key that sets the data alignment. llama.cpp and gguf-py read it only as u32.
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// Maximum number of metadata keys.
///
/// The reader sorts the key positions in a stack table of this many entries to find
/// duplicates without allocating (8 KiB on 64-bit targets, 4 KiB on 32-bit ones). Converted
/// models carry a few dozen keys, because the vocabulary is one array value.
pub const MAX_METADATA_KEYS: usize = 1024;
/// Maximum number of tensors.
///
/// The duplicate-name and overlap checks sort blocks of 128 tensors on the stack, so their
/// cost grows with the square of the count divided by 128. Large language models have a
/// few thousand tensors at most.
pub const MAX_TENSORS: usize = 16_384;
/// Maximum nesting of arrays: an array value is depth 1, an array of arrays depth 2.
pub const MAX_ARRAY_DEPTH: u32 = 8;
/// Maximum length of a metadata key in bytes, as the GGUF specification states.
pub const MAX_KEY_LEN: usize = 65_535;
/// Maximum length of a tensor name in bytes: llama.cpp rejects names that do not fit its
/// 64-byte `GGML_MAX_NAME` buffer with the terminating NUL.
pub const MAX_TENSOR_NAME_LEN: usize = 63;
