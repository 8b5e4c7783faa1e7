//! End-to-end conversions of tiny checkpoints built on disk, read back with the GGUF reader.

mod common;

use common::*;
use mamba_core::GgmlType;
use mamba_core::gguf::Gguf;
use mamba_quantize::ConvertError;
use safetensors::Dtype;
use serde_json::json;

/// Largest error of one dequantized value, as a fraction of the tensor's max |x|. Q8_0 rounds
/// to steps of max|block| / 127, so half a step is below 1/127. Q4_0 steps are max|block| / 8,
/// and its asymmetric range can clamp the far side by one more step, so 1/8 bounds it.
/// F16 and BF16 keep 11 and 8 significant bits, so their relative error is below 2^-11
/// and 2^-8 of each value, which the same max-relative form also bounds.
fn tolerance(dtype: GgmlType) -> f32 {
    match dtype {
        GgmlType::F32 => 0.0,
        GgmlType::F16 => 1.0 / 2048.0,
        GgmlType::BF16 => 1.0 / 256.0,
        GgmlType::Q8_0 => 1.0 / 127.0,
        GgmlType::Q4_0 => 1.0 / 8.0,
    }
}

/// Maps a Hugging Face name to the GGUF name and whether the requested type applies.
fn gguf_name(hf: &str) -> (String, bool) {
    let id = mamba_quantize::names::parse_hf_name(hf).unwrap();
    (id.gguf_name(), id.role.takes_requested_type())
}

/// GGUF order of a PyTorch shape, with the conv kernel's middle axis dropped.
fn gguf_dims(shape: &[usize]) -> Vec<u64> {
    let mut dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    if dims.len() == 3 {
        dims.remove(1);
    }
    dims.reverse();
    dims
}

#[test]
fn every_type_converts() {
    let model = TinyModel::default();
    let dir = temp_dir("every_type/hf");
    model.write(&dir);
    let source = model.tensors();

    for target in GgmlType::ALL {
        let out_dir = temp_dir(&format!("every_type/out-{target}"));
        let output = out_dir.join("model.gguf");
        let (result, recorder) = run(&dir, &output, target);
        let summary = result.unwrap_or_else(|err| panic!("{target}: {err}"));
        let bytes = std::fs::read(&output).unwrap();
        let gguf = Gguf::parse(&bytes).unwrap();

        assert_eq!(summary.tensors_written, 2 + 10 * model.n_layer, "{target}");
        assert_eq!(gguf.tensor_count(), summary.tensors_written, "{target}");
        assert_eq!(summary.bytes_out, bytes.len() as u64, "{target}");
        assert_eq!(recorder.started, Some(summary.tensors_written), "{target}");
        assert_eq!(recorder.done.len(), summary.tensors_written, "{target}");
        assert_eq!(
            dir_entries(&out_dir),
            ["model.gguf"],
            "{target}: no temporary file remains"
        );

        for tensor in &source {
            let (name, matrix) = gguf_name(&tensor.name);
            let info = gguf
                .tensor(&name)
                .unwrap_or_else(|| panic!("{target}: {name} missing"));
            let dims = gguf_dims(&tensor.shape);
            assert_eq!(info.shape(), dims.as_slice(), "{target} {name} dims");

            // ssm_dt.weight rows hold dt_rank = 4 values, too few for one 32-value block.
            let expected_type = match (matrix, target) {
                (false, _) => GgmlType::F32,
                (true, GgmlType::Q8_0 | GgmlType::Q4_0) if !dims[0].is_multiple_of(32) => {
                    GgmlType::F16
                }
                (true, _) => target,
            };
            assert_eq!(info.dtype, expected_type, "{target} {name} type");

            let expected: Vec<f32> = if name.ends_with("ssm_a") {
                tensor
                    .values
                    .iter()
                    .map(|&x| -(f64::from(x).exp()) as f32)
                    .collect()
            } else {
                tensor.values.clone()
            };
            let actual = tensor_values(&gguf, &name);
            let max = expected.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            let limit = tolerance(info.dtype) * max;
            for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
                assert!(
                    (a - e).abs() <= limit,
                    "{target} {name}[{i}]: {a} vs {e}, limit {limit}"
                );
            }
        }
        if matches!(target, GgmlType::Q8_0 | GgmlType::Q4_0) {
            assert_eq!(
                recorder.notes.len(),
                model.n_layer,
                "{target}: one fallback note per ssm_dt.weight"
            );
            assert!(
                recorder.notes[0].contains("blk.0.ssm_dt.weight"),
                "{:?}",
                recorder.notes
            );
        } else {
            assert!(recorder.notes.is_empty(), "{target}: {:?}", recorder.notes);
        }
    }
}

