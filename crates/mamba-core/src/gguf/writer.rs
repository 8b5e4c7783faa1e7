//! The GGUF writer: collects metadata and tensor shapes, then streams the file with tensor
//! bytes supplied by a callback, so that no tensor has to sit in memory as a whole.

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::vec::Vec;
use std::{boxed::Box, format};

use super::reader::tensor_n_bytes;
use super::{
    ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, MAX_ARRAY_DEPTH, MAX_DIMS,
    MAX_KEY_LEN, MAX_METADATA_KEYS, MAX_TENSOR_NAME_LEN, MAX_TENSORS, ValueType,
};
use crate::tensor::GgmlType;

/// The error a tensor-filling callback returns.
pub type FillError = Box<dyn std::error::Error + Send + Sync>;

/// An owned metadata value for [`GgufWriter::add_metadata`].
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    U64(u64),
    I64(i64),
    F64(f64),
    /// An array of the given element type. Every element must have that type; for an
    /// array of arrays, the inner arrays may differ in element type and length.
    Array(ValueType, Vec<MetaValue>),
}

impl MetaValue {
    /// Returns the type tag this value is written with.
    pub fn value_type(&self) -> ValueType {
        match self {
            Self::U8(_) => ValueType::U8,
            Self::I8(_) => ValueType::I8,
            Self::U16(_) => ValueType::U16,
            Self::I16(_) => ValueType::I16,
            Self::U32(_) => ValueType::U32,
            Self::I32(_) => ValueType::I32,
            Self::F32(_) => ValueType::F32,
            Self::Bool(_) => ValueType::Bool,
            Self::String(_) => ValueType::String,
            Self::U64(_) => ValueType::U64,
            Self::I64(_) => ValueType::I64,
            Self::F64(_) => ValueType::F64,
            Self::Array(..) => ValueType::Array,
        }
    }

    /// Appends the encoded value, without its type tag.
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::U8(v) => out.push(*v),
            Self::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::Bool(v) => out.push(u8::from(*v)),
            Self::String(v) => encode_string(out, v),
            Self::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::Array(elem_type, items) => {
                out.extend_from_slice(&(*elem_type as u32).to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for item in items {
                    item.encode(out);
                }
            }
        }
    }
}

fn encode_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Error of [`GgufWriter`]: a rejected input or a failed write.
#[derive(Debug)]
pub enum GgufWriteError {
    /// An alignment that is zero, not a power of two or above `u32::MAX`.
    InvalidAlignment {
        /// The alignment requested.
        found: u64,
    },
    /// `general.alignment` passed to `add_metadata` instead of `set_alignment`.
    ReservedKey {
        /// The key.
        key: String,
    },
    /// A key longer than [`MAX_KEY_LEN`] bytes.
    KeyTooLong {
        /// The key's first 64 characters.
        key: String,
        /// The key's length in bytes.
        len: usize,
    },
    /// A key added twice.
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// An array element whose type differs from the array's element type.
    MixedArray {
        /// The metadata key.
        key: String,
        /// Nesting level of the array holding the element (1 for the value itself).
        depth: u32,
        /// Index of the element in that array.
        index: usize,
        /// The array's element type.
        expected: ValueType,
        /// The element's type.
        found: ValueType,
    },
    /// Arrays nested deeper than [`MAX_ARRAY_DEPTH`].
    ArrayTooDeep {
        /// The metadata key.
        key: String,
    },
    /// More than `MAX_METADATA_KEYS - 1` keys (one entry stays free for `general.alignment`).
    TooManyKeys {
        /// The key that did not fit.
        key: String,
    },
    /// More than [`MAX_TENSORS`] tensors.
    TooManyTensors {
        /// The tensor that did not fit.
        name: String,
    },
    /// A tensor name longer than [`MAX_TENSOR_NAME_LEN`] bytes.
    TensorNameTooLong {
        /// The name.
        name: String,
    },
    /// A tensor name added twice.
    DuplicateTensor {
        /// The name.
        name: String,
    },
    /// A shape with no dimensions or more than [`MAX_DIMS`].
    InvalidDimCount {
        /// The tensor's name.
        name: String,
        /// Number of dimensions given.
        found: usize,
    },
    /// A dimension of 0.
    ZeroDim {
        /// The tensor's name.
        name: String,
        /// Index of the dimension, in ggml order.
        axis: usize,
    },
    /// A row length (`dims[0]`) that is not a whole number of blocks of the type.
    RowNotBlockMultiple {
        /// The tensor's name.
        name: String,
        /// The tensor's type.
        dtype: GgmlType,
        /// `dims[0]`.
        row_len: u64,
    },
    /// A tensor whose element count, byte size or position in the file overflows u64.
    TensorTooLarge {
        /// The tensor's name.
        name: String,
    },
    /// The fill callback returned an error.
    Fill {
        /// Index of the tensor being filled.
        index: usize,
        /// The tensor's name.
        name: String,
        /// The callback's error.
        source: FillError,
    },
    /// The fill callback wrote a different number of bytes than the tensor takes.
    WrongTensorSize {
        /// Index of the tensor being filled.
        index: usize,
        /// The tensor's name.
        name: String,
        /// Bytes the tensor takes.
        expected: u64,
        /// Bytes the callback tried to write.
        written: u64,
    },
    /// `write_file` got a path without a file name, such as `/` or `..`.
    InvalidPath {
        /// The path.
        path: PathBuf,
    },
    /// Writing, syncing or renaming failed.
    Io {
        /// The file involved, if the writer opened it.
        path: Option<PathBuf>,
        /// The I/O error.
        source: io::Error,
    },
}

