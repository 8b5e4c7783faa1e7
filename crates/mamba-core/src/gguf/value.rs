//! Metadata values: the type tags, borrowed values and lazy array views.

use super::MAX_ARRAY_DEPTH;
use super::reader::Cursor;

/// Type tag of a metadata value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

impl ValueType {
    /// Every value type, in tag order.
    pub const ALL: [ValueType; 13] = [
        Self::U8,
        Self::I8,
        Self::U16,
        Self::I16,
        Self::U32,
        Self::I32,
        Self::F32,
        Self::Bool,
        Self::String,
        Self::Array,
        Self::U64,
        Self::I64,
        Self::F64,
    ];

    /// Maps a GGUF type tag to a value type, or `None` for an unknown tag.
    pub fn from_u32(tag: u32) -> Option<Self> {
        Self::ALL.get(usize::try_from(tag).ok()?).copied()
    }

    /// Encoded size of one value, or `None` for strings and arrays, whose size varies.
    pub const fn fixed_size(self) -> Option<usize> {
        match self {
            Self::U8 | Self::I8 | Self::Bool => Some(1),
            Self::U16 | Self::I16 => Some(2),
            Self::U32 | Self::I32 | Self::F32 => Some(4),
            Self::U64 | Self::I64 | Self::F64 => Some(8),
            Self::String | Self::Array => None,
        }
    }

    /// Smallest encoded size of one value: an empty string is its u64 length, an empty
    /// array its u32 element type and u64 count.
    pub(crate) const fn min_size(self) -> usize {
        match self {
            Self::String => 8,
            Self::Array => 12,
            Self::U8 | Self::I8 | Self::Bool => 1,
            Self::U16 | Self::I16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::U64 | Self::I64 | Self::F64 => 8,
        }
    }

    /// Returns the lower-case name used in messages (`u32`, `string`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Self::U8 => "u8",
            Self::I8 => "i8",
            Self::U16 => "u16",
            Self::I16 => "i16",
            Self::U32 => "u32",
            Self::I32 => "i32",
            Self::F32 => "f32",
            Self::Bool => "bool",
            Self::String => "string",
            Self::Array => "array",
            Self::U64 => "u64",
            Self::I64 => "i64",
            Self::F64 => "f64",
        }
    }
}

impl core::fmt::Display for ValueType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
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

impl<'a> Value<'a> {
    /// Returns the type tag of this value.
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
            Self::Array(_) => ValueType::Array,
            Self::U64(_) => ValueType::U64,
            Self::I64(_) => ValueType::I64,
            Self::F64(_) => ValueType::F64,
        }
    }

    /// Returns the value of any integer variant, widened to i128 so that every one fits.
    fn as_i128(&self) -> Option<i128> {
        match *self {
            Self::U8(v) => Some(v.into()),
            Self::I8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::I16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::I32(v) => Some(v.into()),
            Self::U64(v) => Some(v.into()),
            Self::I64(v) => Some(v.into()),
            _ => None,
        }
    }

    /// Any integer variant whose value fits in u32.
    pub fn as_u32(&self) -> Option<u32> {
        u32::try_from(self.as_i128()?).ok()
    }

    /// Any integer variant whose value fits in u64.
    pub fn as_u64(&self) -> Option<u64> {
        u64::try_from(self.as_i128()?).ok()
    }

    /// Any integer variant whose value fits in i64.
    pub fn as_i64(&self) -> Option<i64> {
        i64::try_from(self.as_i128()?).ok()
    }

    /// Returns an F32 value, or an F64 value rounded to the nearest f32.
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Self::F32(v) => Some(v),
            Self::F64(v) => Some(v as f32),
            _ => None,
        }
    }

    /// Returns a Bool value.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// Returns a String value.
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Self::String(v) => Some(v),
            _ => None,
        }
    }

    /// Returns an Array value.
    pub fn as_array(&self) -> Option<ArrayValue<'a>> {
        match *self {
            Self::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// An array value: its element type, length and the (already validated) bytes of its elements.
///
/// `Debug` prints the element type, the length and the byte length, not the elements.
#[derive(Clone, Copy, PartialEq)]
pub struct ArrayValue<'a> {
    elem_type: ValueType,
    len: u64,
    data: &'a [u8],
}

impl<'a> ArrayValue<'a> {
    /// Type of every element.
    pub fn elem_type(&self) -> ValueType {
        self.elem_type
    }

