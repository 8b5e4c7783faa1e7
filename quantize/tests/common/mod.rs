//! Builds tiny Hugging Face Mamba checkpoints on disk and reads converted GGUF files back.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use mamba_core::GgmlType;
use mamba_core::gguf::{Gguf, Value};
use mamba_core::quant::dequantize_row;
use mamba_quantize::{ConvertError, Options, Progress, Summary, convert};
use safetensors::{Dtype, tensor::TensorView};
use serde_json::{Value as Json, json};

/// Creates a fresh, empty directory under Cargo's per-test-target temporary directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("quantize-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One source tensor: Hugging Face name, PyTorch shape and values.
#[derive(Clone, Debug)]
pub struct SourceTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// A small Mamba-1 model whose weights follow a fixed pseudo-random sequence.
#[derive(Clone, Debug)]
pub struct TinyModel {
    pub d_model: usize,
    pub n_layer: usize,
    pub d_inner: usize,
    pub d_state: usize,
    pub d_conv: usize,
    pub dt_rank: usize,
    pub n_vocab: usize,
    pub tie_word_embeddings: bool,
    pub use_conv_bias: bool,
    /// Stores `lm_head.weight` in the checkpoint.
    pub store_lm_head: bool,
    /// Makes the stored LM head a copy of the embedding.
    pub lm_head_equals_embedding: bool,
    /// Element type of every tensor in model.safetensors.
    pub dtype: Dtype,
    /// Extra config.json keys, merged over the defaults.
    pub config_overrides: Json,
}

impl Default for TinyModel {
    fn default() -> Self {
        TinyModel {
            d_model: 64,
            n_layer: 2,
            d_inner: 128,
            d_state: 16,
            d_conv: 4,
            dt_rank: 4,
            n_vocab: 64,
            tie_word_embeddings: true,
            use_conv_bias: true,
            store_lm_head: false,
            lm_head_equals_embedding: false,
            dtype: Dtype::F32,
            config_overrides: json!({}),
        }
    }
}

/// Returns `n` deterministic values in [-scale, scale).
fn pseudo_random(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
            (unit * 2.0 - 1.0) * scale
        })
        .collect()
}

impl TinyModel {
    /// Returns every tensor the checkpoint stores, in PyTorch layout.
    pub fn tensors(&self) -> Vec<SourceTensor> {
        let mut seed = 0;
        let mut next = |name: String, shape: Vec<usize>, scale: f32| {
            seed += 1;
            let n = shape.iter().product();
            SourceTensor {
                name,
                values: pseudo_random(seed, n, scale),
                shape,
            }
        };
        let mut tensors = vec![next(
            "backbone.embeddings.weight".into(),
            vec![self.n_vocab, self.d_model],
            1.0,
        )];
        for layer in 0..self.n_layer {
            let prefix = format!("backbone.layers.{layer}");
            let mut norm = next(format!("{prefix}.norm.weight"), vec![self.d_model], 0.1);
            norm.values.iter_mut().for_each(|x| *x += 1.0);
            tensors.push(norm);
            tensors.push(next(
                format!("{prefix}.mixer.in_proj.weight"),
                vec![2 * self.d_inner, self.d_model],
                0.2,
            ));
            tensors.push(next(
                format!("{prefix}.mixer.conv1d.weight"),
                vec![self.d_inner, 1, self.d_conv],
                0.5,
            ));
            if self.use_conv_bias {
                tensors.push(next(
                    format!("{prefix}.mixer.conv1d.bias"),
                    vec![self.d_inner],
                    0.5,
                ));
            }
            tensors.push(next(
                format!("{prefix}.mixer.x_proj.weight"),
                vec![self.dt_rank + 2 * self.d_state, self.d_inner],
                0.2,
            ));
            tensors.push(next(
                format!("{prefix}.mixer.dt_proj.weight"),
                vec![self.d_inner, self.dt_rank],
                0.5,
            ));
            tensors.push(next(
                format!("{prefix}.mixer.dt_proj.bias"),
                vec![self.d_inner],
                2.0,
            ));
            // A_log = ln(1..=d_state) per channel, the Mamba initialisation, plus noise.
            let mut a_log = next(
                format!("{prefix}.mixer.A_log"),
                vec![self.d_inner, self.d_state],
                0.01,
            );
            for (i, x) in a_log.values.iter_mut().enumerate() {
                *x += ((i % self.d_state) as f32 + 1.0).ln();
            }
            tensors.push(a_log);
            let mut d = next(format!("{prefix}.mixer.D"), vec![self.d_inner], 0.1);
            d.values.iter_mut().for_each(|x| *x += 1.0);
            tensors.push(d);
            tensors.push(next(
                format!("{prefix}.mixer.out_proj.weight"),
                vec![self.d_model, self.d_inner],
                0.2,
            ));
        }
        let mut norm_f = next("backbone.norm_f.weight".into(), vec![self.d_model], 0.1);
        norm_f.values.iter_mut().for_each(|x| *x += 1.0);
        tensors.push(norm_f);
        if self.store_lm_head {
            let mut head = next(
                "lm_head.weight".into(),
                vec![self.n_vocab, self.d_model],
                1.0,
            );
            if self.lm_head_equals_embedding {
                head.values = tensors[0].values.clone();
            }
            tensors.push(head);
        }
        tensors
    }