impl fmt::Display for GgufWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidAlignment { found } => write!(
                f,
                "Alignment {found} is invalid. It must be a power of two from 1 to \
                 2147483648, because general.alignment is stored as u32. Use 32 unless \
                 a loader needs more."
            ),
            Self::ReservedKey { key } => write!(
                f,
                "Metadata key '{key}' is set by GgufWriter::set_alignment, so add_metadata \
                 does not accept it. Call set_alignment instead."
            ),
            Self::KeyTooLong { key, len } => write!(
                f,
                "Metadata key '{key}...' is {len} bytes long, but the GGUF specification \
                 allows at most {MAX_KEY_LEN}. Use a shorter key."
            ),
            Self::DuplicateKey { key } => write!(
                f,
                "Metadata key '{key}' was already added. Each key may appear once, so add \
                 it only once."
            ),
            Self::MixedArray {
                key,
                depth,
                index,
                expected,
                found,
            } => write!(
                f,
                "Element {index} of the array at nesting level {depth} in metadata key \
                 '{key}' has type {found}, but the array's element type is {expected}. \
                 Convert the element or declare the array with the element type it holds."
            ),
            Self::ArrayTooDeep { key } => write!(
                f,
                "Metadata key '{key}' nests arrays more than {MAX_ARRAY_DEPTH} levels deep, \
                 which the reader rejects. Flatten the value."
            ),
            Self::TooManyKeys { key } => write!(
                f,
                "Metadata key '{key}' would exceed the limit of {} keys (one entry stays \
                 free for general.alignment). Move the data into arrays or drop keys.",
                MAX_METADATA_KEYS - 1
            ),
            Self::TooManyTensors { name } => write!(
                f,
                "Tensor '{name}' would exceed the limit of {MAX_TENSORS} tensors that the \
                 reader accepts. Merge tensors, for example the experts of one layer."
            ),
            Self::TensorNameTooLong { name } => write!(
                f,
                "Tensor name '{name}' is {} bytes, but at most {MAX_TENSOR_NAME_LEN} are \
                 allowed because llama.cpp keeps names in a 64-byte buffer. Use a shorter \
                 name.",
                name.len()
            ),
            Self::DuplicateTensor { name } => write!(
                f,
                "Tensor '{name}' was already added. Tensor names must be unique."
            ),
            Self::InvalidDimCount { name, found } => write!(
                f,
                "Tensor '{name}' has {found} dimensions, but GGUF allows 1 to {MAX_DIMS}. \
                 Reshape the tensor."
            ),
            Self::ZeroDim { name, axis } => write!(
                f,
                "Dimension {axis} of tensor '{name}' is 0, but every dimension must be at \
                 least 1. Leave empty tensors out of the file."
            ),
            Self::RowNotBlockMultiple {
                name,
                dtype,
                row_len,
            } => write!(
                f,
                "Tensor '{name}' has rows of {row_len} elements (dimension 0), which is not \
                 a multiple of the {dtype} block size {}. Store this tensor as f16 or f32.",
                dtype.block_size()
            ),
            Self::TensorTooLarge { name } => write!(
                f,
                "Tensor '{name}' is too large: its element count, byte size or position in \
                 the file does not fit in 64 bits. Check its dimensions."
            ),
            Self::Fill {
                index,
                name,
                source,
            } => write!(
                f,
                "Filling tensor '{name}' (index {index}) failed: {source}"
            ),
            Self::WrongTensorSize {
                index,
                name,
                expected,
                written,
            } => write!(
                f,
                "The fill callback wrote {written} bytes for tensor '{name}' (index \
                 {index}), but its shape and type take exactly {expected} bytes. Write the \
                 tensor in the layout of its declared type."
            ),
            Self::InvalidPath { path } => write!(
                f,
                "Cannot write a GGUF file to '{}' because the path does not end in a file \
                 name.",
                path.display()
            ),
            Self::Io {
                path: Some(path),
                source,
            } => {
                write!(f, "Writing '{}' failed: {source}", path.display())
            }
            Self::Io { path: None, source } => {
                write!(f, "Writing the GGUF output failed: {source}")
            }
        }
    }
}

