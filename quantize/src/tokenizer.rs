//! Tokenizer metadata from a Hugging Face `tokenizer.json`: the file itself for mamba-edge,
//! and llama.cpp's `tokenizer.ggml.*` arrays so llama.cpp can tokenize too.
//!
//! The rules follow llama.cpp's converter (`get_vocab_base` and gguf-py's `SpecialVocab`,
//! gguf 0.19), reimplemented on the JSON so that no Python tokenizer library is needed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{ConvertError, Result};

/// llama.cpp token type of an ordinary vocabulary entry.
pub const TOKEN_NORMAL: i32 = 1;
/// llama.cpp token type of a special added token such as `<|endoftext|>`.
pub const TOKEN_CONTROL: i32 = 3;
/// llama.cpp token type of a non-special added token, such as GPT-NeoX's runs of spaces.
pub const TOKEN_USER_DEFINED: i32 = 4;
/// llama.cpp token type of a `[PAD{id}]` filler for an id the tokenizer does not use.
pub const TOKEN_UNUSED: i32 = 5;

/// `tokenizer.ggml.pre` for the GPT-NeoX-20B tokenizer that every state-spaces Mamba
/// checkpoint ships.
///
/// llama.cpp's converter names the pre-tokenizer by hashing the token ids of a test string.
/// The GPT-NeoX-20B vocabulary (rebuilt from llama.cpp's `models/ggml-vocab-gpt-neox.gguf`)
/// gives the hash listed for OLMo-1.7, a GPT-NeoX-20B derivative, so the converter writes
/// `olmo`. llama.cpp (`llama-vocab.cpp`) gives `gpt-2`, `mpt` and `olmo` the same split
/// regex, so the name only matters for matching the converter's output.
pub const PRE_GPT_NEOX: &str = "olmo";

/// `tokenizer.ggml.pre` for any other byte-level BPE tokenizer with the GPT-2 split regex.
/// The converter rejects such a tokenizer because it does not know its hash; `gpt-2`
/// selects the regex that the tokenizer uses.
pub const PRE_GPT2: &str = "gpt-2";

/// `tokenizer.ggml.pre` when the pre-tokenizer is not plain byte-level BPE. llama.cpp then
/// falls back to its default regex and prints a warning.
pub const PRE_DEFAULT: &str = "default";

/// Special token kinds with the GGUF key of their id, in the order gguf-py reads them.
/// gguf-py also reads `cls`, but has no GGUF key for it and drops it.
const SPECIAL_KINDS: [(&str, &str); 6] = [
    ("bos", "tokenizer.ggml.bos_token_id"),
    ("eos", "tokenizer.ggml.eos_token_id"),
    ("unk", "tokenizer.ggml.unknown_token_id"),
    // "seperator" is the spelling llama.cpp uses for this key.
    ("sep", "tokenizer.ggml.seperator_token_id"),
    ("pad", "tokenizer.ggml.padding_token_id"),
    ("mask", "tokenizer.ggml.mask_token_id"),
];

