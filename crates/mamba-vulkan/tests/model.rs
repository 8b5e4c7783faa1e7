//! Whole-model runs on the GPU against the CPU engine and the `transformers` fixtures, and
//! session state moved between the two backends.

#[allow(dead_code)]
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mamba_core::sampling::argmax;
use mamba_core::{GgmlType, Inputs, Model, Session};
use mamba_edge_tests::{Fixture, relative_l2};
use mamba_vulkan::{GpuModel, GpuSession};
use support::{assert_finite, gpu};

/// GPU logits against the CPU engine's, per position, as the Vulkan backend promises: the
/// shaders add in another order and use the GPU's `exp`, which over a whole model moves the
/// logits by about 1e-6 relative L2 (measured on lavapipe).
const BACKEND_TOLERANCE: f64 = 1e-3;

/// GPU logits at F32 against the `transformers` reference, the bound the CPU engine's own
/// conformance test uses for F32.
const F32_REFERENCE_TOLERANCE: f64 = 1e-4;

/// Conformance fixtures made by `tests/reference/make_fixtures.py`.
const FIXTURES: [&str; 4] = ["tiny", "odd", "quant", "eps"];

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

/// The fixture files converted by llama.cpp that exist for `fixture`, by format.
fn fixture_files(fixture: &str) -> Vec<(String, PathBuf)> {
    ["f32", "f16", "q8_0", "q4_0"]
        .iter()
        .map(|format| (format.to_string(), repo_path(&format!("tests/fixtures/{fixture}/llamacpp-{format}.gguf"))))
        .filter(|(_, path)| path.exists())
        .collect()
}

/// Logits after every token of `tokens`, by prefill in chunks of `max_batch` and by steps.
fn cpu_logits(model: &Model<'_>, tokens: &[u32]) -> Vec<Vec<f32>> {
    let mut session = Session::new(model);
    let mut rows = Vec::new();
    session.prefill_all(tokens, |_, logits| rows.push(logits.to_vec())).unwrap();
    rows
}

fn gpu_prefill_logits(model: &Arc<GpuModel>, tokens: &[u32], max_batch: usize) -> Vec<Vec<f32>> {
    let mut session = GpuSession::with_max_batch(model, max_batch).unwrap();
    let mut rows = Vec::new();
    session.prefill_all(tokens, |_, logits| rows.push(logits.to_vec())).unwrap();
    rows
}

fn gpu_step_logits(model: &Arc<GpuModel>, tokens: &[u32]) -> Vec<Vec<f32>> {
    let mut session = GpuSession::new(model).unwrap();
    tokens.iter().map(|&t| session.step(t).unwrap().to_vec()).collect()
}

/// Asserts that each row of `found` is within `tolerance` relative L2 of `expected`, and
/// returns the largest error.
fn check_rows(what: &str, found: &[Vec<f32>], expected: &[Vec<f32>], tolerance: f64) -> f64 {
    assert_eq!(found.len(), expected.len(), "{what}: number of positions");
    let mut worst = 0.0f64;
    for (t, (f, e)) in found.iter().zip(expected).enumerate() {
        assert_finite(what, f);
        let error = relative_l2(f, e);
        assert!(error <= tolerance, "{what}, position {t}: relative L2 {error:e} above {tolerance:e}");
        worst = worst.max(error);
    }
    worst
}