impl std::error::Error for GgufWriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Fill { source, .. } => Some(source.as_ref()),
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A tensor added to the writer, waiting for its bytes.
struct PendingTensor {
    name: String,
    dtype: GgmlType,
    dims: Vec<u64>,
    n_bytes: u64,
}

/// Builds a GGUF v3 file: metadata and tensor shapes first, then
/// [`GgufWriter::write_to`] or [`GgufWriter::write_file`] streams it.
///
/// Checks each input against the rules that [`super::Gguf::parse`] enforces, so every
/// file it writes reads back, provided the file fits in the reader's address space.
///
/// ```
/// use mamba_core::GgmlType;
/// use mamba_core::gguf::{Gguf, GgufWriter, MetaValue};
///
/// let mut writer = GgufWriter::new();
/// writer.add_metadata("general.architecture", MetaValue::String("mamba".into()))?;
/// writer.add_tensor("output_norm.weight", GgmlType::F32, &[4])?;
///
/// let mut file = Vec::new();
/// writer.write_to(&mut file, |_, sink| Ok(sink.write_all(&[0; 16])?))?;
/// let gguf = Gguf::parse(&file)?;
/// assert_eq!(gguf.tensor("output_norm.weight").map(|t| t.data.len()), Some(16));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct GgufWriter {
    alignment: u64,
    metadata: Vec<(String, MetaValue)>,
    keys: HashSet<String>,
    tensors: Vec<PendingTensor>,
    tensor_names: HashSet<String>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