#[test]
fn ssm_a_is_negative_exp() {
    let model = TinyModel::default();
    let dir = temp_dir("ssm_a/hf");
    model.write(&dir);
    let output = temp_dir("ssm_a/out").join("model.gguf");
    run(&dir, &output, GgmlType::F32).0.unwrap();
    let bytes = std::fs::read(&output).unwrap();
    let gguf = Gguf::parse(&bytes).unwrap();

    let a_log = model
        .tensors()
        .into_iter()
        .find(|t| t.name == "backbone.layers.1.mixer.A_log")
        .unwrap();
    let a = tensor_values(&gguf, "blk.1.ssm_a");
    assert_eq!(gguf.tensor("blk.1.ssm_a").unwrap().shape(), [16, 128]);
    for (i, (&x, &y)) in a_log.values.iter().zip(&a).enumerate() {
        assert_eq!(y, -(f64::from(x).exp()) as f32, "element {i}");
        assert!(y < 0.0, "element {i}");
    }
}

#[test]
fn model_metadata_written() {
    let model = TinyModel::default();
    let dir = temp_dir("metadata/hf");
    model.write(&dir);
    let output = temp_dir("metadata/out").join("model.gguf");
    run(&dir, &output, GgmlType::Q8_0).0.unwrap();
    let bytes = std::fs::read(&output).unwrap();
    let gguf = Gguf::parse(&bytes).unwrap();

    assert_eq!(meta_str(&gguf, "general.architecture"), "mamba");
    assert_eq!(meta_str(&gguf, "general.name"), "Tiny Mamba");
    assert_eq!(meta_u32(&gguf, "general.file_type"), 7);
    assert_eq!(meta_u32(&gguf, "general.quantization_version"), 2);
    assert_eq!(meta_u32(&gguf, "mamba.context_length"), 1 << 20);
    assert_eq!(meta_u32(&gguf, "mamba.embedding_length"), 64);
    assert_eq!(meta_u32(&gguf, "mamba.feed_forward_length"), 0);
    assert_eq!(meta_u32(&gguf, "mamba.attention.head_count"), 0);
    assert_eq!(meta_u32(&gguf, "mamba.block_count"), 2);
    assert_eq!(meta_u32(&gguf, "mamba.ssm.conv_kernel"), 4);
    assert_eq!(meta_u32(&gguf, "mamba.ssm.inner_size"), 128);
    assert_eq!(meta_u32(&gguf, "mamba.ssm.state_size"), 16);
    assert_eq!(meta_u32(&gguf, "mamba.ssm.time_step_rank"), 4);
    assert_eq!(
        gguf.get("mamba.ssm.dt_b_c_rms").and_then(|v| v.as_bool()),
        Some(false)
    );
    assert_eq!(
        gguf.get("mamba.attention.layer_norm_rms_epsilon")
            .and_then(|v| v.as_f32()),
        Some(1e-5)
    );
}

#[test]
fn file_type_per_target() {
    let model = TinyModel::default();
    let dir = temp_dir("file_type/hf");
    model.write(&dir);
    for (target, file_type) in [
        (GgmlType::F32, 0),
        (GgmlType::F16, 1),
        (GgmlType::Q4_0, 2),
        (GgmlType::Q8_0, 7),
        (GgmlType::BF16, 32),
    ] {
        let output = temp_dir(&format!("file_type/{target}")).join("model.gguf");
        run(&dir, &output, target).0.unwrap();
        let bytes = std::fs::read(&output).unwrap();
        let gguf = Gguf::parse(&bytes).unwrap();
        assert_eq!(meta_u32(&gguf, "general.file_type"), file_type, "{target}");
    }
}