#[test]
fn fixture_logits_match_cpu_and_transformers() {
    let gpu = gpu();
    for fixture_name in FIXTURES {
        let fixture = Fixture::load(fixture_name);
        for (format, path) in fixture_files(fixture_name) {
            let bytes = std::fs::read(&path).unwrap();
            let model = Model::from_bytes(&bytes).unwrap();
            let gpu_model = GpuModel::new(gpu.clone(), &model).unwrap();
            for (i, tokens) in fixture.sequences.iter().enumerate() {
                let what = format!("{fixture_name} {format} sequence {i}");
                let cpu = cpu_logits(&model, tokens);
                let prefill = gpu_prefill_logits(&gpu_model, tokens, 64);
                let steps = gpu_step_logits(&gpu_model, tokens);
                let worst_prefill = check_rows(&format!("{what} prefill"), &prefill, &cpu, BACKEND_TOLERANCE);
                let worst_steps = check_rows(&format!("{what} steps"), &steps, &cpu, BACKEND_TOLERANCE);
                println!("{what}: GPU vs CPU max relative L2 prefill {worst_prefill:.2e}, steps {worst_steps:.2e}");

                if format == "f32" {
                    let reference = fixture.reference_logits(i);
                    let rows: Vec<Vec<f32>> = (0..tokens.len()).map(|t| reference.row(t).to_vec()).collect();
                    let worst = check_rows(&format!("{what} vs transformers"), &prefill, &rows, F32_REFERENCE_TOLERANCE);
                    println!("{what}: GPU vs transformers max relative L2 {worst:.2e}");
                }
            }
        }
    }
}

#[test]
fn chunked_prefill_equals_one_chunk() {
    let gpu = gpu();
    let fixture = Fixture::load("odd");
    let bytes = std::fs::read(repo_path("tests/fixtures/odd/llamacpp-f32.gguf")).unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    let gpu_model = GpuModel::new(gpu, &model).unwrap();
    let tokens = &fixture.sequences[0];
    let whole = gpu_prefill_logits(&gpu_model, tokens, 4096);
    // 5 leaves a partial last chunk and partial token tiles of the matmul.
    let chunked = gpu_prefill_logits(&gpu_model, tokens, 5);
    check_rows("chunks of 5 vs one chunk", &chunked, &whole, 1e-6);

    // prefill returns the last position's logits of prefill_all.
    let mut session = GpuSession::with_max_batch(&gpu_model, 5).unwrap();
    let last = session.prefill(tokens).unwrap().to_vec();
    check_rows("prefill vs prefill_all", &[last], &whole[whole.len() - 1..], 1e-6);
}

