//! The GGUF reader: one validating pass in [`Gguf::parse`], then lazy walks over the
//! validated bytes. Nothing here allocates.

use super::error::legacy_format_name;
use super::value::read_value;
use super::{
    ALIGNMENT_KEY, DEFAULT_ALIGNMENT, Field, GGUF_MAGIC, GGUF_VERSION, GgufError, MAX_ARRAY_DEPTH,
    MAX_DIMS, MAX_KEY_LEN, MAX_METADATA_KEYS, MAX_TENSOR_NAME_LEN, MAX_TENSORS, ShortName, Value,
    ValueType,
};
use crate::tensor::{GgmlType, Matrix};

/// Smallest metadata entry: an empty key (u64 length), a u32 type tag and a one-byte value.
const MIN_KV_BYTES: usize = 8 + 4 + 1;
/// Smallest tensor info: an empty name, n_dims, one dimension, the type and the offset.
const MIN_TENSOR_INFO_BYTES: usize = 8 + 4 + 8 + 4 + 8;

/// A read position in a byte slice. Reads never go past the end of the slice.
#[derive(Clone)]
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn at(bytes: &'a [u8], pos: usize) -> Self {
        Self { bytes, pos }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    fn offset(&self) -> u64 {
        self.pos as u64
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// Takes the next `len` bytes, or returns `None` and stays put if fewer remain.
    pub(crate) fn take_trusted(&mut self, len: u64) -> Option<&'a [u8]> {
        let len = usize::try_from(len).ok()?;
        let taken = self.bytes.get(self.pos..self.pos.checked_add(len)?)?;
        self.pos += len;
        Some(taken)
    }

    fn array_trusted<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take_trusted(N as u64)?.try_into().ok()
    }

    pub(crate) fn u32_trusted(&mut self) -> Option<u32> {
        self.array_trusted().map(u32::from_le_bytes)
    }

    pub(crate) fn u64_trusted(&mut self) -> Option<u64> {
        self.array_trusted().map(u64::from_le_bytes)
    }

    /// Reads a length-prefixed byte string without checking its encoding.
    fn raw_string_trusted(&mut self) -> Option<&'a [u8]> {
        let len = self.u64_trusted()?;
        self.take_trusted(len)
    }

    pub(crate) fn string_trusted(&mut self) -> Option<&'a str> {
        core::str::from_utf8(self.raw_string_trusted()?).ok()
    }

    /// Takes the next `len` bytes of `field`, or fails with [`GgufError::Truncated`].
    fn take(&mut self, len: u64, field: Field) -> Result<&'a [u8], GgufError> {
        let offset = self.offset();
        let available = self.remaining() as u64;
        self.take_trusted(len).ok_or(GgufError::Truncated {
            field,
            offset,
            needed: len,
            available,
        })
    }

    fn array<const N: usize>(&mut self, field: Field) -> Result<[u8; N], GgufError> {
        let bytes = self.take(N as u64, field)?;
        // `take` returned exactly N bytes.
        Ok(bytes.try_into().unwrap_or([0; N]))
    }

    fn u8(&mut self, field: Field) -> Result<u8, GgufError> {
        self.array::<1>(field).map(|[byte]| byte)
    }

    fn u32(&mut self, field: Field) -> Result<u32, GgufError> {
        self.array(field).map(u32::from_le_bytes)
    }

    fn u64(&mut self, field: Field) -> Result<u64, GgufError> {
        self.array(field).map(u64::from_le_bytes)
    }

    /// Reads a u64 length and that many UTF-8 bytes.
    fn string(&mut self, len_field: Field, bytes_field: Field) -> Result<&'a str, GgufError> {
        let len_offset = self.offset();
        let len = self.u64(len_field)?;
        let available = self.remaining() as u64;
        if len > available {
            return Err(GgufError::StringTooLong {
                field: len_field,
                offset: len_offset,
                len,
                available,
            });
        }
        let start = self.offset();
        let bytes = self.take(len, bytes_field)?;
        core::str::from_utf8(bytes).map_err(|error| GgufError::InvalidUtf8 {
            field: bytes_field,
            offset: start,
            error_offset: start + error.valid_up_to() as u64,
        })
    }
}

/// One tensor info as stored, plus the byte size its shape and type imply.
struct RawTensorInfo<'a> {
    name: &'a str,
    dtype: GgmlType,
    dims: [u64; MAX_DIMS],
    n_dims: u32,
    offset: u64,
    n_bytes: u64,
}