    pub fn config_json(&self) -> Json {
        let mut config = json!({
            "architectures": ["MambaForCausalLM"],
            "model_type": "mamba",
            "_name_or_path": "tests/tiny-mamba",
            "hidden_size": self.d_model,
            "num_hidden_layers": self.n_layer,
            "intermediate_size": self.d_inner,
            "state_size": self.d_state,
            "conv_kernel": self.d_conv,
            "time_step_rank": self.dt_rank,
            "layer_norm_epsilon": 1e-5,
            "vocab_size": self.n_vocab,
            "use_bias": false,
            "use_conv_bias": self.use_conv_bias,
            "tie_word_embeddings": self.tie_word_embeddings,
            "bos_token_id": 0,
            "eos_token_id": 0,
            "pad_token_id": 1
        });
        if let (Some(target), Some(overrides)) =
            (config.as_object_mut(), self.config_overrides.as_object())
        {
            for (key, value) in overrides {
                target.insert(key.clone(), value.clone());
            }
        }
        config
    }

    /// Writes config.json, model.safetensors, tokenizer.json and tokenizer_config.json.
    pub fn write(&self, dir: &Path) {
        self.write_with(dir, &self.tensors());
    }

    /// Writes like [`TinyModel::write`], with the given tensors in place of [`TinyModel::tensors`].
    pub fn write_with(&self, dir: &Path, tensors: &[SourceTensor]) {
        self.write_side_files(dir);
        write_safetensors(&dir.join("model.safetensors"), tensors, self.dtype);
    }

    /// Writes the checkpoint as `n_shards` safetensors files plus an index.
    pub fn write_sharded(&self, dir: &Path, n_shards: usize) {
        self.write_side_files(dir);
        let tensors = self.tensors();
        let per_shard = tensors.len().div_ceil(n_shards);
        let mut weight_map = serde_json::Map::new();
        for (i, chunk) in tensors.chunks(per_shard).enumerate() {
            let file = format!("model-{:05}-of-{n_shards:05}.safetensors", i + 1);
            write_safetensors(&dir.join(&file), chunk, self.dtype);
            for tensor in chunk {
                weight_map.insert(tensor.name.clone(), json!(file));
            }
        }
        let index = json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    }

    fn write_side_files(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("config.json"), self.config_json().to_string()).unwrap();
        std::fs::write(dir.join("tokenizer.json"), tokenizer_json()).unwrap();
        let tokenizer_config = json!({
            "bos_token": "<|endoftext|>",
            "eos_token": "<|endoftext|>",
            "unk_token": "<|endoftext|>",
            "add_bos_token": false
        });
        std::fs::write(
            dir.join("tokenizer_config.json"),
            tokenizer_config.to_string(),
        )
        .unwrap();
    }
}

/// Encodes f32 values as little-endian `dtype` bytes.
pub fn encode(values: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F32 => values.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Dtype::F16 => values
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect(),
        Dtype::BF16 => values
            .iter()
            .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
            .collect(),
        other => panic!("tests do not encode {other:?}"),
    }
}

