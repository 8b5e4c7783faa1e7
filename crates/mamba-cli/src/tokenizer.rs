//! The text tokenizer of a model, built with the Hugging Face `tokenizers` crate from the
//! model file's metadata.

use std::path::Path;

use mamba_core::config::keys;
use mamba_core::gguf::{Gguf, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::CliError;

/// llama.cpp's token type for control (special) tokens.
const TOKEN_TYPE_CONTROL: i64 = 3;

/// A tokenizer plus the special token ids the model file declares.
pub struct ModelTokenizer {
    /// The Hugging Face tokenizer.
    pub inner: Tokenizer,
    /// End-of-sequence token, if declared.
    pub eos: Option<u32>,
    /// Beginning-of-sequence token, if declared.
    pub bos: Option<u32>,
    /// Source metadata: `tokenizer.huggingface.json` or the `tokenizer.ggml.*` arrays.
    pub source: &'static str,
}

impl ModelTokenizer {
    /// Builds the tokenizer from `tokenizer.huggingface.json` when present, else from the
    /// `tokenizer.ggml.tokens` and `merges` arrays (byte-level BPE, as GPT-2 and GPT-NeoX use).
    pub fn from_gguf(gguf: &Gguf<'_>, path: &Path) -> Result<Self, CliError> {
        let fail = |message: String| CliError::Tokenizer { path: path.to_path_buf(), message };
        let id = |key: &str| gguf.get(key).and_then(|v| v.as_u32());
        let eos = id(keys::TOKENIZER_EOS_ID);
        let bos = id(keys::TOKENIZER_BOS_ID);

        if let Some(json) = gguf.get(keys::TOKENIZER_HF_JSON).and_then(|v| v.as_str()) {
            let inner = Tokenizer::from_bytes(json.as_bytes())
                .map_err(|e| fail(format!("the embedded tokenizer.huggingface.json is invalid: {e}")))?;
            return Ok(Self { inner, eos, bos, source: keys::TOKENIZER_HF_JSON });
        }

        let model = gguf.get(keys::TOKENIZER_MODEL).and_then(|v| v.as_str());
        if model != Some("gpt2") {
            return Err(fail(format!(
                "no tokenizer: the file has no {} and its {} is {:?}, but only byte-level BPE (\"gpt2\") \
                 can be rebuilt; reconvert with mamba-quantize, which embeds tokenizer.json",
                keys::TOKENIZER_HF_JSON,
                keys::TOKENIZER_MODEL,
                model.unwrap_or("missing")
            )));
        }
        let tokens = string_array(gguf, keys::TOKENIZER_TOKENS).ok_or_else(|| fail(format!("{} is missing", keys::TOKENIZER_TOKENS)))?;
        let merges = string_array(gguf, keys::TOKENIZER_MERGES).ok_or_else(|| fail(format!("{} is missing", keys::TOKENIZER_MERGES)))?;
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
                .ok_or_else(|| fail(format!("merge {merge:?} in {} has no space", keys::TOKENIZER_MERGES)))?;
            pairs.push((left.to_string(), right.to_string()));
        }
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, pairs)
            .build()
            .map_err(|e| fail(format!("cannot build a BPE tokenizer from the token arrays: {e}")))?;

        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        let special: Vec<AddedToken> = tokens
            .iter()
            .zip(types.iter())
            .filter(|(_, t)| **t == TOKEN_TYPE_CONTROL)
            .map(|(token, _)| AddedToken::from(token.to_string(), true))
            .collect();
        inner
            .add_special_tokens(special)
            .map_err(|e| fail(format!("cannot register the control tokens: {e}")))?;
        Ok(Self { inner, eos, bos, source: "tokenizer.ggml.tokens and merges" })
    }

    /// Encodes `text` as the Hugging Face tokenizer does with its default special-token handling.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, CliError> {
        let encoding = self
            .inner
            .encode(text, true)
            .map_err(|e| CliError::Usage(format!("cannot tokenize the prompt: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Number of entries in the tokenizer's vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

fn string_array<'a>(gguf: &Gguf<'a>, key: &str) -> Option<Vec<&'a str>> {
    let array = gguf.get(key)?.as_array()?;
    array.iter().map(|v| match v {
        Value::String(s) => Some(s),
        _ => None,
    })
    .collect()
}
