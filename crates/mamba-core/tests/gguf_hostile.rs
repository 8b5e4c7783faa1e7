//! Hostile inputs for `Gguf::parse`: every truncation and byte flip of a valid file, and
//! one hand-built file per validation rule, each asserting its error variant.

use mamba_core::GgmlType;
use mamba_core::gguf::{
    Field, Gguf, GgufError, MAX_ARRAY_DEPTH, MAX_METADATA_KEYS, MAX_TENSORS, Value, ValueType,
};

/// Walks everything a parsed file exposes, so that a fuzz-style test reaches every lazy path.
fn walk(gguf: &Gguf<'_>) {
    fn walk_value(value: Value<'_>) {
        if let Value::Array(array) = value {
            for (index, element) in array.iter().enumerate() {
                assert_eq!(array.get(index as u64), Some(element));
                walk_value(element);
            }
            assert_eq!(array.iter().count() as u64, array.len());
        }
    }
    for (key, value) in gguf.metadata() {
        assert!(gguf.get(key).is_some());
        walk_value(value);
    }
    assert_eq!(gguf.metadata().count(), gguf.metadata_count());
    for tensor in gguf.tensors() {
        let _ = tensor.matrix();
        assert!(gguf.tensor(tensor.name).is_some());
    }
    assert_eq!(gguf.tensors().count(), gguf.tensor_count());
}

/// Builds a small valid file with nested arrays, a string array, a bool, alignment 64 and
/// three tensors. The last tensor fills its aligned slot, so the file ends with tensor data
/// and every shorter prefix is invalid.
fn sample_file() -> Vec<u8> {
    let raw = Raw::header(3, 5)
        .key("general.alignment", ValueType::U32)
        .u32(64)
        .key("general.architecture", ValueType::String)
        .string(b"mamba")
        .key("test.flag", ValueType::Bool)
        .u8(1)
        .key("tokenizer.ggml.tokens", ValueType::Array)
        .u32(ValueType::String as u32)
        .u64(3)
        .string(b"a")
        .string(b"bc")
        .string("ü".as_bytes())
        .key("test.nested", ValueType::Array)
        .u32(ValueType::Array as u32)
        .u64(1)
        .u32(ValueType::U16 as u32)
        .u64(2)
        .bytes(&[1, 0, 2, 0]);
    // Q8_0 [32, 2] takes 68 bytes, F16 [3] 6 bytes and F32 [16] 64 bytes.
    let raw = raw
        .tensor("a.weight", &[32, 2], GgmlType::Q8_0 as u32, 0)
        .tensor("b.weight", &[3], GgmlType::F16 as u32, 128)
        .tensor("c.weight", &[16], GgmlType::F32 as u32, 192)
        .align(64);
    raw.bytes(&[0x5a; 256]).0
}

#[test]
fn sample_file_is_valid() {
    let file = sample_file();
    let gguf = Gguf::parse(&file).unwrap();
    walk(&gguf);
    let last = gguf.tensors().last().unwrap();
    assert_eq!(
        gguf.data_offset() + last.offset + last.data.len() as u64,
        file.len() as u64
    );
}

#[test]
fn every_truncation_is_an_error() {
    let file = sample_file();
    for len in 0..file.len() {
        let result = Gguf::parse(&file[..len]);
        assert!(
            result.is_err(),
            "a prefix of {len} of {} bytes parsed",
            file.len()
        );
    }
}

#[test]
fn every_byte_flip_parses_or_fails_cleanly() {
    let file = sample_file();
    let mut corrupt = file.clone();
    for position in 0..file.len() {
        for replacement in [0x00, 0x01, 0x7f, 0x80, 0xff, file[position] ^ 0x01] {
            corrupt[position] = replacement;
            if let Ok(gguf) = Gguf::parse(&corrupt) {
                walk(&gguf);
            }
        }
        corrupt[position] = file[position];
    }
}

#[test]
fn error_fits_in_128_bytes() {
    // Clippy's `result_large_err` warns above 128 bytes, and every parse returns this type.
    assert!(
        size_of::<GgufError>() <= 128,
        "GgufError is {} bytes",
        size_of::<GgufError>()
    );
}

