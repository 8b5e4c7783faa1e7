//! Token ids to text without an allocator, for byte-level BPE vocabularies (GPT-2 style,
//! `tokenizer.ggml.model = "gpt2"`).
//!
//! A byte-level vocabulary stores each token as a string in which every byte is written as
//! one printable character: bytes `!`..=`~`, `¡`..=`¬` and `®`..=`ÿ` stand for themselves, and
//! the other 68 bytes, in increasing order, become U+0100, U+0101 and so on. [`Vocab`] undoes
//! that mapping, and [`Utf8Stream`] turns the byte stream into text as the Hugging Face
//! `tokenizers` ByteLevel decoder does (`String::from_utf8_lossy` over all bytes), while
//! emitting every character as soon as its last byte arrives.
//!
//! There is no encoder: prompts are tokenized on the host, for example with
//! `mamba-edge tokenize`.

use crate::config::keys;
use crate::error::{Error, ModelError, name};
use crate::gguf::{ArrayValue, Gguf, ValueType};

/// Token type of control tokens (such as `<|endoftext|>`) in `tokenizer.ggml.token_type`.
pub const TOKEN_TYPE_CONTROL: i32 = 3;

/// The token strings of a byte-level BPE vocabulary, borrowed from a GGUF file.
#[derive(Clone, Copy, Debug)]
pub struct Vocab<'a> {
    tokens: ArrayValue<'a>,
    token_types: Option<ArrayValue<'a>>,
}

impl<'a> Vocab<'a> {
    /// Reads `tokenizer.ggml.tokens` (and `tokenizer.ggml.token_type` when present).
    ///
    /// # Errors
    /// [`ModelError::MissingKey`] or [`ModelError::InvalidKey`] when the tokens are absent,
    /// are not an array of strings, or the tokenizer is not byte-level BPE.
    pub fn from_gguf(gguf: &Gguf<'a>) -> Result<Self, Error> {
        let tokenizer = gguf
            .get(keys::TOKENIZER_MODEL)
            .ok_or_else(|| ModelError::MissingKey { key: name(keys::TOKENIZER_MODEL) })?;
        if tokenizer.as_str() != Some("gpt2") {
            return Err(invalid(keys::TOKENIZER_MODEL, "`gpt2`: only byte-level BPE vocabularies can be decoded without an allocator"));
        }
        let tokens = gguf
            .get(keys::TOKENIZER_TOKENS)
            .ok_or_else(|| ModelError::MissingKey { key: name(keys::TOKENIZER_TOKENS) })?
            .as_array()
            .filter(|array| array.elem_type() == ValueType::String)
            .ok_or_else(|| invalid(keys::TOKENIZER_TOKENS, "an array of strings"))?;
        let token_types = match gguf.get(keys::TOKENIZER_TOKEN_TYPE) {
            None => None,
            Some(value) => Some(
                value
                    .as_array()
                    .filter(|array| array.elem_type() == ValueType::I32 && array.len() == tokens.len())
                    .ok_or_else(|| invalid(keys::TOKENIZER_TOKEN_TYPE, "an i32 array as long as tokenizer.ggml.tokens"))?,
            ),
        };
        Ok(Self { tokens, token_types })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        usize::try_from(self.tokens.len()).unwrap_or(usize::MAX)
    }

    /// Returns whether the vocabulary has no tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Returns the stored string of token `id`, or `None` past the end.
    ///
    /// NOTE: GGUF string arrays have no index, so this walks the strings before `id`: about
    /// `id` steps, which is fast for the 512-token micro model but slow for a 50k vocabulary
    /// on a microcontroller.
    pub fn token_text(&self, id: u32) -> Option<&'a str> {
        self.tokens.get(u64::from(id))?.as_str()
    }

    /// Returns whether token `id` is a control token such as `<|endoftext|>`.
    pub fn is_control(&self, id: u32) -> bool {
        let token_type = self.token_types.and_then(|types| types.get(u64::from(id))).and_then(|v| v.as_i64());
        token_type == Some(i64::from(TOKEN_TYPE_CONTROL))
    }

    /// Returns the bytes that token `id` stands for.
    ///
    /// A string with a character outside the byte-level alphabet (an added token written as
    /// plain text) stands for its own UTF-8 bytes, as in the Hugging Face decoder. Control
    /// tokens are decoded too; skip them with [`Vocab::is_control`] where they are unwanted.
    ///
    /// # Errors
    /// [`Error::TokenOutOfRange`] when `id` is not below [`Vocab::len`].
    pub fn token_bytes(&self, id: u32) -> Result<TokenBytes<'a>, Error> {
        let text = self.token_text(id).ok_or(Error::TokenOutOfRange { token: id, n_vocab: self.len() })?;
        let byte_level = text.chars().all(|ch| char_to_byte(ch).is_some());
        Ok(TokenBytes { text, chars: text.chars(), raw_at: if byte_level { None } else { Some(0) } })
    }
}

fn invalid(key: &str, expected: &'static str) -> Error {
    ModelError::InvalidKey { key: name(key), expected }.into()
}

/// The bytes of one token, from [`Vocab::token_bytes`].
#[derive(Clone, Debug)]
pub struct TokenBytes<'a> {
    text: &'a str,
    chars: core::str::Chars<'a>,
    /// Position in `text` when the token is plain text rather than byte-level characters.
    raw_at: Option<usize>,
}

impl Iterator for TokenBytes<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        match &mut self.raw_at {
            Some(at) => {
                let byte = *self.text.as_bytes().get(*at)?;
                *at += 1;
                Some(byte)
            }
            // Every character was checked to map to a byte.
            None => self.chars.next().and_then(char_to_byte),
        }
    }
}

