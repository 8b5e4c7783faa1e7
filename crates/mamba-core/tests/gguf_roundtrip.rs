//! Writer-to-reader round trips: every value type, every tensor type and rank, alignments,
//! and the cleanup guarantees of `GgufWriter::write_file`.

#![cfg(feature = "std")]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use mamba_core::GgmlType;
use mamba_core::gguf::{
    ArrayValue, FillError, Gguf, GgufWriteError, GgufWriter, MAX_ARRAY_DEPTH, MetaValue, Value,
    ValueType,
};

/// Writes `writer` to memory, filling tensor `index` with `tensor_bytes(index, len)`.
fn write_to_vec(writer: &GgufWriter, sizes: &[usize]) -> Vec<u8> {
    let mut file = Vec::new();
    let written = writer
        .write_to(&mut file, |index, sink| {
            sink.write_all(&tensor_bytes(index, sizes[index]))?;
            Ok(())
        })
        .expect("write_to failed");
    assert_eq!(
        written,
        file.len() as u64,
        "write_to returned a wrong byte count"
    );
    file
}

/// Deterministic, tensor-specific contents, so that a swapped or shifted tensor shows.
fn tensor_bytes(index: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + index * 31 + 1) as u8).collect()
}

/// Asserts that a value read back equals the value written, recursing into arrays.
fn assert_value_matches(key: &str, written: &MetaValue, read: Value<'_>) {
    match (written, read) {
        (MetaValue::U8(a), Value::U8(b)) => assert_eq!(*a, b, "{key}"),
        (MetaValue::I8(a), Value::I8(b)) => assert_eq!(*a, b, "{key}"),
        (MetaValue::U16(a), Value::U16(b)) => assert_eq!(*a, b, "{key}"),
        (MetaValue::I16(a), Value::I16(b)) => assert_eq!(*a, b, "{key}"),
        (MetaValue::U32(a), Value::U32(b)) => assert_eq!(*a, b, "{key}"),
        (MetaValue::I32(a), Value::I32(b)) => assert_eq!(*a, b, "{key}"),
        (MetaValue::U64(a), Value::U64(b)) => assert_eq!(*a, b, "{key}"),
        (MetaValue::I64(a), Value::I64(b)) => assert_eq!(*a, b, "{key}"),
        (MetaValue::F32(a), Value::F32(b)) => assert_eq!(a.to_bits(), b.to_bits(), "{key}"),
        (MetaValue::F64(a), Value::F64(b)) => assert_eq!(a.to_bits(), b.to_bits(), "{key}"),
        (MetaValue::Bool(a), Value::Bool(b)) => assert_eq!(*a, b, "{key}"),
        (MetaValue::String(a), Value::String(b)) => assert_eq!(a, b, "{key}"),
        (MetaValue::Array(elem_type, items), Value::Array(array)) => {
            assert_array_matches(key, *elem_type, items, array)
        }
        (written, read) => panic!("{key}: wrote {written:?} but read {read:?}"),
    }
}

fn assert_array_matches(
    key: &str,
    elem_type: ValueType,
    items: &[MetaValue],
    array: ArrayValue<'_>,
) {
    assert_eq!(array.elem_type(), elem_type, "{key}: element type");
    assert_eq!(array.len(), items.len() as u64, "{key}: length");
    assert_eq!(array.is_empty(), items.is_empty(), "{key}: is_empty");
    assert_eq!(array.iter().count(), items.len(), "{key}: iter count");
    for (index, (item, read)) in items.iter().zip(array.iter()).enumerate() {
        assert_value_matches(&format!("{key}[{index}]"), item, read);
        let by_index = array
            .get(index as u64)
            .expect("get within bounds returned None");
        assert_value_matches(&format!("{key}.get({index})"), item, by_index);
    }
    assert!(
        array.get(items.len() as u64).is_none(),
        "{key}: get past the end"
    );
}

