//! Errors of the GGUF reader: one variant per rule a file can break.

use core::fmt;

use super::{MAX_ARRAY_DEPTH, MAX_DIMS, MAX_KEY_LEN, MAX_TENSOR_NAME_LEN, ValueType};
use crate::tensor::GgmlType;

/// Part of a GGUF file, named in error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Field {
    Magic,
    Version,
    TensorCount,
    MetadataCount,
    KeyLength,
    Key,
    ValueType,
    Value,
    ArrayElemType,
    ArrayLength,
    StringLength,
    StringBytes,
    TensorNameLength,
    TensorName,
    DimCount,
    Dim,
    TensorType,
    TensorOffset,
}

impl Field {
    /// Returns the field's name as messages print it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Magic => "magic",
            Self::Version => "version",
            Self::TensorCount => "tensor count",
            Self::MetadataCount => "metadata key-value count",
            Self::KeyLength => "metadata key length",
            Self::Key => "metadata key",
            Self::ValueType => "metadata value type",
            Self::Value => "metadata value",
            Self::ArrayElemType => "array element type",
            Self::ArrayLength => "array length",
            Self::StringLength => "string length",
            Self::StringBytes => "string bytes",
            Self::TensorNameLength => "tensor name length",
            Self::TensorName => "tensor name",
            Self::DimCount => "tensor dimension count",
            Self::Dim => "tensor dimension",
            Self::TensorType => "tensor type",
            Self::TensorOffset => "tensor data offset",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Bytes of a name that a [`ShortName`] keeps; longer names are cut at a character boundary.
const SHORT_NAME_CAPACITY: usize = MAX_TENSOR_NAME_LEN;

/// A copy of a tensor name or metadata key, kept inside an error so that [`GgufError`]
/// needs neither a lifetime nor an allocation.
///
/// Holds up to 63 bytes, which fits every tensor name the reader accepts. Longer keys are
/// cut at a character boundary and printed with a trailing `...`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShortName {
    bytes: [u8; SHORT_NAME_CAPACITY],
    len: u8,
    truncated: bool,
}

impl ShortName {
    /// Copies `name`, cutting it to the capacity at a character boundary.
    pub fn new(name: &str) -> Self {
        let mut len = name.len().min(SHORT_NAME_CAPACITY);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; SHORT_NAME_CAPACITY];
        if let (Some(dst), Some(src)) = (bytes.get_mut(..len), name.as_bytes().get(..len)) {
            dst.copy_from_slice(src);
        }
        Self {
            bytes,
            // `len` is at most 63.
            len: len as u8,
            truncated: len < name.len(),
        }
    }

    /// Returns the kept text, which is the whole name unless [`ShortName::is_truncated`].
    pub fn as_str(&self) -> &str {
        let kept = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        // `new` copies a prefix that ends on a character boundary, so this never fails.
        core::str::from_utf8(kept).unwrap_or_default()
    }

    /// Returns whether the name was longer than the 63 bytes kept.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
}