/// Builds GGUF bytes field by field, including fields no valid writer would produce.
#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    /// Starts a file with the magic, version 3 and the two counts.
    fn header(tensor_count: u64, metadata_count: u64) -> Self {
        Raw::default()
            .bytes(b"GGUF")
            .u32(3)
            .u64(tensor_count)
            .u64(metadata_count)
    }

    fn bytes(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    fn u8(self, value: u8) -> Self {
        self.bytes(&[value])
    }

    fn u32(self, value: u32) -> Self {
        self.bytes(&value.to_le_bytes())
    }

    fn u64(self, value: u64) -> Self {
        self.bytes(&value.to_le_bytes())
    }

    fn string(self, value: &[u8]) -> Self {
        self.u64(value.len() as u64).bytes(value)
    }

    /// Appends a key and a value type tag; the value follows.
    fn key(self, key: &str, ty: ValueType) -> Self {
        self.string(key.as_bytes()).u32(ty as u32)
    }

    fn tensor(self, name: &str, dims: &[u64], ggml_type: u32, offset: u64) -> Self {
        let mut raw = self.string(name.as_bytes()).u32(dims.len() as u32);
        for &dim in dims {
            raw = raw.u64(dim);
        }
        raw.u32(ggml_type).u64(offset)
    }

    /// Pads with zeros to a multiple of `alignment`.
    fn align(mut self, alignment: usize) -> Self {
        let len = self.0.len().next_multiple_of(alignment);
        self.0.resize(len, 0);
        self
    }

    fn zeros(mut self, count: usize) -> Self {
        self.0.resize(self.0.len() + count, 0);
        self
    }

    fn parse(&self) -> Result<(), GgufError> {
        Gguf::parse(&self.0).map(|gguf| walk(&gguf))
    }
}

#[test]
fn raw_builder_makes_valid_files() {
    let file = Raw::header(1, 1)
        .key("k", ValueType::U8)
        .u8(1)
        .tensor("t", &[8], 0, 0)
        .align(32)
        .zeros(32);
    file.parse().unwrap();
}

#[test]
fn truncated_header_names_field() {
    let file = Raw::header(0, 0).0;
    let cases = [
        (0, Field::Magic, 0),
        (3, Field::Magic, 0),
        (4, Field::Version, 4),
        (7, Field::Version, 4),
        (8, Field::TensorCount, 8),
        (15, Field::TensorCount, 8),
        (16, Field::MetadataCount, 16),
        (23, Field::MetadataCount, 16),
    ];
    for (len, expected_field, expected_offset) in cases {
        let error = Gguf::parse(&file[..len]).unwrap_err();
        assert!(
            matches!(error, GgufError::Truncated { field, offset, .. } if field == expected_field && offset == expected_offset),
            "prefix {len}: {error:?}"
        );
    }
    assert!(Gguf::parse(&file).is_ok());
}

#[test]
fn truncated_value_is_truncated() {
    let error = Raw::header(0, 1)
        .key("k", ValueType::U64)
        .u32(7)
        .parse()
        .unwrap_err();
    assert!(
        matches!(
            error,
            GgufError::Truncated {
                field: Field::Value,
                offset: 37,
                needed: 8,
                available: 4
            }
        ),
        "{error:?}"
    );
}

#[test]
fn bad_magic_is_rejected() {
    let error = Raw::default()
        .bytes(b"PK\x03\x04")
        .u32(3)
        .u64(0)
        .u64(0)
        .parse()
        .unwrap_err();
    assert_eq!(
        error,
        GgufError::BadMagic {
            found: *b"PK\x03\x04"
        }
    );
    assert!(error.to_string().contains("50 4b 03 04"), "{error}");
}

#[test]
fn legacy_magic_is_named() {
    for (magic, name) in [
        (b"tjgg", "GGJT"),
        (b"lmgg", "GGML"),
        (b"fmgg", "GGMF"),
        (b"ggjt", "GGJT"),
    ] {
        let error = Raw::default().bytes(magic).u32(3).parse().unwrap_err();
        assert_eq!(error, GgufError::LegacyFormat { found: *magic });
        assert!(error.to_string().contains(name), "{error}");
    }
}

#[test]
fn big_endian_version_is_detected() {
    let error = Raw::default()
        .bytes(b"GGUF")
        .bytes(&3u32.to_be_bytes())
        .u64(0)
        .u64(0)
        .parse()
        .unwrap_err();
    assert_eq!(error, GgufError::BigEndian { found: 0x0300_0000 });
    assert!(
        error.to_string().contains("version 3 stored big-endian"),
        "{error}"
    );
}