/// Reads and checks the tensor info at the cursor: everything except what depends on
/// other tensors or on the data section's position.
fn read_tensor_info<'a>(
    cursor: &mut Cursor<'a>,
    tensor: u64,
    alignment: u64,
) -> Result<RawTensorInfo<'a>, GgufError> {
    // Name.
    let name_offset = cursor.offset();
    let name = cursor.string(Field::TensorNameLength, Field::TensorName)?;
    let short_name = || ShortName::new(name);
    if name.len() > MAX_TENSOR_NAME_LEN {
        return Err(GgufError::TensorNameTooLong {
            name: short_name(),
            tensor,
            offset: name_offset,
            len: name.len() as u64,
        });
    }

    // Shape.
    let n_dims_offset = cursor.offset();
    let n_dims = cursor.u32(Field::DimCount)?;
    if n_dims == 0 || n_dims as usize > MAX_DIMS {
        return Err(GgufError::InvalidDimCount {
            name: short_name(),
            tensor,
            offset: n_dims_offset,
            found: n_dims,
        });
    }
    let dims_offset = cursor.offset();
    let mut dims = [1u64; MAX_DIMS];
    for (axis, dim) in (0u32..).zip(dims.iter_mut().take(n_dims as usize)) {
        let dim_offset = cursor.offset();
        *dim = cursor.u64(Field::Dim)?;
        if *dim == 0 {
            return Err(GgufError::ZeroDim {
                name: short_name(),
                tensor,
                offset: dim_offset,
                axis,
            });
        }
    }
    let too_many_elements = || GgufError::TooManyElements {
        name: short_name(),
        tensor,
        offset: dims_offset,
        dims,
        n_dims,
    };
    let n_elements = dims
        .iter()
        .try_fold(1u64, |product, &dim| product.checked_mul(dim));
    if n_elements.is_none() {
        return Err(too_many_elements());
    }

    // Type.
    let type_offset = cursor.offset();
    let type_number = cursor.u32(Field::TensorType)?;
    let dtype = GgmlType::from_u32(type_number).ok_or(GgufError::UnsupportedTensorType {
        name: short_name(),
        tensor,
        offset: type_offset,
        found: type_number,
    })?;
    let block_size = dtype.block_size() as u64;
    if !dims[0].is_multiple_of(block_size) {
        return Err(GgufError::RowNotBlockMultiple {
            name: short_name(),
            tensor,
            offset: dims_offset,
            dtype,
            row_len: dims[0],
        });
    }
    let n_bytes = tensor_n_bytes(dtype, &dims).ok_or_else(too_many_elements)?;

    // Offset.
    let offset_field = cursor.offset();
    let offset = cursor.u64(Field::TensorOffset)?;
    if !offset.is_multiple_of(alignment) {
        return Err(GgufError::MisalignedTensor {
            name: short_name(),
            tensor,
            offset: offset_field,
            found: offset,
            alignment,
        });
    }

    Ok(RawTensorInfo {
        name,
        dtype,
        dims,
        n_dims,
        offset,
        n_bytes,
    })
}

/// Returns the bytes of a tensor of `dtype` with `dims[0]` a multiple of the block size, or
/// `None` if the size overflows u64.
pub(crate) fn tensor_n_bytes(dtype: GgmlType, dims: &[u64]) -> Option<u64> {
    let (&row_len, rows) = dims.split_first()?;
    let row_bytes = (row_len / dtype.block_size() as u64).checked_mul(dtype.block_bytes() as u64)?;
    rows.iter()
        .try_fold(row_bytes, |bytes, &dim| bytes.checked_mul(dim))
}

/// Returns the byte string stored at `pos`, without checking its encoding.
fn raw_string_at(bytes: &[u8], pos: usize) -> Option<&[u8]> {
    Cursor::at(bytes, pos).raw_string_trusted()
}

/// Checks a count read at `offset` before any loop uses it: it must fit in `remaining`
/// bytes at `min_bytes` per entry, and must not exceed `limit`.
fn check_count(
    field: Field,
    offset: u64,
    count: u64,
    remaining: usize,
    min_bytes: usize,
    limit: usize,
) -> Result<usize, GgufError> {
    let max = (remaining / min_bytes) as u64;
    if count > max {
        return Err(GgufError::CountTooLarge {
            field,
            offset,
            found: count,
            max,
        });
    }
    if count > limit as u64 {
        return Err(GgufError::CountOverLimit {
            field,
            offset,
            found: count,
            limit: limit as u64,
        });
    }
    // `count` is at most `remaining`, a usize.
    Ok(count as usize)
}

