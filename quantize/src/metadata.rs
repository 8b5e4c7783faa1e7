//! GGUF metadata for a converted checkpoint, with the keys and value types llama.cpp's
//! converter writes for archs `mamba` and `mamba2`.

use std::path::Path;

use mamba_core::GgmlType;
use mamba_core::config::{ARCH_MAMBA, keys};
use mamba_core::gguf::{MetaValue, ValueType};

use crate::convert::meta_u32;
use crate::params::{Family, MambaParams};
use crate::plan::file_type;
use crate::tokenizer::TokenizerMeta;

/// `{arch}.context_length` for Mamba. The recurrence has no context limit, and llama.cpp's
/// converter writes this arbitrary 2^20 for every Mamba checkpoint, ignoring the config.
pub const MAMBA_CONTEXT_LENGTH: u64 = 1 << 20;

/// Version of the Q4_0/Q8_0 block layouts (ggml's `GGML_QNT_VERSION`).
pub const QUANTIZATION_VERSION: u32 = 2;

/// Returns `mamba.{key}`.
pub fn mamba_key(key: &str) -> String {
    format!("{ARCH_MAMBA}.{key}")
}

/// Returns the `general.*` and `{arch}.*` entries for a model with dimensions `p`,
/// `n_params` weights in all, whose matrices use `target`.
pub fn model_metadata(
    name: &str,
    n_params: u64,
    p: &MambaParams,
    target: GgmlType,
) -> Vec<(String, MetaValue)> {
    let string = |text: &str| MetaValue::String(text.to_owned());
    let arch = p.family.gguf_arch();
    let mamba_key = |key: &str| format!("{arch}.{key}");
    let mut entries = vec![
        (keys::ARCHITECTURE.to_owned(), string(arch)),
        ("general.type".to_owned(), string("model")),
        (keys::NAME.to_owned(), string(name)),
        (
            "general.size_label".to_owned(),
            MetaValue::String(size_label(n_params)),
        ),
        (
            mamba_key(keys::CONTEXT_LENGTH),
            meta_u32(MAMBA_CONTEXT_LENGTH),
        ),
        (mamba_key(keys::EMBEDDING_LENGTH), meta_u32(p.d_model)),
        (mamba_key(keys::FEED_FORWARD_LENGTH), MetaValue::U32(0)),
        (mamba_key(keys::HEAD_COUNT), MetaValue::U32(0)),
        (mamba_key(keys::BLOCK_COUNT), meta_u32(p.n_layer)),
        (mamba_key(keys::SSM_CONV_KERNEL), meta_u32(p.d_conv)),
        (mamba_key(keys::SSM_INNER_SIZE), meta_u32(p.d_inner)),
        (mamba_key(keys::SSM_STATE_SIZE), meta_u32(p.d_state)),
        (mamba_key(keys::SSM_TIME_STEP_RANK), meta_u32(p.dt_rank)),
        (
            mamba_key(keys::LAYER_NORM_RMS_EPSILON),
            MetaValue::F32(p.rms_norm_eps),
        ),
    ];
    match p.family {
        Family::Mamba => entries.push((mamba_key(keys::SSM_DT_B_C_RMS), MetaValue::Bool(false))),
        Family::FalconMamba => {
            entries.push((mamba_key(keys::SSM_DT_B_C_RMS), MetaValue::Bool(true)));
            // llama.cpp normalises dt, B and C with the layer epsilon; this key, which
            // llama.cpp ignores, keeps transformers' own value.
            if p.mixer_rms_eps != p.rms_norm_eps {
                entries.push((mamba_key(keys::SSM_DT_B_C_RMS_EPSILON), MetaValue::F32(p.mixer_rms_eps)));
            }
        }
        Family::Mamba2 => {
            entries.push((mamba_key(keys::SSM_GROUP_COUNT), meta_u32(p.n_group)));
            // Not llama.cpp keys: llama.cpp applies no dt bound. Written only when a bound
            // differs from transformers' default [0, inf].
            let (min, max) = p.time_step_limit;
            if min != 0.0 {
                entries.push((mamba_key(keys::SSM_TIME_STEP_LIMIT_MIN), MetaValue::F32(min)));
            }
            if max.is_finite() {
                entries.push((mamba_key(keys::SSM_TIME_STEP_LIMIT_MAX), MetaValue::F32(max)));
            }
        }
    }
    entries.push((keys::FILE_TYPE.to_owned(), MetaValue::U32(file_type(target))));
    entries.push((keys::QUANTIZATION_VERSION.to_owned(), MetaValue::U32(QUANTIZATION_VERSION)));
    entries
}