/// Distinguishes temporary files of concurrent `write_file` calls in one process.
static TEMP_FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl GgufWriter {
    /// Creates an empty file description with the default alignment of 32 bytes.
    pub fn new() -> Self {
        Self {
            alignment: DEFAULT_ALIGNMENT,
            metadata: Vec::new(),
            keys: HashSet::new(),
            tensors: Vec::new(),
            tensor_names: HashSet::new(),
        }
    }

    /// Sets the alignment of the data section and of every tensor, a power of two up to
    /// 2^31. Writes `general.alignment` (as u32, the only type llama.cpp reads) unless
    /// the alignment is the default 32.
    pub fn set_alignment(&mut self, alignment: u64) -> Result<(), GgufWriteError> {
        if !alignment.is_power_of_two() || alignment > u64::from(u32::MAX) {
            return Err(GgufWriteError::InvalidAlignment { found: alignment });
        }
        self.alignment = alignment;
        Ok(())
    }

    /// Adds a metadata entry. Entries are written in the order added.
    ///
    /// Rejects a repeated key, `general.alignment` (use [`GgufWriter::set_alignment`]), a
    /// key over [`MAX_KEY_LEN`] bytes, an array element of another type than its array's,
    /// arrays nested deeper than [`MAX_ARRAY_DEPTH`], and a key beyond the
    /// `MAX_METADATA_KEYS - 1` that leave room for `general.alignment`.
    pub fn add_metadata(&mut self, key: &str, value: MetaValue) -> Result<(), GgufWriteError> {
        if key == ALIGNMENT_KEY {
            return Err(GgufWriteError::ReservedKey {
                key: key.to_string(),
            });
        }
        if key.len() > MAX_KEY_LEN {
            let prefix = key.chars().take(64).collect();
            return Err(GgufWriteError::KeyTooLong {
                key: prefix,
                len: key.len(),
            });
        }
        if self.keys.contains(key) {
            return Err(GgufWriteError::DuplicateKey {
                key: key.to_string(),
            });
        }
        if self.metadata.len() >= MAX_METADATA_KEYS - 1 {
            return Err(GgufWriteError::TooManyKeys {
                key: key.to_string(),
            });
        }
        check_value(key, &value, 0)?;

        self.keys.insert(key.to_string());
        self.metadata.push((key.to_string(), value));
        Ok(())
    }

    /// Adds a tensor with dimensions in ggml order (`dims[0]` is the row length). Tensors
    /// are written in the order added, and [`GgufWriter::write_to`] requests their bytes
    /// by that index.
    ///
    /// Rejects a repeated name, a name over [`MAX_TENSOR_NAME_LEN`] bytes, 0 or more than
    /// 4 dimensions, a zero dimension, a `dims[0]` that is not a multiple of the type's
    /// block size, and sizes that overflow u64.
    pub fn add_tensor(
        &mut self,
        name: &str,
        dtype: GgmlType,
        dims: &[u64],
    ) -> Result<(), GgufWriteError> {
        let owned_name = || name.to_string();
        if name.len() > MAX_TENSOR_NAME_LEN {
            return Err(GgufWriteError::TensorNameTooLong { name: owned_name() });
        }
        if self.tensor_names.contains(name) {
            return Err(GgufWriteError::DuplicateTensor { name: owned_name() });
        }
        if self.tensors.len() >= MAX_TENSORS {
            return Err(GgufWriteError::TooManyTensors { name: owned_name() });
        }
        if dims.is_empty() || dims.len() > MAX_DIMS {
            return Err(GgufWriteError::InvalidDimCount {
                name: owned_name(),
                found: dims.len(),
            });
        }
        if let Some(axis) = dims.iter().position(|&dim| dim == 0) {
            return Err(GgufWriteError::ZeroDim {
                name: owned_name(),
                axis,
            });
        }
        let block_size = dtype.block_size() as u64;
        let row_len = dims[0];
        if !row_len.is_multiple_of(block_size) {
            return Err(GgufWriteError::RowNotBlockMultiple {
                name: owned_name(),
                dtype,
                row_len,
            });
        }
        let n_elements = dims
            .iter()
            .try_fold(1u64, |product, &dim| product.checked_mul(dim));
        let n_bytes = tensor_n_bytes(dtype, dims);
        let (Some(_), Some(n_bytes)) = (n_elements, n_bytes) else {
            return Err(GgufWriteError::TensorTooLarge { name: owned_name() });
        };

        self.tensor_names.insert(owned_name());
        self.tensors.push(PendingTensor {
            name: owned_name(),
            dtype,
            dims: dims.to_vec(),
            n_bytes,
        });
        Ok(())
    }

    /// Encodes everything before the data section, padded to the alignment.
    fn encode_header(&self) -> Result<Vec<u8>, GgufWriteError> {
        let mut out = Vec::new();
        let write_alignment = self.alignment != DEFAULT_ALIGNMENT;
        let metadata_count = self.metadata.len() + usize::from(write_alignment);

        out.extend_from_slice(&GGUF_MAGIC);
        out.extend_from_slice(&GGUF_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(metadata_count as u64).to_le_bytes());

        // Metadata, with general.alignment first so that a reader knows it early.
        if write_alignment {
            encode_string(&mut out, ALIGNMENT_KEY);
            // `set_alignment` keeps the alignment within u32.
            MetaValue::U32(self.alignment as u32).encode_entry(&mut out);
        }
        for (key, value) in &self.metadata {
            encode_string(&mut out, key);
            value.encode_entry(&mut out);
        }

        // Tensor infos, each tensor starting at the next multiple of the alignment.
        let mut offset = 0u64;
        for tensor in &self.tensors {
            encode_string(&mut out, &tensor.name);
            out.extend_from_slice(&(tensor.dims.len() as u32).to_le_bytes());
            for dim in &tensor.dims {
                out.extend_from_slice(&dim.to_le_bytes());
            }
            out.extend_from_slice(&(tensor.dtype as u32).to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offset = tensor
                .n_bytes
                .checked_next_multiple_of(self.alignment)
                .and_then(|padded| offset.checked_add(padded))
                .ok_or_else(|| GgufWriteError::TensorTooLarge {
                    name: tensor.name.clone(),
                })?;
        }

        let padded_len = out.len().next_multiple_of(self.alignment as usize);
        out.resize(padded_len, 0);
        Ok(out)
    }

    /// Streams the file to `out` and returns the number of bytes written.
    ///
    /// Writes the header, then for each tensor in the order added calls
    /// `fill(index, sink)`, which must write exactly that tensor's bytes to `sink`, then
    /// pads with zeros to the alignment. Writing more bytes than the tensor takes fails at
    /// once; writing fewer fails when `fill` returns. Output is buffered and flushed before
    /// returning. On error, `out` contains a partial file.
    pub fn write_to<W: Write>(
        &self,
        out: W,
        mut fill: impl FnMut(usize, &mut dyn Write) -> Result<(), FillError>,
    ) -> Result<u64, GgufWriteError> {
        let io_error = |source| GgufWriteError::Io { path: None, source };
        let header = self.encode_header()?;
        let mut out = BufWriter::with_capacity(1 << 16, out);
        out.write_all(&header).map_err(io_error)?;
        let mut total = header.len() as u64;

        for (index, tensor) in self.tensors.iter().enumerate() {
            let mut sink = TensorSink {
                inner: &mut out,
                expected: tensor.n_bytes,
                attempted: 0,
                output_error: None,
            };
            let result = fill(index, &mut sink);
            let TensorSink {
                attempted,
                output_error,
                ..
            } = sink;

            if let Some(source) = output_error {
                return Err(io_error(source));
            }
            if attempted > tensor.n_bytes || (result.is_ok() && attempted != tensor.n_bytes) {
                return Err(GgufWriteError::WrongTensorSize {
                    index,
                    name: tensor.name.clone(),
                    expected: tensor.n_bytes,
                    written: attempted,
                });
            }
            if let Err(source) = result {
                return Err(GgufWriteError::Fill {
                    index,
                    name: tensor.name.clone(),
                    source,
                });
            }

            // `encode_header` checked that the padded sizes add up without overflow.
            let padded = tensor.n_bytes.next_multiple_of(self.alignment);
            io::copy(&mut io::repeat(0).take(padded - tensor.n_bytes), &mut out)
                .map_err(io_error)?;
            total += padded;
        }

        out.flush().map_err(io_error)?;
        Ok(total)
    }

    /// Writes the file to `path` through a temporary file in the same directory, which is
    /// synced to disk and renamed into place only when everything succeeded.
    ///
    /// On any error the temporary file is removed and nothing is created at `path`; an
    /// existing file there stays as it was. After the rename the directory is synced too
    /// where the platform allows it, and a failure of that last step is ignored because
    /// the file is already complete. See [`GgufWriter::write_to`] for `fill`.
    pub fn write_file(
        &self,
        path: &Path,
        fill: impl FnMut(usize, &mut dyn Write) -> Result<(), FillError>,
    ) -> Result<u64, GgufWriteError> {
        let Some(file_name) = path.file_name() else {
            return Err(GgufWriteError::InvalidPath {
                path: path.to_path_buf(),
            });
        };
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let counter = TEMP_FILE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp_name = format!(
            ".{}.{}.{counter}.tmp",
            file_name.to_string_lossy(),
            std::process::id()
        );
        let temp_path = dir.join(temp_name);

        // Removes the temporary file on every early return, and also if `fill` panics. It
        // is declared before `file`, so `file` is closed first: some platforms cannot
        // delete an open file. It is armed only once this call has created the file.
        let mut cleanup = TempFileGuard {
            path: &temp_path,
            armed: false,
        };
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp_path)
            .map_err(|source| GgufWriteError::Io {
                path: Some(temp_path.clone()),
                source,
            })?;
        cleanup.armed = true;

        let written = self.write_to(&file, fill)?;
        file.sync_all().map_err(|source| GgufWriteError::Io {
            path: Some(temp_path.clone()),
            source,
        })?;
        drop(file);
        fs::rename(&temp_path, path).map_err(|source| GgufWriteError::Io {
            path: Some(path.to_path_buf()),
            source,
        })?;
        cleanup.armed = false;

        sync_dir(dir);
        Ok(written)
    }
}