/// Checks one value of type `ty` at the cursor and moves past it. `depth` is the number of
/// arrays that enclose it.
fn validate_value(cursor: &mut Cursor<'_>, ty: ValueType, depth: u32) -> Result<(), GgufError> {
    match ty {
        ValueType::String => {
            cursor.string(Field::StringLength, Field::StringBytes)?;
        }
        ValueType::Array => validate_array(cursor, depth + 1)?,
        ValueType::Bool => {
            let offset = cursor.offset();
            let found = cursor.u8(Field::Value)?;
            if found > 1 {
                return Err(GgufError::InvalidBool { offset, found });
            }
        }
        _ => {
            // Every other type has a fixed size.
            let size = ty.fixed_size().unwrap_or(0) as u64;
            cursor.take(size, Field::Value)?;
        }
    }
    Ok(())
}

/// Checks the array at the cursor (element type, count, elements), which is nested `depth`
/// arrays deep counting itself.
fn validate_array(cursor: &mut Cursor<'_>, depth: u32) -> Result<(), GgufError> {
    let type_offset = cursor.offset();
    if depth > MAX_ARRAY_DEPTH {
        return Err(GgufError::ArrayTooDeep {
            offset: type_offset,
        });
    }
    let tag = cursor.u32(Field::ArrayElemType)?;
    let elem_type = ValueType::from_u32(tag).ok_or(GgufError::UnknownValueType {
        field: Field::ArrayElemType,
        offset: type_offset,
        found: tag,
    })?;
    let len_offset = cursor.offset();
    let len = cursor.u64(Field::ArrayLength)?;
    let max = (cursor.remaining() / elem_type.min_size()) as u64;
    if len > max {
        return Err(GgufError::CountTooLarge {
            field: Field::ArrayLength,
            offset: len_offset,
            found: len,
            max,
        });
    }

    let Some(size) = elem_type.fixed_size() else {
        for _ in 0..len {
            validate_value(cursor, elem_type, depth)?;
        }
        return Ok(());
    };
    // `len * size` fits: `len` is at most `remaining / size`.
    let start = cursor.offset();
    let elems = cursor.take(len * size as u64, Field::Value)?;
    let invalid_bool = elems.iter().position(|&byte| byte > 1);
    if let (ValueType::Bool, Some(position)) = (elem_type, invalid_bool) {
        let found = elems.get(position).copied().unwrap_or(0);
        return Err(GgufError::InvalidBool {
            offset: start + position as u64,
            found,
        });
    }
    Ok(())
}

/// Checks the `general.alignment` value of type `ty` at `pos` and returns it.
fn read_alignment(bytes: &[u8], pos: usize, ty: ValueType) -> Result<u64, GgufError> {
    let offset = pos as u64;
    if ty != ValueType::U32 {
        return Err(GgufError::AlignmentType { offset, found: ty });
    }
    let found = Cursor::at(bytes, pos).u32(Field::Value)?;
    if !found.is_power_of_two() {
        return Err(GgufError::InvalidAlignment { offset, found });
    }
    Ok(found.into())
}

/// Checks `count` metadata entries at the cursor and returns the data alignment they set.
fn validate_metadata(cursor: &mut Cursor<'_>, count: usize) -> Result<u64, GgufError> {
    let bytes = cursor.bytes();
    let metadata_start = cursor.pos();
    // Positions of the keys, for the duplicate check. `count` is at most the size.
    let mut key_positions = [0usize; MAX_METADATA_KEYS];
    let mut alignment = DEFAULT_ALIGNMENT;

    for index in 0..count {
        // Key.
        let key_pos = cursor.pos();
        let key = cursor.string(Field::KeyLength, Field::Key)?;
        if key.len() > MAX_KEY_LEN {
            return Err(GgufError::KeyTooLong {
                index: index as u64,
                offset: key_pos as u64,
                len: key.len() as u64,
            });
        }
        if let Some(slot) = key_positions.get_mut(index) {
            *slot = key_pos;
        }

        // Value.
        let type_offset = cursor.offset();
        let tag = cursor.u32(Field::ValueType)?;
        let ty = ValueType::from_u32(tag).ok_or(GgufError::UnknownValueType {
            field: Field::ValueType,
            offset: type_offset,
            found: tag,
        })?;
        let value_pos = cursor.pos();
        validate_value(cursor, ty, 0)?;
        if key == ALIGNMENT_KEY {
            alignment = read_alignment(bytes, value_pos, ty)?;
        }
    }

    let key_positions = key_positions.get_mut(..count).unwrap_or_default();
    check_duplicate_keys(bytes, metadata_start, key_positions)?;
    Ok(alignment)
}

