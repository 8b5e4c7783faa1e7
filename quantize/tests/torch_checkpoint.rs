//! The `pytorch_model.bin` reader on hand-built and damaged archives: the ZIP container,
//! the pickle reader's limits and its rejection of everything but a state dict.

use std::path::{Path, PathBuf};

use mamba_quantize::ConvertError;
use mamba_quantize::pickle::{PickleError, read_state_dict};
use mamba_quantize::safetensors_input::SourceDtype;
use mamba_quantize::torch_input::read_tensors;
use mamba_quantize::zip_archive::ZipError;
use safetensors::Dtype;

const PATH: &str = "pytorch_model.bin";

/// One archive entry for [`zip`].
struct Entry<'a> {
    name: &'a str,
    data: &'a [u8],
    /// Compression method written in the headers; the data is stored as given either way.
    method: u16,
}

fn stored<'a>(name: &'a str, data: &'a [u8]) -> Entry<'a> {
    Entry {
        name,
        data,
        method: 0,
    }
}

/// Writes a plain (not ZIP64) archive with the given entries.
fn zip(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for entry in entries {
        let offset = out.len() as u32;
        let crc = crc32fast::hash(entry.data);
        let size = entry.data.len() as u32;
        let name = entry.name.as_bytes();
        out.extend(0x0403_4b50u32.to_le_bytes());
        out.extend([20, 0, 0, 0]);
        out.extend(entry.method.to_le_bytes());
        out.extend([0, 0, 0, 0]);
        out.extend(crc.to_le_bytes());
        out.extend(size.to_le_bytes());
        out.extend(size.to_le_bytes());
        out.extend((name.len() as u16).to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(name);
        out.extend(entry.data);

        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend([20, 0, 20, 0, 0, 0]);
        central.extend(entry.method.to_le_bytes());
        central.extend([0, 0, 0, 0]);
        central.extend(crc.to_le_bytes());
        central.extend(size.to_le_bytes());
        central.extend(size.to_le_bytes());
        central.extend((name.len() as u16).to_le_bytes());
        central.extend([0; 12]);
        central.extend(offset.to_le_bytes());
        central.extend(name);
    }
    let cd_offset = out.len() as u32;
    let cd_size = central.len() as u32;
    out.extend(central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0; 4]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend(cd_size.to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend([0, 0]);
    out
}

/// Builds pickle opcodes the way `torch.save` (protocol 2) writes them.
#[derive(Default)]
struct Pickle(Vec<u8>);

impl Pickle {
    fn new() -> Self {
        Pickle(vec![0x80, 2])
    }
    fn op(mut self, bytes: &[u8]) -> Self {
        self.0.extend(bytes);
        self
    }
    fn global(self, module: &str, name: &str) -> Self {
        self.op(format!("c{module}\n{name}\n").as_bytes())
    }
    fn str(mut self, text: &str) -> Self {
        self.0.push(b'X');
        self.0.extend((text.len() as u32).to_le_bytes());
        self.0.extend(text.as_bytes());
        self
    }
    fn int(mut self, value: i32) -> Self {
        self.0.push(b'J');
        self.0.extend(value.to_le_bytes());
        self
    }
    fn long(mut self, value: i64) -> Self {
        self.0.extend([0x8a, 8]);
        self.0.extend(value.to_le_bytes());
        self
    }
    fn ints(self, values: &[i64]) -> Self {
        values
            .iter()
            .fold(self.op(b"("), |p, &v| p.long(v))
            .op(b"t")
    }
    fn empty_ordered_dict(self) -> Self {
        self.global("collections", "OrderedDict").op(b")R")
    }
    /// Pushes `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`.
    fn tensor(self, t: &TensorSpec<'_>) -> Self {
        self.global("torch._utils", "_rebuild_tensor_v2")
            .op(b"(")
            .op(b"(")
            .str("storage")
            .global("torch", t.class)
            .str(t.key)
            .str("cpu")
            .long(t.storage_numel)
            .op(b"tQ")
            .long(t.offset)
            .ints(t.size)
            .ints(t.stride)
            .op(&[0x89])
            .empty_ordered_dict()
            .op(b"tR")
    }
    fn state_dict(tensors: &[(&str, TensorSpec<'_>)]) -> Vec<u8> {
        let mut p = Pickle::new().empty_ordered_dict().op(b"q\x00(");
        for (name, spec) in tensors {
            p = p.str(name).tensor(spec);
        }
        p.op(b"u.").0
    }
}

struct TensorSpec<'a> {
    class: &'a str,
    key: &'a str,
    storage_numel: i64,
    offset: i64,
    size: &'a [i64],
    stride: &'a [i64],
}

fn f32_spec<'a>(key: &'a str, numel: i64, size: &'a [i64], stride: &'a [i64]) -> TensorSpec<'a> {
    TensorSpec {
        class: "FloatStorage",
        key,
        storage_numel: numel,
        offset: 0,
        size,
        stride,
    }
}

/// Wraps a pickle and storages into a `torch.save`-style archive.
fn archive(pickle: &[u8], storages: &[(&str, &[u8])]) -> Vec<u8> {
    let names: Vec<String> = storages
        .iter()
        .map(|(key, _)| format!("archive/data/{key}"))
        .collect();
    let mut entries = vec![
        stored("archive/data.pkl", pickle),
        stored("archive/byteorder", b"little"),
    ];
    for ((_, data), name) in storages.iter().zip(&names) {
        entries.push(stored(name, data));
    }
    zip(&entries)
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn read_err(bytes: &[u8]) -> ConvertError {
    match read_tensors(Path::new(PATH), bytes) {
        Ok(tensors) => panic!("expected an error, read {} tensors", tensors.len()),
        Err(err) => err,
    }
}

fn pickle_err(bytes: &[u8]) -> PickleError {
    match read_state_dict(bytes) {
        Ok(tensors) => panic!("expected an error, read {} tensors", tensors.len()),
        Err(err) => err,
    }
}

fn fixture_bin() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/tiny/original/pytorch_model.bin");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---- accepted input ----

#[test]
fn reads_dtypes_offsets_and_shared_storage() {
    let half: Vec<u8> = [1.5f32, -2.0, 0.25]
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = [3.0f32, -0.5]
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
        .collect();
    let floats = f32_bytes(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let pickle = Pickle::state_dict(&[
        ("whole", f32_spec("0", 7, &[7], &[1])),
        // A [2, 3] view at offset 1, and a column-vector view with a free stride on its size-1 axis.
        (
            "view",
            TensorSpec {
                offset: 1,
                ..f32_spec("0", 7, &[2, 3], &[3, 1])
            },
        ),
        (
            "column",
            TensorSpec {
                offset: 4,
                ..f32_spec("0", 7, &[3, 1], &[1, 99])
            },
        ),
        (
            "half",
            TensorSpec {
                class: "HalfStorage",
                ..f32_spec("1", 3, &[3], &[1])
            },
        ),
        (
            "bf16",
            TensorSpec {
                class: "BFloat16Storage",
                ..f32_spec("2", 2, &[1, 2], &[2, 1])
            },
        ),
    ]);
    let bytes = archive(&pickle, &[("0", &floats), ("1", &half), ("2", &bf16)]);
    let tensors = read_tensors(Path::new(PATH), &bytes).unwrap();
    assert_eq!(tensors.len(), 5);

    let values = |name: &str, dtype: SourceDtype| {
        let tensor = &tensors[name];
        let mut out = vec![0.0f32; tensor.shape.iter().product()];
        dtype.to_f32(tensor.data, &mut out);
        out
    };
    assert_eq!(
        values("whole", SourceDtype::F32),
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    );
    assert_eq!(tensors["view"].shape, [2, 3]);
    assert_eq!(
        values("view", SourceDtype::F32),
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    );
    assert_eq!(values("column", SourceDtype::F32), [4.0, 5.0, 6.0]);
    assert_eq!(tensors["half"].dtype, Dtype::F16);
    assert_eq!(values("half", SourceDtype::F16), [1.5, -2.0, 0.25]);
    assert_eq!(tensors["bf16"].dtype, Dtype::BF16);
    assert_eq!(values("bf16", SourceDtype::BF16), [3.0, -0.5]);
}

#[test]
fn reads_fixture_written_by_torch() {
    let bytes = fixture_bin();
    let tensors = read_tensors(Path::new(PATH), &bytes).unwrap();
    assert_eq!(
        tensors.len(),
        23,
        "2 layers of 10, embedding, norm_f, lm_head"
    );
    assert_eq!(tensors["backbone.embedding.weight"].shape, [312, 64]);
    assert_eq!(
        tensors["lm_head.weight"].data.as_ptr(),
        tensors["backbone.embedding.weight"].data.as_ptr(),
        "the tied head is a view of the embedding's storage"
    );
    let d = &tensors["backbone.layers.0.mixer.D"];
    let bias = &tensors["backbone.layers.0.mixer.dt_proj.bias"];
    assert_eq!(
        bias.data.as_ptr() as usize - d.data.as_ptr() as usize,
        128 * 4,
        "dt_proj.bias starts after D in their shared storage"
    );
}

// ---- damaged archives ----

#[test]
fn truncated_files_are_errors() {
    let bytes = fixture_bin();
    let len = bytes.len();
    for cut in [0, 1, 4, 22, 100, len / 2, len - 200, len - 23, len - 1] {
        let err = read_err(&bytes[..cut]);
        let message = err.to_string();
        assert!(
            matches!(err, ConvertError::Zip { .. }),
            "cut at {cut}: {message}"
        );
        assert!(message.contains(PATH), "cut at {cut}: {message}");
    }
}

#[test]
fn every_truncation_of_hand_built_archive_is_error() {
    let floats = f32_bytes(&[1.0, 2.0]);
    let bytes = archive(
        &Pickle::state_dict(&[("w", f32_spec("0", 2, &[2], &[1]))]),
        &[("0", &floats)],
    );
    assert!(read_tensors(Path::new(PATH), &bytes).is_ok());
    for cut in 0..bytes.len() {
        assert!(
            read_tensors(Path::new(PATH), &bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn corrupt_storage_fails_crc() {
    let mut bytes = fixture_bin();
    // The first storage, the embedding, starts at the first 64-byte aligned offset after its
    // local header; flip a byte well inside it.
    let start = bytes
        .windows(20)
        .position(|w| w == b"pytorch_model/data/0")
        .unwrap();
    bytes[start + 4000] ^= 0x40;
    let message = read_err(&bytes).to_string();
    assert!(message.contains("CRC-32"), "{message}");
    assert!(message.contains("pytorch_model/data/0"), "{message}");
}

/// Writes a one-entry archive whose central directory stores the sizes and the local header
/// offset only in the ZIP64 extra field, followed by ZIP64 end records, as large archives
/// from torch.save have them.
fn zip64_single(name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 7]; // leading bytes, so the local header offset is not 0
    let local_offset = out.len() as u64;
    let crc = crc32fast::hash(data);
    out.extend(0x0403_4b50u32.to_le_bytes());
    out.extend([45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend(crc.to_le_bytes());
    out.extend([0xff; 8]);
    out.extend((name.len() as u16).to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out.extend(name.as_bytes());
    out.extend(data);

    let cd_offset = out.len() as u64;
    out.extend(0x0201_4b50u32.to_le_bytes());
    out.extend([45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend(crc.to_le_bytes());
    out.extend([0xff; 8]);
    out.extend((name.len() as u16).to_le_bytes());
    out.extend(28u16.to_le_bytes());
    out.extend([0; 10]);
    out.extend([0xff; 4]);
    out.extend(name.as_bytes());
    out.extend([0x01, 0x00, 24, 0]);
    out.extend((data.len() as u64).to_le_bytes());
    out.extend((data.len() as u64).to_le_bytes());
    out.extend(local_offset.to_le_bytes());
    let cd_size = out.len() as u64 - cd_offset;

    let record = out.len() as u64;
    out.extend(0x0606_4b50u32.to_le_bytes());
    out.extend(44u64.to_le_bytes());
    out.extend([45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend(1u64.to_le_bytes());
    out.extend(1u64.to_le_bytes());
    out.extend(cd_size.to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0x0706_4b50u32.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend(record.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0; 4]);
    out.extend([0xff; 4]);
    out.extend([0xff; 8]);
    out.extend([0, 0]);
    out
}

#[test]
fn zip64_fields_are_read() {
    let data = b"stored bytes";
    let bytes = zip64_single("archive/x", data);
    let archive = mamba_quantize::zip_archive::ZipArchive::parse(&bytes).unwrap();
    assert_eq!(archive.stored_checked("archive/x").unwrap(), data);

    // Without the extra field's offset, the saturated offset cannot be resolved.
    let mut cut = bytes.clone();
    let extra = cut
        .windows(4)
        .position(|w| w == [0x01, 0x00, 24, 0])
        .unwrap();
    cut[extra + 2] = 16;
    let err = mamba_quantize::zip_archive::ZipArchive::parse(&cut).unwrap_err();
    assert!(
        matches!(
            err,
            ZipError::MissingZip64Field {
                field: "local header offset",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn compressed_entry_is_rejected() {
    let pickle = Pickle::state_dict(&[]);
    let bytes = zip(&[Entry {
        name: "archive/data.pkl",
        data: &pickle,
        method: 8,
    }]);
    let err = read_err(&bytes);
    assert!(
        matches!(
            err,
            ConvertError::Zip {
                source: ZipError::Compressed { method: 8, .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn missing_pickle_and_storage_are_named() {
    let message = read_err(&zip(&[stored("archive/other", b"x")])).to_string();
    assert!(message.contains("data.pkl"), "{message}");

    let pickle = Pickle::state_dict(&[("w", f32_spec("7", 2, &[2], &[1]))]);
    let message = read_err(&archive(&pickle, &[])).to_string();
    assert!(message.contains("archive/data/7 not found"), "{message}");
}

#[test]
fn storage_size_mismatch_is_error() {
    let floats = f32_bytes(&[1.0, 2.0]);
    let pickle = Pickle::state_dict(&[("w", f32_spec("0", 3, &[3], &[1]))]);
    let message = read_err(&archive(&pickle, &[("0", &floats)])).to_string();
    assert!(message.contains("declares 3 elements"), "{message}");
}

#[test]
fn big_endian_is_rejected() {
    let pickle = Pickle::state_dict(&[]);
    let bytes = zip(&[
        stored("archive/data.pkl", &pickle),
        stored("archive/byteorder", b"big"),
    ]);
    let message = read_err(&bytes).to_string();
    assert!(message.contains("little-endian"), "{message}");
}

#[test]
fn legacy_format_is_named() {
    // The start of a pre-1.6 torch.save stream: protocol 2, LONG1 magic number.
    let bytes = [
        0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
    ];
    let message = read_err(&bytes).to_string();
    assert!(message.contains("legacy torch.save format"), "{message}");
}

#[test]
fn huge_entry_count_is_error() {
    let mut bytes = zip(&[stored("archive/data.pkl", b".")]);
    let eocd = bytes.len() - 22;
    bytes[eocd + 8..eocd + 12].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    let err = read_err(&bytes);
    assert!(
        matches!(
            err,
            ConvertError::Zip {
                source: ZipError::TooManyEntries { .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn huge_entry_size_is_error() {
    let mut bytes = zip(&[stored("archive/data.pkl", b"\x80\x02}.")]);
    // The central directory's sizes of the only entry: 0xfffffffe bytes.
    let central = bytes
        .windows(4)
        .position(|w| w == 0x0201_4b50u32.to_le_bytes())
        .unwrap();
    bytes[central + 20..central + 28]
        .copy_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff]);
    let err = read_err(&bytes);
    assert!(
        matches!(
            err,
            ConvertError::Zip {
                source: ZipError::Truncated { .. },
                ..
            }
        ),
        "{err}"
    );
}

// ---- hostile pickles ----

#[test]
fn os_system_global_is_rejected() {
    // The classic payload: os.system("echo pwned") through REDUCE.
    let payload = Pickle::new()
        .global("os", "system")
        .op(b"(")
        .str("echo pwned")
        .op(b"tR.")
        .0;
    let err = pickle_err(&payload);
    assert!(matches!(err, PickleError::ForbiddenGlobal { .. }), "{err}");
    assert!(err.to_string().contains("os.system"), "{err}");

    // The same through STACK_GLOBAL (protocol 4), and inside a valid-looking archive.
    let payload = Pickle(vec![0x80, 4])
        .str("builtins")
        .str("eval")
        .op(&[0x93])
        .op(b"(")
        .str("1")
        .op(b"tR.")
        .0;
    let err = pickle_err(&payload);
    assert!(err.to_string().contains("builtins.eval"), "{err}");
    let message = read_err(&archive(&payload, &[])).to_string();
    assert!(message.contains("archive/data.pkl"), "{message}");
    assert!(message.contains("builtins.eval"), "{message}");
}

#[test]
fn torch_globals_outside_allow_list_are_rejected() {
    for (module, name) in [
        ("torch", "load"),
        ("torch._utils", "_rebuild_from_type_v2"),
        ("torch.serialization", "_get_layout"),
        ("collections", "defaultdict"),
        ("__builtin__", "getattr"),
    ] {
        let err = pickle_err(&Pickle::new().global(module, name).op(b".").0);
        assert!(
            err.to_string().contains(&format!("{module}.{name}")),
            "{err}"
        );
    }
}

#[test]
fn object_building_opcodes_are_rejected() {
    for (opcode, name) in [
        (b'i', "INST"),
        (b'o', "OBJ"),
        (0x81, "NEWOBJ"),
        (0x92, "NEWOBJ"),
        (0x82, "EXT"),
    ] {
        let err = pickle_err(&Pickle::new().op(&[opcode]).0);
        assert!(
            matches!(err, PickleError::UnsupportedOpcode { .. }),
            "{opcode:#x}: {err}"
        );
        assert!(err.to_string().contains(name), "{opcode:#x}: {err}");
    }
}

#[test]
fn unknown_opcodes_are_rejected() {
    for opcode in [0x00u8, 0x7f, 0xff, b'2', b'P'] {
        let err = pickle_err(&Pickle::new().op(&[b'N', opcode]).0);
        assert!(
            matches!(err, PickleError::UnsupportedOpcode { offset: 3, .. }),
            "{opcode:#x}: {err}"
        );
    }
}

#[test]
fn truncated_pickles_are_errors() {
    let pickle = Pickle::state_dict(&[("w", f32_spec("0", 2, &[2], &[1]))]);
    assert!(read_state_dict(&pickle).is_ok());
    for cut in 0..pickle.len() {
        let err = pickle_err(&pickle[..cut]);
        assert!(
            matches!(err, PickleError::Truncated { .. }),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn huge_declared_sizes_are_errors() {
    // A string that claims 4 GiB.
    let err = pickle_err(&Pickle::new().op(&[b'X', 0xff, 0xff, 0xff, 0xff]).0);
    assert!(matches!(err, PickleError::Limit { .. }), "{err}");
    // A BINUNICODE8 string that claims 2^63 bytes.
    let mut payload = Pickle::new().op(&[0x8d]).0;
    payload.extend((1u64 << 63).to_le_bytes());
    assert!(matches!(pickle_err(&payload), PickleError::Limit { .. }));

    // A tensor larger than its storage, and one whose size overflows u64.
    for size in [&[1i64 << 40, 1 << 40][..], &[i64::MAX, i64::MAX, 4]] {
        let stride: Vec<i64> = match size.len() {
            2 => vec![1 << 40, 1],
            _ => vec![0, 0, 1],
        };
        let pickle = Pickle::state_dict(&[("w", f32_spec("0", 2, size, &stride))]);
        let err = pickle_err(&pickle);
        assert!(
            matches!(err, PickleError::Invalid { .. }),
            "{size:?}: {err}"
        );
    }

    // A storage that declares 2^62 elements but whose entry contains 8 bytes.
    let floats = f32_bytes(&[1.0, 2.0]);
    let pickle = Pickle::state_dict(&[("w", f32_spec("0", 1 << 62, &[2], &[1]))]);
    let message = read_err(&archive(&pickle, &[("0", &floats)])).to_string();
    assert!(
        message.contains("declares 4611686018427387904 elements"),
        "{message}"
    );

    // A LONG1 wider than 64 bits.
    let err = pickle_err(
        &Pickle::new()
            .op(&[0x8a, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, b'.'])
            .0,
    );
    assert!(err.to_string().contains("64 bits"), "{err}");
}

#[test]
fn deep_nesting_is_limited() {
    // 100,000 nested lists: ] ] ] ... then APPEND each into the one below.
    let mut payload = Pickle::new().0;
    payload.extend(std::iter::repeat_n(b']', 100_000));
    payload.extend(std::iter::repeat_n(b'a', 99_999));
    payload.push(b'.');
    let err = pickle_err(&payload);
    assert!(
        matches!(
            err,
            PickleError::Limit {
                what: "levels of nesting",
                ..
            }
        ),
        "{err}"
    );

    // 100,000 nested one-element tuples.
    let mut payload = Pickle::new().op(b")").0;
    payload.extend(std::iter::repeat_n(0x85, 100_000));
    payload.push(b'.');
    let err = pickle_err(&payload);
    assert!(
        matches!(
            err,
            PickleError::Limit {
                what: "levels of nesting",
                ..
            }
        ),
        "{err}"
    );

    // Nesting built through the memo: each step stores a list and wraps the stored copy.
    let mut payload = Pickle::new().op(b"]").0;
    for _ in 0..1000 {
        payload.extend(b"q\x01(h\x01t");
    }
    payload.push(b'.');
    let err = pickle_err(&payload);
    assert!(
        matches!(
            err,
            PickleError::Limit {
                what: "levels of nesting",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn stack_and_mark_floods_are_limited() {
    let mut payload = Pickle::new().0;
    payload.extend(std::iter::repeat_n(b'(', 2_000_000));
    let err = pickle_err(&payload);
    assert!(
        matches!(err, PickleError::Limit { what: "marks", .. }),
        "{err}"
    );

    let mut payload = Pickle::new().0;
    payload.extend(std::iter::repeat_n(b'N', 2_000_000));
    let err = pickle_err(&payload);
    assert!(
        matches!(
            err,
            PickleError::Limit {
                what: "values on the stack",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn copy_on_write_work_is_bounded() {
    // Memoize a list, then append to it. The memo shares the list, so each append copies
    // it first, and the copies grow quadratically with the number of steps.
    let mut payload = Pickle::new().op(b"]").0;
    for _ in 0..100_000 {
        payload.extend(b"q\x01Na");
    }
    payload.push(b'.');
    let err = pickle_err(&payload);
    assert!(matches!(err, PickleError::Limit { .. }), "{err}");
    assert!(
        err.to_string().contains("copied container elements"),
        "{err}"
    );
}

#[test]
fn non_contiguous_tensor_is_rejected() {
    let pickle = Pickle::state_dict(&[("w", f32_spec("0", 6, &[2, 3], &[1, 2]))]);
    let err = pickle_err(&pickle);
    assert!(err.to_string().contains("not contiguous"), "{err}");
    assert!(err.to_string().contains("contiguous()"), "{err}");
}

#[test]
fn non_state_dicts_are_rejected() {
    let cases: [(Vec<u8>, &str); 5] = [
        (Pickle::new().op(b"N.").0, "top-level object is None"),
        (
            Pickle::new().op(b"}").str("w").int(3).op(b"s.").0,
            "entry w is an int",
        ),
        (
            Pickle::new().op(b"}").int(1).int(3).op(b"s.").0,
            "a key is an int",
        ),
        (Pickle::new().op(b"NN.").0, "STOP with 2 values"),
        (
            Pickle::new().global("torch", "FloatStorage").op(b")R.").0,
            "storages must come from persistent ids",
        ),
    ];
    for (payload, expected) in cases {
        let err = pickle_err(&payload);
        assert!(err.to_string().contains(expected), "{expected}: {err}");
    }
}

#[test]
fn duplicate_tensor_name_is_error() {
    let spec = f32_spec("0", 2, &[2], &[1]);
    let pickle = Pickle::state_dict(&[("w", f32_spec("0", 2, &[2], &[1])), ("w", spec)]);
    let err = pickle_err(&pickle);
    assert!(err.to_string().contains("tensor w appears twice"), "{err}");
}

#[test]
fn storage_key_cannot_escape_data_folder() {
    let pickle = Pickle::state_dict(&[("w", f32_spec("../data.pkl", 2, &[2], &[1]))]);
    let err = pickle_err(&pickle);
    assert!(err.to_string().contains("not a plain name"), "{err}");
}

/// Flips bytes of the fixture's real pickle at pseudo-random places: the reader must return
/// Ok or Err, never panic.
#[test]
fn mutated_fixture_pickles_do_not_panic() {
    let bytes = fixture_bin();
    let archive = mamba_quantize::zip_archive::ZipArchive::parse(&bytes).unwrap();
    let pickle = archive.stored("pytorch_model/data.pkl").unwrap().to_vec();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut rejected = 0;
    for _ in 0..3000 {
        let mut mutated = pickle.clone();
        for _ in 0..1 + next() % 3 {
            let at = (next() % mutated.len() as u64) as usize;
            mutated[at] = next() as u8;
        }
        rejected += usize::from(read_state_dict(&mutated).is_err());
    }
    assert!(
        rejected > 1000,
        "only {rejected} of 3000 mutations were rejected"
    );
}