#[test]
fn other_versions_are_rejected() {
    for version in [0, 1, 2, 4, 0xffff_ffff] {
        let error = Raw::default()
            .bytes(b"GGUF")
            .u32(version)
            .u64(0)
            .u64(0)
            .parse()
            .unwrap_err();
        assert_eq!(error, GgufError::UnsupportedVersion { found: version });
        assert!(
            error.to_string().contains("current GGUF converter"),
            "{error}"
        );
    }
}

#[test]
fn metadata_count_beyond_file() {
    let error = Raw::header(0, 2)
        .key("k", ValueType::U8)
        .u8(1)
        .parse()
        .unwrap_err();
    assert_eq!(
        error,
        GgufError::CountTooLarge {
            field: Field::MetadataCount,
            offset: 16,
            found: 2,
            max: 1
        }
    );
    let huge = Raw::header(0, u64::MAX).parse().unwrap_err();
    assert!(
        matches!(
            huge,
            GgufError::CountTooLarge {
                field: Field::MetadataCount,
                ..
            }
        ),
        "{huge:?}"
    );
}

#[test]
fn tensor_count_beyond_file() {
    let error = Raw::header(2, 0)
        .tensor("t", &[8], 0, 0)
        .parse()
        .unwrap_err();
    assert_eq!(
        error,
        GgufError::CountTooLarge {
            field: Field::TensorCount,
            offset: 8,
            found: 2,
            max: 1
        }
    );
    let huge = Raw::header(u64::MAX, 0).parse().unwrap_err();
    assert!(
        matches!(
            huge,
            GgufError::CountTooLarge {
                field: Field::TensorCount,
                ..
            }
        ),
        "{huge:?}"
    );
}

#[test]
fn metadata_count_over_limit() {
    let count = MAX_METADATA_KEYS as u64 + 1;
    let error = Raw::header(0, count)
        .zeros(20 * count as usize)
        .parse()
        .unwrap_err();
    assert_eq!(
        error,
        GgufError::CountOverLimit {
            field: Field::MetadataCount,
            offset: 16,
            found: count,
            limit: count - 1
        }
    );
}

#[test]
fn tensor_count_over_limit() {
    let count = MAX_TENSORS as u64 + 1;
    let error = Raw::header(count, 0)
        .zeros(32 * count as usize)
        .parse()
        .unwrap_err();
    assert_eq!(
        error,
        GgufError::CountOverLimit {
            field: Field::TensorCount,
            offset: 8,
            found: count,
            limit: count - 1
        }
    );
}

#[test]
fn array_count_beyond_file() {
    let error = Raw::header(0, 1)
        .key("k", ValueType::Array)
        .u32(ValueType::U32 as u32)
        .u64(3)
        .u64(0)
        .parse();
    assert_eq!(
        error.unwrap_err(),
        GgufError::CountTooLarge {
            field: Field::ArrayLength,
            offset: 41,
            found: 3,
            max: 2
        }
    );
    let strings = Raw::header(0, 1)
        .key("k", ValueType::Array)
        .u32(ValueType::String as u32)
        .u64(2)
        .u64(0);
    let error = strings.parse().unwrap_err();
    assert!(
        matches!(
            error,
            GgufError::CountTooLarge {
                field: Field::ArrayLength,
                max: 1,
                ..
            }
        ),
        "{error:?}"
    );
    let huge = Raw::header(0, 1)
        .key("k", ValueType::Array)
        .u32(ValueType::U8 as u32)
        .u64(u64::MAX)
        .parse();
    assert!(
        matches!(
            huge,
            Err(GgufError::CountTooLarge {
                field: Field::ArrayLength,
                max: 0,
                ..
            })
        ),
        "{huge:?}"
    );
}

#[test]
fn string_length_beyond_file() {
    let key = Raw::header(0, 1)
        .u64(100)
        .bytes(b"abc")
        .zeros(10)
        .parse()
        .unwrap_err();
    assert_eq!(
        key,
        GgufError::StringTooLong {
            field: Field::KeyLength,
            offset: 24,
            len: 100,
            available: 13
        }
    );

    let value = Raw::header(0, 1)
        .key("k", ValueType::String)
        .u64(u64::MAX)
        .parse()
        .unwrap_err();
    assert!(
        matches!(
            value,
            GgufError::StringTooLong {
                field: Field::StringLength,
                offset: 37,
                len: u64::MAX,
                ..
            }
        ),
        "{value:?}"
    );

    let name = Raw::header(1, 0)
        .u64(1 << 40)
        .zeros(40)
        .parse()
        .unwrap_err();
    assert!(
        matches!(
            name,
            GgufError::StringTooLong {
                field: Field::TensorNameLength,
                ..
            }
        ),
        "{name:?}"
    );
}

