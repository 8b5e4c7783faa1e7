//! Mamba-1, Falcon-Mamba and Mamba-2 model dimensions, read from a Hugging Face `config.json`.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{ConvertError, Result};

/// Architectures that `config.json` may name for a Mamba-1 model. `MambaLMHeadModel` is the
/// class name in the original `mamba_ssm` package; llama.cpp's converter accepts both.
const MAMBA1_ARCHITECTURES: [&str; 2] = ["MambaForCausalLM", "MambaLMHeadModel"];
/// Class name of Falcon-Mamba checkpoints in `transformers`.
const FALCON_MAMBA_ARCHITECTURE: &str = "FalconMambaForCausalLM";
/// Class name of Mamba-2 checkpoints in `transformers`.
const MAMBA2_ARCHITECTURE: &str = "Mamba2ForCausalLM";

/// RMSNorm epsilon when the config omits it, as in `transformers.MambaConfig` and
/// llama.cpp's converter.
const DEFAULT_RMS_NORM_EPS: f64 = 1e-5;

/// The model family, which fixes the layer's tensors and the GGUF architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Mamba-1 (`MambaForCausalLM`), GGUF architecture `mamba`.
    Mamba,
    /// Falcon-Mamba (`FalconMambaForCausalLM`): Mamba-1 tensors, GGUF architecture `mamba`
    /// with `mamba.ssm.dt_b_c_rms` true.
    FalconMamba,
    /// Mamba-2 (`Mamba2ForCausalLM`), GGUF architecture `mamba2`.
    Mamba2,
}

impl Family {
    /// Returns the GGUF architecture name.
    pub fn gguf_arch(self) -> &'static str {
        match self {
            Family::Mamba | Family::FalconMamba => mamba_core::config::ARCH_MAMBA,
            Family::Mamba2 => mamba_core::config::ARCH_MAMBA2,
        }
    }
}

/// The dimensions that fix every tensor shape of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct MambaParams {
    /// Model family.
    pub family: Family,
    /// Residual stream width (`hidden_size`).
    pub d_model: u64,
    /// Number of Mamba blocks (`num_hidden_layers`).
    pub n_layer: u64,
    /// Width of the expanded SSM stream (`intermediate_size`).
    pub d_inner: u64,
    /// SSM state size per channel (`state_size`).
    pub d_state: u64,
    /// Depthwise convolution width (`conv_kernel`).
    pub d_conv: u64,
    /// Rank of the dt projection (`time_step_rank`); for Mamba-2 the number of heads, as
    /// llama.cpp stores it in `ssm.time_step_rank`.
    pub dt_rank: u64,
    /// Rows of the token embedding (`vocab_size`).
    pub n_vocab: u64,
    /// Epsilon of every RMSNorm (`layer_norm_epsilon`).
    pub rms_norm_eps: f32,
    /// Mamba-2 `n_groups`; 1 for the other families.
    pub n_group: u64,
    /// Falcon-Mamba `mixer_rms_eps`, the epsilon of the dt, B and C normalisation.
    pub mixer_rms_eps: f32,
    /// Mamba-2 `time_step_limit`: bounds of dt after softplus.
    pub time_step_limit: (f32, f32),
}

impl MambaParams {
    /// Returns the dimensions of a Mamba-1 model with the other families' fields at their
    /// neutral values.
    #[allow(clippy::too_many_arguments)]
    pub fn mamba1(d_model: u64, n_layer: u64, d_inner: u64, d_state: u64, d_conv: u64, dt_rank: u64, n_vocab: u64, rms_norm_eps: f32) -> Self {
        Self {
            family: Family::Mamba,
            d_model,
            n_layer,
            d_inner,
            d_state,
            d_conv,
            dt_rank,
            n_vocab,
            rms_norm_eps,
            n_group: 1,
            mixer_rms_eps: rms_norm_eps,
            time_step_limit: (0.0, f32::INFINITY),
        }
    }