/// Returns one entry of each value type, with extreme values, unicode, empty and nested arrays.
fn sample_metadata() -> Vec<(&'static str, MetaValue)> {
    let strings = |items: &[&str]| {
        items
            .iter()
            .map(|s| MetaValue::String(s.to_string()))
            .collect()
    };
    vec![
        ("test.u8", MetaValue::U8(u8::MAX)),
        ("test.i8", MetaValue::I8(i8::MIN)),
        ("test.u16", MetaValue::U16(u16::MAX)),
        ("test.i16", MetaValue::I16(i16::MIN)),
        ("test.u32", MetaValue::U32(u32::MAX)),
        ("test.i32", MetaValue::I32(i32::MIN)),
        ("test.f32", MetaValue::F32(-1.5e-7)),
        ("test.bool_true", MetaValue::Bool(true)),
        ("test.bool_false", MetaValue::Bool(false)),
        (
            "test.string",
            MetaValue::String("Mamba 🐍 — ünïcødé, 日本語".into()),
        ),
        ("test.empty_string", MetaValue::String(String::new())),
        ("test.u64", MetaValue::U64(u64::MAX)),
        ("test.i64", MetaValue::I64(i64::MIN)),
        ("test.f64", MetaValue::F64(std::f64::consts::PI)),
        ("test.nan", MetaValue::F32(f32::NAN)),
        (
            "test.u8_array",
            MetaValue::Array(ValueType::U8, (0..=255).map(MetaValue::U8).collect()),
        ),
        (
            "test.i16_array",
            MetaValue::Array(ValueType::I16, vec![MetaValue::I16(-2), MetaValue::I16(7)]),
        ),
        (
            "test.f32_array",
            MetaValue::Array(
                ValueType::F32,
                vec![MetaValue::F32(0.5), MetaValue::F32(-0.0)],
            ),
        ),
        (
            "test.f64_array",
            MetaValue::Array(ValueType::F64, vec![MetaValue::F64(1e300)]),
        ),
        (
            "test.u64_array",
            MetaValue::Array(ValueType::U64, vec![MetaValue::U64(1 << 40)]),
        ),
        (
            "test.bool_array",
            MetaValue::Array(
                ValueType::Bool,
                vec![MetaValue::Bool(true), MetaValue::Bool(false)],
            ),
        ),
        (
            "test.string_array",
            MetaValue::Array(ValueType::String, strings(&["", "a b", "ü", "🐍🐍"])),
        ),
        (
            "test.empty_u32_array",
            MetaValue::Array(ValueType::U32, vec![]),
        ),
        (
            "test.empty_string_array",
            MetaValue::Array(ValueType::String, vec![]),
        ),
        (
            "test.empty_array_array",
            MetaValue::Array(ValueType::Array, vec![]),
        ),
        (
            "test.nested_array",
            MetaValue::Array(
                ValueType::Array,
                vec![
                    MetaValue::Array(ValueType::I32, vec![MetaValue::I32(1), MetaValue::I32(-1)]),
                    MetaValue::Array(ValueType::String, strings(&["x", "yz"])),
                    MetaValue::Array(ValueType::U8, vec![]),
                    MetaValue::Array(
                        ValueType::Array,
                        vec![MetaValue::Array(
                            ValueType::Bool,
                            vec![MetaValue::Bool(true)],
                        )],
                    ),
                ],
            ),
        ),
        ("ключ.ünïcødé", MetaValue::U32(7)),
    ]
}

#[test]
fn metadata_round_trips_every_value_type() {
    let entries = sample_metadata();
    let mut writer = GgufWriter::new();
    for (key, value) in &entries {
        writer.add_metadata(key, value.clone()).unwrap();
    }
    let file = write_to_vec(&writer, &[]);
    let gguf = Gguf::parse(&file).unwrap();

    assert_eq!(gguf.version(), 3);
    assert_eq!(gguf.alignment(), 32);
    assert_eq!(gguf.tensor_count(), 0);
    assert_eq!(gguf.metadata_count(), entries.len());
    assert_eq!(gguf.metadata().count(), entries.len());
    for ((key, written), (read_key, read)) in entries.iter().zip(gguf.metadata()) {
        assert_eq!(*key, read_key, "metadata order");
        assert_eq!(read.value_type(), written.value_type(), "{key}: value type");
        assert_value_matches(key, written, read);
        assert_value_matches(key, written, gguf.get(key).expect("get returned None"));
    }
    assert!(gguf.get("test.missing").is_none());
    assert!(
        gguf.get("general.alignment").is_none(),
        "the default alignment needs no key"
    );
}

