//! Stop sequences: strings that end generation when the output text reaches them, kept in
//! fixed-capacity storage so they work without an allocator.

use crate::error::Error;

/// Up to `N` stop sequences of up to `L` bytes each, and the last `L` bytes of output.
///
/// Feed every output byte to [`StopSequences::push`]; it reports when the text so far ends
/// with one of the sequences, which also catches a sequence split across tokens.
#[derive(Clone, Debug, Default)]
pub struct StopSequences<const N: usize, const L: usize> {
    sequences: heapless::Vec<heapless::Vec<u8, L>, N>,
    /// The last bytes of output, oldest first, at most `L`.
    tail: heapless::Deque<u8, L>,
}

impl<const N: usize, const L: usize> StopSequences<N, L> {
    /// Creates an empty set, which never stops generation.
    pub const fn new() -> Self {
        Self { sequences: heapless::Vec::new(), tail: heapless::Deque::new() }
    }

    /// Adds a stop sequence.
    ///
    /// # Errors
    /// - [`Error::EmptyInput`] for an empty sequence, which would stop before any output.
    /// - [`Error::BufferTooSmall`] naming the stop sequence when it is longer than `L` bytes,
    ///   or naming the stop sequence list when it already contains `N` sequences.
    pub fn add(&mut self, sequence: &str) -> Result<(), Error> {
        let bytes = sequence.as_bytes();
        if bytes.is_empty() {
            return Err(Error::EmptyInput);
        }
        let stored = heapless::Vec::from_slice(bytes)
            .map_err(|_| Error::BufferTooSmall { buffer: "stop sequence", needed: bytes.len(), found: L })?;
        let entry_bytes = core::mem::size_of::<heapless::Vec<u8, L>>();
        self.sequences.push(stored).map_err(|_| Error::BufferTooSmall {
            buffer: "stop sequence list",
            needed: (N + 1) * entry_bytes,
            found: N * entry_bytes,
        })
    }

    /// Number of stop sequences.
    pub fn len(&self) -> usize {
        self.sequences.len()
    }

    /// Returns whether there are no stop sequences.
    pub fn is_empty(&self) -> bool {
        self.sequences.is_empty()
    }

    /// Appends one output byte and returns whether the output now ends with a stop sequence.
    pub fn push(&mut self, byte: u8) -> bool {
        if self.tail.is_full() {
            self.tail.pop_front();
        }
        // There is room after the pop above.
        let _ = self.tail.push_back(byte);
        self.sequences.iter().any(|sequence| self.tail_ends_with(sequence))
    }

    /// Appends every byte of `bytes` and returns whether the output reached a stop sequence
    /// at any of them.
    pub fn push_all(&mut self, bytes: impl IntoIterator<Item = u8>) -> bool {
        let mut stopped = false;
        for byte in bytes {
            stopped |= self.push(byte);
        }
        stopped
    }

    /// Forgets the output seen so far, for a new sequence.
    pub fn reset(&mut self) {
        self.tail.clear();
    }

    fn tail_ends_with(&self, sequence: &[u8]) -> bool {
        let Some(skip) = self.tail.len().checked_sub(sequence.len()) else {
            return false;
        };
        self.tail.iter().skip(skip).eq(sequence.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_across_pushes() {
        let mut stop = StopSequences::<2, 8>::new();
        assert_eq!(stop.add("\n\n"), Ok(()));
        assert_eq!(stop.add("def "), Ok(()));
        assert!(!stop.push_all(*b"x = 1\n"));
        assert!(stop.push(b'\n'));
        stop.reset();
        assert!(!stop.push_all(*b"de"));
        assert!(stop.push_all(*b"f f"));
    }

    #[test]
    fn long_output_keeps_matching() {
        let mut stop = StopSequences::<1, 3>::new();
        assert_eq!(stop.add("end"), Ok(()));
        for _ in 0..100 {
            assert!(!stop.push_all(*b"abc"));
        }
        assert!(stop.push_all(*b"the end"));
    }

    #[test]
    fn empty_set_never_stops() {
        let mut stop = StopSequences::<1, 4>::new();
        assert!(!stop.push_all(*b"anything"));
        assert!(stop.is_empty());
    }

    #[test]
    fn add_rejects_what_does_not_fit() {
        let mut stop = StopSequences::<1, 4>::new();
        assert_eq!(stop.add(""), Err(Error::EmptyInput));
        assert_eq!(stop.add("toolong"), Err(Error::BufferTooSmall { buffer: "stop sequence", needed: 7, found: 4 }));
        assert_eq!(stop.add("ok"), Ok(()));
        assert!(matches!(stop.add("no"), Err(Error::BufferTooSmall { buffer: "stop sequence list", .. })));
        assert_eq!(stop.len(), 1);
    }
}
