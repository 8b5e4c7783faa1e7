//! Opening a GGUF model file: memory-mapped, parsed, and resolved into a model.

use std::fs::File;
use std::path::{Path, PathBuf};

use mamba_core::Model;
use memmap2::Mmap;

use crate::error::CliError;

/// The default model, `models/default/model.gguf`, compiled into the binary so that it is
/// found from any working directory and after `cargo install`.
const DEFAULT_MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!("../../../models/default/model.gguf"));

/// Label used in messages for the built-in default model.
pub const DEFAULT_MODEL_LABEL: &str = "<built-in default model>";

/// Bytes aligned so that f32 tensor data inside the GGUF file is 4-byte aligned; GGUF aligns
/// tensor offsets to 32 bytes relative to the file start.
#[repr(C, align(64))]
struct Aligned<T: ?Sized>(T);

/// The bytes of a GGUF file, memory-mapped or built in.
enum Source {
    Mapped(Mmap),
    BuiltIn(&'static [u8]),
}

/// A GGUF model file. Models borrow from it.
pub struct ModelFile {
    path: PathBuf,
    source: Source,
}

impl ModelFile {
    /// Maps `path` read-only, or uses the built-in default model when `path` is `None`.
    pub fn open_or_default(path: Option<&Path>) -> Result<Self, CliError> {
        match path {
            Some(path) => Self::open(path),
            None => Ok(Self { path: PathBuf::from(DEFAULT_MODEL_LABEL), source: Source::BuiltIn(&DEFAULT_MODEL.0) }),
        }
    }

    /// Maps `path` read-only.
    pub fn open(path: &Path) -> Result<Self, CliError> {
        let file = File::open(path).map_err(|source| CliError::Open { path: path.to_path_buf(), source })?;
        // Mapping a directory fails with ENODEV ("No such device"), which hides the real mistake.
        let file_type = file.metadata().map_err(|source| CliError::Open { path: path.to_path_buf(), source })?.file_type();
        if !file_type.is_file() {
            let kind = if file_type.is_dir() { "a directory" } else { "a special file" };
            return Err(CliError::NotAFile { path: path.to_path_buf(), kind });
        }
        // SAFETY: the map is read-only. If another process truncates the file while it is
        // mapped, reads fault (SIGBUS); memory-mapped loaders accept this, and the README warns
        // against rewriting a model file that is in use.
        let map = unsafe { Mmap::map(&file) }.map_err(|source| CliError::Open { path: path.to_path_buf(), source })?;
        Ok(Self { path: path.to_path_buf(), source: Source::Mapped(map) })
    }

    /// Returns the file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.source {
            Source::Mapped(map) => map,
            Source::BuiltIn(bytes) => bytes,
        }
    }

    /// Returns the path the file was opened from, or the built-in model's label.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Parses the file and resolves the model's weights.
    pub fn model(&self) -> Result<Model<'_>, CliError> {
        Model::from_bytes(self.bytes()).map_err(|source| CliError::model(&self.path, source))
    }
}