#[test]
fn every_value_type_covered() {
    let written: Vec<ValueType> = sample_metadata()
        .iter()
        .map(|(_, v)| v.value_type())
        .collect();
    for ty in ValueType::ALL {
        assert!(written.contains(&ty), "sample_metadata has no {ty} value");
    }
}

#[test]
fn value_accessors_convert() {
    assert_eq!(Value::U8(7).as_u32(), Some(7));
    assert_eq!(Value::I8(-1).as_u32(), None);
    assert_eq!(Value::I8(-1).as_i64(), Some(-1));
    assert_eq!(Value::I64(5).as_u64(), Some(5));
    assert_eq!(Value::U64(u64::MAX).as_u32(), None);
    assert_eq!(Value::U64(u64::MAX).as_u64(), Some(u64::MAX));
    assert_eq!(Value::U64(u64::MAX).as_i64(), None);
    assert_eq!(Value::I32(i32::MIN).as_i64(), Some(i64::from(i32::MIN)));
    assert_eq!(Value::U32(1).as_f32(), None);
    assert_eq!(Value::F64(0.25).as_f32(), Some(0.25));
    assert_eq!(Value::F32(2.5).as_f32(), Some(2.5));
    assert_eq!(Value::F32(2.5).as_u32(), None);
    assert_eq!(Value::Bool(true).as_bool(), Some(true));
    assert_eq!(Value::U8(1).as_bool(), None);
    assert_eq!(Value::String("s").as_str(), Some("s"));
    assert_eq!(Value::Bool(true).as_str(), None);
    assert!(Value::U8(0).as_array().is_none());
}

/// Dimensions of a tensor of `dtype` with `n_dims` dimensions, distinct per axis.
fn sample_dims(dtype: GgmlType, n_dims: usize) -> Vec<u64> {
    let all = [dtype.block_size() as u64 * 3, 5, 2, 3];
    all[..n_dims].to_vec()
}

fn n_bytes(dtype: GgmlType, dims: &[u64]) -> usize {
    let rows: u64 = dims[1..].iter().product();
    dtype.row_bytes(dims[0] as usize).unwrap() * rows as usize
}