/// Converts the default model to F32 from its checkpoint and returns the file's bytes.
fn default_model_f32() -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("mamba-vulkan-default-f32-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = dir.join("model.gguf");
    let options = mamba_quantize::Options { input: repo_path("models/default/hf"), output: output.clone(), target: GgmlType::F32, tokenizer: None };
    mamba_quantize::convert(&options, &mut mamba_quantize::NoProgress).unwrap();
    let bytes = std::fs::read(&output).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

fn default_prompt() -> Vec<u32> {
    let text = std::fs::read_to_string(repo_path("models/default/expected.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["prompt_token_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect()
}

#[test]
fn default_model_f32_logits_match_cpu() {
    let bytes = default_model_f32();
    let model = Model::from_bytes(&bytes).unwrap();
    let gpu_model = GpuModel::new(gpu(), &model).unwrap();
    let mut tokens = default_prompt();
    tokens.extend(tokens.clone());
    let cpu = cpu_logits(&model, &tokens);
    let prefill = gpu_prefill_logits(&gpu_model, &tokens, 64);
    let steps = gpu_step_logits(&gpu_model, &tokens);
    let worst_prefill = check_rows("default F32 prefill", &prefill, &cpu, BACKEND_TOLERANCE);
    let worst_steps = check_rows("default F32 steps", &steps, &cpu, BACKEND_TOLERANCE);
    println!("default F32: GPU vs CPU max relative L2 prefill {worst_prefill:.2e}, steps {worst_steps:.2e}");
}

#[test]
fn default_model_greedy_64_tokens_match_cpu() {
    let bytes = std::fs::read(repo_path("models/default/model.gguf")).unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    let gpu_model = GpuModel::new(gpu(), &model).unwrap();
    let prompt = default_prompt();

    // The GPU multiplies f32 inputs, so the CPU keeps its decode inputs exact too.
    let mut cpu = Session::new(&model);
    cpu.set_inputs(Inputs::Exact);
    let mut gpu_session = GpuSession::new(&gpu_model).unwrap();
    let mut cpu_next = argmax(cpu.prefill(&prompt).unwrap());
    let mut gpu_next = argmax(gpu_session.prefill(&prompt).unwrap());
    let (mut cpu_tokens, mut gpu_tokens) = (vec![cpu_next], vec![gpu_next]);
    while cpu_tokens.len() < 64 {
        cpu_next = argmax(cpu.step(cpu_next).unwrap());
        gpu_next = argmax(gpu_session.step(gpu_next).unwrap());
        cpu_tokens.push(cpu_next);
        gpu_tokens.push(gpu_next);
    }
    assert_eq!(gpu_tokens, cpu_tokens, "greedy tokens of the default model, GPU vs CPU");
}

#[test]
fn state_moves_between_backends() {
    let bytes = std::fs::read(repo_path("tests/fixtures/tiny/llamacpp-f32.gguf")).unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    let gpu_model = GpuModel::new(gpu(), &model).unwrap();
    let tokens = &Fixture::load("tiny").sequences[1];
    let (head, tail) = tokens.split_at(tokens.len() / 2);

    // The reference: the CPU runs the whole sequence.
    let mut cpu_whole = Session::new(&model);
    let expected = cpu_whole.prefill(tokens).unwrap().to_vec();

    // CPU, then GPU.
    let mut cpu = Session::new(&model);
    cpu.prefill(head).unwrap();
    let saved_on_cpu = cpu.save_state_to_vec();
    let mut gpu_session = GpuSession::new(&gpu_model).unwrap();
    gpu_session.load_state(&saved_on_cpu).unwrap();
    assert_eq!(gpu_session.n_past(), head.len() as u64);
    assert_eq!(gpu_session.logits().unwrap(), cpu.logits().unwrap(), "restored logits");
    assert_eq!(gpu_session.state().unwrap(), cpu.state(), "restored state");
    let found = gpu_session.prefill(tail).unwrap().to_vec();
    check_rows("CPU state continued on the GPU", &[found], std::slice::from_ref(&expected), BACKEND_TOLERANCE);

    // GPU, then CPU.
    let mut gpu_session = GpuSession::new(&gpu_model).unwrap();
    gpu_session.prefill(head).unwrap();
    let saved_on_gpu = gpu_session.save_state_to_vec().unwrap();
    let mut cpu = Session::new(&model);
    cpu.load_state(&saved_on_gpu).unwrap();
    assert_eq!(cpu.n_past(), head.len() as u64);
    let found = cpu.prefill(tail).unwrap().to_vec();
    check_rows("GPU state continued on the CPU", &[found], std::slice::from_ref(&expected), BACKEND_TOLERANCE);

    // A damaged state is rejected and leaves the session as it was.
    let mut damaged = saved_on_gpu.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    let error = gpu_session.load_state(&damaged).unwrap_err();
    assert!(error.to_string().contains("checksum"), "unexpected error: {error}");
    assert_eq!(gpu_session.n_past(), head.len() as u64);
}

#[test]
fn reset_and_bad_tokens() {
    let bytes = std::fs::read(repo_path("tests/fixtures/tiny/llamacpp-f32.gguf")).unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    let gpu_model = GpuModel::new(gpu(), &model).unwrap();
    let mut session = GpuSession::new(&gpu_model).unwrap();
    assert!(session.logits().is_none());

    let first = session.prefill(&[1, 2, 3]).unwrap().to_vec();
    session.reset().unwrap();
    assert_eq!(session.n_past(), 0);
    assert!(session.logits().is_none());
    assert_eq!(session.prefill(&[1, 2, 3]).unwrap(), &first[..], "logits after reset");

    let n_vocab = model.config.n_vocab as u32;
    let error = session.step(n_vocab).unwrap_err();
    assert!(error.to_string().contains(&n_vocab.to_string()), "unexpected error: {error}");
    assert!(session.prefill(&[]).is_err(), "empty input is rejected");
    assert_eq!(session.n_past(), 3, "rejected input leaves the position");
}