/// Deletes a temporary file when dropped while `armed`. A failure to delete is ignored,
/// because the error or panic that caused the cleanup matters more.
struct TempFileGuard<'p> {
    path: &'p Path,
    armed: bool,
}

impl Drop for TempFileGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(self.path);
        }
    }
}

impl MetaValue {
    /// Appends the type tag and the encoded value.
    fn encode_entry(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.value_type() as u32).to_le_bytes());
        self.encode(out);
    }
}

/// Checks that every element of every array in `value` has its array's element type and
/// that arrays nest at most [`MAX_ARRAY_DEPTH`] deep. `depth` counts the enclosing arrays.
fn check_value(key: &str, value: &MetaValue, depth: u32) -> Result<(), GgufWriteError> {
    let MetaValue::Array(elem_type, items) = value else {
        return Ok(());
    };
    let depth = depth + 1;
    if depth > MAX_ARRAY_DEPTH {
        return Err(GgufWriteError::ArrayTooDeep {
            key: key.to_string(),
        });
    }
    for (index, item) in items.iter().enumerate() {
        let found = item.value_type();
        if found != *elem_type {
            return Err(GgufWriteError::MixedArray {
                key: key.to_string(),
                depth,
                index,
                expected: *elem_type,
                found,
            });
        }
        check_value(key, item, depth)?;
    }
    Ok(())
}

/// Flushes the directory entry of a renamed file to disk. Only Unix can open a directory
/// for this; elsewhere it does nothing.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// The writer handed to a fill callback: passes bytes through up to the tensor's size and
/// rejects any byte beyond it.
struct TensorSink<'w, W: Write> {
    inner: &'w mut W,
    expected: u64,
    attempted: u64,
    /// The first error of `inner`, kept so that it is reported as an output failure even
    /// when the callback wraps or replaces it.
    output_error: Option<io::Error>,
}

impl<W: Write> Write for TensorSink<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written_before = self.attempted;
        self.attempted = self.attempted.saturating_add(buf.len() as u64);
        if self.attempted > self.expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the tensor takes {} bytes and {written_before} are already written",
                    self.expected
                ),
            ));
        }
        if let Err(error) = self.inner.write_all(buf) {
            let reported = io::Error::new(error.kind(), error.to_string());
            self.output_error.get_or_insert(error);
            return Err(reported);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