/// Returns the `tokenizer.*` entries.
pub fn tokenizer_metadata(tokenizer: &TokenizerMeta) -> Vec<(String, MetaValue)> {
    let strings = |items: &[String]| {
        MetaValue::Array(
            ValueType::String,
            items.iter().cloned().map(MetaValue::String).collect(),
        )
    };
    let mut entries = vec![
        (
            keys::TOKENIZER_MODEL.to_owned(),
            MetaValue::String("gpt2".to_owned()),
        ),
        (
            keys::TOKENIZER_PRE.to_owned(),
            MetaValue::String(tokenizer.pre.clone()),
        ),
        (
            keys::TOKENIZER_TOKENS.to_owned(),
            strings(&tokenizer.tokens),
        ),
        (
            keys::TOKENIZER_TOKEN_TYPE.to_owned(),
            MetaValue::Array(
                ValueType::I32,
                tokenizer
                    .token_types
                    .iter()
                    .copied()
                    .map(MetaValue::I32)
                    .collect(),
            ),
        ),
        (
            keys::TOKENIZER_MERGES.to_owned(),
            strings(&tokenizer.merges),
        ),
    ];
    for (key, id) in &tokenizer.special_ids {
        entries.push(((*key).to_owned(), MetaValue::U32(*id)));
    }
    if let Some(flag) = tokenizer.add_bos {
        entries.push((keys::TOKENIZER_ADD_BOS.to_owned(), MetaValue::Bool(flag)));
    }
    if let Some(flag) = tokenizer.add_eos {
        entries.push((
            "tokenizer.ggml.add_eos_token".to_owned(),
            MetaValue::Bool(flag),
        ));
    }
    if let Some(template) = &tokenizer.chat_template {
        entries.push((
            "tokenizer.chat_template".to_owned(),
            MetaValue::String(template.clone()),
        ));
    }
    entries.push((
        keys::TOKENIZER_HF_JSON.to_owned(),
        MetaValue::String(tokenizer.json_text.clone()),
    ));
    entries
}

/// Formats a parameter count as gguf-py's `size_label` does: scaled to K, M, B or T and
/// given at least two significant digits, so 85 300 becomes `85K` and 2 700 000 `2.7M`.
pub fn size_label(n_params: u64) -> String {
    let n = n_params as f64;
    let (scaled, suffix) = match n {
        n if n > 1e12 => (n * 1e-12, "T"),
        n if n > 1e9 => (n * 1e-9, "B"),
        n if n > 1e6 => (n * 1e-6, "M"),
        n => (n * 1e-3, "K"),
    };
    let integer_digits = format!("{scaled:.0}").trim_start_matches('0').len();
    let decimals = 2usize.saturating_sub(integer_digits);
    format!("{scaled:.decimals$}{suffix}")
}

/// Picks `general.name` as llama.cpp's converter does: the model part of `_name_or_path`
/// when that looks like a Hugging Face id (`org/model`, at most one slash), otherwise the
/// checkpoint directory's name, then turned into a title (`mamba-130m-hf` becomes
/// `Mamba 130m Hf`).
pub fn model_name(name_or_path: Option<&str>, dir: &Path) -> String {
    let from_config = name_or_path
        .filter(|id| !id.is_empty() && id.matches('/').count() <= 1)
        .map(|id| id.rsplit('/').next().unwrap_or(id));
    let dir_name = dir.canonicalize().ok().and_then(|path| {
        path.file_name()
            .map(|name| name.to_string_lossy().into_owned())
    });
    match from_config.map(str::to_owned).or(dir_name) {
        Some(id) if id.contains(' ') => id,
        Some(id) => title_case(&id),
        None => "Mamba".to_owned(),
    }
}