/// Fails with [`GgufError::DuplicateKey`] if two of the validated keys at `key_positions`
/// are equal. Sorts `key_positions`.
///
/// Sorting takes `n log n` key comparisons, where comparing every pair of up to
/// [`MAX_METADATA_KEYS`] keys of up to [`MAX_KEY_LEN`] bytes could read 34 GB.
fn check_duplicate_keys(
    bytes: &[u8],
    metadata_start: usize,
    key_positions: &mut [usize],
) -> Result<(), GgufError> {
    let key_at = |pos| raw_string_at(bytes, pos).unwrap_or_default();
    key_positions.sort_unstable_by(|&a, &b| key_at(a).cmp(key_at(b)).then(a.cmp(&b)));

    for pair in key_positions.windows(2) {
        let [first, later] = *pair else { continue };
        if key_at(first) == key_at(later) {
            let key = core::str::from_utf8(key_at(later)).unwrap_or_default();
            return Err(GgufError::DuplicateKey {
                key: ShortName::new(key),
                offset: later as u64,
                index: metadata_index_at(bytes, metadata_start, later),
                first_index: metadata_index_at(bytes, metadata_start, first),
            });
        }
    }
    Ok(())
}

/// Returns the index of the validated metadata entry that starts at `pos`, by walking the
/// entries from `metadata_start`.
fn metadata_index_at(bytes: &[u8], metadata_start: usize, pos: usize) -> u64 {
    let mut cursor = Cursor::at(bytes, metadata_start);
    let mut index = 0;
    while cursor.pos() < pos {
        let skipped = cursor.raw_string_trusted().and_then(|_| {
            let ty = ValueType::from_u32(cursor.u32_trusted()?)?;
            read_value(&mut cursor, ty)
        });
        if skipped.is_none() {
            break;
        }
        index += 1;
    }
    index
}

/// Checks `count` tensor infos at the cursor, including that no name repeats.
fn validate_tensor_infos(
    cursor: &mut Cursor<'_>,
    count: usize,
    alignment: u64,
) -> Result<(), GgufError> {
    let infos_start = cursor.pos();
    for index in 0..count {
        read_tensor_info(cursor, index as u64, alignment)?;
    }
    check_duplicate_names(cursor.bytes(), infos_start, count, alignment)
}

/// Number of tensors that the duplicate-name and overlap checks sort at a time in a stack
/// buffer (3 to 4 KiB on 64-bit targets).
///
/// Each block of tensors is sorted and checked against itself, then every later tensor is
/// looked up in it by binary search. That costs `count² / CHECK_BLOCK` tensor-info reads,
/// about two million at [`MAX_TENSORS`], where comparing all pairs would cost 130 million.
const CHECK_BLOCK: usize = 128;

/// Walks the tensor infos from `start` to the tensor with index `target` and returns its
/// name, or an empty name if the infos end first.
fn tensor_name_at(
    bytes: &[u8],
    start: usize,
    target: usize,
    alignment: u64,
) -> Result<ShortName, GgufError> {
    let mut cursor = Cursor::at(bytes, start);
    for index in 0..target {
        read_tensor_info(&mut cursor, index as u64, alignment)?;
    }
    let info = read_tensor_info(&mut cursor, target as u64, alignment)?;
    Ok(ShortName::new(info.name))
}

