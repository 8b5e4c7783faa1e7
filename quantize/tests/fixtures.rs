//! Converts the reference checkpoints under `tests/fixtures/<name>/hf` at every type and
//! compares the result with `llamacpp-<type>.gguf`, the file llama.cpp's converter made from
//! the same checkpoint.
//!
//! Set `MAMBA_FIXTURES_DIR` to read fixtures from another directory.
//!
//! NOTE: without fixture directories the test only prints that it found none and passes,
//! because the fixtures are generated separately from this crate.

mod common;

use std::path::{Path, PathBuf};

use common::{run, temp_dir};
use mamba_core::GgmlType;
use mamba_core::gguf::{Gguf, Value};

/// Metadata our converter adds: the whole tokenizer.json, which mamba-edge tokenizes with, and
/// the transformers settings llama.cpp has no key for (Falcon-Mamba's `mixer_rms_eps`,
/// Mamba-2's `time_step_limit`).
const OURS_ONLY: [&str; 4] = [
    "tokenizer.huggingface.json",
    "mamba.ssm.dt_b_c_rms_epsilon",
    "mamba2.ssm.time_step_limit_min",
    "mamba2.ssm.time_step_limit_max",
];

fn fixtures_root() -> PathBuf {
    std::env::var_os("MAMBA_FIXTURES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures"))
}

fn fixture_dirs() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(fixtures_root()) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.join("hf/config.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn fixtures_match_llamacpp() {
    let dirs = fixture_dirs();
    if dirs.is_empty() {
        eprintln!(
            "no fixture checkpoints under {}; nothing compared",
            fixtures_root().display()
        );
        return;
    }
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        for target in GgmlType::ALL {
            let out = temp_dir(&format!("fixtures/{name}-{target}"));
            let output = out.join("model.gguf");
            let summary = run(&dir.join("hf"), &output, target)
                .0
                .unwrap_or_else(|err| panic!("{name} {target}: {err}"));
            eprintln!(
                "{name} {target}: {} tensors, {} bytes",
                summary.tensors_written, summary.bytes_out
            );

            let reference = dir.join(format!("llamacpp-{target}.gguf"));
            if reference.is_file() {
                compare(&format!("{name} {target}"), &reference, &output);
            }
        }
    }
}

/// Compares metadata and tensors of llama.cpp's file with ours.
fn compare(case: &str, reference: &Path, ours: &Path) {
    let reference_bytes = std::fs::read(reference).unwrap();
    let ours_bytes = std::fs::read(ours).unwrap();
    let theirs = Gguf::parse(&reference_bytes).unwrap();
    let ours = Gguf::parse(&ours_bytes).unwrap();

    for (key, value) in theirs.metadata() {
        let mine = ours
            .get(key)
            .unwrap_or_else(|| panic!("{case}: key {key} missing"));
        assert!(
            same_value(&value, &mine),
            "{case}: {key} is {mine:?}, llama.cpp has {value:?}"
        );
    }
    for (key, _) in ours.metadata() {
        assert!(
            theirs.get(key).is_some() || OURS_ONLY.contains(&key),
            "{case}: extra key {key}"
        );
    }

    assert_eq!(
        ours.tensor_count(),
        theirs.tensor_count(),
        "{case}: tensor count"
    );
    for tensor in theirs.tensors() {
        let mine = ours
            .tensor(tensor.name)
            .unwrap_or_else(|| panic!("{case}: {} missing", tensor.name));
        assert_eq!(mine.shape(), tensor.shape(), "{case}: {} dims", tensor.name);
        assert_eq!(mine.dtype, tensor.dtype, "{case}: {} type", tensor.name);
        if tensor.name.ends_with("ssm_a") {
            // llama.cpp's converter computes exp in f32 with torch, which can be one ulp
            // off the correctly rounded value this crate writes.
            let a = common::tensor_values(&theirs, tensor.name);
            let b = common::tensor_values(&ours, tensor.name);
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                assert!(
                    (x - y).abs() <= x.abs() * 2.0 * f32::EPSILON,
                    "{case}: {}[{i}]: {y} vs {x}",
                    tensor.name
                );
            }
        } else {
            assert!(
                mine.data == tensor.data,
                "{case}: {} data differs",
                tensor.name
            );
        }
    }
}

/// Compares two values, including every element of arrays.
fn same_value(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.elem_type() == y.elem_type()
                && x.len() == y.len()
                && x.iter().zip(y.iter()).all(|(p, q)| same_value(&p, &q))
        }
        _ => a == b,
    }
}