impl fmt::Display for ShortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if self.truncated {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ShortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Why [`super::Gguf::parse`] rejected a file.
///
/// Every offset is an absolute byte offset into the file. Tensor indices count from 0 in
/// file order.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufError {
    /// The file ends inside a field.
    Truncated {
        /// The field being read.
        field: Field,
        /// Offset of the field.
        offset: u64,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left in the file from `offset`.
        available: u64,
    },
    /// The first four bytes are not `GGUF` or a known legacy magic.
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// The file is in a legacy ggml format (GGML, GGMF or GGJT) that predates GGUF.
    LegacyFormat {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// The version reads as a byte-swapped small number: a big-endian GGUF file.
    BigEndian {
        /// The version field read as little-endian.
        found: u32,
    },
    /// A version other than 3.
    UnsupportedVersion {
        /// The version field.
        found: u32,
    },
    /// A count needs more bytes than the rest of the file holds, even at the smallest
    /// encoding of each entry.
    CountTooLarge {
        /// The count field.
        field: Field,
        /// Offset of the count field.
        offset: u64,
        /// The count read.
        found: u64,
        /// Maximum number of entries the remaining bytes can hold.
        max: u64,
    },
    /// A count is above the reader's limit ([`super::MAX_TENSORS`] or
    /// [`super::MAX_METADATA_KEYS`]).
    CountOverLimit {
        /// The count field.
        field: Field,
        /// Offset of the count field.
        offset: u64,
        /// The count read.
        found: u64,
        /// The reader's limit.
        limit: u64,
    },
    /// A string length points past the end of the file.
    StringTooLong {
        /// The string's length field.
        field: Field,
        /// Offset of the length field.
        offset: u64,
        /// The length read.
        len: u64,
        /// Bytes left in the file after the length field.
        available: u64,
    },
    /// A metadata key longer than [`MAX_KEY_LEN`] bytes.
    KeyTooLong {
        /// Index of the key among the metadata entries.
        index: u64,
        /// Offset of the key's length field.
        offset: u64,
        /// The key's length in bytes.
        len: u64,
    },
    /// A key, string value or tensor name that is not UTF-8.
    InvalidUtf8 {
        /// The string's bytes field.
        field: Field,
        /// Offset of the string's bytes.
        offset: u64,
        /// Offset of the first invalid byte.
        error_offset: u64,
    },
    /// A value type tag outside 0 to 12.
    UnknownValueType {
        /// [`Field::ValueType`] or [`Field::ArrayElemType`].
        field: Field,
        /// Offset of the tag.
        offset: u64,
        /// The tag read.
        found: u32,
    },
    /// Arrays nested deeper than [`MAX_ARRAY_DEPTH`].
    ArrayTooDeep {
        /// Offset of the innermost array's element type.
        offset: u64,
    },
    /// A bool byte other than 0 or 1.
    InvalidBool {
        /// Offset of the byte.
        offset: u64,
        /// The byte read.
        found: u8,
    },
    /// `general.alignment` stored as a type other than u32.
    AlignmentType {
        /// Offset of the value.
        offset: u64,
        /// The type found.
        found: ValueType,
    },
    /// `general.alignment` that is zero or not a power of two.
    InvalidAlignment {
        /// Offset of the value.
        offset: u64,
        /// The value read.
        found: u32,
    },
    /// A metadata key that an earlier entry already used.
    DuplicateKey {
        /// The key.
        key: ShortName,
        /// Offset of the repeated key's length field.
        offset: u64,
        /// Index of the repeated entry.
        index: u64,
        /// Index of the first entry with this key.
        first_index: u64,
    },
    /// A tensor name longer than [`MAX_TENSOR_NAME_LEN`] bytes.
    TensorNameTooLong {
        /// The name, cut to 63 bytes.
        name: ShortName,
        /// Index of the tensor.
        tensor: u64,
        /// Offset of the name's length field.
        offset: u64,
        /// The name's length in bytes.
        len: u64,
    },
    /// A tensor name that an earlier tensor already used.
    DuplicateTensorName {
        /// The name.
        name: ShortName,
        /// Index of the repeated tensor.
        tensor: u64,
        /// Offset of the repeated name's length field.
        offset: u64,
        /// Index of the first tensor with this name.
        first_tensor: u64,
    },
    /// A dimension count of 0 or more than [`MAX_DIMS`].
    InvalidDimCount {
        /// The tensor's name.
        name: ShortName,
        /// Index of the tensor.
        tensor: u64,
        /// Offset of the count.
        offset: u64,
        /// The count read.
        found: u32,
    },
    /// A dimension of 0.
    ZeroDim {
        /// The tensor's name.
        name: ShortName,
        /// Index of the tensor.
        tensor: u64,
        /// Offset of the dimension.
        offset: u64,
        /// Index of the dimension (0 is the contiguous one).
        axis: u32,
    },
    /// A shape whose element count or byte size does not fit in u64.
    TooManyElements {
        /// The tensor's name.
        name: ShortName,
        /// Index of the tensor.
        tensor: u64,
        /// Offset of the first dimension.
        offset: u64,
        /// The dimensions read, 1 past `n_dims`.
        dims: [u64; MAX_DIMS],
        /// Number of dimensions.
        n_dims: u32,
    },
    /// A ggml type that this crate does not implement.
    UnsupportedTensorType {
        /// The tensor's name.
        name: ShortName,
        /// Index of the tensor.
        tensor: u64,
        /// Offset of the type.
        offset: u64,
        /// The ggml type number read.
        found: u32,
    },
    /// A row length (`dims[0]`) that is not a whole number of blocks.
    RowNotBlockMultiple {
        /// The tensor's name.
        name: ShortName,
        /// Index of the tensor.
        tensor: u64,
        /// Offset of the first dimension.
        offset: u64,
        /// The tensor's type.
        dtype: GgmlType,
        /// `dims[0]`.
        row_len: u64,
    },
    /// A data offset that is not a multiple of the alignment.
    MisalignedTensor {
        /// The tensor's name.
        name: ShortName,
        /// Index of the tensor.
        tensor: u64,
        /// Offset of the offset field.
        offset: u64,
        /// The data offset read, relative to the data section.
        found: u64,
        /// The file's alignment.
        alignment: u64,
    },
    /// Tensor data that extends past the end of the file.
    TensorOutOfBounds {
        /// The tensor's name.
        name: ShortName,
        /// Index of the tensor.
        tensor: u64,
        /// Absolute offset of the first data byte.
        start: u64,
        /// Absolute offset one past the last data byte, saturated at `u64::MAX`.
        end: u64,
        /// Length of the file.
        file_len: u64,
    },
    /// Two tensors whose data share bytes.
    TensorOverlap {
        /// The later tensor's name.
        name: ShortName,
        /// Index of the later tensor.
        tensor: u64,
        /// Absolute byte range of the later tensor's data.
        range: (u64, u64),
        /// Index of the earlier tensor it overlaps.
        other: u64,
        /// Absolute byte range of the earlier tensor's data.
        other_range: (u64, u64),
    },
}

/// Legacy magics as their files store them: a little-endian u32, so the bytes read backwards.
const LEGACY_MAGICS: [([u8; 4], &str); 3] =
    [(*b"lmgg", "GGML"), (*b"fmgg", "GGMF"), (*b"tjgg", "GGJT")];

/// Returns the name of the legacy ggml format whose magic is `bytes`, in either byte order.
pub(crate) fn legacy_format_name(bytes: [u8; 4]) -> Option<&'static str> {
    let mut reversed = bytes;
    reversed.reverse();
    LEGACY_MAGICS
        .iter()
        .find(|(magic, _)| *magic == bytes || *magic == reversed)
        .map(|(_, name)| *name)
}