#[test]
fn tokenizer_metadata_written() {
    let model = TinyModel::default();
    let dir = temp_dir("tokenizer/hf");
    model.write(&dir);
    let output = temp_dir("tokenizer/out").join("model.gguf");
    run(&dir, &output, GgmlType::F32).0.unwrap();
    let bytes = std::fs::read(&output).unwrap();
    let gguf = Gguf::parse(&bytes).unwrap();

    assert_eq!(meta_str(&gguf, "tokenizer.ggml.model"), "gpt2");
    assert_eq!(meta_str(&gguf, "tokenizer.ggml.pre"), "olmo");
    assert_eq!(
        meta_str(&gguf, "tokenizer.huggingface.json"),
        tokenizer_json()
    );

    let tokens = meta_strings(&gguf, "tokenizer.ggml.tokens");
    assert_eq!(tokens.len(), 64, "padded to the embedding rows");
    assert_eq!(tokens[0], "<|endoftext|>");
    assert_eq!(tokens[9], "\u{0120}ab");
    assert_eq!(tokens[12], "  ");
    assert_eq!(tokens[13], "[PAD13]");
    assert_eq!(tokens[63], "[PAD63]");

    let types = meta_i32s(&gguf, "tokenizer.ggml.token_type");
    assert_eq!(types.len(), 64);
    assert_eq!(&types[..3], [3, 3, 1], "special tokens are control tokens");
    assert_eq!(types[12], 4, "a non-special added token is user-defined");
    assert_eq!(types[13], 5, "padding is unused");

    let merges = meta_strings(&gguf, "tokenizer.ggml.merges");
    assert_eq!(merges.len(), 6);
    assert_eq!(merges[0], "a b");
    assert_eq!(merges[4], "\u{0120} \u{0120}");

    assert_eq!(meta_u32(&gguf, "tokenizer.ggml.bos_token_id"), 0);
    assert_eq!(meta_u32(&gguf, "tokenizer.ggml.eos_token_id"), 0);
    assert_eq!(meta_u32(&gguf, "tokenizer.ggml.unknown_token_id"), 0);
    assert_eq!(
        meta_u32(&gguf, "tokenizer.ggml.padding_token_id"),
        1,
        "from config.json"
    );
    assert_eq!(
        gguf.get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.as_bool()),
        Some(false)
    );
}

#[test]
fn sharded_matches_single_file() {
    let model = TinyModel::default();
    let single = temp_dir("sharded/single");
    model.write(&single);
    let sharded = temp_dir("sharded/sharded");
    model.write_sharded(&sharded, 3);
    assert!(!sharded.join("model.safetensors").exists());

    let out = temp_dir("sharded/out");
    run(&single, &out.join("single.gguf"), GgmlType::Q8_0)
        .0
        .unwrap();
    let summary = run(&sharded, &out.join("sharded.gguf"), GgmlType::Q8_0)
        .0
        .unwrap();
    assert_eq!(summary.tensors_written, 22);
    let a = std::fs::read(out.join("single.gguf")).unwrap();
    let b = std::fs::read(out.join("sharded.gguf")).unwrap();
    assert!(
        a == b,
        "sharded and single-file checkpoints give different files"
    );
}

#[test]
fn shard_index_naming_wrong_shard() {
    let model = TinyModel::default();
    let dir = temp_dir("shard_wrong/hf");
    model.write_sharded(&dir, 2);
    let index_path = dir.join("model.safetensors.index.json");
    let mut index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index_path).unwrap()).unwrap();
    index["weight_map"]["backbone.norm_f.weight"] = json!("model-00001-of-00002.safetensors");
    std::fs::write(&index_path, index.to_string()).unwrap();

    let out = temp_dir("shard_wrong/out");
    let err = run(&dir, &out.join("model.gguf"), GgmlType::F32)
        .0
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("backbone.norm_f.weight"), "{message}");
    assert!(
        message.contains("model-00001-of-00002.safetensors"),
        "{message}"
    );
    assert!(dir_entries(&out).is_empty());
}

#[test]
fn untied_head_is_written() {
    let model = TinyModel {
        tie_word_embeddings: false,
        store_lm_head: true,
        ..TinyModel::default()
    };
    let dir = temp_dir("untied/hf");
    model.write(&dir);
    let output = temp_dir("untied/out").join("model.gguf");
    let summary = run(&dir, &output, GgmlType::Q8_0).0.unwrap();
    let bytes = std::fs::read(&output).unwrap();
    let gguf = Gguf::parse(&bytes).unwrap();

    assert_eq!(summary.tensors_written, 23);
    let output_info = gguf.tensor("output.weight").expect("output.weight");
    assert_eq!(output_info.shape(), [64, 64]);
    assert_eq!(output_info.dtype, GgmlType::Q8_0);
    let head = model
        .tensors()
        .into_iter()
        .find(|t| t.name == "lm_head.weight")
        .unwrap();
    let values = tensor_values(&gguf, "output.weight");
    for (i, (a, e)) in values.iter().zip(&head.values).enumerate() {
        assert!(
            (a - e).abs() <= 1.0 / 127.0,
            "output.weight[{i}]: {a} vs {e}"
        );
    }
}

