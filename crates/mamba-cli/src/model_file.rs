//! Opening a GGUF model file: memory-mapped, parsed, and resolved into a model.

use std::fs::File;
use std::path::{Path, PathBuf};

use mamba_core::Model;
use memmap2::Mmap;

use crate::error::CliError;

/// A memory-mapped GGUF file. Models borrow from it.
pub struct ModelFile {
    path: PathBuf,
    map: Mmap,
}

impl ModelFile {
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
        Ok(Self { path: path.to_path_buf(), map })
    }

    /// Returns the file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Returns the path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Parses the file and resolves the model's weights.
    pub fn model(&self) -> Result<Model<'_>, CliError> {
        Model::from_bytes(&self.map).map_err(|source| CliError::model(&self.path, source))
    }
}