#[test]
fn invalid_utf8_is_rejected() {
    let key = Raw::header(0, 1)
        .string(b"k\xff")
        .u32(0)
        .u8(0)
        .parse()
        .unwrap_err();
    assert_eq!(
        key,
        GgufError::InvalidUtf8 {
            field: Field::Key,
            offset: 32,
            error_offset: 33
        }
    );

    let value = Raw::header(0, 1)
        .key("k", ValueType::String)
        .string(b"\xc3\x28")
        .parse()
        .unwrap_err();
    assert!(
        matches!(
            value,
            GgufError::InvalidUtf8 {
                field: Field::StringBytes,
                ..
            }
        ),
        "{value:?}"
    );

    let array = Raw::header(0, 1)
        .key("k", ValueType::Array)
        .u32(ValueType::String as u32)
        .u64(2);
    let error = array
        .string(b"ok")
        .string(b"\xed\xa0\x80")
        .parse()
        .unwrap_err();
    assert!(
        matches!(
            error,
            GgufError::InvalidUtf8 {
                field: Field::StringBytes,
                ..
            }
        ),
        "{error:?}"
    );

    let name = Raw::header(1, 0)
        .string(b"\x80")
        .u32(1)
        .u64(1)
        .u32(0)
        .u64(0)
        .align(32)
        .zeros(32);
    let error = name.parse().unwrap_err();
    assert!(
        matches!(
            error,
            GgufError::InvalidUtf8 {
                field: Field::TensorName,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn unknown_value_type_is_rejected() {
    let error = Raw::header(0, 1)
        .string(b"k")
        .u32(13)
        .zeros(8)
        .parse()
        .unwrap_err();
    assert_eq!(
        error,
        GgufError::UnknownValueType {
            field: Field::ValueType,
            offset: 33,
            found: 13
        }
    );

    let elem = Raw::header(0, 1)
        .key("k", ValueType::Array)
        .u32(99)
        .u64(0)
        .parse()
        .unwrap_err();
    assert_eq!(
        elem,
        GgufError::UnknownValueType {
            field: Field::ArrayElemType,
            offset: 37,
            found: 99
        }
    );
}

/// Metadata with one key whose value is `depth` nested arrays around one u8.
fn nested_arrays(depth: u32) -> Raw {
    let mut raw = Raw::header(0, 1).key("k", ValueType::Array);
    for _ in 1..depth {
        raw = raw.u32(ValueType::Array as u32).u64(1);
    }
    raw.u32(ValueType::U8 as u32).u64(1).u8(7)
}

#[test]
fn array_nesting_is_bounded() {
    nested_arrays(MAX_ARRAY_DEPTH).parse().unwrap();
    let error = nested_arrays(MAX_ARRAY_DEPTH + 1).parse().unwrap_err();
    assert_eq!(
        error,
        GgufError::ArrayTooDeep {
            offset: 37 + 12 * u64::from(MAX_ARRAY_DEPTH)
        }
    );

    // A deep nest that claims more elements than fit is still rejected by depth, not length.
    let error = nested_arrays(10_000).parse().unwrap_err();
    assert!(matches!(error, GgufError::ArrayTooDeep { .. }), "{error:?}");
}

#[test]
fn invalid_bool_is_rejected() {
    let scalar = Raw::header(0, 1)
        .key("k", ValueType::Bool)
        .u8(2)
        .parse()
        .unwrap_err();
    assert_eq!(
        scalar,
        GgufError::InvalidBool {
            offset: 37,
            found: 2
        }
    );

    let array = Raw::header(0, 1)
        .key("k", ValueType::Array)
        .u32(ValueType::Bool as u32)
        .u64(3);
    let error = array.bytes(&[1, 0, 0xff]).parse().unwrap_err();
    assert_eq!(
        error,
        GgufError::InvalidBool {
            offset: 51,
            found: 0xff
        }
    );
}

#[test]
fn alignment_of_wrong_type() {
    let wrong_types = [
        Raw::header(0, 1)
            .key("general.alignment", ValueType::U64)
            .u64(32),
        Raw::header(0, 1)
            .key("general.alignment", ValueType::I32)
            .u32(32),
        Raw::header(0, 1)
            .key("general.alignment", ValueType::U16)
            .bytes(&32u16.to_le_bytes()),
        Raw::header(0, 1)
            .key("general.alignment", ValueType::String)
            .string(b"32"),
    ];
    for raw in wrong_types {
        let error = raw.parse().unwrap_err();
        assert!(
            matches!(error, GgufError::AlignmentType { offset: 53, .. }),
            "{error:?}"
        );
    }
}

#[test]
fn alignment_zero_or_not_power_of_two() {
    for found in [0, 3, 48, 0xffff_ffff] {
        let error = Raw::header(0, 1)
            .key("general.alignment", ValueType::U32)
            .u32(found)
            .parse()
            .unwrap_err();
        assert_eq!(error, GgufError::InvalidAlignment { offset: 53, found });
    }
}

#[test]
fn alignment_sets_data_offset() {
    let raw = Raw::header(1, 1)
        .key("general.alignment", ValueType::U32)
        .u32(256);
    let raw = raw.tensor("t", &[4], 0, 256).align(256).zeros(512);
    let gguf = Gguf::parse(&raw.0).unwrap();
    assert_eq!(gguf.alignment(), 256);
    assert_eq!(gguf.data_offset(), 256);
    assert_eq!(gguf.tensor("t").unwrap().offset, 256);
}

#[test]
fn duplicate_key_is_rejected() {
    let raw = Raw::header(0, 3)
        .key("a", ValueType::U8)
        .u8(1)
        .key("b", ValueType::U8)
        .u8(1);
    let error = raw.key("a", ValueType::U32).u32(1).parse().unwrap_err();
    assert!(
        matches!(error, GgufError::DuplicateKey { ref key, offset: 52, index: 2, first_index: 0 } if key.as_str() == "a"),
        "{error:?}"
    );
}

#[test]
fn key_too_long_is_rejected() {
    let key = vec![b'k'; 65_536];
    let error = Raw::header(0, 1)
        .string(&key)
        .u32(0)
        .u8(0)
        .parse()
        .unwrap_err();
    assert_eq!(
        error,
        GgufError::KeyTooLong {
            index: 0,
            offset: 24,
            len: 65_536
        }
    );
    let key = vec![b'k'; 65_535];
    Raw::header(0, 1).string(&key).u32(0).u8(0).parse().unwrap();
}

#[test]
fn duplicate_tensor_name_is_rejected() {
    let raw = Raw::header(3, 0)
        .tensor("x", &[8], 0, 0)
        .tensor("y", &[8], 0, 32)
        .tensor("x", &[8], 0, 64);
    let error = raw.align(32).zeros(96).parse().unwrap_err();
    assert!(
        matches!(error, GgufError::DuplicateTensorName { ref name, tensor: 2, first_tensor: 0, .. } if name.as_str() == "x"),
        "{error:?}"
    );
}

#[test]
fn many_distinct_tensor_names_parse() {
    // Many sorted blocks of names, so that later names are searched in every earlier block.
    let count = 3000;
    let mut raw = Raw::header(count, 0);
    for index in 0..count {
        raw = raw.tensor(&format!("blk.{index}.weight"), &[1], 0, index * 32);
    }
    let raw = raw.align(32).zeros(32 * count as usize);
    let gguf = Gguf::parse(&raw.0).unwrap();
    assert_eq!(gguf.tensor_count(), count as usize);
    assert_eq!(gguf.tensor("blk.2999.weight").unwrap().offset, 2999 * 32);
}

#[test]
fn tensor_name_too_long_is_rejected() {
    let name = "n".repeat(64);
    let error = Raw::header(1, 0)
        .tensor(&name, &[8], 0, 0)
        .align(32)
        .zeros(32)
        .parse()
        .unwrap_err();
    assert!(
        matches!(error, GgufError::TensorNameTooLong { ref name, tensor: 0, offset: 24, len: 64 } if name.is_truncated()),
        "{error:?}"
    );
    Raw::header(1, 0)
        .tensor(&name[..63], &[8], 0, 0)
        .align(32)
        .zeros(32)
        .parse()
        .unwrap();
}

#[test]
fn dim_count_zero_or_above_four() {
    for n_dims in [0, 5, u32::MAX] {
        let raw = Raw::header(1, 0).string(b"t").u32(n_dims).zeros(64);
        let error = raw.parse().unwrap_err();
        assert!(
            matches!(error, GgufError::InvalidDimCount { tensor: 0, offset: 33, found, .. } if found == n_dims),
            "{error:?}"
        );
    }
}

#[test]
fn zero_dim_is_rejected() {
    let error = Raw::header(1, 0)
        .tensor("t", &[8, 1, 0], 0, 0)
        .align(32)
        .zeros(32)
        .parse()
        .unwrap_err();
    assert!(
        matches!(
            error,
            GgufError::ZeroDim {
                axis: 2,
                offset: 53,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn element_count_overflow_is_rejected() {
    let count = Raw::header(1, 0)
        .tensor("t", &[1 << 32, 1 << 32, 2], 0, 0)
        .align(32)
        .zeros(32);
    let error = count.parse().unwrap_err();
    assert!(
        matches!(
            error,
            GgufError::TooManyElements {
                n_dims: 3,
                offset: 37,
                ..
            }
        ),
        "{error:?}"
    );

    // 2^62 elements fit in u64, but 2^64 bytes of f32 do not.
    let bytes = Raw::header(1, 0)
        .tensor("t", &[1 << 31, 1 << 31], 0, 0)
        .align(32)
        .zeros(32);
    let error = bytes.parse().unwrap_err();
    assert!(
        matches!(error, GgufError::TooManyElements { n_dims: 2, .. }),
        "{error:?}"
    );
}

#[test]
fn unsupported_tensor_type_is_rejected() {
    let error = Raw::header(1, 0)
        .tensor("blk.0.ssm_in.weight", &[256], 12, 0)
        .align(32)
        .zeros(256)
        .parse();
    let error = error.unwrap_err();
    assert!(
        matches!(error, GgufError::UnsupportedTensorType { ref name, tensor: 0, offset: 63, found: 12 } if name.as_str() == "blk.0.ssm_in.weight"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("blk.0.ssm_in.weight"), "{message}");
    assert!(message.contains("q4_k"), "{message}");
    assert!(message.contains("mamba-quantize --type q8_0"), "{message}");
}

#[test]
fn row_not_block_multiple_is_rejected() {
    let raw = Raw::header(1, 0)
        .tensor("t", &[48, 2], GgmlType::Q4_0 as u32, 0)
        .align(32)
        .zeros(64);
    let error = raw.parse().unwrap_err();
    assert!(
        matches!(
            error,
            GgufError::RowNotBlockMultiple {
                dtype: GgmlType::Q4_0,
                row_len: 48,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn misaligned_offset_is_rejected() {
    let raw = Raw::header(1, 0)
        .tensor("t", &[8], 0, 16)
        .align(32)
        .zeros(64);
    let error = raw.parse().unwrap_err();
    assert!(
        matches!(
            error,
            GgufError::MisalignedTensor {
                found: 16,
                alignment: 32,
                offset: 49,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn data_beyond_file_is_rejected() {
    let raw = Raw::header(1, 0)
        .tensor("t", &[8], 0, 0)
        .align(32)
        .zeros(31);
    let error = raw.parse().unwrap_err();
    assert_eq!(
        error,
        GgufError::TensorOutOfBounds {
            name: mamba_core::gguf::ShortName::new("t"),
            tensor: 0,
            start: 64,
            end: 96,
            file_len: 95
        }
    );

    let far = Raw::header(1, 0)
        .tensor("t", &[8], 0, u64::MAX - 31)
        .align(32)
        .zeros(32);
    let error = far.parse().unwrap_err();
    assert!(
        matches!(error, GgufError::TensorOutOfBounds { end: u64::MAX, .. }),
        "{error:?}"
    );
}

#[test]
fn overlapping_tensors_are_rejected() {
    let raw = Raw::header(2, 0)
        .tensor("a", &[16], 0, 0)
        .tensor("b", &[8], 0, 32);
    let error = raw.align(32).zeros(64).parse().unwrap_err();
    assert!(
        matches!(
            error,
            GgufError::TensorOverlap {
                tensor: 1,
                other: 0,
                range: (128, 160),
                other_range: (96, 160),
                ..
            }
        ),
        "{error:?}"
    );

    // Out of order: the later tensor starts first and overlaps the earlier one's start.
    let raw = Raw::header(2, 0)
        .tensor("a", &[8], 0, 32)
        .tensor("b", &[16], 0, 0);
    let error = raw.align(32).zeros(64).parse().unwrap_err();
    assert!(
        matches!(
            error,
            GgufError::TensorOverlap {
                tensor: 1,
                other: 0,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn out_of_order_tensors_parse() {
    let raw = Raw::header(2, 0)
        .tensor("a", &[8], 0, 32)
        .tensor("b", &[8], 0, 0);
    let raw = raw.align(32).zeros(64);
    let gguf = Gguf::parse(&raw.0).unwrap();
    assert_eq!(gguf.tensor("a").unwrap().offset, 32);
    assert_eq!(gguf.tensor("b").unwrap().offset, 0);
}

#[test]
fn file_without_tensors_needs_no_padding() {
    let raw = Raw::header(0, 1).key("k", ValueType::U8).u8(1);
    let gguf = Gguf::parse(&raw.0).unwrap();
    assert_eq!(gguf.data_offset(), 64);
    assert_eq!(gguf.get("k"), Some(Value::U8(1)));
}

#[test]
fn messages_name_offset_value_and_fix() {
    let error = GgufError::Truncated {
        field: Field::TensorOffset,
        offset: 1234,
        needed: 8,
        available: 3,
    };
    let message = error.to_string();
    assert!(message.contains("tensor data offset"), "{message}");
    assert!(message.contains("1234"), "{message}");
    assert!(
        message.contains("download or convert it again"),
        "{message}"
    );

    let error = GgufError::InvalidAlignment {
        offset: 99,
        found: 48,
    };
    let message = error.to_string();
    assert!(message.contains("99"), "{message}");
    assert!(message.contains("48"), "{message}");
    assert!(message.contains("power of two"), "{message}");
}

#[test]
fn max_tensors_in_reverse_order_parse() {
    // Out of order, so the blocked overlap check runs over every pair of blocks.
    let count = MAX_TENSORS as u64;
    let mut raw = Raw::header(count, 0);
    for index in 0..count {
        raw = raw.tensor(
            &format!("blk.{index}.ssm_in.weight"),
            &[8],
            0,
            (count - 1 - index) * 32,
        );
    }
    let raw = raw.align(32).zeros(32 * count as usize);
    let gguf = Gguf::parse(&raw.0).unwrap();
    assert_eq!(gguf.tensor_count(), MAX_TENSORS);
}

#[test]
fn max_keys_of_equal_length_parse() {
    let count = MAX_METADATA_KEYS as u64;
    let mut raw = Raw::header(0, count);
    for index in 0..count {
        raw = raw.key(&format!("key.{index:06}"), ValueType::U8).u8(1);
    }
    let gguf = Gguf::parse(&raw.0).unwrap();
    assert_eq!(gguf.metadata_count(), MAX_METADATA_KEYS);
}

#[test]
fn duplicate_found_across_blocks() {
    // Tensor 0 and tensor 300 are in different blocks of the sorted check.
    let mut raw = Raw::header(301, 0);
    for index in 0..300u64 {
        raw = raw.tensor(&format!("t{index}"), &[8], 0, index * 32);
    }
    let raw = raw
        .tensor("t0", &[8], 0, 300 * 32)
        .align(32)
        .zeros(301 * 32);
    let error = raw.parse().unwrap_err();
    assert!(
        matches!(
            error,
            GgufError::DuplicateTensorName {
                tensor: 300,
                first_tensor: 0,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn overlap_found_across_blocks() {
    // Tensor 299 overlaps tensor 5, and the reversed offsets force the blocked check.
    let mut raw = Raw::header(300, 0);
    for index in 0..299u64 {
        raw = raw.tensor(&format!("t{index}"), &[8], 0, (298 - index) * 32);
    }
    let raw = raw
        .tensor("late", &[16], 0, (298 - 6) * 32)
        .align(32)
        .zeros(300 * 32);
    let error = raw.parse().unwrap_err();
    assert!(
        matches!(error, GgufError::TensorOverlap { tensor: 299, ref name, .. } if name.as_str() == "late"),
        "{error:?}"
    );
}