#[test]
fn identical_head_is_omitted() {
    let model = TinyModel {
        tie_word_embeddings: false,
        store_lm_head: true,
        lm_head_equals_embedding: true,
        ..TinyModel::default()
    };
    let dir = temp_dir("identical_head/hf");
    model.write(&dir);
    let output = temp_dir("identical_head/out").join("model.gguf");
    let (result, recorder) = run(&dir, &output, GgmlType::F32);
    assert_eq!(result.unwrap().tensors_written, 22);
    let bytes = std::fs::read(&output).unwrap();
    let gguf = Gguf::parse(&bytes).unwrap();
    assert!(gguf.tensor("output.weight").is_none());
    assert!(
        recorder
            .notes
            .iter()
            .any(|n| n.contains("equals the token embedding")),
        "{:?}",
        recorder.notes
    );
}

#[test]
fn tied_ignores_stored_head() {
    let model = TinyModel {
        store_lm_head: true,
        ..TinyModel::default()
    };
    let dir = temp_dir("tied_head/hf");
    model.write(&dir);
    let output = temp_dir("tied_head/out").join("model.gguf");
    let (result, recorder) = run(&dir, &output, GgmlType::F32);
    assert_eq!(result.unwrap().tensors_written, 22);
    let bytes = std::fs::read(&output).unwrap();
    assert!(
        Gguf::parse(&bytes)
            .unwrap()
            .tensor("output.weight")
            .is_none()
    );
    assert!(
        recorder
            .notes
            .iter()
            .any(|n| n.contains("lm_head.weight is ignored")),
        "{:?}",
        recorder.notes
    );
}

#[test]
fn short_rows_fall_back_to_f16() {
    // d_model = 40 leaves token_embd and ssm_in with rows of 40, not a multiple of 32.
    let model = TinyModel {
        d_model: 40,
        d_inner: 80,
        dt_rank: 3,
        ..TinyModel::default()
    };
    let dir = temp_dir("short_rows/hf");
    model.write(&dir);
    for target in [GgmlType::Q8_0, GgmlType::Q4_0] {
        let output = temp_dir(&format!("short_rows/{target}")).join("model.gguf");
        let (result, recorder) = run(&dir, &output, target);
        result.unwrap();
        let bytes = std::fs::read(&output).unwrap();
        let gguf = Gguf::parse(&bytes).unwrap();
        let dtype = |name: &str| gguf.tensor(name).unwrap().dtype;

        assert_eq!(dtype("token_embd.weight"), GgmlType::F16, "{target}");
        assert_eq!(dtype("blk.0.ssm_in.weight"), GgmlType::F16, "{target}");
        assert_eq!(dtype("blk.0.ssm_dt.weight"), GgmlType::F16, "{target}");
        assert_eq!(
            dtype("blk.0.ssm_x.weight"),
            GgmlType::F16,
            "{target}: rows of d_inner = 80"
        );
        assert_eq!(
            dtype("blk.0.ssm_out.weight"),
            GgmlType::F16,
            "{target}: rows of d_inner = 80"
        );
        for name in [
            "token_embd.weight",
            "blk.1.ssm_in.weight",
            "blk.1.ssm_out.weight",
        ] {
            assert!(
                recorder.notes.iter().any(|n| n.starts_with(name)),
                "{target}: no note for {name}: {:?}",
                recorder.notes
            );
        }
    }
}

#[test]
fn f16_overflow_falls_back_to_f32() {
    let model = TinyModel::default();
    let mut tensors = model.tensors();
    let out_proj = tensors
        .iter_mut()
        .find(|t| t.name == "backbone.layers.0.mixer.out_proj.weight")
        .unwrap();
    out_proj.values[5] = 1.0e5;
    let dir = temp_dir("f16_overflow/hf");
    model.write_with(&dir, &tensors);

    let output = temp_dir("f16_overflow/out").join("model.gguf");
    let (result, recorder) = run(&dir, &output, GgmlType::F16);
    result.unwrap();
    let bytes = std::fs::read(&output).unwrap();
    let gguf = Gguf::parse(&bytes).unwrap();
    assert_eq!(
        gguf.tensor("blk.0.ssm_out.weight").unwrap().dtype,
        GgmlType::F32
    );
    assert_eq!(
        gguf.tensor("blk.1.ssm_out.weight").unwrap().dtype,
        GgmlType::F16
    );
    assert_eq!(tensor_values(&gguf, "blk.0.ssm_out.weight")[5], 1.0e5);
    assert!(
        recorder
            .notes
            .iter()
            .any(|n| n.starts_with("blk.0.ssm_out.weight")),
        "{:?}",
        recorder.notes
    );
}