/// Names of ggml types that llama.cpp defines but this crate does not implement, from
/// `GGMLQuantizationType` in gguf-py's `constants.py`.
fn ggml_type_name(number: u32) -> Option<&'static str> {
    let name = match number {
        0 => "f32",
        1 => "f16",
        2 => "q4_0",
        3 => "q4_1",
        6 => "q5_0",
        7 => "q5_1",
        8 => "q8_0",
        9 => "q8_1",
        10 => "q2_k",
        11 => "q3_k",
        12 => "q4_k",
        13 => "q5_k",
        14 => "q6_k",
        15 => "q8_k",
        16 => "iq2_xxs",
        17 => "iq2_xs",
        18 => "iq3_xxs",
        19 => "iq1_s",
        20 => "iq4_nl",
        21 => "iq3_s",
        22 => "iq2_s",
        23 => "iq4_xs",
        24 => "i8",
        25 => "i16",
        26 => "i32",
        27 => "i64",
        28 => "f64",
        29 => "iq1_m",
        30 => "bf16",
        34 => "tq1_0",
        35 => "tq2_0",
        39 => "mxfp4",
        _ => return None,
    };
    Some(name)
}

/// Prints four bytes as hex and as text with non-printable bytes replaced by `?`.
struct Magic([u8; 4]);

impl fmt::Display for Magic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a:02x} {b:02x} {c:02x} {d:02x} (\"")?;
        for byte in self.0 {
            let shown = if byte.is_ascii_graphic() || byte == b' ' {
                byte as char
            } else {
                '?'
            };
            write!(f, "{shown}")?;
        }
        f.write_str("\")")
    }
}