/// Everything the GGUF file records about the tokenizer.
#[derive(Clone, Debug, Default)]
pub struct TokenizerMeta {
    /// `tokenizer.json`, verbatim.
    pub json_text: String,
    /// `tokenizer.ggml.pre`.
    pub pre: String,
    /// Token strings by id, padded to the embedding's row count.
    pub tokens: Vec<String>,
    /// llama.cpp token type of each token.
    pub token_types: Vec<i32>,
    /// BPE merges as `"left right"`.
    pub merges: Vec<String>,
    /// GGUF key and id of each special token found.
    pub special_ids: Vec<(&'static str, u32)>,
    /// `tokenizer.ggml.add_bos_token`, when the tokenizer files state it.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`, when the tokenizer files state it.
    pub add_eos: Option<bool>,
    /// `tokenizer.chat_template`, when `tokenizer_config.json` has one.
    pub chat_template: Option<String>,
    /// Remarks for the user, such as skipped special token ids.
    pub notes: Vec<String>,
}

/// Reads the tokenizer file `path` (a `tokenizer.json`) and the optional
/// `tokenizer_config.json` next to it. `config` is the parsed `config.json`, whose
/// `*_token_id` keys fill special ids the tokenizer files leave unset. `n_vocab` is the
/// embedding's row count.
pub fn read_tokenizer(path: &Path, config: &Value, n_vocab: u64) -> Result<TokenizerMeta> {
    if !path.is_file() {
        return Err(ConvertError::MissingTokenizer {
            path: path.to_path_buf(),
        });
    }
    let json_text = read_text(path)?;
    let config_path = path.with_file_name("tokenizer_config.json");
    let tokenizer_config = if config_path.is_file() {
        let text = read_text(&config_path)?;
        Some(parse_json(&config_path, &text)?)
    } else {
        None
    };
    parse_tokenizer(path, json_text, tokenizer_config.as_ref(), config, n_vocab)
}

/// Builds the metadata from the text of `tokenizer.json` (at `path`, for messages),
/// the parsed `tokenizer_config.json` and `config.json`.
pub fn parse_tokenizer(
    path: &Path,
    json_text: String,
    tokenizer_config: Option<&Value>,
    config: &Value,
    n_vocab: u64,
) -> Result<TokenizerMeta> {
    let root = parse_json(path, &json_text)?;
    let ctx = Ctx { path };
    let root = ctx.object(&root, "(top level)")?;
    let model = ctx.object(root.get("model").unwrap_or(&Value::Null), "model")?;
    if let Some(kind) = model.get("type").and_then(Value::as_str)
        && kind != "BPE"
    {
        return Err(ctx.error(
            "model.type",
            format!("is {kind}; only byte-level BPE tokenizers (GPT-NeoX, GPT-2) can be converted"),
        ));
    }

    let added = ctx.added_tokens(root)?;
    let (tokens, token_types) = ctx.vocabulary(model, &added, n_vocab)?;
    let merges = ctx.merges(model)?;
    let (pre, pre_note) = pre_tokenizer_name(root.get("pre_tokenizer"), &added);

    let mut meta = TokenizerMeta {
        tokens,
        token_types,
        merges,
        pre: pre.to_owned(),
        ..Default::default()
    };
    meta.notes.extend(pre_note);
    special_tokens(&mut meta, root, &added, tokenizer_config, config, n_vocab)?;
    meta.json_text = json_text;
    Ok(meta)
}

/// One entry of `added_tokens`.
struct AddedToken {
    id: u64,
    content: String,
    special: bool,
}

/// Error context: the tokenizer file.
struct Ctx<'p> {
    path: &'p Path,
}