/// Fails with [`GgufError::DuplicateTensorName`] if two of the `count` validated tensor
/// infos at `infos_start` share a name.
fn check_duplicate_names(
    bytes: &[u8],
    infos_start: usize,
    count: usize,
    alignment: u64,
) -> Result<(), GgufError> {
    let duplicate = |first: usize, later: usize, later_pos: usize| {
        Ok(GgufError::DuplicateTensorName {
            name: tensor_name_at(bytes, infos_start, later, alignment)?,
            tensor: later as u64,
            offset: later_pos as u64,
            first_tensor: first as u64,
        })
    };
    // (name, tensor index, position of the info)
    let mut block: [(&[u8], usize, usize); CHECK_BLOCK] = [(&[], 0, 0); CHECK_BLOCK];
    let mut block_cursor = Cursor::at(bytes, infos_start);
    let mut block_first = 0;

    while block_first < count {
        // Load and sort the next block by name, then by index.
        let block_len = CHECK_BLOCK.min(count - block_first);
        let entries = block.get_mut(..block_len).unwrap_or_default();
        for (index, entry) in (block_first..).zip(entries.iter_mut()) {
            let pos = block_cursor.pos();
            let info = read_tensor_info(&mut block_cursor, index as u64, alignment)?;
            *entry = (info.name.as_bytes(), index, pos);
        }
        entries.sort_unstable();

        // Repeats inside the block are neighbours after sorting.
        for pair in entries.windows(2) {
            if let [(name, first, _), (next_name, later, later_pos)] = *pair
                && name == next_name
            {
                return Err(duplicate(first, later, later_pos)?);
            }
        }

        // Repeats of a block name later in the file.
        let mut later_cursor = block_cursor.clone();
        for later in block_first + block_len..count {
            let later_pos = later_cursor.pos();
            let info = read_tensor_info(&mut later_cursor, later as u64, alignment)?;
            let found = entries.binary_search_by(|(name, _, _)| (*name).cmp(info.name.as_bytes()));
            if let Some((_, first, _)) = found.ok().and_then(|position| entries.get(position)) {
                return Err(duplicate(*first, later, later_pos)?);
            }
        }
        block_first += block_len;
    }
    Ok(())
}

/// Absolute byte range of a tensor's data, or `None` when it overflows u64.
fn data_range(data_offset: u64, info: &RawTensorInfo<'_>) -> Option<(u64, u64)> {
    let start = data_offset.checked_add(info.offset)?;
    Some((start, start.checked_add(info.n_bytes)?))
}

/// Checks that every tensor's data lies inside the file and that no two tensors share bytes.
///
/// Converters write tensors in offset order, which one pass confirms. Only when the order
/// differs does [`check_overlaps`] run.
fn validate_tensor_data(
    bytes: &[u8],
    infos_start: usize,
    count: usize,
    alignment: u64,
    data_offset: u64,
) -> Result<(), GgufError> {
    let file_len = bytes.len() as u64;
    let mut cursor = Cursor::at(bytes, infos_start);
    let mut previous_end = 0;
    let mut in_order = true;

    for index in 0..count {
        let info = read_tensor_info(&mut cursor, index as u64, alignment)?;
        let range = data_range(data_offset, &info).filter(|&(_, end)| end <= file_len);
        let Some((start, end)) = range else {
            let start = data_offset.saturating_add(info.offset);
            return Err(GgufError::TensorOutOfBounds {
                name: ShortName::new(info.name),
                tensor: index as u64,
                start,
                end: start.saturating_add(info.n_bytes),
                file_len,
            });
        };
        in_order &= start >= previous_end;
        previous_end = end;
    }
    if in_order {
        return Ok(());
    }

    check_overlaps(bytes, infos_start, count, alignment, data_offset)
}

