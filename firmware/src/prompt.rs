//! The fixed prompt, tokenized on the host because the firmware has no BPE encoder:
//!
//! ```sh
//! mamba-edge tokenize "def fibonacci(n):" --model models/micro/model.gguf
//! ```

/// Token ids of `def fibonacci(n):` in the micro model's vocabulary.
pub const PROMPT_TOKENS: [u32; 11] = [453, 286, 73, 66, 268, 65, 67, 471, 8, 78, 309];

/// Maximum number of tokens to generate, as `mamba-edge generate -n 48`.
pub const N_PREDICT: usize = 48;
