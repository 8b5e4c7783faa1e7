//! Checkpoints in the original `mamba_ssm` format of the state-spaces repositories
//! (`state-spaces/mamba-130m` and its siblings): `config.json` with the fields of
//! `mamba_ssm.models.config_mamba.MambaConfig` and the weights in `pytorch_model.bin`.
//!
//! `MambaLMHeadModel` rounds `vocab_size` up to a multiple of `pad_vocab_size_multiple`
//! (default 8) before it creates the embedding, so `state-spaces/mamba-130m` has
//! `vocab_size` 50277 and an embedding of 50280 rows. The tensor names are those of
//! `transformers` except `backbone.embedding.weight`, which [`crate::names::parse_hf_name`]
//! accepts too. `save_pretrained` writes `lm_head.weight` even when it is tied to the
//! embedding, as a second view of the same storage.
//!
//! `ssm_cfg.layer` selects the mixer: `Mamba1` (the default) or `Mamba2`, whose options
//! [`mamba2`] reads.

mod mamba2;

use std::path::{Path, PathBuf};

use mamba_core::GgmlType;
use serde_json::{Map, Value};

use crate::convert::Notes;
use crate::error::{ConvertError, Result};
use crate::params::{
    HfConfig, MambaParams, get_bool, invalid, parse_hf_config, positive_dim, read_dt_rank,
    replace_non_finite,
};
use crate::safetensors_input::{INDEX_FILE, SINGLE_FILE};
use crate::torch_input::{TORCH_FILE, TorchCheckpoint};

/// `MambaConfig.pad_vocab_size_multiple` when the config omits it.
const DEFAULT_PAD_VOCAB_SIZE_MULTIPLE: u64 = 8;
/// Epsilon of the block RMSNorms and of `norm_f`: `MixerModel` uses its default of 1e-5
/// because `MambaConfig` has no epsilon field.
const NORM_EPSILON: f32 = 1e-5;

/// Keys of a Mamba-1 `ssm_cfg` that only set the initialization or the choice of kernels,
/// so they do not change the converted model.
const SSM_INIT_KEYS: [&str; 7] = [
    "dt_min",
    "dt_max",
    "dt_init",
    "dt_scale",
    "dt_init_floor",
    "use_fast_path",
    "layer_idx",
];

/// Storage format of the weights in a checkpoint directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WeightFormat {
    /// `model.safetensors` or a sharded index.
    Safetensors,
    /// `pytorch_model.bin` written by `torch.save`.
    Torch,
}

/// Finds the weights in `dir`. safetensors files win when both formats are present.
pub(crate) fn detect_weights(dir: &Path) -> Result<WeightFormat> {
    if dir.join(SINGLE_FILE).is_file() || dir.join(INDEX_FILE).is_file() {
        Ok(WeightFormat::Safetensors)
    } else if dir.join(TORCH_FILE).is_file() {
        Ok(WeightFormat::Torch)
    } else {
        Err(ConvertError::MissingWeights {
            path: dir.to_path_buf(),
        })
    }
}

/// Reads `config.json` from `dir` in either format: the original `mamba_ssm` one when it
/// has `ssm_cfg`, or `d_model` without `hidden_size`, and the Hugging Face one otherwise.
pub fn read_config(dir: &Path) -> Result<HfConfig> {
    let path = dir.join("config.json");
    if !path.is_file() {
        return Err(ConvertError::MissingConfig { path });
    }
    let text = std::fs::read_to_string(&path).map_err(|source| ConvertError::Io {
        path: path.clone(),
        source,
    })?;
    let json: Value = serde_json::from_str(&replace_non_finite(&text)).map_err(|source| ConvertError::Json {
        path: path.clone(),
        source,
    })?;
    if is_state_spaces_config(&json) {
        parse_state_spaces_config(&path, json)
    } else {
        parse_hf_config(&path, &text)
    }
}

fn is_state_spaces_config(json: &Value) -> bool {
    json.get("ssm_cfg").is_some()
        || (json.get("d_model").is_some() && json.get("hidden_size").is_none())
}

