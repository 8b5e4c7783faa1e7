//! Incremental decoding of generated tokens into text for streaming output.

use tokenizers::Tokenizer;

use crate::error::CliError;

/// Most tokens held back waiting for a UTF-8 character to complete. A character has at most
/// four bytes and every byte-level token carries at least one, so text that still ends in
/// U+FFFD after this many tokens is invalid, not incomplete, and is printed as it is. The
/// bound keeps memory constant when a model emits invalid byte sequences indefinitely.
const MAX_HELD_TOKENS: usize = 8;

/// Turns generated token ids into text pieces whose concatenation equals the decoding of all
/// ids at once.
///
/// Byte-level BPE tokens can end inside a UTF-8 character, so a piece is held back while the
/// decoded text ends with U+FFFD (the replacement character of an incomplete or invalid byte
/// sequence). [`TextStream::finish`] returns what is still held back at the end.
pub struct TextStream<'t> {
    tokenizer: &'t Tokenizer,
    /// Context ids whose text was already returned, then the ids not yet returned.
    window: Vec<u32>,
    /// Number of context ids at the start of `window`.
    context_len: usize,
    /// Decoded text of the context ids alone.
    context_text: String,
}

impl<'t> TextStream<'t> {
    /// Creates a stream with no context.
    pub fn new(tokenizer: &'t Tokenizer) -> Self {
        Self { tokenizer, window: Vec::new(), context_len: 0, context_text: String::new() }
    }

    /// Adds one token and returns the text it completes, if any.
    pub fn push(&mut self, token: u32) -> Result<Option<String>, CliError> {
        self.window.push(token);
        let text = self.decode(&self.window)?;
        let held = self.window.len() - self.context_len;
        if text.ends_with(char::REPLACEMENT_CHARACTER) && held < MAX_HELD_TOKENS {
            return Ok(None);
        }
        let piece = self.new_text(text)?;

        // The returned ids become the context of the next piece. Decoders such as Metaspace
        // treat the first token differently, so a piece is always decoded after its context.
        self.window.drain(..self.context_len);
        self.context_len = self.window.len();
        self.context_text = self.decode(&self.window)?;
        Ok(Some(piece))
    }

    /// Returns the text of the tokens still held back, replacement characters included.
    pub fn finish(&mut self) -> Result<Option<String>, CliError> {
        if self.window.len() == self.context_len {
            return Ok(None);
        }
        let text = self.decode(&self.window)?;
        let piece = self.new_text(text)?;
        self.window.clear();
        self.context_len = 0;
        self.context_text.clear();
        Ok(Some(piece))
    }

    /// Strips the context's text from the decoding of the whole window.
    fn new_text(&self, text: String) -> Result<String, CliError> {
        match text.strip_prefix(self.context_text.as_str()) {
            Some(piece) => Ok(piece.to_string()),
            // When a decoder's output for the context changes once tokens follow, decode the
            // new tokens alone rather than drop their text.
            None => self.decode(&self.window[self.context_len..]),
        }
    }

    fn decode(&self, ids: &[u32]) -> Result<String, CliError> {
        self.tokenizer
            .decode(ids, false)
            .map_err(|e| CliError::Decode(format!("ids {ids:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::models::bpe::BPE;

    /// Builds a byte-level tokenizer whose tokens 0..256 are the single bytes.
    fn byte_tokenizer() -> Tokenizer {
        let vocab: tokenizers::models::bpe::Vocab = (0..=255u8).map(|b| (byte_symbol(b), u32::from(b))).collect();
        let bpe = BPE::builder().vocab_and_merges(vocab, Vec::new()).build().unwrap();
        let mut tokenizer = Tokenizer::new(bpe);
        tokenizer.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
        tokenizer
    }

    /// Returns the printable symbol GPT-2's byte-level encoding assigns to byte `b`.
    fn byte_symbol(b: u8) -> String {
        let printable = |c: u8| (b'!'..=b'~').contains(&c) || (0xa1..=0xac).contains(&c) || (0xae..=0xff).contains(&c);
        if printable(b) {
            return char::from(b).to_string();
        }
        let offset = (0..b).filter(|&c| !printable(c)).count() as u32;
        char::from_u32(256 + offset).unwrap().to_string()
    }

    #[test]
    fn split_character_is_held_then_printed() {
        let tokenizer = byte_tokenizer();
        let mut stream = TextStream::new(&tokenizer);
        // "é" is C3 A9.
        assert_eq!(stream.push(0xc3).unwrap(), None);
        assert_eq!(stream.push(0xa9).unwrap().as_deref(), Some("é"));
        assert_eq!(stream.finish().unwrap(), None);
    }

    #[test]
    fn endless_invalid_bytes_stay_bounded() {
        let tokenizer = byte_tokenizer();
        let mut stream = TextStream::new(&tokenizer);
        let mut printed = String::new();
        for _ in 0..1000 {
            if let Some(piece) = stream.push(0xff).unwrap() {
                printed.push_str(&piece);
            }
            assert!(stream.window.len() <= 2 * MAX_HELD_TOKENS, "window grew to {}", stream.window.len());
        }
        if let Some(piece) = stream.finish().unwrap() {
            printed.push_str(&piece);
        }
        assert_eq!(printed.chars().count(), 1000, "one replacement character per invalid byte");
    }
}