/// Writes one tensor of every type with every rank at `alignment`, reads them back and
/// checks names, shapes, offsets, data and matrix views.
fn check_tensor_round_trip(alignment: u64) {
    let mut writer = GgufWriter::new();
    writer.set_alignment(alignment).unwrap();
    writer
        .add_metadata("general.architecture", MetaValue::String("mamba".into()))
        .unwrap();
    let mut expected = Vec::new();
    for dtype in GgmlType::ALL {
        for n_dims in 1..=4 {
            let name = format!("{}.{n_dims}d", dtype.name());
            let dims = sample_dims(dtype, n_dims);
            writer.add_tensor(&name, dtype, &dims).unwrap();
            expected.push((name, dtype, dims));
        }
    }
    let sizes: Vec<usize> = expected
        .iter()
        .map(|(_, dtype, dims)| n_bytes(*dtype, dims))
        .collect();
    let file = write_to_vec(&writer, &sizes);
    let gguf = Gguf::parse(&file).unwrap();

    assert_eq!(gguf.alignment(), alignment);
    assert_eq!(
        gguf.data_offset() % alignment,
        0,
        "data section is unaligned"
    );
    let alignment_value = gguf.get("general.alignment");
    if alignment == 32 {
        assert_eq!(alignment_value, None);
    } else {
        assert_eq!(alignment_value, Some(Value::U32(alignment as u32)));
    }
    assert_eq!(gguf.tensor_count(), expected.len());
    assert_eq!(gguf.tensors().count(), expected.len());
    assert_eq!(
        file.len() as u64 % alignment,
        0,
        "file does not end on the alignment"
    );

    for (index, (tensor, (name, dtype, dims))) in gguf.tensors().zip(&expected).enumerate() {
        assert_eq!(tensor.name, name);
        assert_eq!(tensor.dtype, *dtype, "{name}");
        assert_eq!(tensor.shape(), dims.as_slice(), "{name}");
        assert_eq!(tensor.n_dims as usize, dims.len(), "{name}");
        assert_eq!(tensor.n_elements(), dims.iter().product::<u64>(), "{name}");
        assert_eq!(tensor.offset % alignment, 0, "{name}: offset is unaligned");
        assert_eq!(
            tensor.data,
            tensor_bytes(index, sizes[index]).as_slice(),
            "{name}: data"
        );
        let found = gguf
            .tensor(name)
            .expect("tensor() did not find a written tensor");
        assert_eq!(found.offset, tensor.offset, "{name}");

        let matrix = tensor.matrix();
        match dims.len() {
            1 | 2 => {
                let matrix = matrix.expect("1-D and 2-D tensors have a matrix view");
                assert_eq!(matrix.cols as u64, dims[0], "{name}: cols");
                assert_eq!(
                    matrix.rows as u64,
                    dims.get(1).copied().unwrap_or(1),
                    "{name}: rows"
                );
                assert_eq!(matrix.dtype, *dtype);
                assert_eq!(matrix.data, tensor.data);
            }
            _ => assert!(
                matrix.is_none(),
                "{name}: 3-D and 4-D tensors have no matrix view"
            ),
        }
    }
    assert!(gguf.tensor("missing").is_none());
}

#[test]
fn tensors_round_trip_default_alignment() {
    check_tensor_round_trip(32);
}

#[test]
fn tensors_round_trip_alignment_64() {
    check_tensor_round_trip(64);
}

#[test]
fn tensors_round_trip_alignment_1() {
    check_tensor_round_trip(1);
}

#[test]
fn tensors_round_trip_alignment_4096() {
    check_tensor_round_trip(4096);
}

#[test]
fn writer_rejects_invalid_alignment() {
    let mut writer = GgufWriter::new();
    for alignment in [0, 3, 48, 1 << 32] {
        let error = writer.set_alignment(alignment).unwrap_err();
        assert!(matches!(error, GgufWriteError::InvalidAlignment { found } if found == alignment));
    }
}

#[test]
fn writer_rejects_bad_metadata() {
    let mut writer = GgufWriter::new();
    writer.add_metadata("a.key", MetaValue::U8(1)).unwrap();

    let duplicate = writer.add_metadata("a.key", MetaValue::U16(1)).unwrap_err();
    assert!(
        matches!(duplicate, GgufWriteError::DuplicateKey { .. }),
        "{duplicate}"
    );

    let reserved = writer
        .add_metadata("general.alignment", MetaValue::U32(64))
        .unwrap_err();
    assert!(
        matches!(reserved, GgufWriteError::ReservedKey { .. }),
        "{reserved}"
    );

    let long_key = "k".repeat(65_536);
    let too_long = writer
        .add_metadata(&long_key, MetaValue::U8(1))
        .unwrap_err();
    assert!(
        matches!(too_long, GgufWriteError::KeyTooLong { len: 65_536, .. }),
        "{too_long}"
    );

    let mixed = MetaValue::Array(ValueType::U32, vec![MetaValue::U32(1), MetaValue::I32(2)]);
    let error = writer.add_metadata("mixed", mixed).unwrap_err();
    assert!(
        matches!(
            error,
            GgufWriteError::MixedArray {
                depth: 1,
                index: 1,
                expected: ValueType::U32,
                found: ValueType::I32,
                ..
            }
        ),
        "{error}"
    );

    let nested_mixed = MetaValue::Array(
        ValueType::Array,
        vec![MetaValue::Array(
            ValueType::String,
            vec![MetaValue::String("a".into()), MetaValue::U8(1)],
        )],
    );
    let error = writer
        .add_metadata("nested_mixed", nested_mixed)
        .unwrap_err();
    assert!(
        matches!(
            error,
            GgufWriteError::MixedArray {
                depth: 2,
                index: 1,
                ..
            }
        ),
        "{error}"
    );

    let mut deep = MetaValue::Array(ValueType::U8, vec![]);
    for _ in 0..MAX_ARRAY_DEPTH {
        deep = MetaValue::Array(ValueType::Array, vec![deep]);
    }
    let error = writer.add_metadata("deep", deep).unwrap_err();
    assert!(
        matches!(error, GgufWriteError::ArrayTooDeep { .. }),
        "{error}"
    );

    // Rejected entries leave no trace.
    let file = write_to_vec(&writer, &[]);
    assert_eq!(Gguf::parse(&file).unwrap().metadata_count(), 1);
}