/// Maps a character of the byte-level alphabet to the byte it stands for.
pub fn char_to_byte(ch: char) -> Option<u8> {
    let code = u32::from(ch);
    if stands_for_itself(code) {
        return u8::try_from(code).ok();
    }
    // Characters from U+0100 stand for the bytes that are not printable, in increasing order.
    let index = code.checked_sub(0x100)?;
    (0..=255u32).filter(|&byte| !stands_for_itself(byte)).nth(usize::try_from(index).ok()?).and_then(|b| u8::try_from(b).ok())
}

/// Returns whether byte `code` is written as the character with the same code.
const fn stands_for_itself(code: u32) -> bool {
    matches!(code, 0x21..=0x7e | 0xa1..=0xac | 0xae..=0xff)
}

/// Decodes a stream of bytes into UTF-8 text, one byte at a time.
///
/// A complete character is emitted as soon as its last byte arrives. An invalid sequence
/// becomes one U+FFFD replacement character, as `String::from_utf8_lossy` does, and
/// [`Utf8Stream::finish`] emits one for an incomplete character at the end.
#[derive(Clone, Debug, Default)]
pub struct Utf8Stream {
    pending: heapless::Vec<u8, 4>,
}

impl Utf8Stream {
    /// Creates an empty stream.
    pub const fn new() -> Self {
        Self { pending: heapless::Vec::new() }
    }

    /// Adds one byte and passes any text it completes to `emit`.
    pub fn push<E>(&mut self, byte: u8, emit: &mut impl FnMut(&str) -> Result<(), E>) -> Result<(), E> {
        // `pending` contains at most 3 bytes of an incomplete character here.
        let _ = self.pending.push(byte);
        loop {
            match core::str::from_utf8(&self.pending) {
                Ok(text) => {
                    emit(text)?;
                    self.pending.clear();
                    return Ok(());
                }
                Err(e) => match e.error_len() {
                    // The character is incomplete: wait for more bytes.
                    None => return Ok(()),
                    // `pending` starts at a character boundary, so the invalid bytes come
                    // first; what follows them is decoded again.
                    Some(invalid) => {
                        emit("\u{FFFD}")?;
                        let rest: heapless::Vec<u8, 4> = self.pending.iter().skip(invalid).copied().collect();
                        self.pending = rest;
                        if self.pending.is_empty() {
                            return Ok(());
                        }
                    }
                },
            }
        }
    }

    /// Adds every byte of `bytes`; see [`Utf8Stream::push`].
    pub fn push_all<E>(&mut self, bytes: impl IntoIterator<Item = u8>, emit: &mut impl FnMut(&str) -> Result<(), E>) -> Result<(), E> {
        for byte in bytes {
            self.push(byte, emit)?;
        }
        Ok(())
    }

    /// Ends the stream: an incomplete character left over becomes one U+FFFD.
    pub fn finish<E>(&mut self, emit: &mut impl FnMut(&str) -> Result<(), E>) -> Result<(), E> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.pending.clear();
        emit("\u{FFFD}")
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    /// Maps a byte to its character in the byte-level alphabet, written out independently of
    /// `char_to_byte`.
    fn byte_to_char(byte: u8) -> char {
        let mut next = 0x100u32;
        for b in 0..=255u8 {
            let own = matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff);
            let ch = if own { u32::from(b) } else { next };
            if !own {
                next += 1;
            }
            if b == byte {
                return char::from_u32(ch).unwrap_or('?');
            }
        }
        '?'
    }

    fn lossy_by_stream(bytes: &[u8]) -> String {
        let mut out = String::new();
        let mut stream = Utf8Stream::new();
        let mut emit = |s: &str| -> Result<(), ()> {
            out.push_str(s);
            Ok(())
        };
        let _ = stream.push_all(bytes.iter().copied(), &mut emit);
        let _ = stream.finish(&mut emit);
        out
    }

    #[test]
    fn alphabet_round_trips_every_byte() {
        for byte in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(byte)), Some(byte), "byte {byte:#04x}");
        }
        assert_eq!(byte_to_char(b' '), '\u{120}');
        assert_eq!(byte_to_char(b'\n'), '\u{10a}');
        assert_eq!(char_to_byte('\u{144}'), None);
    }

    #[test]
    fn stream_matches_from_utf8_lossy() {
        let cases: [&[u8]; 8] = [
            b"plain ascii",
            "naïve 日本 🦀".as_bytes(),
            b"\xff\xfe",
            b"a\xe2\x82",
            b"\xe2\x82a\xf0\x9f\xa6",
            b"\xc3\x28\xa0\xa1",
            b"\xed\xa0\x80x",
            b"\xf4\x90\x80\x80\xc0\xaf",
        ];
        for bytes in cases {
            assert_eq!(lossy_by_stream(bytes), String::from_utf8_lossy(bytes), "bytes {bytes:x?}");
        }
    }

    #[test]
    fn stream_matches_lossy_on_random_bytes() {
        let mut rng = crate::sampling::Rng::new(5);
        for _ in 0..2000 {
            let len = (rng.next_u64() % 12) as usize;
            // Mostly high bytes, so multi-byte sequences and errors are common.
            let bytes: Vec<u8> = (0..len).map(|_| (0x70 + rng.next_u64() % 0x90) as u8).collect();
            assert_eq!(lossy_by_stream(&bytes), String::from_utf8_lossy(&bytes), "bytes {bytes:x?}");
        }
    }
}