/// Decodes little-endian `dtype` bytes, as the converter reads them.
pub fn decode(bytes: &[u8], dtype: Dtype) -> Vec<f32> {
    match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => panic!("tests do not decode {other:?}"),
    }
}

pub fn write_safetensors(path: &Path, tensors: &[SourceTensor], dtype: Dtype) {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|t| encode(&t.values, dtype)).collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, data)| {
            (
                t.name.clone(),
                TensorView::new(dtype, t.shape.clone(), data).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Returns a byte-level BPE tokenizer with GPT-NeoX's special tokens at ids 0 and 1, twelve
/// vocabulary entries, merges as pairs and a non-special added token of two spaces at id 12.
pub fn tokenizer_json() -> String {
    json!({
        "version": "1.0",
        "added_tokens": [
            {"id": 0, "content": "<|endoftext|>", "special": true, "normalized": false},
            {"id": 1, "content": "<|padding|>", "special": true, "normalized": false},
            {"id": 12, "content": "  ", "special": false, "normalized": true}
        ],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE",
            "vocab": {
                "<|endoftext|>": 0, "<|padding|>": 1, "a": 2, "b": 3, "c": 4, "\u{0120}": 5,
                "ab": 6, "abc": 7, "\u{0120}a": 8, "\u{0120}ab": 9, "\u{0120}\u{0120}": 10, "ca": 11
            },
            "merges": [["a", "b"], ["ab", "c"], ["\u{0120}", "a"], ["\u{0120}a", "b"], ["\u{0120}", "\u{0120}"], ["c", "a"]]
        }
    })
    .to_string()
}

/// Collects notes for assertions.
#[derive(Default)]
pub struct Recorder {
    pub notes: Vec<String>,
    pub started: Option<usize>,
    pub done: Vec<String>,
}

impl Progress for Recorder {
    fn start(&mut self, n_tensors: usize) {
        self.started = Some(n_tensors);
    }
    fn tensor_done(&mut self, name: &str) {
        self.done.push(name.to_owned());
    }
    fn note(&mut self, message: &str) {
        self.notes.push(message.to_owned());
    }
}

/// Runs a conversion with a [`Recorder`].
pub fn run(
    input: &Path,
    output: &Path,
    target: GgmlType,
) -> (Result<Summary, ConvertError>, Recorder) {
    let mut recorder = Recorder::default();
    let options = Options {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        target,
        tokenizer: None,
    };
    let result = convert(&options, &mut recorder);
    (result, recorder)
}

/// Returns the entries of `dir`, for checking that a failed run left nothing behind.
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Decodes every element of a GGUF tensor to f32.
pub fn tensor_values(gguf: &Gguf<'_>, name: &str) -> Vec<f32> {
    let info = gguf
        .tensor(name)
        .unwrap_or_else(|| panic!("tensor {name} missing"));
    let row_len = info.dims[0] as usize;
    let row_bytes = info.dtype.row_bytes(row_len).unwrap();
    let mut out = vec![0.0; info.n_elements() as usize];
    for (row, chunk) in info
        .data
        .chunks_exact(row_bytes)
        .zip(out.chunks_exact_mut(row_len))
    {
        dequantize_row(info.dtype, row, chunk).unwrap();
    }
    out
}

pub fn meta_u32(gguf: &Gguf<'_>, key: &str) -> u32 {
    gguf.get(key)
        .and_then(|v| v.as_u32())
        .unwrap_or_else(|| panic!("{key} missing or not u32"))
}

pub fn meta_str<'a>(gguf: &Gguf<'a>, key: &str) -> &'a str {
    gguf.get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("{key} missing or not a string"))
}

pub fn meta_strings(gguf: &Gguf<'_>, key: &str) -> Vec<String> {
    let array = gguf
        .get(key)
        .and_then(|v| v.as_array())
        .unwrap_or_else(|| panic!("{key} missing or not an array"));
    array
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

pub fn meta_i32s(gguf: &Gguf<'_>, key: &str) -> Vec<i32> {
    let array = gguf
        .get(key)
        .and_then(|v| v.as_array())
        .unwrap_or_else(|| panic!("{key} missing or not an array"));
    array
        .iter()
        .map(|v| match v {
            Value::I32(x) => x,
            other => panic!("{key} element {other:?} is not i32"),
        })
        .collect()
}