#[test]
fn writer_accepts_max_array_depth() {
    let mut deep = MetaValue::Array(ValueType::U8, vec![MetaValue::U8(9)]);
    for _ in 1..MAX_ARRAY_DEPTH {
        deep = MetaValue::Array(ValueType::Array, vec![deep]);
    }
    let mut writer = GgufWriter::new();
    writer.add_metadata("deep", deep.clone()).unwrap();
    let file = write_to_vec(&writer, &[]);
    let gguf = Gguf::parse(&file).unwrap();
    assert_value_matches("deep", &deep, gguf.get("deep").unwrap());
}

#[test]
fn writer_rejects_bad_tensors() {
    let mut writer = GgufWriter::new();
    writer.add_tensor("t", GgmlType::F32, &[4]).unwrap();

    let cases: [(&str, GgmlType, &[u64]); 6] = [
        ("t", GgmlType::F32, &[4]),
        ("no_dims", GgmlType::F32, &[]),
        ("five_dims", GgmlType::F32, &[1, 1, 1, 1, 1]),
        ("zero_dim", GgmlType::F16, &[4, 0]),
        ("partial_block", GgmlType::Q8_0, &[33, 2]),
        ("huge", GgmlType::F32, &[1 << 32, 1 << 32]),
    ];
    let errors: Vec<GgufWriteError> = cases
        .iter()
        .map(|(name, dtype, dims)| writer.add_tensor(name, *dtype, dims).unwrap_err())
        .collect();
    assert!(
        matches!(errors[0], GgufWriteError::DuplicateTensor { .. }),
        "{}",
        errors[0]
    );
    assert!(
        matches!(errors[1], GgufWriteError::InvalidDimCount { found: 0, .. }),
        "{}",
        errors[1]
    );
    assert!(
        matches!(errors[2], GgufWriteError::InvalidDimCount { found: 5, .. }),
        "{}",
        errors[2]
    );
    assert!(
        matches!(errors[3], GgufWriteError::ZeroDim { axis: 1, .. }),
        "{}",
        errors[3]
    );
    assert!(
        matches!(
            errors[4],
            GgufWriteError::RowNotBlockMultiple { row_len: 33, .. }
        ),
        "{}",
        errors[4]
    );
    assert!(
        matches!(errors[5], GgufWriteError::TensorTooLarge { .. }),
        "{}",
        errors[5]
    );

    let long_name = "n".repeat(64);
    let error = writer
        .add_tensor(&long_name, GgmlType::F32, &[1])
        .unwrap_err();
    assert!(
        matches!(error, GgufWriteError::TensorNameTooLong { .. }),
        "{error}"
    );
    writer
        .add_tensor(&long_name[..63], GgmlType::F32, &[1])
        .unwrap();
}