/// Fails with [`GgufError::TensorOverlap`] if the data of two of the `count` tensors, all
/// inside the file, share a byte.
fn check_overlaps(
    bytes: &[u8],
    infos_start: usize,
    count: usize,
    alignment: u64,
    data_offset: u64,
) -> Result<(), GgufError> {
    let range_of = |info: &RawTensorInfo<'_>| data_range(data_offset, info).unwrap_or_default();
    let overlap = |first: (usize, (u64, u64)), later: (usize, (u64, u64))| {
        let ((other, other_range), (tensor, range)) = if first.0 < later.0 {
            (first, later)
        } else {
            (later, first)
        };
        Ok(GgufError::TensorOverlap {
            name: tensor_name_at(bytes, infos_start, tensor, alignment)?,
            tensor: tensor as u64,
            range,
            other: other as u64,
            other_range,
        })
    };
    // (data range, tensor index)
    let mut block = [((0u64, 0u64), 0usize); CHECK_BLOCK];
    let mut block_cursor = Cursor::at(bytes, infos_start);
    let mut block_first = 0;

    while block_first < count {
        // Load and sort the next block by start offset.
        let block_len = CHECK_BLOCK.min(count - block_first);
        let entries = block.get_mut(..block_len).unwrap_or_default();
        for (index, entry) in (block_first..).zip(entries.iter_mut()) {
            let info = read_tensor_info(&mut block_cursor, index as u64, alignment)?;
            *entry = (range_of(&info), index);
        }
        entries.sort_unstable();

        // Inside the block, an overlap shows between neighbours after sorting.
        for pair in entries.windows(2) {
            if let [(range, index), (next_range, next_index)] = *pair
                && next_range.0 < range.1
            {
                return Err(overlap((index, range), (next_index, next_range))?);
            }
        }

        // The block's ranges are now disjoint and sorted, so their ends are sorted too, and
        // the last range starting before a later tensor's end is the only one to check.
        let mut later_cursor = block_cursor.clone();
        for later in block_first + block_len..count {
            let info = read_tensor_info(&mut later_cursor, later as u64, alignment)?;
            let range = range_of(&info);
            let before_end = entries.partition_point(|((start, _), _)| *start < range.1);
            let candidate = before_end
                .checked_sub(1)
                .and_then(|position| entries.get(position));
            if let Some(&(other_range, other)) = candidate
                && other_range.1 > range.0
            {
                return Err(overlap((other, other_range), (later, range))?);
            }
        }
        block_first += block_len;
    }
    Ok(())
}

/// A parsed GGUF file borrowing `bytes`.
///
/// `Debug` prints the header fields and the file length, not the bytes.
#[derive(Clone, Copy)]
pub struct Gguf<'a> {
    bytes: &'a [u8],
    version: u32,
    alignment: u64,
    metadata_count: usize,
    tensor_count: usize,
    metadata_start: usize,
    tensor_infos_start: usize,
    data_offset: u64,
}

impl<'a> Gguf<'a> {
    /// Validates the whole file and returns a view of it.
    ///
    /// Checks every field of the header, every metadata value (array elements included) and
    /// every tensor info, and that each tensor's data lies inside `bytes` without sharing
    /// bytes with another tensor. Afterwards the accessors cannot meet malformed data. Does
    /// not allocate, and uses about 9 KiB of stack on 64-bit targets.
    pub fn parse(bytes: &'a [u8]) -> Result<Gguf<'a>, GgufError> {
        let mut cursor = Cursor::new(bytes);

        // Header.
        let magic = cursor.array::<4>(Field::Magic)?;
        if magic != GGUF_MAGIC {
            return Err(match legacy_format_name(magic) {
                Some(_) => GgufError::LegacyFormat { found: magic },
                None => GgufError::BadMagic { found: magic },
            });
        }
        let version = cursor.u32(Field::Version)?;
        if version != GGUF_VERSION {
            // A big-endian file stores 3 as 0x03000000, so the low half reads as zero.
            let swapped = version & 0xffff == 0 && version != 0;
            return Err(if swapped {
                GgufError::BigEndian { found: version }
            } else {
                GgufError::UnsupportedVersion { found: version }
            });
        }
        let tensor_count_offset = cursor.offset();
        let tensor_count = cursor.u64(Field::TensorCount)?;
        let metadata_count_offset = cursor.offset();
        let metadata_count = cursor.u64(Field::MetadataCount)?;
        let metadata_count = check_count(
            Field::MetadataCount,
            metadata_count_offset,
            metadata_count,
            cursor.remaining(),
            MIN_KV_BYTES,
            MAX_METADATA_KEYS,
        )?;

        // Metadata.
        let metadata_start = cursor.pos();
        let alignment = validate_metadata(&mut cursor, metadata_count)?;

        // Tensor infos.
        let tensor_infos_start = cursor.pos();
        let tensor_count = check_count(
            Field::TensorCount,
            tensor_count_offset,
            tensor_count,
            cursor.remaining(),
            MIN_TENSOR_INFO_BYTES,
            MAX_TENSORS,
        )?;
        validate_tensor_infos(&mut cursor, tensor_count, alignment)?;

        // Data section. An overflow here leaves u64::MAX, which every tensor then fails.
        let data_offset = cursor
            .offset()
            .checked_next_multiple_of(alignment)
            .unwrap_or(u64::MAX);
        validate_tensor_data(
            bytes,
            tensor_infos_start,
            tensor_count,
            alignment,
            data_offset,
        )?;

        Ok(Gguf {
            bytes,
            version,
            alignment,
            metadata_count,
            tensor_count,
            metadata_start,
            tensor_infos_start,
            data_offset,
        })
    }

    /// The format version (always 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Alignment of the data section and of every tensor offset.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Number of metadata entries.
    pub fn metadata_count(&self) -> usize {
        self.metadata_count
    }

    /// Number of tensors.
    pub fn tensor_count(&self) -> usize {
        self.tensor_count
    }

    /// Absolute offset of the data section. It may equal or exceed the file length when the
    /// file has no tensors.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Iterates over the metadata entries in file order.
    ///
    /// Each step decodes one entry; skipping over an array of strings walks its lengths.
    pub fn metadata(&self) -> impl Iterator<Item = (&'a str, Value<'a>)> + 'a {
        let mut cursor = Cursor::at(self.bytes, self.metadata_start);
        (0..self.metadata_count).map_while(move |_| {
            let key = cursor.string_trusted()?;
            let ty = ValueType::from_u32(cursor.u32_trusted()?)?;
            Some((key, read_value(&mut cursor, ty)?))
        })
    }