#[test]
fn half_precision_sources() {
    for dtype in [Dtype::F16, Dtype::BF16] {
        let model = TinyModel {
            dtype,
            ..TinyModel::default()
        };
        let dir = temp_dir(&format!("half_sources/{dtype:?}"));
        model.write(&dir);
        let output = temp_dir(&format!("half_sources/out-{dtype:?}")).join("model.gguf");
        run(&dir, &output, GgmlType::F32).0.unwrap();
        let bytes = std::fs::read(&output).unwrap();
        let gguf = Gguf::parse(&bytes).unwrap();

        // The converter must widen exactly the stored half-precision values.
        let embedding = &model.tensors()[0];
        let stored = decode(&encode(&embedding.values, dtype), dtype);
        assert_eq!(
            tensor_values(&gguf, "token_embd.weight"),
            stored,
            "{dtype:?}"
        );
    }
}

#[test]
fn missing_conv_bias_written_as_zeros() {
    let model = TinyModel {
        use_conv_bias: false,
        ..TinyModel::default()
    };
    let dir = temp_dir("no_conv_bias/hf");
    model.write(&dir);
    let output = temp_dir("no_conv_bias/out").join("model.gguf");
    let (result, recorder) = run(&dir, &output, GgmlType::F32);
    result.unwrap();
    let bytes = std::fs::read(&output).unwrap();
    let gguf = Gguf::parse(&bytes).unwrap();
    assert_eq!(
        tensor_values(&gguf, "blk.0.ssm_conv1d.bias"),
        vec![0.0; 128]
    );
    assert!(
        recorder.notes.iter().any(|n| n.contains("zero bias")),
        "{:?}",
        recorder.notes
    );
}

#[test]
fn requantize_matches_direct() {
    let model = TinyModel::default();
    let dir = temp_dir("requantize/hf");
    model.write(&dir);
    let out = temp_dir("requantize/out");
    run(&dir, &out.join("f32.gguf"), GgmlType::F32).0.unwrap();
    run(&dir, &out.join("direct-q8_0.gguf"), GgmlType::Q8_0)
        .0
        .unwrap();
    let (result, recorder) = run(
        &out.join("f32.gguf"),
        &out.join("requantized-q8_0.gguf"),
        GgmlType::Q8_0,
    );
    let summary = result.unwrap();
    assert_eq!(summary.tensors_written, 22);
    assert_eq!(
        recorder.notes.len(),
        2,
        "ssm_dt.weight falls back in both layers: {:?}",
        recorder.notes
    );

    let direct_bytes = std::fs::read(out.join("direct-q8_0.gguf")).unwrap();
    let requantized_bytes = std::fs::read(out.join("requantized-q8_0.gguf")).unwrap();
    let direct = Gguf::parse(&direct_bytes).unwrap();
    let requantized = Gguf::parse(&requantized_bytes).unwrap();

    // An f32 round trip is exact, so every tensor must come out byte for byte the same.
    for tensor in direct.tensors() {
        let other = requantized
            .tensor(tensor.name)
            .unwrap_or_else(|| panic!("{} missing", tensor.name));
        assert_eq!(other.dtype, tensor.dtype, "{}", tensor.name);
        assert_eq!(other.shape(), tensor.shape(), "{}", tensor.name);
        assert!(other.data == tensor.data, "{} data differs", tensor.name);
    }
    let direct_meta: Vec<_> = direct.metadata().collect();
    let requantized_meta: Vec<_> = requantized.metadata().collect();
    assert_eq!(direct_meta, requantized_meta);
}

