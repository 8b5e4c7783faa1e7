//! The `ssm_cfg` of a `mamba_ssm` checkpoint whose layer is `Mamba2`
//! (`mamba_ssm.modules.mamba2.Mamba2`, as in `state-spaces/mamba2-130m`).
//!
//! The layer's tensor names (`in_proj`, `conv1d`, `dt_bias`, `A_log`, `D`, `norm`,
//! `out_proj`) and shapes are those of `transformers`' `Mamba2ForCausalLM`, so only the
//! config differs. The engine computes the transformers layer, which covers the `Mamba2`
//! options `d_ssm = None`, `D_has_hdim = False`, `rmsnorm = True` and
//! `norm_before_gate = False`, all of them the defaults. Other values are rejected.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{ConvertError, Result};
use crate::params::{Family, MambaParams, checked_mul, get_bool, invalid, positive_dim, read_time_step_limit};

/// Defaults of `Mamba2.__init__` in `mamba_ssm/modules/mamba2.py` of state-spaces/mamba.
const DEFAULT_D_STATE: u64 = 128;
const DEFAULT_D_CONV: u64 = 4;
const DEFAULT_EXPAND: u64 = 2;
const DEFAULT_HEADDIM: u64 = 64;
const DEFAULT_NGROUPS: u64 = 1;

/// Epsilon of the gated RMSNorm: `Mamba2` creates it with a fixed 1e-5.
const GATED_NORM_EPSILON: f32 = 1e-5;

/// Keys of `Mamba2.__init__` that set the model.
pub(super) const MODEL_KEYS: [&str; 14] = [
    "layer",
    "d_state",
    "d_conv",
    "expand",
    "headdim",
    "d_ssm",
    "ngroups",
    "D_has_hdim",
    "rmsnorm",
    "norm_before_gate",
    "dt_limit",
    "bias",
    "conv_bias",
    "chunk_size",
];

/// Keys of `Mamba2.__init__` that only set the initialization, the kernels or the
/// sharding, so they do not change the converted model.
pub(super) const INIT_KEYS: [&str; 9] = [
    "conv_init",
    "A_init_range",
    "dt_min",
    "dt_max",
    "dt_init_floor",
    "use_mem_eff_path",
    "layer_idx",
    "process_group",
    "sequence_parallel",
];

/// Reads the dimensions of a Mamba-2 model from `ssm_cfg`. `n_vocab` is the padded
/// embedding row count and `rms_norm_eps` the epsilon of the block norms.
pub(super) fn read_params(
    path: &Path,
    ssm_cfg: &Map<String, Value>,
    d_model: u64,
    n_layer: u64,
    n_vocab: u64,
    rms_norm_eps: f32,
) -> Result<MambaParams> {
    check_keys(path, ssm_cfg)?;
    check_variant(path, ssm_cfg)?;

    // Mamba2 computes d_inner = expand * d_model with integer arithmetic.
    let expand = dim(path, ssm_cfg, "expand")?.unwrap_or(DEFAULT_EXPAND);
    let d_inner = checked_mul(path, "ssm_cfg.expand * d_model", expand, d_model)?;
    if let Some(value) = ssm_cfg.get("d_ssm").filter(|v| !v.is_null())
        && value.as_u64() != Some(d_inner)
    {
        return Err(ConvertError::UnsupportedOption {
            path: path.to_path_buf(),
            key: "ssm_cfg.d_ssm".to_owned(),
            value: value.to_string(),
            reason: "a d_ssm below expand * d_model adds a gated MLP beside the SSM, which GGUF \
                     Mamba-2 models cannot hold; only d_ssm = null or expand * d_model converts",
        });
    }

    let headdim = dim(path, ssm_cfg, "headdim")?.unwrap_or(DEFAULT_HEADDIM);
    if !d_inner.is_multiple_of(headdim) {
        return Err(invalid(
            path,
            "ssm_cfg.headdim",
            &Value::from(headdim),
            &format!("a divisor of expand * d_model = {d_inner} (headdim defaults to {DEFAULT_HEADDIM})"),
        ));
    }
    let n_head = d_inner / headdim;
    let n_group = dim(path, ssm_cfg, "ngroups")?.unwrap_or(DEFAULT_NGROUPS);
    if !n_head.is_multiple_of(n_group) {
        return Err(invalid(
            path,
            "ssm_cfg.ngroups",
            &Value::from(n_group),
            &format!("a divisor of the number of heads, {n_head}"),
        ));
    }
    let d_state = dim(path, ssm_cfg, "d_state")?.unwrap_or(DEFAULT_D_STATE);
    checked_mul(path, "2 * ssm_cfg.ngroups * ssm_cfg.d_state", 2 * n_group, d_state)?;
    // chunk_size only sets the block size of the prefill kernel, but it must be valid.
    dim(path, ssm_cfg, "chunk_size")?;

    Ok(MambaParams {
        family: Family::Mamba2,
        d_model,
        n_layer,
        d_inner,
        d_state,
        d_conv: dim(path, ssm_cfg, "d_conv")?.unwrap_or(DEFAULT_D_CONV),
        dt_rank: n_head,
        n_vocab,
        rms_norm_eps,
        n_group,
        mixer_rms_eps: GATED_NORM_EPSILON,
        time_step_limit: read_time_step_limit(path, ssm_cfg, "dt_limit")?,
    })
}