#[test]
fn write_to_rejects_wrong_fill_sizes() {
    let mut writer = GgufWriter::new();
    writer.add_tensor("t", GgmlType::F32, &[4]).unwrap();

    let short = writer
        .write_to(Vec::new(), |_, sink| Ok(sink.write_all(&[0; 15])?))
        .unwrap_err();
    assert!(
        matches!(
            short,
            GgufWriteError::WrongTensorSize {
                expected: 16,
                written: 15,
                ..
            }
        ),
        "{short}"
    );

    let long = writer
        .write_to(Vec::new(), |_, sink| Ok(sink.write_all(&[0; 17])?))
        .unwrap_err();
    assert!(
        matches!(
            long,
            GgufWriteError::WrongTensorSize {
                expected: 16,
                written: 17,
                ..
            }
        ),
        "{long}"
    );

    // A callback that swallows the sink's error is caught too.
    let swallowed = writer
        .write_to(Vec::new(), |_, sink| {
            let _ = sink.write_all(&[0; 20]);
            Ok(())
        })
        .unwrap_err();
    assert!(
        matches!(
            swallowed,
            GgufWriteError::WrongTensorSize { written: 20, .. }
        ),
        "{swallowed}"
    );

    let failed = writer
        .write_to(Vec::new(), |_, _| Err("no weights".into()))
        .unwrap_err();
    assert!(
        matches!(&failed, GgufWriteError::Fill { index: 0, .. }),
        "{failed}"
    );
    assert!(failed.to_string().contains("no weights"), "{failed}");
}

/// Output that accepts `capacity` bytes, then fails every write.
struct FailingWriter {
    capacity: usize,
}

impl Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.capacity {
            return Err(std::io::Error::other("disk full"));
        }
        self.capacity -= buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn write_to_reports_output_errors() {
    let mut writer = GgufWriter::new();
    writer.add_tensor("t", GgmlType::F32, &[1 << 18]).unwrap();
    let error = writer
        .write_to(FailingWriter { capacity: 1 << 16 }, |_, sink| {
            // The callback replaces the I/O error with its own.
            sink.write_all(&vec![0; 1 << 20])
                .map_err(|_| FillError::from("callback error"))
        })
        .unwrap_err();
    assert!(
        matches!(error, GgufWriteError::Io { path: None, .. }),
        "{error}"
    );
}

/// Creates an empty directory for one test under Cargo's scratch directory.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("gguf_roundtrip")
        .join(test);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn one_tensor_writer() -> GgufWriter {
    let mut writer = GgufWriter::new();
    writer
        .add_metadata("general.name", MetaValue::String("write_file test".into()))
        .unwrap();
    writer.add_tensor("t", GgmlType::F16, &[8, 2]).unwrap();
    writer
}

#[test]
fn write_file_creates_only_target() {
    let dir = scratch_dir("creates_only_target");
    let path = dir.join("model.gguf");
    let written = one_tensor_writer()
        .write_file(&path, |_, sink| Ok(sink.write_all(&[1; 32])?))
        .unwrap();

    assert_eq!(dir_entries(&dir), ["model.gguf"]);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, written);
    let gguf = Gguf::parse(&bytes).unwrap();
    assert_eq!(gguf.tensor("t").unwrap().data, [1; 32]);
}

#[test]
fn write_file_fill_error_leaves_nothing() {
    let dir = scratch_dir("fill_error");
    let path = dir.join("model.gguf");
    let error = one_tensor_writer()
        .write_file(&path, |_, _| Err("tensor source failed".into()))
        .unwrap_err();

    assert!(matches!(error, GgufWriteError::Fill { .. }), "{error}");
    assert!(
        dir_entries(&dir).is_empty(),
        "left behind: {:?}",
        dir_entries(&dir)
    );
}

#[test]
fn write_file_short_fill_leaves_nothing() {
    let dir = scratch_dir("short_fill");
    let path = dir.join("model.gguf");
    let error = one_tensor_writer()
        .write_file(&path, |_, sink| Ok(sink.write_all(&[1; 31])?))
        .unwrap_err();

    assert!(
        matches!(
            error,
            GgufWriteError::WrongTensorSize {
                expected: 32,
                written: 31,
                ..
            }
        ),
        "{error}"
    );
    assert!(
        dir_entries(&dir).is_empty(),
        "left behind: {:?}",
        dir_entries(&dir)
    );
}

