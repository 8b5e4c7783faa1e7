//! The crate's error types. Every message names the value at fault and what to do about it.

use core::fmt;

use crate::gguf::GgufError;
use crate::quant::QuantError;
use crate::tensor::GgmlType;

/// A tensor or key name copied into an error, truncated to 95 bytes.
pub type Name = heapless::String<96>;

/// Copies `text` into a [`Name`], cutting it at a character boundary when it is too long.
pub(crate) fn name(text: &str) -> Name {
    let mut out = Name::new();
    for ch in text.chars() {
        if out.push(ch).is_err() {
            break;
        }
    }
    out
}

/// A GGUF file that parses but does not describe a model this crate can run.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelError {
    /// A required metadata key is absent.
    MissingKey {
        /// The key, for example `mamba.ssm.state_size`.
        key: Name,
    },
    /// A metadata key has a value of the wrong type or out of range.
    InvalidKey {
        /// The key.
        key: Name,
        /// What the value must be.
        expected: &'static str,
    },
    /// `general.architecture` names a model family this crate does not run.
    UnknownArchitecture {
        /// The architecture found.
        found: Name,
    },
    /// A hyperparameter is zero, too large, or inconsistent with another.
    InvalidHyperparameter {
        /// Standard name, for example `d_state`.
        name: &'static str,
        /// The value found.
        value: u64,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A required tensor is absent.
    MissingTensor {
        /// Tensor name.
        name: Name,
    },
    /// A tensor's shape differs from the one the hyperparameters imply.
    TensorShape {
        /// Tensor name.
        name: Name,
        /// Expected dims in GGUF order, unused ones 1.
        expected: [u64; 4],
        /// Dims found, unused ones 1.
        found: [u64; 4],
    },
    /// A tensor has an element type this crate does not accept for it.
    TensorType {
        /// Tensor name.
        name: Name,
        /// Type found.
        found: GgmlType,
        /// Types accepted.
        expected: &'static str,
    },
    /// An f32 tensor does not start on a 4-byte boundary in memory.
    Misaligned {
        /// Tensor name.
        name: Name,
    },
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingKey { key } => write!(
                f,
                "metadata key `{key}` is missing; reconvert the model with mamba-quantize or llama.cpp's convert_hf_to_gguf.py"
            ),
            Self::InvalidKey { key, expected } => {
                write!(f, "metadata key `{key}` is invalid: expected {expected}")
            }
            Self::UnknownArchitecture { found } => write!(
                f,
                "unsupported architecture `{found}`: this build runs `mamba` (Mamba-1, Falcon-Mamba) and `mamba2` models"
            ),
            Self::InvalidHyperparameter { name, value, rule } => {
                write!(f, "invalid hyperparameter {name} = {value}: {rule}")
            }
            Self::MissingTensor { name } => write!(
                f,
                "tensor `{name}` is missing; the file is incomplete or not a Mamba model"
            ),
            Self::TensorShape { name, expected, found } => write!(
                f,
                "tensor `{name}` has shape {found:?} but the hyperparameters require {expected:?} (GGUF order)"
            ),
            Self::TensorType { name, found, expected } => write!(
                f,
                "tensor `{name}` has type {found} but must be {expected}; requantize it with mamba-quantize"
            ),
            Self::Misaligned { name } => write!(
                f,
                "tensor `{name}` is not 4-byte aligned in memory; load the file with mmap or into an aligned buffer"
            ),
        }
    }
}

impl core::error::Error for ModelError {}

/// Any error from loading a model or running a session.
#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// The bytes are not a valid GGUF file.
    Gguf(GgufError),
    /// The GGUF file is valid but not a runnable model.
    Model(ModelError),
    /// A tensor format conversion failed.
    Quant(QuantError),
    /// A token id is not below the vocabulary size.
    TokenOutOfRange {
        /// The token id.
        token: u32,
        /// The model's vocabulary size.
        n_vocab: usize,
    },
    /// No tokens were given where at least one is required.
    EmptyInput,
    /// A caller-provided buffer is too small.
    BufferTooSmall {
        /// Which buffer.
        buffer: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        found: usize,
    },
    /// Saved session state does not fit this model or is damaged.
    State(StateError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gguf(e) => write!(f, "invalid GGUF file: {e}"),
            Self::Model(e) => e.fmt(f),
            Self::Quant(e) => e.fmt(f),
            Self::TokenOutOfRange { token, n_vocab } => write!(
                f,
                "token id {token} is out of range: the model's vocabulary has {n_vocab} tokens (ids 0..={})",
                n_vocab.saturating_sub(1)
            ),
            Self::EmptyInput => f.write_str("no input tokens: give a prompt of at least one token"),
            Self::BufferTooSmall { buffer, needed, found } => write!(
                f,
                "{buffer} buffer is too small: {needed} bytes needed, {found} bytes given; pass a buffer of at least {needed} bytes"
            ),
            Self::State(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for Error {}

impl From<GgufError> for Error {
    fn from(e: GgufError) -> Self {
        Self::Gguf(e)
    }
}

impl From<ModelError> for Error {
    fn from(e: ModelError) -> Self {
        Self::Model(e)
    }
}

impl From<QuantError> for Error {
    fn from(e: QuantError) -> Self {
        Self::Quant(e)
    }
}

impl From<StateError> for Error {
    fn from(e: StateError) -> Self {
        Self::State(e)
    }
}

/// Saved session state that cannot be restored into this session.
#[derive(Clone, Debug, PartialEq)]
pub enum StateError {
    /// The bytes do not start with the state magic.
    BadMagic,
    /// The state was written by a newer or older format version.
    UnsupportedVersion {
        /// Version found.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// A hyperparameter in the state differs from the model's.
    ModelMismatch {
        /// Standard name of the hyperparameter.
        field: &'static str,
        /// Value stored in the state.
        saved: u64,
        /// Value of the loaded model.
        model: u64,
    },
    /// The byte length differs from the one the header implies.
    Length {
        /// Bytes expected.
        expected: usize,
        /// Bytes found.
        found: usize,
    },
    /// The checksum over the state values does not match.
    Checksum,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic => f.write_str("not a mamba-edge session state (bad magic); pass a file written by --state-out"),
            Self::UnsupportedVersion { found, supported } => write!(
                f,
                "session state format version {found} is not supported (this build reads version {supported}); recreate the state"
            ),
            Self::ModelMismatch { field: "architecture", saved, model } => write!(
                f,
                "session state was saved for a {} model, but the loaded model is {}; use the same model file",
                family_name(*saved),
                family_name(*model)
            ),
            Self::ModelMismatch { field, saved, model } => write!(
                f,
                "session state was saved for a model with {field} = {saved}, but the loaded model has {model}; use the same model file"
            ),
            Self::Length { expected, found } => write!(
                f,
                "session state is {found} bytes but its header implies {expected}; the file is truncated or damaged"
            ),
            Self::Checksum => f.write_str("session state checksum mismatch; the file is damaged, recreate it"),
        }
    }
}

impl core::error::Error for StateError {}

/// Returns the name of a model family code in a saved-state header.
fn family_name(code: u64) -> &'static str {
    match code {
        1 => "mamba",
        2 => "mamba2",
        3 => "falcon-mamba",
        _ => "unknown-family",
    }
}
