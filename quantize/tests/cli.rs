//! The `mamba-quantize` binary: argument handling, exit codes and the summary line.

mod common;

use std::process::Command;

use common::{TinyModel, dir_entries, temp_dir};

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mamba-quantize"))
}

#[test]
fn cli_prints_summary() {
    let dir = temp_dir("cli/summary/hf");
    TinyModel::default().write(&dir);
    let out = temp_dir("cli/summary/out");
    let output = out.join("model.gguf");
    let run = binary()
        .arg(&dir)
        .arg(&output)
        .args(["--type", "q8_0"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);

    assert!(run.status.success(), "stderr: {stderr}");
    assert!(stdout.contains("wrote 22 tensors"), "{stdout}");
    assert!(stdout.contains("bytes in"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{} bytes out",
            std::fs::metadata(&output).unwrap().len()
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains("note: blk.0.ssm_dt.weight"),
        "fallback note missing: {stderr}"
    );
}

#[test]
fn cli_rejects_unknown_type() {
    let dir = temp_dir("cli/bad_type/hf");
    TinyModel::default().write(&dir);
    let out = temp_dir("cli/bad_type/out");
    let run = binary()
        .arg(&dir)
        .arg(out.join("model.gguf"))
        .args(["--type", "q5_k"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);

    assert!(!run.status.success());
    assert!(stderr.contains("q5_k"), "{stderr}");
    assert!(
        stderr.contains("q8_0"),
        "the message lists the valid types: {stderr}"
    );
    assert!(dir_entries(&out).is_empty());
}

#[test]
fn cli_reports_error_and_fails() {
    let dir = temp_dir("cli/error/hf");
    TinyModel::default().write(&dir);
    std::fs::remove_file(dir.join("config.json")).unwrap();
    let out = temp_dir("cli/error/out");
    let run = binary()
        .arg(&dir)
        .arg(out.join("model.gguf"))
        .args(["--type", "f16"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);

    assert_eq!(run.status.code(), Some(1));
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("config.json"), "{stderr}");
    assert!(dir_entries(&out).is_empty());
}

/// The original-format copy of the `tiny` fixture (config.json with ssm_cfg, and
/// pytorch_model.bin), which ships without a tokenizer.
fn original_fixture() -> (std::path::PathBuf, std::path::PathBuf) {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny");
    (
        fixtures.join("original"),
        fixtures.join("hf/tokenizer.json"),
    )
}

#[test]
fn cli_converts_original_with_tokenizer() {
    let (dir, tokenizer) = original_fixture();
    let out = temp_dir("cli/original/out");
    let output = out.join("model.gguf");
    let run = binary()
        .arg(&dir)
        .arg(&output)
        .args(["--type", "f32", "--tokenizer"])
        .arg(&tokenizer)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);

    assert!(run.status.success(), "stderr: {stderr}");
    assert!(stdout.contains("wrote 22 tensors"), "{stdout}");
    assert!(
        stderr.contains("lm_head.weight is ignored"),
        "the tied head is reported: {stderr}"
    );
}

#[test]
fn cli_original_without_tokenizer_fails() {
    let (dir, _) = original_fixture();
    let out = temp_dir("cli/original_no_tokenizer/out");
    let run = binary()
        .arg(&dir)
        .arg(out.join("model.gguf"))
        .args(["--type", "f32"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);

    assert_eq!(run.status.code(), Some(1));
    assert!(
        stderr.contains("pass the tokenizer file with --tokenizer"),
        "{stderr}"
    );
    assert!(dir_entries(&out).is_empty());
}

#[test]
fn cli_directory_without_weights_fails() {
    let dir = temp_dir("cli/no_weights/in");
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    let out = temp_dir("cli/no_weights/out");
    let run = binary()
        .arg(&dir)
        .arg(out.join("model.gguf"))
        .args(["--type", "f32"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);

    assert_eq!(run.status.code(), Some(1));
    assert!(stderr.contains("model.safetensors"), "{stderr}");
    assert!(stderr.contains("pytorch_model.bin"), "{stderr}");
}