    /// Mamba-2: channels of the conv, `d_inner + 2 * n_group * d_state`.
    pub fn conv_dim(&self) -> u64 {
        match self.family {
            Family::Mamba2 => self.d_inner + 2 * self.n_group * self.d_state,
            Family::Mamba | Family::FalconMamba => self.d_inner,
        }
    }

    /// Rows of in_proj.
    pub fn in_proj_rows(&self) -> u64 {
        match self.family {
            Family::Mamba2 => self.d_inner + self.conv_dim() + self.dt_rank,
            Family::Mamba | Family::FalconMamba => 2 * self.d_inner,
        }
    }
}

/// The parts of a Hugging Face `config.json` that the converter uses.
#[derive(Clone, Debug)]
pub struct HfConfig {
    /// Path of the file, for messages.
    pub path: PathBuf,
    /// Model dimensions.
    pub params: MambaParams,
    /// Whether the LM head shares the embedding matrix (`tie_word_embeddings`, default true).
    pub tie_word_embeddings: bool,
    /// Whether the depthwise convolution has a bias (`use_conv_bias`, default true).
    pub use_conv_bias: bool,
    /// `_name_or_path`, when present.
    pub name_or_path: Option<String>,
    /// The whole parsed file, for special token ids.
    pub json: Value,
}

/// Reads and validates `config.json` from `dir`.
pub fn read_hf_config(dir: &Path) -> Result<HfConfig> {
    let path = dir.join("config.json");
    if !path.is_file() {
        return Err(ConvertError::MissingConfig { path });
    }
    let text = std::fs::read_to_string(&path).map_err(|source| ConvertError::Io {
        path: path.clone(),
        source,
    })?;
    parse_hf_config(&path, &text)
}

