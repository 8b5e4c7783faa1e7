//! Incremental decoding of generated tokens into text for streaming output.

use tokenizers::Tokenizer;

use crate::error::CliError;

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
        if text.ends_with(char::REPLACEMENT_CHARACTER) {
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