impl Ctx<'_> {
    fn error(&self, key: &str, problem: String) -> ConvertError {
        ConvertError::Tokenizer {
            path: self.path.to_path_buf(),
            key: key.to_owned(),
            problem,
        }
    }

    fn object<'v>(&self, value: &'v Value, key: &str) -> Result<&'v Map<String, Value>> {
        value
            .as_object()
            .ok_or_else(|| self.error(key, format!("is {}, expected an object", short(value))))
    }

    fn added_tokens(&self, root: &Map<String, Value>) -> Result<Vec<AddedToken>> {
        let Some(list) = root.get("added_tokens").filter(|v| !v.is_null()) else {
            return Ok(Vec::new());
        };
        let list = list.as_array().ok_or_else(|| {
            self.error(
                "added_tokens",
                format!("is {}, expected a list", short(list)),
            )
        })?;
        let mut added = Vec::with_capacity(list.len());
        for (i, entry) in list.iter().enumerate() {
            let key = format!("added_tokens[{i}]");
            let entry = self.object(entry, &key)?;
            let id = entry.get("id").and_then(Value::as_u64);
            let content = entry.get("content").and_then(Value::as_str);
            let (Some(id), Some(content)) = (id, content) else {
                return Err(self.error(&key, "needs an integer id and a string content".to_owned()));
            };
            let special = entry
                .get("special")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            added.push(AddedToken {
                id,
                content: content.to_owned(),
                special,
            });
        }
        Ok(added)
    }

    /// Returns the token strings and types by id, `n_vocab` long.
    fn vocabulary(
        &self,
        model: &Map<String, Value>,
        added: &[AddedToken],
        n_vocab: u64,
    ) -> Result<(Vec<String>, Vec<i32>)> {
        let vocab = self.object(model.get("vocab").unwrap_or(&Value::Null), "model.vocab")?;
        let mut slots: Vec<Option<(String, i32)>> = vec![None; n_vocab as usize];

        for (token, id) in vocab {
            let key = format!("model.vocab[{token:?}]");
            let id = id.as_u64().ok_or_else(|| {
                self.error(&key, format!("is {}, expected a token id", short(id)))
            })?;
            let slot = self.slot(&mut slots, id, &key, n_vocab)?;
            if let Some((other, _)) = slot {
                return Err(self.error(
                    &key,
                    format!("id {id} is also assigned to {other:?}; every id must be unique"),
                ));
            }
            *slot = Some((token.clone(), TOKEN_NORMAL));
        }

        // An added token may repeat a vocabulary entry (GPT-NeoX lists <|endoftext|> in
        // both), so it replaces the entry instead of clashing with it.
        for (i, token) in added.iter().enumerate() {
            let key = format!("added_tokens[{i}]");
            let slot = self.slot(&mut slots, token.id, &key, n_vocab)?;
            *slot = Some(if token.special || looks_special(&token.content) {
                (token.content.clone(), TOKEN_CONTROL)
            } else {
                // llama.cpp expects user-defined tokens pre-normalised: SentencePiece's
                // U+2581 word marker becomes a plain space, as the converter does.
                (token.content.replace('\u{2581}', " "), TOKEN_USER_DEFINED)
            });
        }

        Ok(slots
            .into_iter()
            .enumerate()
            .map(|(id, slot)| slot.unwrap_or_else(|| (format!("[PAD{id}]"), TOKEN_UNUSED)))
            .unzip())
    }

    fn slot<'s>(
        &self,
        slots: &'s mut [Option<(String, i32)>],
        id: u64,
        key: &str,
        n_vocab: u64,
    ) -> Result<&'s mut Option<(String, i32)>> {
        usize::try_from(id).ok().and_then(|i| slots.get_mut(i)).ok_or_else(|| {
            self.error(
                key,
                format!("token id {id} is out of range: the model's embedding has only {n_vocab} rows"),
            )
        })
    }

    /// Reads `model.merges`, which is a list of `"a b"` strings or, since transformers 4.45,
    /// a list of `[a, b]` pairs.
    fn merges(&self, model: &Map<String, Value>) -> Result<Vec<String>> {
        let list = match model.get("merges") {
            Some(Value::Array(list)) if !list.is_empty() => list,
            _ => {
                return Err(self.error(
                    "model.merges",
                    "is missing or empty; llama.cpp cannot tokenize a BPE vocabulary without merges".to_owned(),
                ));
            }
        };
        let mut merges = Vec::with_capacity(list.len());
        for (i, entry) in list.iter().enumerate() {
            let merge = match entry {
                Value::String(text) => text.clone(),
                Value::Array(pair) => match pair.as_slice() {
                    [Value::String(left), Value::String(right)] => {
                        format!(
                            "{} {}",
                            encode_merge_spaces(left),
                            encode_merge_spaces(right)
                        )
                    }
                    _ => {
                        return Err(self.error(
                            &format!("model.merges[{i}]"),
                            "is not a pair of strings".to_owned(),
                        ));
                    }
                },
                other => {
                    return Err(self.error(
                        &format!("model.merges[{i}]"),
                        format!("is {}, expected \"a b\" or [\"a\", \"b\"]", short(other)),
                    ));
                }
            };
            merges.push(merge);
        }
        Ok(merges)
    }
}

/// Replaces each space in one side of a merge pair with U+0120, the byte-level alphabet's
/// space, so that the joined `"a b"` string splits back into the same two parts. llama.cpp's
/// converter does the same.
fn encode_merge_spaces(part: &str) -> String {
    part.replace(' ', "\u{0120}")
}