/// Parses a `mamba_ssm` `config.json`. Returns the same [`HfConfig`] as the Hugging Face
/// parser, with the embedding's padded row count as `n_vocab`.
pub fn parse_state_spaces_config(path: &Path, json: Value) -> Result<HfConfig> {
    let Some(obj) = json.as_object() else {
        return Err(invalid(path, "(top level)", &json, "a JSON object"));
    };
    check_layout(path, obj)?;
    let empty = Map::new();
    let ssm_cfg = match obj.get("ssm_cfg") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(cfg)) => cfg,
        Some(other) => return Err(invalid(path, "ssm_cfg", other, "an object")),
    };
    let layer = read_layer(path, ssm_cfg)?;

    let d_model = require(path, obj, "d_model", "d_model is the residual stream width")?;
    let n_layer = require(
        path,
        obj,
        "n_layer",
        "n_layer is the number of Mamba blocks",
    )?;
    let vocab_size = require(
        path,
        obj,
        "vocab_size",
        "vocab_size is the tokenizer's vocabulary size before padding",
    )?;
    let pad_multiple =
        optional(path, obj, "pad_vocab_size_multiple")?.unwrap_or(DEFAULT_PAD_VOCAB_SIZE_MULTIPLE);
    let n_vocab = vocab_size.next_multiple_of(pad_multiple);

    // residual_in_fp32 and fused_add_norm only choose the residual's precision and a fused
    // kernel, so they do not change an F32 model and are not read.
    let params = match layer {
        Layer::Mamba1 => read_mamba1_params(path, ssm_cfg, d_model, n_layer, n_vocab)?,
        Layer::Mamba2 => mamba2::read_params(path, ssm_cfg, d_model, n_layer, n_vocab, NORM_EPSILON)?,
    };
    Ok(HfConfig {
        path: path.to_path_buf(),
        params,
        tie_word_embeddings: get_bool(path, obj, "tie_embeddings")?.unwrap_or(true),
        use_conv_bias: get_bool(path, ssm_cfg, "conv_bias")?.unwrap_or(true),
        name_or_path: obj
            .get("_name_or_path")
            .and_then(Value::as_str)
            .map(str::to_owned),
        json: json.clone(),
    })
}

/// Rejects the `MambaConfig` options that add blocks a GGUF Mamba model cannot hold.
fn check_layout(path: &Path, obj: &Map<String, Value>) -> Result<()> {
    let unsupported = |key: &str, value: String, reason: &'static str| ConvertError::UnsupportedOption {
        path: path.to_path_buf(),
        key: key.to_owned(),
        value,
        reason,
    };
    let d_intermediate = optional_zero(path, obj, "d_intermediate")?;
    if d_intermediate != 0 {
        return Err(unsupported(
            "d_intermediate",
            d_intermediate.to_string(),
            "it adds MLP blocks, which GGUF Mamba models do not have; only 0 converts",
        ));
    }
    match obj.get("attn_layer_idx") {
        None | Some(Value::Null) => {}
        Some(Value::Array(layers)) if layers.is_empty() => {}
        Some(other) => {
            return Err(unsupported(
                "attn_layer_idx",
                other.to_string(),
                "it adds attention layers (a hybrid model), which GGUF Mamba models do not have; only an empty list converts",
            ));
        }
    }
    if get_bool(path, obj, "rms_norm")? == Some(false) {
        return Err(unsupported(
            "rms_norm",
            "false".to_owned(),
            "it selects LayerNorm, and GGUF Mamba models use RMSNorm; only true converts",
        ));
    }
    Ok(())
}

/// Mixer layer of a `mamba_ssm` model (`ssm_cfg.layer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layer {
    /// `mamba_ssm.modules.mamba_simple.Mamba`, the default.
    Mamba1,
    /// `mamba_ssm.modules.mamba2.Mamba2`.
    Mamba2,
}

fn read_layer(path: &Path, ssm_cfg: &Map<String, Value>) -> Result<Layer> {
    match ssm_cfg.get("layer") {
        None | Some(Value::Null) => Ok(Layer::Mamba1),
        Some(Value::String(layer)) if layer == "Mamba1" => Ok(Layer::Mamba1),
        Some(Value::String(layer)) if layer == "Mamba2" => Ok(Layer::Mamba2),
        Some(other) => Err(ConvertError::UnsupportedArchitecture {
            path: path.to_path_buf(),
            found: format!("{other} (ssm_cfg.layer; mamba_ssm layers Mamba1 and Mamba2 convert)"),
        }),
    }
}

/// Reads the dimensions of a Mamba-1 model from `ssm_cfg`.
fn read_mamba1_params(
    path: &Path,
    ssm_cfg: &Map<String, Value>,
    d_model: u64,
    n_layer: u64,
    n_vocab: u64,
) -> Result<MambaParams> {
    check_mamba1_ssm_cfg(path, ssm_cfg)?;
    Ok(MambaParams::mamba1(
        d_model,
        n_layer,
        read_d_inner(path, ssm_cfg, d_model)?,
        optional(path, ssm_cfg, "d_state")?.unwrap_or(16),
        optional(path, ssm_cfg, "d_conv")?.unwrap_or(4),
        read_dt_rank(path, ssm_cfg, d_model)?,
        n_vocab,
        NORM_EPSILON,
    ))
}