/// Prints the first `n_dims` dimensions as `[a, b, c]`.
struct Shape([u64; MAX_DIMS], u32);

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, dim) in self.0.iter().take(self.1 as usize).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{dim}")?;
        }
        f.write_str("]")
    }
}

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated {
                field,
                offset,
                needed,
                available,
            } => write!(
                f,
                "The file ends inside the {field} at offset {offset}, which needs {needed} \
                 bytes, but only {available} bytes remain. The file is incomplete, so download \
                 or convert it again."
            ),
            Self::BadMagic { found } => write!(
                f,
                "The file starts with the bytes {}, but a GGUF file starts with 47 47 55 46 \
                 (\"GGUF\"). Check that the path names a GGUF model file.",
                Magic(*found)
            ),
            Self::LegacyFormat { found } => write!(
                f,
                "The file starts with {}, the magic of the legacy {} format, which predates \
                 GGUF and is not supported. Convert the original model again with a current \
                 GGUF converter such as llama.cpp's convert_hf_to_gguf.py.",
                Magic(*found),
                legacy_format_name(*found).unwrap_or("ggml")
            ),
            Self::BigEndian { found } => write!(
                f,
                "The version field at offset 4 reads {found:#010x}, which is version {} \
                 stored big-endian. Only little-endian GGUF files are supported, so convert \
                 the model again without the big-endian option.",
                found.swap_bytes()
            ),
            Self::UnsupportedVersion { found } => write!(
                f,
                "The GGUF version at offset 4 is {found}, but only version 3 is supported. \
                 Convert the model again with a current GGUF converter."
            ),
            Self::CountTooLarge {
                field,
                offset,
                found,
                max,
            } => write!(
                f,
                "The {field} at offset {offset} is {found}, but the rest of the file can hold \
                 at most {max} entries. The file is corrupt or truncated."
            ),
            Self::CountOverLimit {
                field,
                offset,
                found,
                limit,
            } => write!(
                f,
                "The {field} at offset {offset} is {found}, above the limit of {limit} that \
                 this reader accepts. No supported model needs that many, so the file is \
                 probably corrupt."
            ),
            Self::StringTooLong {
                field,
                offset,
                len,
                available,
            } => write!(
                f,
                "The {field} at offset {offset} is {len} bytes, but only {available} bytes \
                 remain in the file. The file is corrupt or truncated."
            ),
            Self::KeyTooLong { index, offset, len } => write!(
                f,
                "Metadata key {index} at offset {offset} is {len} bytes long, but the GGUF \
                 specification allows at most {MAX_KEY_LEN}. The file is corrupt or was \
                 written by a tool that does not follow the specification."
            ),
            Self::InvalidUtf8 {
                field,
                offset,
                error_offset,
            } => write!(
                f,
                "The {field} at offset {offset} is not valid UTF-8, and the first invalid \
                 byte is at offset {error_offset}. GGUF strings must be UTF-8, so the file \
                 is corrupt."
            ),
            Self::UnknownValueType {
                field,
                offset,
                found,
            } => write!(
                f,
                "The {field} at offset {offset} is {found}, which is not a GGUF value type \
                 (0 to 12). The file is corrupt or uses a newer revision of the format."
            ),
            Self::ArrayTooDeep { offset } => write!(
                f,
                "The array whose element type is at offset {offset} is nested more than \
                 {MAX_ARRAY_DEPTH} levels deep, the maximum this reader accepts. No known \
                 model nests arrays that deep, so the file is probably corrupt."
            ),
            Self::InvalidBool { offset, found } => write!(
                f,
                "The bool at offset {offset} is {found}, but a bool must be 0 or 1. The file \
                 is corrupt."
            ),
            Self::AlignmentType { offset, found } => write!(
                f,
                "The general.alignment value at offset {offset} has type {found}, but \
                 llama.cpp and gguf-py read it only as u32. Write the file again with \
                 general.alignment stored as u32."
            ),
            Self::InvalidAlignment { offset, found } => write!(
                f,
                "The general.alignment value at offset {offset} is {found}, but it must be a \
                 power of two from 1 to 2147483648. Write the file again with a valid \
                 alignment such as 32."
            ),
            Self::DuplicateKey {
                key,
                offset,
                index,
                first_index,
            } => write!(
                f,
                "Metadata key '{key}' at offset {offset} (entry {index}) repeats entry \
                 {first_index}. Keys must be unique, so write the file again without the \
                 duplicate."
            ),
            Self::TensorNameTooLong {
                name,
                tensor,
                offset,
                len,
            } => write!(
                f,
                "The name '{name}' of tensor {tensor} at offset {offset} is {len} bytes, but \
                 at most {MAX_TENSOR_NAME_LEN} are allowed because llama.cpp keeps names in a \
                 64-byte buffer. Give the tensor a shorter name when converting."
            ),
            Self::DuplicateTensorName {
                name,
                tensor,
                offset,
                first_tensor,
            } => write!(
                f,
                "Tensor {tensor} at offset {offset} is named '{name}', like tensor \
                 {first_tensor}. Tensor names must be unique, so convert the model again."
            ),
            Self::InvalidDimCount {
                name,
                tensor,
                offset,
                found,
            } => write!(
                f,
                "Tensor '{name}' (index {tensor}) has {found} dimensions in the field at \
                 offset {offset}, but the count must be from 1 to {MAX_DIMS}. The file is \
                 corrupt or was written for a newer ggml."
            ),
            Self::ZeroDim {
                name,
                tensor,
                offset,
                axis,
            } => write!(
                f,
                "Dimension {axis} of tensor '{name}' (index {tensor}) at offset {offset} is \
                 0, but every dimension must be at least 1. The file is corrupt."
            ),
            Self::TooManyElements {
                name,
                tensor,
                offset,
                dims,
                n_dims,
            } => write!(
                f,
                "Tensor '{name}' (index {tensor}) has the shape {} (dimensions at offset \
                 {offset}), whose element count or byte size does not fit in 64 bits. The \
                 file is corrupt.",
                Shape(*dims, *n_dims)
            ),
            Self::UnsupportedTensorType {
                name,
                tensor,
                offset,
                found,
            } => {
                write!(f, "Tensor '{name}' (index {tensor}) has ggml type {found}")?;
                if let Some(type_name) = ggml_type_name(*found) {
                    write!(f, " ({type_name})")?;
                }
                write!(
                    f,
                    " in the field at offset {offset}, which mamba-edge does not support. The \
                     supported types are f32, f16, bf16, q8_0 and q4_0, so requantize the \
                     model with `mamba-quantize --type q8_0`."
                )
            }
            Self::RowNotBlockMultiple {
                name,
                tensor,
                offset,
                dtype,
                row_len,
            } => write!(
                f,
                "Tensor '{name}' (index {tensor}) has rows of {row_len} elements (dimension 0 \
                 at offset {offset}), which is not a multiple of the {dtype} block size {}. \
                 The file is corrupt, or its converter quantized a tensor whose rows do not \
                 fill whole blocks, which must stay f16 or f32.",
                dtype.block_size()
            ),
            Self::MisalignedTensor {
                name,
                tensor,
                offset,
                found,
                alignment,
            } => write!(
                f,
                "Tensor '{name}' (index {tensor}) has data offset {found} in the field at \
                 offset {offset}, which is not a multiple of the file's alignment \
                 {alignment}. The file is corrupt."
            ),
            Self::TensorOutOfBounds {
                name,
                tensor,
                start,
                end,
                file_len,
            } => write!(
                f,
                "The data of tensor '{name}' (index {tensor}) spans bytes {start} to {end}, \
                 past the end of the file at {file_len}. The file is truncated, so download \
                 or convert it again."
            ),
            Self::TensorOverlap {
                name,
                tensor,
                range,
                other,
                other_range,
            } => write!(
                f,
                "The data of tensor '{name}' (index {tensor}, bytes {} to {}) overlaps the \
                 data of tensor {other} (bytes {} to {}). The file is corrupt.",
                range.0, range.1, other_range.0, other_range.1
            ),
        }
    }
}

impl core::error::Error for GgufError {}