/// Returns whether an added token that is not marked special still looks like a control token.
/// These patterns are the ones llama.cpp's converter checks (`does_token_look_special`).
fn looks_special(token: &str) -> bool {
    matches!(token, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (token.starts_with("<|") && token.ends_with("|>"))
        || (token.starts_with("<\u{ff5c}") && token.ends_with("\u{ff5c}>"))
        || (token.starts_with("<unused") && token.ends_with('>'))
}

/// Picks `tokenizer.ggml.pre` from the `pre_tokenizer` entry, with a note when llama.cpp
/// will not split text the same way.
fn pre_tokenizer_name(
    pre_tokenizer: Option<&Value>,
    added: &[AddedToken],
) -> (&'static str, Option<String>) {
    let is_byte_level_regex = |value: &Value| {
        value.get("type").and_then(Value::as_str) == Some("ByteLevel")
            && value
                .get("use_regex")
                .and_then(Value::as_bool)
                .unwrap_or(true)
    };
    let byte_level = match pre_tokenizer {
        Some(value) if is_byte_level_regex(value) => true,
        Some(value) if value.get("type").and_then(Value::as_str) == Some("Sequence") => match value
            .get("pretokenizers")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            Some([only]) => is_byte_level_regex(only),
            _ => false,
        },
        _ => false,
    };
    // GPT-NeoX-20B is recognised by its two special tokens at ids 0 and 1.
    let has = |id: u64, content: &str| added.iter().any(|t| t.id == id && t.content == content);
    if byte_level && has(0, "<|endoftext|>") && has(1, "<|padding|>") {
        (PRE_GPT_NEOX, None)
    } else if byte_level {
        (PRE_GPT2, None)
    } else {
        let note = "tokenizer.json has a pre-tokenizer other than byte-level BPE with the GPT-2 regex; \
                    tokenizer.ggml.pre is set to \"default\", so llama.cpp may split text differently \
                    (mamba-edge reads tokenizer.huggingface.json and is not affected)";
        (PRE_DEFAULT, Some(note.to_owned()))
    }
}

/// Fills special token ids and the add-BOS/EOS flags.
///
/// The order follows gguf-py's `SpecialVocab`. First, `tokenizer_config.json` names each
/// special token (`bos_token`, ...), and its id is looked up among the added tokens. Then
/// `config.json`'s `*_token_id` keys fill the kinds still unset. The first value found wins.
fn special_tokens(
    meta: &mut TokenizerMeta,
    root: &Map<String, Value>,
    added: &[AddedToken],
    tokenizer_config: Option<&Value>,
    config: &Value,
    n_vocab: u64,
) -> Result<()> {
    let mut ids: HashMap<&str, u64> = HashMap::new();
    let mut set = |meta: &mut TokenizerMeta, kind: &'static str, id: u64, source: &str| {
        if ids.contains_key(kind) {
            return;
        }
        if id >= n_vocab {
            meta.notes.push(format!(
                "{source}: {kind} token id {id} is out of range (the vocabulary has {n_vocab} tokens), so it is not written"
            ));
            return;
        }
        ids.insert(kind, id);
    };

    // A TemplateProcessing post-processor that wraps every sequence in special tokens means
    // the tokenizer adds BOS or EOS. Only the first and last template entries are checked,
    // as gguf-py does for simple templates.
    let template_edges = template_special_tokens(root);

    if let Some(tc) = tokenizer_config.and_then(Value::as_object) {
        for (kind, _) in SPECIAL_KINDS {
            let content = match tc.get(&format!("{kind}_token")) {
                Some(Value::String(text)) => Some(text.as_str()),
                Some(Value::Object(entry)) => entry.get("content").and_then(Value::as_str),
                _ => None,
            };
            if let Some(id) = content
                .and_then(|content| added.iter().find(|t| t.content == content))
                .map(|t| t.id)
            {
                set(meta, kind, id, "tokenizer_config.json");
            }
        }
        if let Some((first, last)) = &template_edges {
            let bos = tc.get("bos_token").and_then(token_content);
            let eos = tc.get("eos_token").and_then(token_content);
            if let Some(first) = first {
                meta.add_bos = Some(Some(first.as_str()) == bos);
            }
            if let Some(last) = last {
                meta.add_eos = Some(Some(last.as_str()) == eos);
            }
        }
        // Explicit flags override what the template implies.
        if let Some(flag) = tc.get("add_bos_token").and_then(Value::as_bool) {
            meta.add_bos = Some(flag);
        }
        if let Some(flag) = tc.get("add_eos_token").and_then(Value::as_bool) {
            meta.add_eos = Some(flag);
        }
        meta.chat_template = tc
            .get("chat_template")
            .and_then(Value::as_str)
            .map(str::to_owned);
    } else if let Some((first, last)) = template_edges {
        // Without tokenizer_config.json the template's own tokens are BOS and EOS.
        for (kind, content) in [("bos", first), ("eos", last)] {
            let Some(content) = content else { continue };
            if let Some(token) = added.iter().find(|t| t.content == content) {
                set(meta, kind, token.id, "tokenizer.json post_processor");
                if kind == "bos" {
                    meta.add_bos = Some(true);
                } else {
                    meta.add_eos = Some(true);
                }
            }
        }
    }

    for (kind, _) in SPECIAL_KINDS {
        let key = format!("{kind}_token_id");
        match config.get(&key) {
            Some(Value::Number(number)) => match number.as_u64() {
                Some(id) => set(meta, kind, id, "config.json"),
                None => {
                    return Err(ConvertError::InvalidValue {
                        path: PathBuf::from("config.json"),
                        key,
                        value: number.to_string(),
                        expected: "a non-negative token id".to_owned(),
                    });
                }
            },
            _ => continue,
        }
    }

    meta.special_ids = SPECIAL_KINDS
        .iter()
        .filter_map(|(kind, key)| ids.get(kind).map(|id| (*key, *id as u32)))
        .collect();
    Ok(())
}

