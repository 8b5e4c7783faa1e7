//! Incremental detokenization that only ever returns complete UTF-8 text.

use tokenizers::Tokenizer;

/// Most tokens held back while waiting for a UTF-8 character to complete. A character has
/// at most 4 bytes, and byte-level BPE gives each byte at least one token, so a longer run
/// of held tokens is text that really decodes to U+FFFD; it is then released as it is.
const MAX_HELD_TOKENS: usize = 8;

/// Turns token ids into text pieces whose concatenation equals the decoding of all the ids
/// at once.
///
/// A byte-level BPE token can end inside a multi-byte character. While the decoded text
/// ends with U+FFFD (the replacement character that the decoder emits for an incomplete
/// sequence), the piece is held back and returned with the token that completes it.
#[derive(Clone, Debug, Default)]
pub struct TextStream {
    /// The ids of the last returned piece (context), then the ids not yet returned.
    ids: Vec<u32>,
    /// Number of context ids at the start of `ids`.
    context_len: usize,
    /// Decoded text of the context ids alone.
    context_text: String,
}

impl TextStream {
    /// Adds `token` and returns the text it completes, which is empty while a character is
    /// incomplete.
    pub fn push(&mut self, tokenizer: &Tokenizer, token: u32) -> tokenizers::Result<String> {
        self.ids.push(token);
        let text = tokenizer.decode(&self.ids, false)?;
        let held = self.ids.len() - self.context_len;
        if text.ends_with(char::REPLACEMENT_CHARACTER) && held < MAX_HELD_TOKENS {
            return Ok(String::new());
        }
        let piece = strip_context(&self.context_text, text);

        // The returned ids become the next context. Decoders such as Metaspace strip a
        // leading space from the first token, so each piece is decoded after its context.
        self.ids.drain(..self.context_len);
        self.context_len = self.ids.len();
        self.context_text = tokenizer.decode(&self.ids, false)?;
        Ok(piece)
    }

    /// Returns the text of the held-back tokens, replacement characters included, and
    /// empties the stream.
    pub fn flush(&mut self, tokenizer: &Tokenizer) -> tokenizers::Result<String> {
        let piece = if self.ids.len() > self.context_len {
            let text = tokenizer.decode(&self.ids, false)?;
            strip_context(&self.context_text, text)
        } else {
            String::new()
        };
        self.clear();
        Ok(piece)
    }

    /// Forgets every token, as at the start of a sequence.
    pub fn clear(&mut self) {
        self.ids.clear();
        self.context_len = 0;
        self.context_text.clear();
    }
}

/// Removes the context's text from the front of `text`. When the decoder rewrote the
/// context (a cleanup rule joined it with the new token), only the common prefix goes.
fn strip_context(context: &str, text: String) -> String {
    if let Some(rest) = text.strip_prefix(context) {
        return rest.to_string();
    }
    let common = context
        .char_indices()
        .zip(text.chars())
        .find(|((_, a), b)| a != b)
        .map_or(context.len().min(text.len()), |((i, _), _)| i);
    text[common..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_context_prefix() {
        assert_eq!(strip_context("ab", "abc".to_string()), "c");
        assert_eq!(strip_context("", "é".to_string()), "é");
    }

    #[test]
    fn strip_context_rewritten() {
        // Context "a " was rewritten to "a" + "." by a cleanup rule.
        assert_eq!(strip_context("a ", "a.".to_string()), ".");
        assert_eq!(strip_context("é!", "éx".to_string()), "x");
    }
}
