//! Checkpoints in the original `mamba_ssm` format (`config.json` with `ssm_cfg`, and
//! `pytorch_model.bin`) against the Hugging Face form of the same weights.
//!
//! `tests/reference/make_original_fixtures.py` saves the `tiny`, `odd` and `mamba2_g1`
//! fixtures again in that format under `<fixture>/original/`; `mamba2_g1`'s copy has a
//! `Mamba2` layer. `tiny`'s copy declares vocab_size 305 with pad_vocab_size_multiple 8,
//! so the converter must pad it to the 312 embedding rows, and `mamba2_g1`'s declares 257
//! for 264 rows.
//! Converting either form must give the same tensors, and the engine must match the
//! transformers logits of the Hugging Face fixture.

use mamba_core::gguf::Gguf;
use mamba_core::{GgmlType, Model, Session};
use mamba_edge_tests::{Fixture, argmax, read_npy_f32, relative_l2, temp_dir};

/// Fixtures that have an `original/` copy.
const ORIGINALS: [&str; 3] = ["tiny", "odd", "mamba2_g1"];

/// Same bound as the F32 conformance tests: only float rounding and summation order differ
/// from transformers.
const F32_TOLERANCE: f64 = 1e-4;

/// Converts `fixture`'s original-format copy to `dtype`, with the Hugging Face fixture's
/// tokenizer, and returns the file's bytes.
fn convert_original(fixture: &Fixture, dtype: GgmlType) -> Vec<u8> {
    let out_dir = temp_dir(&format!("original-{}-{}", fixture.name, dtype.name()));
    let output = out_dir.join("model.gguf");
    let options = mamba_quantize::Options {
        input: fixture.dir.join("original"),
        output: output.clone(),
        target: dtype,
        tokenizer: Some(fixture.hf_dir().join("tokenizer.json")),
    };
    mamba_quantize::convert(&options, &mut mamba_quantize::NoProgress)
        .unwrap_or_else(|e| panic!("{}: converting original/ to {dtype} failed: {e}", fixture.name));
    let bytes = std::fs::read(&output).unwrap();
    let _ = std::fs::remove_dir_all(&out_dir);
    bytes
}

/// The two forms of one checkpoint convert to the same tensors and the same metadata, apart
/// from `general.name`, which comes from the directory name.
#[test]
fn original_and_hf_convert_to_same_gguf() {
    for name in ORIGINALS {
        let fixture = Fixture::load(name);
        for dtype in [GgmlType::F32, GgmlType::Q8_0] {
            let original = convert_original(&fixture, dtype);
            let hf = fixture.gguf_bytes(dtype);
            let original = Gguf::parse(&original).unwrap();
            let hf = Gguf::parse(&hf).unwrap();

            let original_tensors: Vec<_> = original.tensors().collect();
            let hf_tensors: Vec<_> = hf.tensors().collect();
            assert_eq!(original_tensors.len(), hf_tensors.len(), "{name} {dtype}: tensor count");
            for (a, b) in original_tensors.iter().zip(&hf_tensors) {
                assert_eq!(a.name, b.name, "{name} {dtype}: tensor order");
                assert_eq!(a.dtype, b.dtype, "{name} {dtype}: {} type", a.name);
                assert_eq!(a.shape(), b.shape(), "{name} {dtype}: {} shape", a.name);
                assert!(a.data == b.data, "{name} {dtype}: {} data differs", a.name);
            }

            let original_meta: Vec<_> = original.metadata().filter(|(key, _)| *key != "general.name").collect();
            let hf_meta: Vec<_> = hf.metadata().filter(|(key, _)| *key != "general.name").collect();
            assert_eq!(original_meta.len(), hf_meta.len(), "{name} {dtype}: metadata count");
            for (a, b) in original_meta.iter().zip(&hf_meta) {
                assert_eq!(a.0, b.0, "{name} {dtype}: metadata key order");
                assert!(a.1 == b.1, "{name} {dtype}: metadata {} differs", a.0);
            }
        }
    }
}

/// The F32 file from the original format gives transformers' logits by prefill and by decode.
#[test]
fn original_f32_matches_transformers() {
    for name in ORIGINALS {
        let fixture = Fixture::load(name);
        let bytes = convert_original(&fixture, GgmlType::F32);
        let model = Model::from_bytes(&bytes).unwrap();
        for (seq, tokens) in fixture.sequences.iter().enumerate() {
            let reference = read_npy_f32(&fixture.dir.join(format!("logits_{seq}.npy")));
            assert_eq!(reference.cols, model.config.n_vocab, "{name}: n_vocab");
            for step in [false, true] {
                let mut max_rel_l2 = 0.0f64;
                let mut mismatches = 0;
                let mut check = |i: usize, logits: &[f32]| {
                    max_rel_l2 = max_rel_l2.max(relative_l2(logits, reference.row(i)));
                    mismatches += usize::from(argmax(logits) != argmax(reference.row(i)));
                };
                let mut session = Session::with_max_batch(&model, 64);
                if step {
                    for (i, &token) in tokens.iter().enumerate() {
                        let logits = session.step(token).unwrap();
                        check(i, logits);
                    }
                } else {
                    session.prefill_all(tokens, &mut check).unwrap();
                }
                let run = if step { "decode" } else { "prefill" };
                eprintln!("{name} original seq {seq} {run}: max relative L2 {max_rel_l2:.3e}, argmax mismatches {mismatches}");
                assert!(max_rel_l2 <= F32_TOLERANCE, "{name} seq {seq} {run}: max relative L2 {max_rel_l2:.3e}");
                assert_eq!(mismatches, 0, "{name} seq {seq} {run}: argmax differs");
            }
        }
    }
}