/// Returns the special tokens at the start and end of a `TemplateProcessing` single-sequence
/// template, when the post-processor is one (directly or inside a `Sequence`).
fn template_special_tokens(root: &Map<String, Value>) -> Option<(Option<String>, Option<String>)> {
    let post = root.get("post_processor")?;
    let processors = match post.get("processors").and_then(Value::as_array) {
        Some(list) => list.iter().collect::<Vec<_>>(),
        None => vec![post],
    };
    let template = processors
        .into_iter()
        .find(|p| p.get("type").and_then(Value::as_str) == Some("TemplateProcessing"))?;
    let single = template.get("single").and_then(Value::as_array)?;
    if single.len() < 2 {
        return None;
    }
    let special_id = |entry: &Value| -> Option<String> {
        entry
            .get("SpecialToken")?
            .get("id")?
            .as_str()
            .map(str::to_owned)
    };
    Some((
        special_id(&single[0]),
        special_id(&single[single.len() - 1]),
    ))
}

fn token_content(value: &Value) -> Option<&str> {
    match value {
        Value::String(text) => Some(text),
        Value::Object(entry) => entry.get("content").and_then(Value::as_str),
        _ => None,
    }
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| ConvertError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_json(path: &Path, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|source| ConvertError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Formats a JSON value, shortened for a message.
fn short(value: &Value) -> String {
    let mut text = value.to_string();
    if text.len() > 60 {
        let cut = (0..=57)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Returns a GPT-NeoX-shaped tokenizer: two special tokens, a few byte-level entries and a
    /// non-special added token made of spaces.
    fn neox_like(merges: Value) -> String {
        json!({
            "version": "1.0",
            "added_tokens": [
                {"id": 0, "content": "<|endoftext|>", "special": true, "normalized": false},
                {"id": 1, "content": "<|padding|>", "special": true, "normalized": false},
                {"id": 6, "content": "  ", "special": false, "normalized": true}
            ],
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true},
            "post_processor": {"type": "ByteLevel"},
            "model": {
                "type": "BPE",
                "vocab": {"<|endoftext|>": 0, "<|padding|>": 1, "a": 2, "b": 3, "ab": 4, "\u{0120}a": 5},
                "merges": merges
            }
        })
        .to_string()
    }

    fn parse(
        text: String,
        tc: Option<&Value>,
        config: &Value,
        n_vocab: u64,
    ) -> Result<TokenizerMeta> {
        parse_tokenizer(Path::new("tokenizer.json"), text, tc, config, n_vocab)
    }

    #[test]
    fn neox_vocabulary_and_types() {
        let meta = parse(neox_like(json!(["a b", "\u{0120} a"])), None, &json!({}), 8).unwrap();
        assert_eq!(
            meta.tokens,
            [
                "<|endoftext|>",
                "<|padding|>",
                "a",
                "b",
                "ab",
                "\u{0120}a",
                "  ",
                "[PAD7]"
            ]
        );
        assert_eq!(meta.token_types, [3, 3, 1, 1, 1, 1, 4, 5]);
        assert_eq!(meta.merges, ["a b", "\u{0120} a"]);
        assert_eq!(meta.pre, PRE_GPT_NEOX);
        assert!(meta.notes.is_empty(), "{:?}", meta.notes);
    }

    #[test]
    fn merge_pairs_encode_spaces() {
        let meta = parse(
            neox_like(json!([["a", "b"], ["x y", "z"]])),
            None,
            &json!({}),
            8,
        )
        .unwrap();
        assert_eq!(meta.merges, ["a b", "x\u{0120}y z"]);
    }

    #[test]
    fn bad_merge_names_index() {
        let message = parse(neox_like(json!(["a b", 7])), None, &json!({}), 8)
            .unwrap_err()
            .to_string();
        assert!(message.contains("model.merges[1]"), "{message}");
        let message = parse(neox_like(json!([])), None, &json!({}), 8)
            .unwrap_err()
            .to_string();
        assert!(message.contains("model.merges"), "{message}");
    }

    #[test]
    fn id_beyond_embedding_is_error() {
        let message = parse(neox_like(json!(["a b"])), None, &json!({}), 6)
            .unwrap_err()
            .to_string();
        assert!(message.contains("token id 6"), "{message}");
        assert!(message.contains("6 rows"), "{message}");
    }

    #[test]
    fn special_ids_from_tokenizer_config_then_config() {
        let tc = json!({
            "bos_token": "<|endoftext|>",
            "eos_token": {"content": "<|endoftext|>"},
            "unk_token": "<|endoftext|>",
            "add_bos_token": false,
            "add_eos_token": false
        });
        let config = json!({"bos_token_id": 1, "pad_token_id": 1});
        let meta = parse(neox_like(json!(["a b"])), Some(&tc), &config, 8).unwrap();
        assert_eq!(
            meta.special_ids,
            [
                ("tokenizer.ggml.bos_token_id", 0),
                ("tokenizer.ggml.eos_token_id", 0),
                ("tokenizer.ggml.unknown_token_id", 0),
                ("tokenizer.ggml.padding_token_id", 1),
            ]
        );
        assert_eq!(meta.add_bos, Some(false));
        assert_eq!(meta.add_eos, Some(false));
    }

    #[test]
    fn out_of_range_special_id_is_skipped() {
        let meta = parse(
            neox_like(json!(["a b"])),
            None,
            &json!({"eos_token_id": 50}),
            8,
        )
        .unwrap();
        assert!(meta.special_ids.is_empty());
        assert!(
            meta.notes.iter().any(|n| n.contains("eos token id 50")),
            "{:?}",
            meta.notes
        );
    }

    #[test]
    fn template_processing_sets_add_bos() {
        let mut root: Value = serde_json::from_str(&neox_like(json!(["a b"]))).unwrap();
        root["post_processor"] = json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]
        });
        let meta = parse(root.to_string(), None, &json!({}), 8).unwrap();
        assert_eq!(meta.add_bos, Some(true));
        assert_eq!(meta.special_ids, [("tokenizer.ggml.bos_token_id", 0)]);
    }

    #[test]
    fn looks_special_matches_converter() {
        assert!(looks_special("<|im_start|>"));
        assert!(looks_special("<unused12>"));
        assert!(!looks_special("  "));
        assert!(!looks_special("<s>"));
    }

    #[test]
    fn other_pre_tokenizer_is_default() {
        let mut root: Value = serde_json::from_str(&neox_like(json!(["a b"]))).unwrap();
        root["pre_tokenizer"] = json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\d"}}, {"type": "ByteLevel", "use_regex": false}
        ]});
        let meta = parse(root.to_string(), None, &json!({}), 8).unwrap();
        assert_eq!(meta.pre, PRE_DEFAULT);
        assert_eq!(meta.notes.len(), 1);
    }

    #[test]
    fn other_byte_level_tokenizer_is_gpt2() {
        let mut root: Value = serde_json::from_str(&neox_like(json!(["a b"]))).unwrap();
        root["added_tokens"] = json!([{"id": 0, "content": "<|endoftext|>", "special": true}]);
        let meta = parse(root.to_string(), None, &json!({}), 8).unwrap();
        assert_eq!(meta.pre, PRE_GPT2);
        assert!(meta.notes.is_empty(), "{:?}", meta.notes);
    }

    #[test]
    fn non_bpe_model_is_rejected() {
        let text = json!({"model": {"type": "Unigram", "vocab": []}}).to_string();
        let message = parse(text, None, &json!({}), 8).unwrap_err().to_string();
        assert!(message.contains("Unigram"), "{message}");
    }

    #[test]
    fn duplicate_vocab_id_is_rejected() {
        let text = json!({"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": ["a b"]}})
            .to_string();
        let message = parse(text, None, &json!({}), 8).unwrap_err().to_string();
        assert!(message.contains("id 0 is also assigned"), "{message}");
    }
}