/// Replaces `-` with spaces and capitalises all-lowercase words, except version and size
/// words that start with a digit or look like `v1.2`.
fn title_case(id: &str) -> String {
    id.replace('-', " ")
        .split_whitespace()
        .map(|word| {
            let is_lower =
                word.chars().any(char::is_lowercase) && !word.chars().any(char::is_uppercase);
            let starts_with_digit = word.starts_with(|c: char| c.is_ascii_digit());
            let is_version = word.strip_prefix('v').is_some_and(|rest| {
                !rest.is_empty()
                    && rest
                        .split('.')
                        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
            });
            if is_lower && !starts_with_digit && !is_version {
                python_title(word)
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Python's `str.title`: a letter after a non-letter is upper-cased, every other letter
/// lower-cased, so `mamba2x` becomes `Mamba2X`.
fn python_title(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut after_letter = false;
    for c in word.chars() {
        if after_letter {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        after_letter = c.is_alphabetic();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_from_hub_id() {
        let dir = Path::new("/nonexistent");
        assert_eq!(
            model_name(Some("state-spaces/mamba-130m-hf"), dir),
            "Mamba 130m Hf"
        );
        assert_eq!(model_name(Some("mamba-v1.2-tiny"), dir), "Mamba v1.2 Tiny");
        assert_eq!(model_name(Some("My Model"), dir), "My Model");
        assert_eq!(model_name(Some("mamba2x-tiny"), dir), "Mamba2X Tiny");
        assert_eq!(
            model_name(Some("/home/me/models/mamba"), dir),
            "Mamba",
            "paths fall back to the dir"
        );
    }

    #[test]
    fn name_from_directory() {
        let dir = std::env::temp_dir();
        let expected = title_case(
            &dir.canonicalize()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy(),
        );
        assert_eq!(model_name(None, &dir), expected);
    }

    #[test]
    fn size_labels() {
        assert_eq!(size_label(85_312), "85K");
        assert_eq!(size_label(16_912), "17K");
        assert_eq!(size_label(2_700_000), "2.7M");
        assert_eq!(size_label(129_135_360), "129M");
        assert_eq!(size_label(2_768_345_600), "2.8B");
        assert_eq!(size_label(512), "0.5K");
    }

    #[test]
    fn metadata_value_types() {
        let p = MambaParams::mamba1(768, 24, 1536, 16, 4, 48, 50280, 1e-5);
        let entries = model_metadata("Mamba", 129_135_360, &p, GgmlType::Q8_0);
        let get = |key: &str| {
            entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            get("general.size_label"),
            Some(MetaValue::String("129M".to_owned()))
        );
        assert_eq!(get("mamba.context_length"), Some(MetaValue::U32(1 << 20)));
        assert_eq!(get("mamba.ssm.time_step_rank"), Some(MetaValue::U32(48)));
        assert_eq!(
            get("mamba.attention.layer_norm_rms_epsilon"),
            Some(MetaValue::F32(1e-5))
        );
        assert_eq!(get("mamba.ssm.dt_b_c_rms"), Some(MetaValue::Bool(false)));
        assert_eq!(get("general.file_type"), Some(MetaValue::U32(7)));
        assert_eq!(get("general.quantization_version"), Some(MetaValue::U32(2)));
    }

    #[test]
    fn mamba2_and_falcon_keys() {
        let base = MambaParams::mamba1(64, 2, 128, 16, 4, 8, 100, 1e-5);
        let mamba2 = MambaParams { family: Family::Mamba2, n_group: 2, time_step_limit: (0.0, 0.1), ..base.clone() };
        let entries = model_metadata("M", 1000, &mamba2, GgmlType::F32);
        let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        assert_eq!(get("general.architecture"), Some(MetaValue::String("mamba2".to_owned())));
        assert_eq!(get("mamba2.ssm.group_count"), Some(MetaValue::U32(2)));
        assert_eq!(get("mamba2.ssm.time_step_limit_max"), Some(MetaValue::F32(0.1)));
        assert_eq!(get("mamba2.ssm.time_step_limit_min"), None);
        assert_eq!(get("mamba2.ssm.dt_b_c_rms"), None);

        let falcon = MambaParams { family: Family::FalconMamba, mixer_rms_eps: 1e-6, ..base };
        let entries = model_metadata("F", 1000, &falcon, GgmlType::F32);
        let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        assert_eq!(get("general.architecture"), Some(MetaValue::String("mamba".to_owned())));
        assert_eq!(get("mamba.ssm.dt_b_c_rms"), Some(MetaValue::Bool(true)));
        assert_eq!(get("mamba.ssm.dt_b_c_rms_epsilon"), Some(MetaValue::F32(1e-6)));
    }
}