    /// Returns the value of metadata `key`, walking the entries before it.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.metadata()
            .find(|(k, _)| *k == key)
            .map(|(_, value)| value)
    }

    /// Iterates over the tensors in file order.
    pub fn tensors(&self) -> impl Iterator<Item = TensorInfo<'a>> + 'a {
        let bytes = self.bytes;
        let alignment = self.alignment;
        let data_offset = self.data_offset;
        let mut cursor = Cursor::at(bytes, self.tensor_infos_start);
        (0..self.tensor_count).map_while(move |index| {
            let info = read_tensor_info(&mut cursor, index as u64, alignment).ok()?;
            let (start, end) = data_range(data_offset, &info)?;
            let data = bytes.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)?;
            Some(TensorInfo {
                name: info.name,
                dtype: info.dtype,
                dims: info.dims,
                n_dims: info.n_dims,
                offset: info.offset,
                data,
            })
        })
    }

    /// Returns the tensor called `name`, walking the tensor infos before it.
    pub fn tensor(&self, name: &str) -> Option<TensorInfo<'a>> {
        self.tensors().find(|tensor| tensor.name == name)
    }
}

/// One tensor's header and its bytes inside the data section.
///
/// `Debug` prints the length of `data`, not its bytes.
#[derive(Clone, Copy)]
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

impl<'a> TensorInfo<'a> {
    /// Returns the first `n_dims` dimensions, in ggml order.
    pub fn shape(&self) -> &[u64] {
        self.dims.get(..self.n_dims as usize).unwrap_or(&self.dims)
    }

    /// Number of elements, the product of the dimensions (saturating, which only a
    /// hand-built `TensorInfo` can reach).
    pub fn n_elements(&self) -> u64 {
        self.shape()
            .iter()
            .fold(1u64, |product, &dim| product.saturating_mul(dim))
    }

    /// Returns a matrix view of a 1-D tensor (one row) or a 2-D tensor (`dims[1]` rows of `dims[0]`
    /// elements), or `None` for other shapes and sizes that do not fit `usize`.
    pub fn matrix(&self) -> Option<Matrix<'a>> {
        let (rows, cols) = match self.n_dims {
            1 => (1, self.dims[0]),
            2 => (self.dims[1], self.dims[0]),
            _ => return None,
        };
        Matrix::new(
            self.dtype,
            usize::try_from(rows).ok()?,
            usize::try_from(cols).ok()?,
            self.data,
        )
    }
}

impl core::fmt::Debug for Gguf<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Gguf")
            .field("file_len", &self.bytes.len())
            .field("version", &self.version)
            .field("alignment", &self.alignment)
            .field("metadata_count", &self.metadata_count)
            .field("tensor_count", &self.tensor_count)
            .field("data_offset", &self.data_offset)
            .finish()
    }
}

impl core::fmt::Debug for TensorInfo<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TensorInfo")
            .field("name", &self.name)
            .field("dtype", &self.dtype)
            .field("shape", &self.shape())
            .field("offset", &self.offset)
            .field("data_len", &self.data.len())
            .finish()
    }
}
