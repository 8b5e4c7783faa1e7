//! Errors of the `mamba-edge` commands.

use std::path::PathBuf;

/// Any failure of a command; `main` prints it and exits with status 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The model or another input file could not be opened or read.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The model path names a directory or another file that is not a regular file.
    #[error("cannot open {}: it is {kind}, not a GGUF model file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// Kind of file: "a directory" or "a special file".
        kind: &'static str,
    },
    /// An output file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The model file is not a valid or supported model.
    #[error("{}: {source}", path.display())]
    Model {
        /// The model file.
        path: PathBuf,
        /// The reason it was rejected.
        source: Box<mamba_core::Error>,
    },
    /// Running the model failed (bad token ids, bad saved state).
    #[error("{0}")]
    Engine(Box<mamba_core::Error>),
    /// The model file carries no usable tokenizer.
    #[error("{}: {message}", path.display())]
    Tokenizer {
        /// The model file.
        path: PathBuf,
        /// Description of the missing or invalid part.
        message: String,
    },
    /// Writing to standard output failed. `main` exits quietly when the reader closed the pipe.
    #[error("cannot write to standard output: {0}")]
    Stdout(std::io::Error),
    /// Generated token ids could not be turned into text.
    #[error("cannot decode generated tokens: {0}")]
    Decode(String),
    /// The compute backend failed: no Vulkan driver or device, or a GPU error.
    #[error("{0}")]
    #[cfg_attr(not(feature = "vulkan"), allow(dead_code))]
    Backend(String),
    /// A command-line value is invalid.
    #[error("{0}")]
    Usage(String),
}

impl From<mamba_core::Error> for CliError {
    fn from(e: mamba_core::Error) -> Self {
        Self::Engine(Box::new(e))
    }
}

impl CliError {
    /// Wraps an error of the Vulkan backend.
    #[cfg(feature = "vulkan")]
    pub fn backend(e: mamba_vulkan::VulkanError) -> Self {
        Self::Backend(e.to_string())
    }

    /// Wraps an engine error that concerns the model file at `path`.
    pub fn model(path: &std::path::Path, source: impl Into<mamba_core::Error>) -> Self {
        Self::Model { path: path.to_path_buf(), source: Box::new(source.into()) }
    }
}