#[test]
fn requantize_q8_0_to_f16() {
    let model = TinyModel::default();
    let dir = temp_dir("requantize_f16/hf");
    model.write(&dir);
    let out = temp_dir("requantize_f16/out");
    run(&dir, &out.join("q8_0.gguf"), GgmlType::Q8_0).0.unwrap();
    run(&out.join("q8_0.gguf"), &out.join("f16.gguf"), GgmlType::F16)
        .0
        .unwrap();
    let q8_bytes = std::fs::read(out.join("q8_0.gguf")).unwrap();
    let f16_bytes = std::fs::read(out.join("f16.gguf")).unwrap();
    let q8 = Gguf::parse(&q8_bytes).unwrap();
    let f16 = Gguf::parse(&f16_bytes).unwrap();

    assert_eq!(meta_u32(&f16, "general.file_type"), 1);
    assert_eq!(
        f16.tensor("blk.0.ssm_in.weight").unwrap().dtype,
        GgmlType::F16
    );
    assert_eq!(f16.tensor("blk.0.ssm_a").unwrap().dtype, GgmlType::F32);
    // Q8_0 values are small integers times an f16 scale, which f16 represents to within 2^-11.
    let a = tensor_values(&q8, "blk.0.ssm_in.weight");
    let b = tensor_values(&f16, "blk.0.ssm_in.weight");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() <= x.abs() / 1024.0, "element {i}: {x} vs {y}");
    }
}

// ---- invalid inputs: each gives an error naming the problem and leaves no file ----

/// Converts `dir` and returns the error message, checking that the output directory
/// stayed empty.
fn expect_error(dir: &std::path::Path, target: GgmlType, case: &str) -> (ConvertError, String) {
    let out = temp_dir(&format!("errors/{case}-out"));
    let err = run(dir, &out.join("model.gguf"), target).0.unwrap_err();
    assert!(
        dir_entries(&out).is_empty(),
        "{case}: output left behind: {:?}",
        dir_entries(&out)
    );
    let message = err.to_string();
    (err, message)
}

#[test]
fn missing_config_is_error() {
    let dir = temp_dir("errors/missing_config");
    TinyModel::default().write(&dir);
    std::fs::remove_file(dir.join("config.json")).unwrap();
    let (err, message) = expect_error(&dir, GgmlType::F32, "missing_config");
    assert!(
        matches!(err, ConvertError::MissingConfig { .. }),
        "{message}"
    );
    assert!(message.contains("config.json"), "{message}");
}

#[test]
fn unsupported_architecture_is_error() {
    let model = TinyModel {
        config_overrides: json!({"architectures": ["JambaForCausalLM"]}),
        ..TinyModel::default()
    };
    let dir = temp_dir("errors/jamba");
    model.write(&dir);
    let (err, message) = expect_error(&dir, GgmlType::F32, "jamba");
    assert!(
        matches!(err, ConvertError::UnsupportedArchitecture { .. }),
        "{message}"
    );
    assert!(message.contains("JambaForCausalLM"), "{message}");
    assert!(message.contains("not supported yet"), "{message}");
}

#[test]
fn mamba1_weights_under_mamba2_config_are_error() {
    let model = TinyModel {
        config_overrides: json!({"architectures": ["Mamba2ForCausalLM"]}),
        ..TinyModel::default()
    };
    let dir = temp_dir("errors/mamba2");
    model.write(&dir);
    let (err, message) = expect_error(&dir, GgmlType::F32, "mamba2");
    assert!(
        matches!(err, ConvertError::UnexpectedTensor { .. }),
        "{message}"
    );
    assert!(message.contains("Mamba2ForCausalLM"), "{message}");
}

#[test]
fn projection_bias_is_error() {
    let model = TinyModel {
        config_overrides: json!({"use_bias": true}),
        ..TinyModel::default()
    };
    let dir = temp_dir("errors/use_bias");
    model.write(&dir);
    let (err, message) = expect_error(&dir, GgmlType::F32, "use_bias");
    assert!(
        matches!(err, ConvertError::ProjectionBias { .. }),
        "{message}"
    );
}

#[test]
fn missing_tensor_is_error() {
    let model = TinyModel::default();
    let tensors: Vec<_> = model
        .tensors()
        .into_iter()
        .filter(|t| t.name != "backbone.layers.1.mixer.D")
        .collect();
    let dir = temp_dir("errors/missing_tensor");
    model.write_with(&dir, &tensors);
    let (err, message) = expect_error(&dir, GgmlType::F32, "missing_tensor");
    assert!(
        matches!(err, ConvertError::MissingTensor { .. }),
        "{message}"
    );
    assert!(message.contains("backbone.layers.1.mixer.D"), "{message}");
}

