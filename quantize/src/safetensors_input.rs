//! Memory-mapped safetensors checkpoints, single-file or sharded.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use crate::error::{ConvertError, Result};

/// Name of a single-file checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";
/// Name of the index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Element type of a source tensor that the converter accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceDtype {
    /// Little-endian f32.
    F32,
    /// Little-endian IEEE f16.
    F16,
    /// Little-endian bfloat16.
    BF16,
}

impl SourceDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            SourceDtype::F32 => 4,
            SourceDtype::F16 | SourceDtype::BF16 => 2,
        }
    }

    /// Converts `bytes`, which hold exactly `out.len()` elements, to f32.
    pub fn to_f32(self, bytes: &[u8], out: &mut [f32]) {
        match self {
            SourceDtype::F32 => {
                for (value, chunk) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *value = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                }
            }
            SourceDtype::F16 => {
                for (value, chunk) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *value = half::f16::from_le_bytes([chunk[0], chunk[1]]).to_f32();
                }
            }
            SourceDtype::BF16 => {
                for (value, chunk) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *value = half::bf16::from_le_bytes([chunk[0], chunk[1]]).to_f32();
                }
            }
        }
    }
}

/// One tensor of a checkpoint, borrowed from its memory map.
#[derive(Clone, Debug)]
pub struct StTensor<'a> {
    /// The file that contains it.
    pub file: &'a Path,
    /// Element type as stored.
    pub dtype: Dtype,
    /// Shape in PyTorch order.
    pub shape: Vec<usize>,
    /// Raw little-endian bytes.
    pub data: &'a [u8],
}

impl StTensor<'_> {
    /// Returns the element type, or an error naming the tensor when it is not F32, F16 or BF16.
    pub fn source_dtype(&self, name: &str) -> Result<SourceDtype> {
        match self.dtype {
            Dtype::F32 => Ok(SourceDtype::F32),
            Dtype::F16 => Ok(SourceDtype::F16),
            Dtype::BF16 => Ok(SourceDtype::BF16),
            other => Err(ConvertError::UnsupportedDtype {
                path: self.file.to_path_buf(),
                tensor: name.to_owned(),
                dtype: format!("{other:?}"),
            }),
        }
    }
}

/// The memory-mapped files of a checkpoint. Parse them with [`Checkpoint::tensors`].
pub struct Checkpoint {
    files: Vec<(PathBuf, Mmap)>,
    /// The index of a sharded checkpoint, for cross-checking.
    index: Option<(PathBuf, BTreeMap<String, String>)>,
}

impl Checkpoint {
    /// Maps `model.safetensors` in `dir`, or every shard that `model.safetensors.index.json`
    /// names.
    pub fn open(dir: &Path) -> Result<Self> {
        let single = dir.join(SINGLE_FILE);
        if single.is_file() {
            return Ok(Checkpoint {
                files: vec![(single.clone(), map_file(&single)?)],
                index: None,
            });
        }
        let index_path = dir.join(INDEX_FILE);
        if !index_path.is_file() {
            return Err(ConvertError::MissingWeights {
                path: dir.to_path_buf(),
            });
        }
        let weight_map = read_index(&index_path)?;
        let mut shard_names: Vec<&String> = weight_map.values().collect();
        shard_names.sort();
        shard_names.dedup();
        let mut files = Vec::with_capacity(shard_names.len());
        for shard in shard_names {
            let path = dir.join(shard);
            if !path.is_file() {
                return Err(ConvertError::ShardIndex {
                    path: index_path.clone(),
                    message: format!(
                        "shard {shard} is listed but {} does not exist",
                        path.display()
                    ),
                });
            }
            files.push((path.clone(), map_file(&path)?));
        }
        Ok(Checkpoint {
            files,
            index: Some((index_path, weight_map)),
        })
    }

    /// Total size of the mapped files in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|(_, map)| map.len() as u64).sum()
    }

    /// Parses every file's header and returns all tensors by name. Checks that each tensor
    /// appears once and, for a sharded checkpoint, in the shard the index names.
    pub fn tensors(&self) -> Result<BTreeMap<String, StTensor<'_>>> {
        let mut all = BTreeMap::new();
        for (path, map) in &self.files {
            let parsed =
                SafeTensors::deserialize(map).map_err(|err| ConvertError::Safetensors {
                    path: path.clone(),
                    message: err.to_string(),
                })?;
            for (name, view) in parsed.iter() {
                let tensor = StTensor {
                    file: path,
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    data: view.data(),
                };
                if let Some(previous) = all.insert(name.to_owned(), tensor) {
                    return Err(ConvertError::ShardIndex {
                        path: path.clone(),
                        message: format!(
                            "tensor {name} is stored in both {} and {}",
                            previous.file.display(),
                            path.display()
                        ),
                    });
                }
            }
        }
        if let Some((index_path, weight_map)) = &self.index {
            for (name, shard) in weight_map {
                let found = all
                    .get(name)
                    .map(|t| t.file.file_name() == Some(shard.as_ref()));
                if found != Some(true) {
                    return Err(ConvertError::ShardIndex {
                        path: index_path.clone(),
                        message: format!(
                            "tensor {name} is listed in shard {shard}, which does not contain it"
                        ),
                    });
                }
            }
        }
        Ok(all)
    }
}

fn map_file(path: &Path) -> Result<Mmap> {
    let io = |source| ConvertError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    // SAFETY: the map is only read. Another process truncating the file while it is mapped
    // could raise SIGBUS, a risk every mmap-based model loader accepts for checkpoints.
    unsafe { Mmap::map(&file) }.map_err(io)
}

/// Reads the `weight_map` of a shard index. Shard names must be plain file names in the
/// checkpoint directory.
fn read_index(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).map_err(|source| ConvertError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let json: Value = serde_json::from_str(&text).map_err(|source| ConvertError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |message: String| ConvertError::ShardIndex {
        path: path.to_path_buf(),
        message,
    };
    let Some(map) = json.get("weight_map").and_then(Value::as_object) else {
        return Err(bad("has no weight_map object".to_owned()));
    };
    let mut weight_map = BTreeMap::new();
    for (name, shard) in map {
        let Some(shard) = shard.as_str() else {
            return Err(bad(format!(
                "weight_map entry {name} is {shard}, expected a file name"
            )));
        };
        let is_plain_name = Path::new(shard)
            .file_name()
            .is_some_and(|file| file == shard)
            && shard != "..";
        if !is_plain_name {
            return Err(bad(format!(
                "shard {shard:?} for {name} is not a file name in the checkpoint directory"
            )));
        }
        weight_map.insert(name.clone(), shard.to_owned());
    }
    if weight_map.is_empty() {
        return Err(bad("weight_map is empty".to_owned()));
    }
    Ok(weight_map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_source_dtypes() {
        let mut out = [0.0f32; 2];
        SourceDtype::F32.to_f32(&[0, 0, 128, 63, 0, 0, 0, 192], &mut out);
        assert_eq!(out, [1.0, -2.0]);
        SourceDtype::F16.to_f32(&[0x00, 0x3c, 0x00, 0xc0], &mut out);
        assert_eq!(out, [1.0, -2.0]);
        SourceDtype::BF16.to_f32(&[0x80, 0x3f, 0x00, 0xc0], &mut out);
        assert_eq!(out, [1.0, -2.0]);
    }
}
