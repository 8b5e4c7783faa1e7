//! Decodes the micro model's expected continuation with the allocation-free byte-level
//! decoder and compares it with the text Hugging Face `tokenizers` gave.

use mamba_core::detokenize::{Utf8Stream, Vocab};
use mamba_core::gguf::Gguf;

const MODEL: &[u8] = include_bytes!("../../../models/micro/model.gguf");
const EXPECTED: &str = include_str!("../../../models/micro/expected.json");

fn decode(vocab: &Vocab<'_>, ids: &[u32]) -> String {
    let mut text = String::new();
    let mut stream = Utf8Stream::new();
    let mut emit = |piece: &str| -> Result<(), ()> {
        text.push_str(piece);
        Ok(())
    };
    for &id in ids {
        let bytes = vocab.token_bytes(id).expect("token id in range");
        stream.push_all(bytes, &mut emit).expect("emit never fails");
    }
    stream.finish(&mut emit).expect("emit never fails");
    text
}

fn ids(json: &serde_json::Value) -> Vec<u32> {
    json.as_array().expect("array").iter().map(|v| v.as_u64().expect("id") as u32).collect()
}

#[test]
fn micro_continuation_decodes_as_transformers() {
    let gguf = Gguf::parse(MODEL).expect("micro model parses");
    let vocab = Vocab::from_gguf(&gguf).expect("byte-level vocabulary");
    let expected: serde_json::Value = serde_json::from_str(EXPECTED).expect("expected.json parses");

    assert_eq!(vocab.len(), 512);
    assert_eq!(decode(&vocab, &ids(&expected["prompt_token_ids"])), expected["prompt"].as_str().expect("prompt"));
    assert_eq!(
        decode(&vocab, &ids(&expected["generated_token_ids"])),
        expected["generated_text"].as_str().expect("text")
    );
}

#[test]
fn micro_end_of_text_is_control() {
    let gguf = Gguf::parse(MODEL).expect("micro model parses");
    let vocab = Vocab::from_gguf(&gguf).expect("byte-level vocabulary");
    assert!(vocab.is_control(0));
    assert!(!vocab.is_control(266));
    assert_eq!(vocab.token_bytes(0).expect("id 0").collect::<Vec<u8>>(), b"<|endoftext|>");
    assert!(vocab.token_bytes(512).is_err());
}