#[test]
fn missing_untied_head_is_error() {
    let model = TinyModel {
        tie_word_embeddings: false,
        ..TinyModel::default()
    };
    let dir = temp_dir("errors/missing_head");
    model.write(&dir);
    let (_, message) = expect_error(&dir, GgmlType::F32, "missing_head");
    assert!(message.contains("lm_head.weight"), "{message}");
    assert!(message.contains("tie_word_embeddings"), "{message}");
}

#[test]
fn unexpected_tensor_is_error() {
    let model = TinyModel::default();
    let mut tensors = model.tensors();
    tensors.push(SourceTensor {
        name: "backbone.layers.0.mixer.in_proj.bias".into(),
        shape: vec![256],
        values: vec![0.0; 256],
    });
    let dir = temp_dir("errors/unexpected");
    model.write_with(&dir, &tensors);
    let (err, message) = expect_error(&dir, GgmlType::F32, "unexpected");
    assert!(
        matches!(err, ConvertError::UnexpectedTensor { .. }),
        "{message}"
    );
    assert!(
        message.contains("backbone.layers.0.mixer.in_proj.bias"),
        "{message}"
    );
}

#[test]
fn extra_layer_is_error() {
    let model = TinyModel::default();
    let mut tensors = model.tensors();
    tensors.push(SourceTensor {
        name: "backbone.layers.2.norm.weight".into(),
        shape: vec![64],
        values: vec![1.0; 64],
    });
    let dir = temp_dir("errors/extra_layer");
    model.write_with(&dir, &tensors);
    let (_, message) = expect_error(&dir, GgmlType::F32, "extra_layer");
    assert!(
        message.contains("backbone.layers.2.norm.weight"),
        "{message}"
    );
    assert!(message.contains("num_hidden_layers = 2"), "{message}");
}

#[test]
fn nan_weight_is_error() {
    let model = TinyModel::default();
    let mut tensors = model.tensors();
    let x_proj = tensors
        .iter_mut()
        .find(|t| t.name == "backbone.layers.1.mixer.x_proj.weight")
        .unwrap();
    x_proj.values[3 * 128 + 7] = f32::NAN;
    let dir = temp_dir("errors/nan");
    model.write_with(&dir, &tensors);
    let (err, message) = expect_error(&dir, GgmlType::Q8_0, "nan");
    assert!(matches!(err, ConvertError::TensorData { .. }), "{message}");
    assert!(
        message.contains("backbone.layers.1.mixer.x_proj.weight"),
        "{message}"
    );
    assert!(message.contains("blk.1.ssm_x.weight"), "{message}");
    assert!(message.contains("row 3"), "{message}");
    assert!(message.contains("element 7"), "{message}");
}

#[test]
fn wrong_shape_is_error() {
    let model = TinyModel::default();
    let mut tensors = model.tensors();
    let out_proj = tensors
        .iter_mut()
        .find(|t| t.name == "backbone.layers.0.mixer.out_proj.weight")
        .unwrap();
    out_proj.shape = vec![128, 64];
    let dir = temp_dir("errors/shape");
    model.write_with(&dir, &tensors);
    let (err, message) = expect_error(&dir, GgmlType::F32, "shape");
    assert!(
        matches!(err, ConvertError::ShapeMismatch { .. }),
        "{message}"
    );
    assert!(
        message.contains("backbone.layers.0.mixer.out_proj.weight"),
        "{message}"
    );
    assert!(message.contains("[128, 64]"), "{message}");
    assert!(message.contains("[64, 128]"), "{message}");
}

#[test]
fn unsupported_dtype_is_error() {
    let model = TinyModel::default();
    let dir = temp_dir("errors/dtype");
    model.write(&dir);
    // Rewrite the checkpoint with D stored as I32.
    let tensors = model.tensors();
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| {
            if t.name.ends_with(".D") {
                vec![0u8; 4 * t.values.len()]
            } else {
                encode(&t.values, Dtype::F32)
            }
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, data)| {
            let dtype = if t.name.ends_with(".D") {
                Dtype::I32
            } else {
                Dtype::F32
            };
            (
                t.name.clone(),
                safetensors::tensor::TensorView::new(dtype, t.shape.clone(), data).unwrap(),
            )
        })
        .collect();
    std::fs::write(
        dir.join("model.safetensors"),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();

    let (err, message) = expect_error(&dir, GgmlType::F32, "dtype");
    assert!(
        matches!(err, ConvertError::UnsupportedDtype { .. }),
        "{message}"
    );
    assert!(message.contains("mixer.D"), "{message}");
    assert!(message.contains("I32"), "{message}");
}