/// Checks a Mamba-1 `ssm_cfg` for a projection bias and for keys `mamba_ssm.Mamba` does
/// not take.
fn check_mamba1_ssm_cfg(path: &Path, ssm_cfg: &Map<String, Value>) -> Result<()> {
    if get_bool(path, ssm_cfg, "bias")? == Some(true) {
        return Err(ConvertError::ProjectionBias {
            path: path.to_path_buf(),
        });
    }
    const MODEL_KEYS: [&str; 7] = [
        "layer",
        "d_state",
        "d_conv",
        "expand",
        "dt_rank",
        "conv_bias",
        "bias",
    ];
    for key in ssm_cfg.keys() {
        if !MODEL_KEYS.contains(&key.as_str()) && !SSM_INIT_KEYS.contains(&key.as_str()) {
            return Err(ConvertError::InvalidValue {
                path: path.to_path_buf(),
                key: format!("ssm_cfg.{key}"),
                value: ssm_cfg[key].to_string(),
                expected: format!(
                    "no such key: mamba_ssm's Mamba layer takes only {} and {}",
                    MODEL_KEYS.join(", "),
                    SSM_INIT_KEYS.join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// Computes d_inner = int(expand * d_model) as `mamba_ssm.Mamba` does; `expand` may be a
/// fraction.
fn read_d_inner(path: &Path, ssm_cfg: &Map<String, Value>, d_model: u64) -> Result<u64> {
    let Some(value) = ssm_cfg.get("expand").filter(|v| !v.is_null()) else {
        return Ok(2 * d_model);
    };
    let d_inner = value
        .as_f64()
        .filter(|expand| expand.is_finite() && *expand > 0.0)
        .map(|expand| (expand * d_model as f64).floor())
        .filter(|d_inner| *d_inner >= 1.0 && *d_inner <= f64::from(u32::MAX));
    match d_inner {
        Some(d_inner) => Ok(d_inner as u64),
        None => Err(invalid(
            path,
            "ssm_cfg.expand",
            value,
            "a positive number that makes expand * d_model at least 1",
        )),
    }
}

fn require(path: &Path, obj: &Map<String, Value>, key: &str, hint: &'static str) -> Result<u64> {
    optional(path, obj, key)?.ok_or_else(|| ConvertError::MissingKey {
        path: path.to_path_buf(),
        key: key.to_owned(),
        hint,
    })
}

fn optional(path: &Path, obj: &Map<String, Value>, key: &str) -> Result<Option<u64>> {
    match obj.get(key).filter(|v| !v.is_null()) {
        Some(value) => positive_dim(path, key, value).map(Some),
        None => Ok(None),
    }
}

/// Reads a count that may be 0, such as `d_intermediate`.
fn optional_zero(path: &Path, obj: &Map<String, Value>, key: &str) -> Result<u64> {
    match obj.get(key).filter(|v| !v.is_null()) {
        None => Ok(0),
        Some(value) => value
            .as_u64()
            .ok_or_else(|| invalid(path, key, value, "a non-negative integer")),
    }
}

/// Converts a checkpoint whose weights are in `pytorch_model.bin`. The tokenizer is
/// `tokenizer`, or `tokenizer.json` in `dir` when that exists.
pub(crate) fn convert_torch(
    dir: &Path,
    output: &Path,
    target: GgmlType,
    tokenizer: Option<&Path>,
    notes: &mut Notes<'_>,
) -> Result<(usize, u64, u64)> {
    let config = read_config(dir)?;
    let tokenizer = tokenizer_path(dir, tokenizer)?;
    note_missing_special_ids(&config, &tokenizer, notes);
    let checkpoint = TorchCheckpoint::open(&dir.join(TORCH_FILE))?;
    let stored = checkpoint.tensors()?;
    crate::hf::convert_tensors(dir, &config, &stored, &tokenizer, output, target, notes)
}

/// Notes that the output will record no BOS or EOS id when neither `config.json` nor a
/// `tokenizer_config.json` next to the tokenizer names them, which is the case for a
/// state-spaces checkpoint with only a `tokenizer.json` passed. Without an EOS id,
/// generation does not stop at the end of a text.
fn note_missing_special_ids(config: &HfConfig, tokenizer: &Path, notes: &mut Notes<'_>) {
    let in_config = ["bos_token_id", "eos_token_id"]
        .iter()
        .any(|key| config.json.get(key).is_some_and(|id| !id.is_null()));
    let tokenizer_config = tokenizer.with_file_name("tokenizer_config.json");
    if !in_config && !tokenizer_config.is_file() {
        notes.note(format!(
            "{} does not exist and {} names no bos_token_id or eos_token_id, so the GGUF file \
             records no BOS or EOS token; copy the tokenizer's tokenizer_config.json next to \
             the tokenizer file (GPT-NeoX-20B's has <|endoftext|>, id 0, for both)",
            tokenizer_config.display(),
            config.path.display()
        ));
    }
}

/// Returns the tokenizer file to embed: the one passed, else `tokenizer.json` in `dir`.
/// state-spaces checkpoints ship without one, so the error explains how to pass it.
fn tokenizer_path(dir: &Path, tokenizer: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = tokenizer {
        return Ok(path.to_path_buf());
    }
    let in_dir = dir.join("tokenizer.json");
    if in_dir.is_file() {
        return Ok(in_dir);
    }
    Err(ConvertError::TokenizerNotGiven {
        dir: dir.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HfConfig> {
        parse_state_spaces_config(
            Path::new("config.json"),
            serde_json::from_str(text).unwrap(),
        )
    }

    /// `config.json` of state-spaces/mamba-130m.
    const MAMBA_130M: &str = r#"{"d_model": 768, "n_layer": 24, "vocab_size": 50277,
        "ssm_cfg": {}, "rms_norm": true, "residual_in_fp32": true, "fused_add_norm": true,
        "pad_vocab_size_multiple": 8}"#;

    #[test]
    fn mamba_130m_config() {
        let config = parse(MAMBA_130M).unwrap();
        let p = &config.params;
        assert_eq!((p.d_model, p.n_layer, p.d_inner), (768, 24, 1536));
        assert_eq!((p.d_state, p.d_conv, p.dt_rank), (16, 4, 48));
        assert_eq!(p.n_vocab, 50280, "50277 padded to a multiple of 8");
        assert_eq!(p.rms_norm_eps, 1e-5);
        assert!(config.tie_word_embeddings);
        assert!(config.use_conv_bias);
    }

    #[test]
    fn ssm_cfg_sets_dimensions() {
        let config = parse(
            r#"{"d_model": 40, "n_layer": 2, "vocab_size": 100, "pad_vocab_size_multiple": 16,
                "tie_embeddings": false,
                "ssm_cfg": {"layer": "Mamba1", "d_state": 8, "d_conv": 3, "expand": 1.5,
                            "dt_rank": "auto", "conv_bias": false, "dt_min": 0.001}}"#,
        )
        .unwrap();
        let p = &config.params;
        assert_eq!(p.d_inner, 60, "int(1.5 * 40)");
        assert_eq!((p.d_state, p.d_conv, p.dt_rank), (8, 3, 3));
        assert_eq!(p.n_vocab, 112, "100 padded to a multiple of 16");
        assert!(!config.tie_word_embeddings);
        assert!(!config.use_conv_bias);
    }

    #[test]
    fn vocab_already_a_multiple_is_kept() {
        let config = parse(r#"{"d_model": 8, "n_layer": 1, "vocab_size": 64}"#).unwrap();
        assert_eq!(config.params.n_vocab, 64);
    }

    #[test]
    fn rejects_other_layouts() {
        for (extra, expected) in [
            (r#""ssm_cfg": {"layer": "Mamba3"}"#, "Mamba3"),
            (r#""d_intermediate": 128"#, "d_intermediate"),
            (r#""attn_layer_idx": [1]"#, "attn_layer_idx"),
            (r#""rms_norm": false"#, "LayerNorm"),
            (r#""ssm_cfg": {"bias": true}"#, "use_bias"),
            (r#""ssm_cfg": {"headdim": 64}"#, "ssm_cfg.headdim"),
            (r#""pad_vocab_size_multiple": 0"#, "pad_vocab_size_multiple"),
            (r#""ssm_cfg": {"expand": -1}"#, "ssm_cfg.expand"),
        ] {
            let text = format!(r#"{{"d_model": 8, "n_layer": 1, "vocab_size": 8, {extra}}}"#);
            let message = parse(&text).unwrap_err().to_string();
            assert!(message.contains(expected), "{extra}: {message}");
        }
    }

    /// A 130M-sized Mamba-2 config in the layout that `MambaConfig` writes, with every
    /// `Mamba2` option at its default.
    const MAMBA2_130M: &str = r#"{"d_model": 768, "d_intermediate": 0, "n_layer": 24,
        "vocab_size": 50277, "ssm_cfg": {"layer": "Mamba2"}, "attn_layer_idx": [],
        "attn_cfg": {}, "rms_norm": true, "residual_in_fp32": true, "fused_add_norm": true,
        "pad_vocab_size_multiple": 16, "tie_embeddings": true}"#;

    #[test]
    fn mamba2_defaults() {
        let config = parse(MAMBA2_130M).unwrap();
        let p = &config.params;
        assert_eq!(p.family, crate::params::Family::Mamba2);
        assert_eq!((p.d_model, p.n_layer, p.d_inner), (768, 24, 1536));
        assert_eq!((p.d_state, p.d_conv), (128, 4));
        assert_eq!(p.dt_rank, 24, "1536 / headdim 64 heads");
        assert_eq!(p.n_group, 1);
        assert_eq!(p.n_vocab, 50288, "50277 padded to a multiple of 16");
        assert_eq!((p.rms_norm_eps, p.mixer_rms_eps), (1e-5, 1e-5));
        assert_eq!(p.time_step_limit, (0.0, f32::INFINITY));
        assert!(config.tie_word_embeddings);
        assert!(config.use_conv_bias);
    }

    #[test]
    fn mamba2_ssm_cfg_sets_dimensions() {
        let config = parse(
            r#"{"d_model": 32, "n_layer": 2, "vocab_size": 250, "pad_vocab_size_multiple": 8,
                "ssm_cfg": {"layer": "Mamba2", "d_state": 16, "d_conv": 3, "expand": 3,
                            "headdim": 16, "ngroups": 2, "d_ssm": 96, "chunk_size": 8,
                            "dt_limit": [0.001, null], "conv_bias": false,
                            "rmsnorm": true, "norm_before_gate": false, "D_has_hdim": false,
                            "A_init_range": [1, 16], "dt_min": 0.001, "use_mem_eff_path": true}}"#,
        )
        .unwrap();
        let p = &config.params;
        assert_eq!(p.d_inner, 96, "3 * 32");
        assert_eq!((p.d_state, p.d_conv, p.dt_rank, p.n_group), (16, 3, 6, 2));
        assert_eq!(p.n_vocab, 256);
        assert_eq!(p.time_step_limit, (0.001, f32::INFINITY));
        assert!(!config.use_conv_bias);
    }

    #[test]
    fn mamba2_rejects_unsupported_options() {
        for (extra, expected) in [
            (r#""norm_before_gate": true"#, "norm_before_gate"),
            (r#""rmsnorm": false"#, "rmsnorm"),
            (r#""D_has_hdim": true"#, "D_has_hdim"),
            (r#""d_ssm": 64"#, "ssm_cfg.d_ssm"),
            (r#""bias": true"#, "use_bias"),
            (r#""headdim": 24"#, "ssm_cfg.headdim"),
            (r#""headdim": 16, "ngroups": 3"#, "ssm_cfg.ngroups"),
            (r#""expand": 1.5"#, "ssm_cfg.expand"),
            (r#""dt_limit": [0.1, 0.01]"#, "dt_limit"),
            (r#""chunk_size": 0"#, "ssm_cfg.chunk_size"),
            (r#""dt_rank": 4"#, "ssm_cfg.dt_rank"),
        ] {
            let text = format!(
                r#"{{"d_model": 64, "n_layer": 1, "vocab_size": 8,
                    "ssm_cfg": {{"layer": "Mamba2", {extra}}}}}"#
            );
            let message = parse(&text).unwrap_err().to_string();
            assert!(message.contains(expected), "{extra}: {message}");
        }
    }

    #[test]
    fn mamba2_default_headdim_must_divide() {
        let message = parse(
            r#"{"d_model": 40, "n_layer": 1, "vocab_size": 8, "ssm_cfg": {"layer": "Mamba2"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(message.contains("ssm_cfg.headdim is 64"), "{message}");
        assert!(message.contains("expand * d_model = 80"), "{message}");
    }

    #[test]
    fn mamba2_unsupported_option_says_what_converts() {
        let message = parse(
            r#"{"d_model": 64, "n_layer": 1, "vocab_size": 8,
                "ssm_cfg": {"layer": "Mamba2", "norm_before_gate": true}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(message.contains("only norm_before_gate = false converts"), "{message}");
    }

    #[test]
    fn missing_key_is_named() {
        let message = parse(r#"{"d_model": 8, "vocab_size": 8}"#)
            .unwrap_err()
            .to_string();
        assert!(message.contains("n_layer"), "{message}");
    }

    #[test]
    fn detects_config_style() {
        assert!(is_state_spaces_config(&serde_json::json!({"d_model": 8})));
        assert!(is_state_spaces_config(&serde_json::json!({"ssm_cfg": {}})));
        assert!(!is_state_spaces_config(
            &serde_json::json!({"hidden_size": 8})
        ));
    }
}