/// Parses `config.json` text. `path` is used in messages only.
pub fn parse_hf_config(path: &Path, text: &str) -> Result<HfConfig> {
    let text = replace_non_finite(text);
    let json: Value = serde_json::from_str(&text).map_err(|source| ConvertError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let Some(obj) = json.as_object() else {
        return Err(invalid(path, "(top level)", &json, "a JSON object"));
    };
    let family = check_architecture(path, obj)?;

    if get_bool(path, obj, "use_bias")?.unwrap_or(false) {
        return Err(ConvertError::ProjectionBias {
            path: path.to_path_buf(),
        });
    }

    // Key alternatives follow llama.cpp's converter: HF names first, then the names of
    // the original mamba_ssm config.
    let d_model = require_dim(
        path,
        obj,
        &["hidden_size", "d_model"],
        "hidden_size is d_model, the residual stream width",
    )?;
    let n_layer = require_dim(
        path,
        obj,
        &["num_hidden_layers", "n_layer", "n_layers", "num_layers"],
        "num_hidden_layers is the number of Mamba blocks",
    )?;
    let d_inner = match get_dim(path, obj, &["intermediate_size", "d_inner"])? {
        Some(d_inner) => d_inner,
        None => {
            let expand = get_dim(path, obj, &["expand"])?.unwrap_or(2);
            checked_mul(path, "expand * hidden_size", expand, d_model)?
        }
    };
    let default_d_state = if family == Family::Mamba2 { 128 } else { 16 };
    let d_state = get_dim(path, obj, &["state_size", "d_state"])?.unwrap_or(default_d_state);
    let d_conv = get_dim(path, obj, &["conv_kernel", "d_conv"])?.unwrap_or(4);
    let (dt_rank, n_group) = match family {
        Family::Mamba2 => read_heads(path, obj, d_inner)?,
        Family::Mamba | Family::FalconMamba => (read_dt_rank(path, obj, d_model)?, 1),
    };
    // The products below stay far from u64 overflow: every dimension is at most 2^31.
    if family == Family::Mamba2 {
        checked_mul(path, "2 * n_groups * state_size", 2 * n_group, d_state)?;
    }
    let n_vocab = require_dim(
        path,
        obj,
        &["vocab_size"],
        "vocab_size is the number of rows of the token embedding",
    )?;
    let rms_norm_eps = read_rms_norm_eps(path, obj)?;
    let mixer_rms_eps = match family {
        // transformers' FalconMambaConfig default.
        Family::FalconMamba => read_eps(path, obj, &["mixer_rms_eps"])?.unwrap_or(1e-6),
        Family::Mamba | Family::Mamba2 => rms_norm_eps,
    };
    let time_step_limit = read_time_step_limit(path, obj, "time_step_limit")?;

    let params = MambaParams {
        family,
        d_model,
        n_layer,
        d_inner,
        d_state,
        d_conv,
        dt_rank,
        n_vocab,
        rms_norm_eps,
        n_group,
        mixer_rms_eps,
        time_step_limit,
    };
    Ok(HfConfig {
        path: path.to_path_buf(),
        params,
        tie_word_embeddings: get_bool(path, obj, "tie_word_embeddings")?.unwrap_or(true),
        use_conv_bias: get_bool(path, obj, "use_conv_bias")?.unwrap_or(true),
        name_or_path: obj
            .get("_name_or_path")
            .and_then(Value::as_str)
            .map(str::to_owned),
        json: json.clone(),
    })
}

/// Replaces the bare tokens `Infinity`, `-Infinity` and `NaN` outside strings with the
/// `{"__float__": "..."}` objects that transformers 5 writes for them. Python's `json` module
/// writes the bare tokens for non-finite floats (transformers writes Mamba-2's default
/// `time_step_limit` as `[0.0, Infinity]`), but they are not JSON. Readers that accept a
/// non-finite value decode the object. Every other reader rejects it as not a number, so a
/// `NaN` is never read as a missing key.
pub(crate) fn replace_non_finite(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("Infinity") && !text.contains("NaN") {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(ch) = rest.chars().next() {
        if in_string {
            match ch {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if ch == '"' {
            in_string = true;
        } else if let Some(token) = ["-Infinity", "Infinity", "NaN"].into_iter().find(|t| rest.starts_with(t)) {
            out.push_str(r#"{"__float__": ""#);
            out.push_str(token);
            out.push_str(r#""}"#);
            rest = &rest[token.len()..];
            continue;
        }
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    std::borrow::Cow::Owned(out)
}

/// Returns the family the config names, and rejects everything else by name.
fn check_architecture(path: &Path, obj: &Map<String, Value>) -> Result<Family> {
    let model_type = obj.get("model_type").and_then(Value::as_str);
    let names: Vec<&str> = match obj.get("architectures") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(other) => {
            return Err(invalid(
                path,
                "architectures",
                other,
                "a list of class names",
            ));
        }
    };

    // A config that names MambaForCausalLM but sets model_type falcon_mamba is still
    // Falcon-Mamba, as llama.cpp's converter decides by model_type.
    if model_type == Some("falcon_mamba") || names.contains(&FALCON_MAMBA_ARCHITECTURE) {
        return Ok(Family::FalconMamba);
    }
    if model_type == Some("mamba2") || names.contains(&MAMBA2_ARCHITECTURE) {
        return Ok(Family::Mamba2);
    }
    if names.iter().any(|name| MAMBA1_ARCHITECTURES.contains(name)) {
        return Ok(Family::Mamba);
    }
    if names.is_empty() {
        // The original mamba_ssm config.json has no architectures list but an ssm_cfg.
        let ssm_layer = obj
            .get("ssm_cfg")
            .map(|cfg| cfg.get("layer").and_then(Value::as_str).unwrap_or("Mamba"));
        if model_type == Some("mamba") || ssm_layer == Some("Mamba") {
            return Ok(Family::Mamba);
        }
        let found = match (model_type, ssm_layer) {
            (_, Some(layer)) => format!("{layer} (ssm_cfg.layer)"),
            (Some(model_type), None) => {
                format!("model_type {model_type} with no architectures list")
            }
            (None, None) => "(none: no architectures or model_type key)".to_owned(),
        };
        return Err(ConvertError::UnsupportedArchitecture {
            path: path.to_path_buf(),
            found,
        });
    }
    Err(ConvertError::UnsupportedArchitecture {
        path: path.to_path_buf(),
        found: names.join(", "),
    })
}

/// Reads Mamba-2's head layout: returns (number of heads, `n_groups`). The heads split
/// `d_inner` into `head_dim` channels each, and `n_groups` must divide the heads.
fn read_heads(path: &Path, obj: &Map<String, Value>, d_inner: u64) -> Result<(u64, u64)> {
    let head_dim = get_dim(path, obj, &["head_dim"])?.unwrap_or(64);
    if !d_inner.is_multiple_of(head_dim) {
        return Err(ConvertError::InvalidValue {
            path: path.to_path_buf(),
            key: "head_dim".to_owned(),
            value: head_dim.to_string(),
            expected: format!("a divisor of the inner size expand * hidden_size = {d_inner}"),
        });
    }
    let n_head = d_inner / head_dim;
    if let Some(num_heads) = get_dim(path, obj, &["num_heads"])?
        && num_heads != n_head
    {
        return Err(ConvertError::InvalidValue {
            path: path.to_path_buf(),
            key: "num_heads".to_owned(),
            value: num_heads.to_string(),
            expected: format!("expand * hidden_size / head_dim = {n_head}"),
        });
    }
    let n_group = get_dim(path, obj, &["n_groups"])?.unwrap_or(1);
    if !n_head.is_multiple_of(n_group) {
        return Err(ConvertError::InvalidValue {
            path: path.to_path_buf(),
            key: "n_groups".to_owned(),
            value: n_group.to_string(),
            expected: format!("a divisor of the number of heads, {n_head}"),
        });
    }
    Ok((n_head, n_group))
}

/// Reads Mamba-2's `time_step_limit` (mamba_ssm's `dt_limit`) from `key`, a pair
/// `[min, max]` (default `[0, inf]`). JSON has no infinity: transformers 5 writes it as
/// `{"__float__": "Infinity"}`, older versions and Python's `json` module as the bare token
/// `Infinity`, which [`replace_non_finite`] turns into that object. An infinite or null upper
/// bound means no bound.
pub(crate) fn read_time_step_limit(path: &Path, obj: &Map<String, Value>, key: &str) -> Result<(f32, f32)> {
    let Some(value) = obj.get(key).filter(|v| !v.is_null()) else {
        return Ok((0.0, f32::INFINITY));
    };
    let bad = || invalid(path, key, value, "a pair [min, max] with 0 <= min <= max");
    let items = value.as_array().filter(|items| items.len() == 2).ok_or_else(bad)?;
    let min = json_float(&items[0]).filter(|v| v.is_finite() && *v >= 0.0).ok_or_else(bad)?;
    let max = match &items[1] {
        Value::Null => f64::INFINITY,
        other => json_float(other).filter(|v| !v.is_nan() && *v >= min).ok_or_else(bad)?,
    };
    Ok((min as f32, max as f32))
}

/// Returns a JSON number, or a float that transformers wrote as `{"__float__": "Infinity"}`
/// (also `-Infinity` and `NaN`).
fn json_float(value: &Value) -> Option<f64> {
    if let Some(number) = value.as_f64() {
        return Some(number);
    }
    let text = value.as_object().filter(|obj| obj.len() == 1)?.get("__float__")?.as_str()?;
    match text {
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => None,
    }
}

/// Reads `time_step_rank`, which is an integer or `"auto"` for ceil(d_model / 16).
pub(crate) fn read_dt_rank(path: &Path, obj: &Map<String, Value>, d_model: u64) -> Result<u64> {
    for key in ["time_step_rank", "dt_rank"] {
        match obj.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(text)) if text == "auto" => return Ok(d_model.div_ceil(16)),
            Some(value) => return positive_dim(path, key, value),
        }
    }
    Ok(d_model.div_ceil(16))
}

fn read_rms_norm_eps(path: &Path, obj: &Map<String, Value>) -> Result<f32> {
    Ok(read_eps(path, obj, &["layer_norm_epsilon", "rms_norm_eps"])?.unwrap_or(DEFAULT_RMS_NORM_EPS as f32))
}

/// Returns the first of `keys` that is present, as an epsilon between 0 and 1.
fn read_eps(path: &Path, obj: &Map<String, Value>, keys: &[&str]) -> Result<Option<f32>> {
    for &key in keys {
        let Some(value) = obj.get(key).filter(|v| !v.is_null()) else {
            continue;
        };
        let eps = value
            .as_f64()
            .filter(|eps| eps.is_finite() && *eps > 0.0 && *eps < 1.0);
        return match eps {
            Some(eps) => Ok(Some(eps as f32)),
            None => Err(invalid(
                path,
                key,
                value,
                "a number between 0 and 1, for example 1e-5",
            )),
        };
    }
    Ok(None)
}

fn require_dim(
    path: &Path,
    obj: &Map<String, Value>,
    keys: &[&str],
    hint: &'static str,
) -> Result<u64> {
    get_dim(path, obj, keys)?.ok_or_else(|| ConvertError::MissingKey {
        path: path.to_path_buf(),
        key: keys.join(" or "),
        hint,
    })
}

/// Returns the first of `keys` that is present, as a positive integer.
fn get_dim(path: &Path, obj: &Map<String, Value>, keys: &[&str]) -> Result<Option<u64>> {
    for key in keys {
        if let Some(value) = obj.get(*key).filter(|v| !v.is_null()) {
            return positive_dim(path, key, value).map(Some);
        }
    }
    Ok(None)
}

/// Largest accepted dimension. Larger values are surely corrupt, and the cap keeps every
/// product of two dimensions far from u64 overflow.
const MAX_DIM: u64 = 1 << 31;

pub(crate) fn positive_dim(path: &Path, key: &str, value: &Value) -> Result<u64> {
    match value.as_u64() {
        Some(dim) if dim > 0 && dim <= MAX_DIM => Ok(dim),
        _ => Err(invalid(
            path,
            key,
            value,
            &format!("a positive integer up to {MAX_DIM}"),
        )),
    }
}

pub(crate) fn get_bool(path: &Path, obj: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(other) => Err(invalid(path, key, other, "true or false")),
    }
}

pub(crate) fn checked_mul(path: &Path, what: &str, a: u64, b: u64) -> Result<u64> {
    a.checked_mul(b)
        .filter(|product| *product <= MAX_DIM)
        .ok_or_else(|| ConvertError::InvalidValue {
            path: path.to_path_buf(),
            key: what.to_owned(),
            value: format!("{a} * {b}"),
            expected: format!("a product up to {MAX_DIM}"),
        })
}

pub(crate) fn invalid(path: &Path, key: &str, value: &Value, expected: &str) -> ConvertError {
    ConvertError::InvalidValue {
        path: path.to_path_buf(),
        key: key.to_owned(),
        value: value.to_string(),
        expected: expected.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HfConfig> {
        parse_hf_config(Path::new("config.json"), text)
    }

    const MAMBA_130M: &str = r#"{
        "architectures": ["MambaForCausalLM"], "model_type": "mamba",
        "hidden_size": 768, "num_hidden_layers": 24, "intermediate_size": 1536,
        "state_size": 16, "conv_kernel": 4, "time_step_rank": 48,
        "layer_norm_epsilon": 1e-5, "vocab_size": 50280, "use_bias": false,
        "use_conv_bias": true, "tie_word_embeddings": true,
        "_name_or_path": "state-spaces/mamba-130m-hf"
    }"#;

    #[test]
    fn mamba_130m_config() {
        let config = parse(MAMBA_130M).unwrap();
        let p = &config.params;
        assert_eq!((p.d_model, p.n_layer, p.d_inner), (768, 24, 1536));
        assert_eq!(
            (p.d_state, p.d_conv, p.dt_rank, p.n_vocab),
            (16, 4, 48, 50280)
        );
        assert_eq!(p.rms_norm_eps, 1e-5);
        assert!(config.tie_word_embeddings);
        assert!(config.use_conv_bias);
        assert_eq!(
            config.name_or_path.as_deref(),
            Some("state-spaces/mamba-130m-hf")
        );
    }

    #[test]
    fn defaults_and_auto_rank() {
        let config = parse(
            r#"{"architectures": ["MambaForCausalLM"], "hidden_size": 40,
                "num_hidden_layers": 2, "vocab_size": 64, "time_step_rank": "auto"}"#,
        )
        .unwrap();
        let p = &config.params;
        assert_eq!(
            p.d_inner, 80,
            "d_inner defaults to expand (2) * hidden_size"
        );
        assert_eq!(p.dt_rank, 3, "auto rank is ceil(40 / 16)");
        assert_eq!((p.d_state, p.d_conv), (16, 4));
        assert_eq!(p.rms_norm_eps, 1e-5);
        assert!(config.tie_word_embeddings);
    }

    #[test]
    fn expand_sets_d_inner() {
        let config = parse(
            r#"{"architectures": ["MambaForCausalLM"], "hidden_size": 32, "expand": 3,
                "num_hidden_layers": 1, "vocab_size": 8}"#,
        )
        .unwrap();
        assert_eq!(config.params.d_inner, 96);
    }

    #[test]
    fn original_mamba_ssm_config() {
        let config =
            parse(r#"{"d_model": 768, "n_layer": 24, "vocab_size": 50277, "ssm_cfg": {}}"#)
                .unwrap();
        assert_eq!(config.params.d_model, 768);
        assert_eq!(config.params.n_layer, 24);
    }

    #[test]
    fn rejects_other_architectures() {
        for (arch, expected) in [("LlamaForCausalLM", "LlamaForCausalLM"), ("JambaForCausalLM", "JambaForCausalLM")] {
            let text = format!(
                r#"{{"architectures": ["{arch}"], "hidden_size": 8, "num_hidden_layers": 1, "vocab_size": 8}}"#
            );
            let message = parse(&text).unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
            assert!(message.contains("not supported yet"), "{message}");
        }
    }

    #[test]
    fn falcon_model_type_is_falcon_mamba() {
        let text = r#"{"architectures": ["MambaForCausalLM"], "model_type": "falcon_mamba",
                       "hidden_size": 8, "num_hidden_layers": 1, "vocab_size": 8}"#;
        let p = parse(text).unwrap().params;
        assert_eq!(p.family, Family::FalconMamba);
        assert_eq!(p.mixer_rms_eps, 1e-6, "transformers' default mixer_rms_eps");
    }

    #[test]
    fn mamba2_config() {
        let text = r#"{"architectures": ["Mamba2ForCausalLM"], "model_type": "mamba2",
                       "hidden_size": 64, "expand": 2, "head_dim": 16, "num_heads": 8,
                       "n_groups": 2, "state_size": 32, "num_hidden_layers": 2, "vocab_size": 8,
                       "time_step_limit": [0.001, 0.1]}"#;
        let p = parse(text).unwrap().params;
        assert_eq!(p.family, Family::Mamba2);
        assert_eq!((p.d_inner, p.dt_rank, p.n_group, p.d_state), (128, 8, 2, 32));
        assert_eq!(p.time_step_limit, (0.001, 0.1));
        assert_eq!(p.conv_dim(), 128 + 2 * 2 * 32);
        assert_eq!(p.in_proj_rows(), 128 + 256 + 8);
    }

    #[test]
    fn python_infinity_reads_as_no_bound() {
        let text = r#"{"architectures": ["Mamba2ForCausalLM"], "hidden_size": 64, "head_dim": 16,
                       "num_hidden_layers": 1, "vocab_size": 8, "_name_or_path": "a Infinity NaN",
                       "time_step_limit": [0.0, Infinity]}"#;
        let config = parse(text).unwrap();
        assert_eq!(config.params.time_step_limit, (0.0, f32::INFINITY));
        assert_eq!(config.name_or_path.as_deref(), Some("a Infinity NaN"), "strings keep the words");

        let text = text.replace("Infinity]", r#"{"__float__": "Infinity"}]"#);
        let config = parse(&text).unwrap();
        assert_eq!(config.params.time_step_limit, (0.0, f32::INFINITY));
    }

    #[test]
    fn python_nan_is_not_a_missing_key() {
        for (extra, key) in [
            (r#""layer_norm_epsilon": NaN"#, "layer_norm_epsilon"),
            (r#""n_groups": Infinity"#, "n_groups"),
            (r#""time_step_limit": [0.0, NaN]"#, "time_step_limit"),
            (r#""time_step_limit": [-Infinity, 1.0]"#, "time_step_limit"),
        ] {
            let text = format!(
                r#"{{"architectures": ["Mamba2ForCausalLM"], "hidden_size": 64,
                     "num_hidden_layers": 1, "vocab_size": 8, {extra}}}"#
            );
            let message = parse(&text).unwrap_err().to_string();
            assert!(message.contains(key), "{key}: {message}");
        }
    }

    #[test]
    fn mamba2_rejects_bad_heads() {
        for (extra, key) in [
            (r#""head_dim": 48"#, "head_dim"),
            (r#""num_heads": 3"#, "num_heads"),
            (r#""n_groups": 3"#, "n_groups"),
            (r#""time_step_limit": [0.5, 0.1]"#, "time_step_limit"),
        ] {
            let text = format!(
                r#"{{"architectures": ["Mamba2ForCausalLM"], "hidden_size": 64,
                     "num_hidden_layers": 1, "vocab_size": 8, {extra}}}"#
            );
            let message = parse(&text).unwrap_err().to_string();
            assert!(message.contains(key), "{key}: {message}");
        }
    }

    #[test]
    fn rejects_missing_architecture() {
        let message = parse(r#"{"hidden_size": 8, "num_hidden_layers": 1, "vocab_size": 8}"#)
            .unwrap_err()
            .to_string();
        assert!(message.contains("no architectures"), "{message}");
    }

    #[test]
    fn rejects_projection_bias() {
        let text = r#"{"architectures": ["MambaForCausalLM"], "use_bias": true,
                       "hidden_size": 8, "num_hidden_layers": 1, "vocab_size": 8}"#;
        assert!(matches!(
            parse(text),
            Err(ConvertError::ProjectionBias { .. })
        ));
    }

    #[test]
    fn missing_key_names_alternatives() {
        let message =
            parse(r#"{"architectures": ["MambaForCausalLM"], "hidden_size": 8, "vocab_size": 8}"#)
                .unwrap_err()
                .to_string();
        assert!(
            message.contains("num_hidden_layers or n_layer"),
            "{message}"
        );
    }

    #[test]
    fn rejects_bad_values() {
        for (key, value) in [
            ("hidden_size", "0"),
            ("hidden_size", "\"768\""),
            ("state_size", "-1"),
            ("layer_norm_epsilon", "0"),
            ("tie_word_embeddings", "1"),
            ("time_step_rank", "\"big\""),
        ] {
            let text = format!(
                r#"{{"architectures": ["MambaForCausalLM"], "hidden_size": 8, "num_hidden_layers": 1,
                     "vocab_size": 8, "{key}": {value}}}"#
            );
            let message = parse(&text).unwrap_err().to_string();
            assert!(message.contains(key), "{key}: {message}");
            assert!(message.contains(value), "{key}: {message}");
        }
    }

    #[test]
    fn invalid_json_names_file() {
        let message = parse("{ not json").unwrap_err().to_string();
        assert!(message.contains("config.json"), "{message}");
    }
}
