//! The text tokenizer of a model, built with the Hugging Face `tokenizers` crate from the
//! model file's metadata.
//!
//! NOTE: this is the logic of mamba-cli's `tokenizer.rs`, copied because the CLI is a binary
//! crate that cannot be depended on. Both copies must build the same tokenizer from the same
//! file; move them into one shared crate when a third user appears.

use mamba_core::config::keys;
use mamba_core::gguf::{Gguf, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

/// llama.cpp's token type for control (special) tokens.
const TOKEN_TYPE_CONTROL: i64 = 3;

/// The special token ids a model file declares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Beginning-of-sequence token.
    pub bos: Option<u32>,
    /// End-of-sequence token.
    pub eos: Option<u32>,
}

impl SpecialTokens {
    /// Reads `tokenizer.ggml.bos_token_id` and `tokenizer.ggml.eos_token_id`.
    pub fn from_gguf(gguf: &Gguf<'_>) -> Self {
        let id = |key: &str| gguf.get(key).and_then(|v| v.as_u32());
        Self { bos: id(keys::TOKENIZER_BOS_ID), eos: id(keys::TOKENIZER_EOS_ID) }
    }
}

/// Builds the tokenizer from `tokenizer.huggingface.json` when present, else from the
/// `tokenizer.ggml.tokens` and `merges` arrays (byte-level BPE, as GPT-2 and GPT-NeoX use).
/// The error is a sentence that names what is missing or invalid.
pub fn from_gguf(gguf: &Gguf<'_>) -> Result<Tokenizer, String> {
    if let Some(json) = gguf.get(keys::TOKENIZER_HF_JSON).and_then(|v| v.as_str()) {
        return Tokenizer::from_bytes(json.as_bytes())
            .map_err(|e| format!("the embedded {} is invalid: {e}", keys::TOKENIZER_HF_JSON));
    }

    let model = gguf.get(keys::TOKENIZER_MODEL).and_then(|v| v.as_str());
    if model != Some("gpt2") {
        return Err(format!(
            "the model file has no tokenizer: it has no {} and its {} is {:?}, but only byte-level BPE \
             (\"gpt2\") can be rebuilt; reconvert it with mamba-quantize, which embeds tokenizer.json",
            keys::TOKENIZER_HF_JSON,
            keys::TOKENIZER_MODEL,
            model.unwrap_or("missing")
        ));
    }
    let tokens = string_array(gguf, keys::TOKENIZER_TOKENS).ok_or_else(|| format!("{} is missing", keys::TOKENIZER_TOKENS))?;
    let merges = string_array(gguf, keys::TOKENIZER_MERGES).ok_or_else(|| format!("{} is missing", keys::TOKENIZER_MERGES))?;
    let types: Vec<i64> = match gguf.get(keys::TOKENIZER_TOKEN_TYPE).and_then(|v| v.as_array()) {
        Some(array) => array.iter().map(|v| v.as_i64().unwrap_or(1)).collect(),
        None => Vec::new(),
    };

    let vocab: tokenizers::models::bpe::Vocab =
        tokens.iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
    let mut pairs = Vec::with_capacity(merges.len());
    for merge in &merges {
        let (left, right) = merge
            .split_once(' ')
            .ok_or_else(|| format!("merge {merge:?} in {} has no space", keys::TOKENIZER_MERGES))?;
        pairs.push((left.to_string(), right.to_string()));
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, pairs)
        .build()
        .map_err(|e| format!("cannot build a BPE tokenizer from the token arrays: {e}"))?;

    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let special: Vec<AddedToken> = tokens
        .iter()
        .zip(types.iter())
        .filter(|(_, t)| **t == TOKEN_TYPE_CONTROL)
        .map(|(token, _)| AddedToken::from(token.to_string(), true))
        .collect();
    tokenizer
        .add_special_tokens(special)
        .map_err(|e| format!("cannot register the control tokens: {e}"))?;
    Ok(tokenizer)
}

fn string_array<'a>(gguf: &Gguf<'a>, key: &str) -> Option<Vec<&'a str>> {
    let array = gguf.get(key)?.as_array()?;
    array
        .iter()
        .map(|v| match v {
            Value::String(s) => Some(s),
            _ => None,
        })
        .collect()
}