#[test]
fn write_file_long_fill_leaves_nothing() {
    let dir = scratch_dir("long_fill");
    let path = dir.join("model.gguf");
    let error = one_tensor_writer()
        .write_file(&path, |_, sink| Ok(sink.write_all(&[1; 33])?))
        .unwrap_err();

    assert!(
        matches!(
            error,
            GgufWriteError::WrongTensorSize {
                expected: 32,
                written: 33,
                ..
            }
        ),
        "{error}"
    );
    assert!(
        dir_entries(&dir).is_empty(),
        "left behind: {:?}",
        dir_entries(&dir)
    );
}

#[test]
fn write_file_error_keeps_existing_file() {
    let dir = scratch_dir("keeps_existing");
    let path = dir.join("model.gguf");
    fs::write(&path, b"previous contents").unwrap();
    let error = one_tensor_writer()
        .write_file(&path, |_, _| Err("failed".into()))
        .unwrap_err();

    assert!(matches!(error, GgufWriteError::Fill { .. }), "{error}");
    assert_eq!(dir_entries(&dir), ["model.gguf"]);
    assert_eq!(fs::read(&path).unwrap(), b"previous contents");
}

#[test]
fn write_file_replaces_existing_file() {
    let dir = scratch_dir("replaces_existing");
    let path = dir.join("model.gguf");
    fs::write(&path, b"previous contents").unwrap();
    one_tensor_writer()
        .write_file(&path, |_, sink| Ok(sink.write_all(&[2; 32])?))
        .unwrap();

    assert_eq!(dir_entries(&dir), ["model.gguf"]);
    assert!(Gguf::parse(&fs::read(&path).unwrap()).is_ok());
}

#[test]
fn write_file_missing_directory_fails() {
    let dir = scratch_dir("missing_directory");
    let path = dir.join("absent").join("model.gguf");
    let error = one_tensor_writer()
        .write_file(&path, |_, sink| Ok(sink.write_all(&[2; 32])?))
        .unwrap_err();

    assert!(
        matches!(error, GgufWriteError::Io { path: Some(_), .. }),
        "{error}"
    );
    assert!(dir_entries(&dir).is_empty());
}

#[test]
fn write_file_rejects_path_without_name() {
    let error = one_tensor_writer()
        .write_file(Path::new("/"), |_, _| Ok(()))
        .unwrap_err();
    assert!(
        matches!(error, GgufWriteError::InvalidPath { .. }),
        "{error}"
    );
}

#[test]
fn write_file_panicking_fill_leaves_nothing() {
    let dir = scratch_dir("panicking_fill");
    let path = dir.join("model.gguf");
    let writer = one_tensor_writer();
    let outcome = std::panic::catch_unwind(|| {
        writer.write_file(&path, |_, sink| {
            sink.write_all(&[1; 8])?;
            panic!("fill callback panicked");
        })
    });

    assert!(outcome.is_err(), "the panic did not propagate");
    assert!(
        dir_entries(&dir).is_empty(),
        "left behind: {:?}",
        dir_entries(&dir)
    );
}

#[test]
fn debug_output_omits_bytes() {
    let mut writer = GgufWriter::new();
    let tokens = (0..1000)
        .map(|i| MetaValue::String(format!("token{i}")))
        .collect();
    writer
        .add_metadata("tokens", MetaValue::Array(ValueType::String, tokens))
        .unwrap();
    writer.add_tensor("big", GgmlType::F32, &[4096]).unwrap();
    let file = write_to_vec(&writer, &[4 * 4096]);
    let gguf = Gguf::parse(&file).unwrap();

    let parsed = format!("{gguf:?}");
    let array = format!("{:?}", gguf.get("tokens").unwrap());
    let tensor = format!("{:?}", gguf.tensor("big").unwrap());
    assert!(parsed.len() < 200, "{parsed}");
    assert!(array.len() < 200, "{array}");
    assert!(tensor.len() < 200, "{tensor}");
    assert!(tensor.contains("data_len: 16384"), "{tensor}");
}