/// Rejects keys that `Mamba2.__init__` does not take, which usually mean a config written
/// for another layer.
fn check_keys(path: &Path, ssm_cfg: &Map<String, Value>) -> Result<()> {
    for (key, value) in ssm_cfg {
        if !MODEL_KEYS.contains(&key.as_str()) && !INIT_KEYS.contains(&key.as_str()) {
            return Err(ConvertError::InvalidValue {
                path: path.to_path_buf(),
                key: format!("ssm_cfg.{key}"),
                value: value.to_string(),
                expected: format!(
                    "no such key: mamba_ssm's Mamba2 layer takes only {} and {}",
                    MODEL_KEYS.join(", "),
                    INIT_KEYS.join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// Rejects the boolean options that select a layer the engine does not compute.
fn check_variant(path: &Path, ssm_cfg: &Map<String, Value>) -> Result<()> {
    let flag = |key: &str| get_bool(path, ssm_cfg, key);
    let unsupported = |key: &str, value: bool, reason: &'static str| ConvertError::UnsupportedOption {
        path: path.to_path_buf(),
        key: format!("ssm_cfg.{key}"),
        value: value.to_string(),
        reason,
    };
    if flag("bias")? == Some(true) {
        return Err(ConvertError::ProjectionBias {
            path: path.to_path_buf(),
        });
    }
    if flag("rmsnorm")? == Some(false) {
        return Err(unsupported(
            "rmsnorm",
            false,
            "the engine always applies the gated RMSNorm (ssm_norm) before out_proj; only \
             rmsnorm = true converts",
        ));
    }
    if flag("norm_before_gate")? == Some(true) {
        return Err(unsupported(
            "norm_before_gate",
            true,
            "the engine multiplies by silu(z) before the RMSNorm, as transformers' Mamba2 and \
             llama.cpp do; only norm_before_gate = false converts",
        ));
    }
    if flag("D_has_hdim")? == Some(true) {
        return Err(unsupported(
            "D_has_hdim",
            true,
            "GGUF Mamba-2 models store one D per head; only D_has_hdim = false converts",
        ));
    }
    Ok(())
}

/// Reads an optional positive integer of `ssm_cfg`. A null value counts as absent.
fn dim(path: &Path, ssm_cfg: &Map<String, Value>, key: &str) -> Result<Option<u64>> {
    match ssm_cfg.get(key).filter(|v| !v.is_null()) {
        Some(value) => positive_dim(path, &format!("ssm_cfg.{key}"), value).map(Some),
        None => Ok(None),
    }
}
