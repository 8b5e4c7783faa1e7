//! The models shipped in `models/` load, and their greedy continuation of a fixed prompt is
//! the one recorded by `tools/train/expected.py`.
//!
//! `expected.json` contains the prompt's token ids, the 48 greedy tokens `transformers` generates
//! from the shipped checkpoint (`hf/`, run in float32), and the tokens our engine generated
//! from the shipped Q8_0 file when the model was made.

use std::path::{Path, PathBuf};

use mamba_core::sampling::argmax;
use mamba_core::{GgmlType, Inputs, Model, Session};

/// The shipped models.
const MODELS: [&str; 2] = ["default", "micro"];

fn model_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(name)
}

fn ids(value: &serde_json::Value) -> Vec<u32> {
    value.as_array().expect("an array of token ids").iter().map(|v| v.as_u64().unwrap() as u32).collect()
}

/// Greedy continuation of `prompt` for `n` tokens, with the matrix inputs as `inputs` selects.
fn greedy(model: &Model<'_>, prompt: &[u32], n: usize, inputs: Inputs) -> Vec<u32> {
    let mut session = Session::new(model);
    session.set_inputs(inputs);
    let mut next = argmax(session.prefill(prompt).unwrap());
    let mut out = vec![next];
    while out.len() < n {
        next = argmax(session.step(next).unwrap());
        out.push(next);
    }
    out
}

struct Expected {
    prompt: String,
    prompt_ids: Vec<u32>,
    transformers: Vec<u32>,
    engine_q8_0: Vec<u32>,
}

fn expected(name: &str) -> Expected {
    let path = model_dir(name).join("expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    Expected {
        prompt: json["prompt"].as_str().unwrap().to_string(),
        prompt_ids: ids(&json["prompt_token_ids"]),
        transformers: ids(&json["generated_token_ids"]),
        engine_q8_0: ids(&json["engine_q8_0"]["generated_token_ids"]),
    }
}

#[test]
fn shipped_q8_0_files_continue_as_recorded() {
    for name in MODELS {
        let e = expected(name);
        let bytes = std::fs::read(model_dir(name).join("model.gguf")).unwrap();
        let model = Model::from_bytes(&bytes).unwrap_or_else(|err| panic!("{name}: {err}"));
        let got = greedy(&model, &e.prompt_ids, e.engine_q8_0.len(), Inputs::Exact);
        assert_eq!(got, e.engine_q8_0, "{name}: greedy continuation of the shipped Q8_0 file");
    }
}

/// The top-two logit gap below which a different greedy choice is a near-tie that any
/// rounding may flip, in logit units. The logits of these models reach about 10.
const NEAR_TIE: f32 = 0.05;

/// With 8-bit inputs (the default), the greedy continuation follows the recorded one until
/// a position where the recorded path's two best logits lie within [`NEAR_TIE`]. Past such
/// a position the continuations may part.
#[test]
fn int8_inputs_part_at_near_ties() {
    for name in MODELS {
        let e = expected(name);
        let bytes = std::fs::read(model_dir(name).join("model.gguf")).unwrap();
        let model = Model::from_bytes(&bytes).unwrap();
        let got = greedy(&model, &e.prompt_ids, e.engine_q8_0.len(), Inputs::Int8);
        let Some(first) = got.iter().zip(&e.engine_q8_0).position(|(a, b)| a != b) else { continue };

        // The recorded path's logits at the parting position, with exact inputs.
        let mut session = Session::new(&model);
        session.set_inputs(Inputs::Exact);
        let mut logits = session.prefill(&e.prompt_ids).unwrap().to_vec();
        for &token in &e.engine_q8_0[..first] {
            logits = session.step(token).unwrap().to_vec();
        }
        let mut sorted = logits.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let gap = sorted[0] - sorted[1];
        eprintln!("{name}: 8-bit inputs part from the recorded continuation at token {first}, where the top two logits are {gap} apart");
        assert!(gap < NEAR_TIE, "{name}: parted at token {first}, where the top two logits are {gap} apart, not a near-tie");
        assert_eq!(argmax(&logits), e.engine_q8_0[first], "{name}: recorded token {first}");
    }
}

#[test]
fn shipped_checkpoints_match_transformers() {
    for name in MODELS {
        let e = expected(name);
        let out_dir = mamba_edge_tests::temp_dir(&format!("shipped-{name}"));
        let out = out_dir.join("model.gguf");
        let options = mamba_quantize::Options { input: model_dir(name).join("hf"), output: out.clone(), target: GgmlType::F32, tokenizer: None };
        mamba_quantize::convert(&options, &mut mamba_quantize::NoProgress).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let _ = std::fs::remove_dir_all(&out_dir);
        let model = Model::from_bytes(&bytes).unwrap();
        let got = greedy(&model, &e.prompt_ids, e.transformers.len(), Inputs::Exact);
        assert_eq!(got, e.transformers, "{name}: F32 greedy continuation differs from transformers");
    }
}

#[test]
fn shipped_tokenizers_encode_the_prompt() {
    for name in MODELS {
        let e = expected(name);
        let tokenizer = tokenizers::Tokenizer::from_file(model_dir(name).join("hf/tokenizer.json")).unwrap();
        let encoding = tokenizer.encode(e.prompt.as_str(), true).unwrap();
        assert_eq!(encoding.get_ids(), e.prompt_ids.as_slice(), "{name}: prompt token ids");
    }
}