    /// Number of elements.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Returns whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Iterates over the elements in order.
    pub fn iter(&self) -> impl Iterator<Item = Value<'a>> + 'a {
        let mut cursor = Cursor::new(self.data);
        let elem_type = self.elem_type;
        (0..self.len).map_while(move |_| read_value(&mut cursor, elem_type))
    }

    /// Returns element `index`, or `None` past the end.
    ///
    /// Takes constant time for numbers and booleans. Strings and arrays have no index, so
    /// this walks the elements before `index`.
    pub fn get(&self, index: u64) -> Option<Value<'a>> {
        if index >= self.len {
            return None;
        }
        match self.elem_type.fixed_size() {
            Some(size) => {
                let start = usize::try_from(index).ok()?.checked_mul(size)?;
                let bytes = self.data.get(start..start.checked_add(size)?)?;
                decode_fixed(self.elem_type, bytes)
            }
            None => self.iter().nth(usize::try_from(index).ok()?),
        }
    }
}

impl core::fmt::Debug for ArrayValue<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ArrayValue")
            .field("elem_type", &self.elem_type)
            .field("len", &self.len)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// Decodes one value of a fixed-size type from exactly `fixed_size()` bytes.
fn decode_fixed(ty: ValueType, bytes: &[u8]) -> Option<Value<'_>> {
    let value = match ty {
        ValueType::U8 => Value::U8(*bytes.first()?),
        ValueType::I8 => Value::I8(i8::from_le_bytes(bytes.try_into().ok()?)),
        ValueType::Bool => Value::Bool(*bytes.first()? != 0),
        ValueType::U16 => Value::U16(u16::from_le_bytes(bytes.try_into().ok()?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(bytes.try_into().ok()?)),
        ValueType::U32 => Value::U32(u32::from_le_bytes(bytes.try_into().ok()?)),
        ValueType::I32 => Value::I32(i32::from_le_bytes(bytes.try_into().ok()?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(bytes.try_into().ok()?)),
        ValueType::U64 => Value::U64(u64::from_le_bytes(bytes.try_into().ok()?)),
        ValueType::I64 => Value::I64(i64::from_le_bytes(bytes.try_into().ok()?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(bytes.try_into().ok()?)),
        ValueType::String | ValueType::Array => return None,
    };
    Some(value)
}

/// Reads one value of type `ty` from bytes that [`super::Gguf::parse`] already validated.
///
/// Returns `None` instead of an error if the bytes are malformed after all, so a caller
/// that iterates simply stops. Strings are checked for UTF-8 again because that check is
/// the only safe way to make a `&str`; array elements are skipped without decoding.
pub(crate) fn read_value<'a>(cursor: &mut Cursor<'a>, ty: ValueType) -> Option<Value<'a>> {
    if let Some(size) = ty.fixed_size() {
        return decode_fixed(ty, cursor.take_trusted(size as u64)?);
    }
    match ty {
        ValueType::String => Some(Value::String(cursor.string_trusted()?)),
        _ => {
            let elem_type = ValueType::from_u32(cursor.u32_trusted()?)?;
            let len = cursor.u64_trusted()?;
            let start = cursor.pos();
            skip_elements(cursor, elem_type, len, 1)?;
            let data = cursor.bytes().get(start..cursor.pos())?;
            Some(Value::Array(ArrayValue {
                elem_type,
                len,
                data,
            }))
        }
    }
}

/// Moves `cursor` past `count` elements of type `ty` in an array at nesting `depth`.
///
/// `depth` only guards the recursion against bytes that were not validated.
fn skip_elements(cursor: &mut Cursor<'_>, ty: ValueType, count: u64, depth: u32) -> Option<()> {
    if let Some(size) = ty.fixed_size() {
        cursor.take_trusted(count.checked_mul(size as u64)?)?;
        return Some(());
    }
    // Every element takes at least 8 bytes, so a count larger than the buffer fails early
    // on `take_trusted` instead of looping.
    for _ in 0..count {
        match ty {
            ValueType::String => {
                let len = cursor.u64_trusted()?;
                cursor.take_trusted(len)?;
            }
            _ => {
                if depth >= MAX_ARRAY_DEPTH {
                    return None;
                }
                let inner_type = ValueType::from_u32(cursor.u32_trusted()?)?;
                let inner_len = cursor.u64_trusted()?;
                skip_elements(cursor, inner_type, inner_len, depth + 1)?;
            }
        }
    }
    Some(())
}