#[test]
fn missing_tokenizer_is_error() {
    let dir = temp_dir("errors/tokenizer");
    TinyModel::default().write(&dir);
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let (err, message) = expect_error(&dir, GgmlType::F32, "tokenizer");
    assert!(
        matches!(err, ConvertError::MissingTokenizer { .. }),
        "{message}"
    );
    assert!(message.contains("GPT-NeoX-20B"), "{message}");
}

#[test]
fn missing_weights_is_error() {
    let dir = temp_dir("errors/weights");
    TinyModel::default().write(&dir);
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let (err, message) = expect_error(&dir, GgmlType::F32, "weights");
    assert!(
        matches!(err, ConvertError::MissingWeights { .. }),
        "{message}"
    );
}

#[test]
fn truncated_safetensors_is_error() {
    let dir = temp_dir("errors/truncated");
    TinyModel::default().write(&dir);
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let (err, message) = expect_error(&dir, GgmlType::F32, "truncated");
    assert!(matches!(err, ConvertError::Safetensors { .. }), "{message}");
    assert!(message.contains("model.safetensors"), "{message}");
}

#[test]
fn output_checks_run_first() {
    let dir = temp_dir("errors/output/hf");
    TinyModel::default().write(&dir);

    let missing_dir = dir.join("no-such-dir").join("model.gguf");
    let err = run(&dir, &missing_dir, GgmlType::F32).0.unwrap_err();
    assert!(
        matches!(err, ConvertError::MissingOutputDir { .. }),
        "{err}"
    );

    let err = run(&dir, &dir, GgmlType::F32).0.unwrap_err();
    assert!(
        matches!(err, ConvertError::OutputIsDirectory { .. }),
        "{err}"
    );

    let gguf_path = temp_dir("errors/output/gguf").join("model.gguf");
    run(&dir, &gguf_path, GgmlType::F32).0.unwrap();
    let before = std::fs::read(&gguf_path).unwrap();
    let err = run(&gguf_path, &gguf_path, GgmlType::Q8_0).0.unwrap_err();
    assert!(matches!(err, ConvertError::OutputIsInput { .. }), "{err}");
    assert!(
        std::fs::read(&gguf_path).unwrap() == before,
        "the input was modified"
    );
}

#[test]
fn failed_write_keeps_old_output() {
    let model = TinyModel::default();
    let good = temp_dir("errors/keep_old/good");
    model.write(&good);
    let mut tensors = model.tensors();
    tensors[0].values[0] = f32::INFINITY;
    let bad = temp_dir("errors/keep_old/bad");
    model.write_with(&bad, &tensors);

    let out = temp_dir("errors/keep_old/out");
    let output = out.join("model.gguf");
    run(&good, &output, GgmlType::F16).0.unwrap();
    let before = std::fs::read(&output).unwrap();
    let err = run(&bad, &output, GgmlType::F16).0.unwrap_err();
    assert!(
        err.to_string().contains("backbone.embeddings.weight"),
        "{err}"
    );
    assert!(
        std::fs::read(&output).unwrap() == before,
        "the old output was replaced"
    );
    assert_eq!(dir_entries(&out), ["model.gguf"]);
}

#[test]
fn unknown_input_is_error() {
    let dir = temp_dir("errors/unknown_input");
    let path = dir.join("weights.bin");
    std::fs::write(&path, b"not a gguf file").unwrap();
    let (err, message) = expect_error(&path, GgmlType::F32, "unknown_input");
    assert!(
        matches!(err, ConvertError::UnknownInput { .. }),
        "{message}"
    );
}

#[test]
fn non_mamba_gguf_is_error() {
    let mut writer = mamba_core::gguf::GgufWriter::new();
    writer
        .add_metadata(
            "general.architecture",
            mamba_core::gguf::MetaValue::String("llama".into()),
        )
        .unwrap();
    let dir = temp_dir("errors/llama_gguf");
    let path = dir.join("llama.gguf");
    writer.write_file(&path, |_, _| Ok(())).unwrap();
    let (err, message) = expect_error(&path, GgmlType::F32, "llama_gguf");
    assert!(
        matches!(err, ConvertError::UnsupportedArchitecture { .. }),
        "{message}"
    );
    assert!(message.contains("llama"), "{message}");
}