/// Without `--tokenizer`, a checkpoint with no `tokenizer.json` fails with a message that
/// names the option.
#[test]
fn missing_tokenizer_names_option() {
    let fixture = Fixture::load("tiny");
    let out_dir = temp_dir("original-no-tokenizer");
    let options = mamba_quantize::Options {
        input: fixture.dir.join("original"),
        output: out_dir.join("model.gguf"),
        target: GgmlType::F32,
        tokenizer: None,
    };
    let err = mamba_quantize::convert(&options, &mut mamba_quantize::NoProgress).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, mamba_quantize::ConvertError::TokenizerNotGiven { .. }), "{message}");
    assert!(message.contains("--tokenizer"), "{message}");
    assert!(!out_dir.join("model.gguf").exists(), "no output after a failure");
}

/// A `mamba_ssm` config next to safetensors weights is read with the same rules, so the
/// padded vocab still matches the embedding.
#[test]
fn original_config_with_safetensors_converts() {
    let fixture = Fixture::load("tiny");
    let dir = temp_dir("original-config-safetensors");
    std::fs::copy(fixture.dir.join("original/config.json"), dir.join("config.json")).unwrap();
    std::fs::copy(fixture.hf_dir().join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let output = dir.join("model.gguf");
    let options = mamba_quantize::Options {
        input: dir.clone(),
        output: output.clone(),
        target: GgmlType::F32,
        tokenizer: Some(fixture.hf_dir().join("tokenizer.json")),
    };
    mamba_quantize::convert(&options, &mut mamba_quantize::NoProgress).unwrap();
    let bytes = std::fs::read(&output).unwrap();
    let converted = Gguf::parse(&bytes).unwrap();
    let hf_bytes = fixture.gguf_bytes(GgmlType::F32);
    let hf = Gguf::parse(&hf_bytes).unwrap();
    for tensor in hf.tensors() {
        let other = converted.tensor(tensor.name).unwrap_or_else(|| panic!("{} missing", tensor.name));
        assert!(other.data == tensor.data, "{} data differs", tensor.name);
    }
    assert_eq!(converted.tensor_count(), hf.tensor_count());
}

/// A tokenizer passed without its `tokenizer_config.json` leaves the file without BOS and
/// EOS ids, and the conversion notes it.
#[test]
fn tokenizer_without_config_is_noted() {
    let fixture = Fixture::load("tiny");
    let dir = temp_dir("original-bare-tokenizer");
    std::fs::copy(fixture.hf_dir().join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    let output = dir.join("model.gguf");
    let options = mamba_quantize::Options {
        input: fixture.dir.join("original"),
        output: output.clone(),
        target: GgmlType::F32,
        tokenizer: Some(dir.join("tokenizer.json")),
    };
    let summary = mamba_quantize::convert(&options, &mut mamba_quantize::NoProgress).unwrap();
    let note = summary.notes.iter().find(|note| note.contains("records no BOS or EOS token"));
    assert!(note.is_some(), "notes: {:?}", summary.notes);
    let bytes = std::fs::read(&output).unwrap();
    let gguf = Gguf::parse(&bytes).unwrap();
    assert!(gguf.get("tokenizer.ggml.eos_token_id").is_none());
}

/// A `Mamba2` layer with `norm_before_gate = true` normalizes before the gate, which the
/// engine does not compute, so the conversion fails, names the option and writes nothing.
#[test]
fn mamba2_norm_before_gate_is_rejected() {
    let fixture = Fixture::load("mamba2_g1");
    let dir = temp_dir("original-norm-before-gate");
    let config = std::fs::read_to_string(fixture.dir.join("original/config.json")).unwrap();
    let changed = config.replace(r#""norm_before_gate": false"#, r#""norm_before_gate": true"#);
    assert_ne!(config, changed, "the fixture config sets norm_before_gate");
    std::fs::write(dir.join("config.json"), changed).unwrap();
    std::fs::copy(fixture.dir.join("original/pytorch_model.bin"), dir.join("pytorch_model.bin")).unwrap();
    let options = mamba_quantize::Options {
        input: dir.clone(),
        output: dir.join("model.gguf"),
        target: GgmlType::F32,
        tokenizer: Some(fixture.hf_dir().join("tokenizer.json")),
    };
    let err = mamba_quantize::convert(&options, &mut mamba_quantize::NoProgress).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, mamba_quantize::ConvertError::UnsupportedOption { .. }), "{message}");
    assert!(message.contains("ssm_cfg.norm_before_gate"), "{message}");
    assert!(!dir.join("model.gguf").exists(), "no output after a failure");
}
