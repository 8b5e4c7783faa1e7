//! PyTorch checkpoints (`pytorch_model.bin`) as `torch.save` writes them since PyTorch 1.6:
//! a ZIP archive with the pickled state dict in `<prefix>/data.pkl` and each storage's raw
//! bytes in `<prefix>/data/<key>`.
//!
//! The file is memory-mapped and the tensors borrow their bytes from the map, as for
//! safetensors. The pickle is read by the bounded reader in [`crate::pickle`].

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::Dtype;

use crate::error::{ConvertError, Result};
use crate::pickle::{StorageType, TensorRef, read_state_dict};
use crate::safetensors_input::StTensor;
use crate::zip_archive::ZipArchive;

/// Name of a PyTorch checkpoint file.
pub const TORCH_FILE: &str = "pytorch_model.bin";

/// Largest `data.pkl` accepted. A state dict of 100,000 tensors pickles to about 10 MB.
pub const MAX_PICKLE_BYTES: usize = 256 << 20;

/// A memory-mapped `torch.save` archive. Parse it with [`TorchCheckpoint::tensors`].
pub struct TorchCheckpoint {
    path: PathBuf,
    map: Mmap,
}

impl TorchCheckpoint {
    /// Maps the file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| ConvertError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the map is only read. Another process truncating the file while it is
        // mapped could raise SIGBUS, a risk every mmap-based model loader accepts.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        Ok(TorchCheckpoint {
            path: path.to_path_buf(),
            map,
        })
    }

    /// Reads the state dict and returns every tensor by name, with its bytes in the map.
    pub fn tensors(&self) -> Result<BTreeMap<String, StTensor<'_>>> {
        read_tensors(&self.path, &self.map)
    }
}

/// Reads the state dict of the `torch.save` archive `bytes` (the file at `path`, for
/// messages).
pub fn read_tensors<'a>(path: &'a Path, bytes: &'a [u8]) -> Result<BTreeMap<String, StTensor<'a>>> {
    let format_error = |message: String| ConvertError::TorchFormat {
        path: path.to_path_buf(),
        message,
    };
    let archive = ZipArchive::parse(bytes).map_err(|source| {
        // Before PyTorch 1.6, torch.save wrote a bare pickle stream that starts with a
        // protocol 2 header and a LONG1 magic number.
        if bytes.starts_with(&[0x80, 0x02, 0x8a]) {
            format_error(
                "the file uses the legacy torch.save format (before PyTorch 1.6), which is not \
                 read; load it with torch.load and save it again with a current PyTorch"
                    .to_owned(),
            )
        } else {
            ConvertError::Zip {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let zip_error = |source| ConvertError::Zip {
        path: path.to_path_buf(),
        source,
    };

    let prefix = find_prefix(&archive).map_err(format_error)?;
    let byteorder_name = format!("{prefix}/byteorder");
    if archive.names().any(|name| name == byteorder_name) {
        let order = archive.stored(&byteorder_name).map_err(zip_error)?;
        if order != b"little" {
            return Err(format_error(format!(
                "{byteorder_name} is {:?}; only little-endian checkpoints are read",
                String::from_utf8_lossy(order)
            )));
        }
    }

    let pickle_name = format!("{prefix}/data.pkl");
    let pickle = archive.stored_checked(&pickle_name).map_err(zip_error)?;
    if pickle.len() > MAX_PICKLE_BYTES {
        return Err(format_error(format!(
            "{pickle_name} is {} bytes, more than the {MAX_PICKLE_BYTES} bytes accepted for a state dict",
            pickle.len()
        )));
    }
    let state_dict = read_state_dict(pickle).map_err(|source| ConvertError::Pickle {
        path: path.to_path_buf(),
        entry: pickle_name.clone(),
        source,
    })?;

    let mut checked = HashSet::new();
    let mut tensors = BTreeMap::new();
    for (name, tensor) in state_dict {
        let entry = format!("{prefix}/data/{}", tensor.storage.key);
        // Each storage's CRC-32 is checked once, however many tensors view it.
        let storage = if checked.insert(entry.clone()) {
            archive.stored_checked(&entry)
        } else {
            archive.stored(&entry)
        }
        .map_err(zip_error)?;
        let data = tensor_bytes(&name, &tensor, storage).map_err(format_error)?;
        let st = StTensor {
            file: path,
            dtype: dtype(tensor.storage.ty),
            shape: tensor.shape.iter().map(|&d| d as usize).collect(),
            data,
        };
        tensors.insert(name, st);
    }
    Ok(tensors)
}

/// Returns the archive's top-level folder, the one that contains `data.pkl`.
fn find_prefix(archive: &ZipArchive<'_>) -> std::result::Result<String, String> {
    let mut prefixes = archive
        .names()
        .filter_map(|name| name.strip_suffix("/data.pkl"))
        .filter(|prefix| !prefix.is_empty() && !prefix.contains('/'));
    match (prefixes.next(), prefixes.next()) {
        (Some(prefix), None) => Ok(prefix.to_owned()),
        (None, _) => Err(
            "the archive has no <folder>/data.pkl entry, so it was not written by torch.save"
                .to_owned(),
        ),
        (Some(first), Some(second)) => Err(format!(
            "the archive has two pickles, {first}/data.pkl and {second}/data.pkl; expected one state dict"
        )),
    }
}

/// Returns the bytes of `tensor` within its storage entry `storage`.
fn tensor_bytes<'a>(
    name: &str,
    tensor: &TensorRef,
    storage: &'a [u8],
) -> std::result::Result<&'a [u8], String> {
    let size = tensor.storage.ty.size() as u64;
    let declared = tensor.storage.numel.checked_mul(size);
    if declared != Some(storage.len() as u64) {
        return Err(format!(
            "storage {} of tensor {name} declares {} elements of {size} bytes, but its entry has {} bytes",
            tensor.storage.key,
            tensor.storage.numel,
            storage.len()
        ));
    }
    // The pickle reader checked offset + numel <= storage numel, so this stays in bounds.
    let start = (tensor.offset * size) as usize;
    let len = (tensor.numel() * size) as usize;
    Ok(&storage[start..start + len])
}

/// Maps a storage type to its safetensors element type, so that both inputs share one
/// tensor type. Types the converter cannot read are rejected with the tensor's name when used.
fn dtype(ty: StorageType) -> Dtype {
    match ty {
        StorageType::F64 => Dtype::F64,
        StorageType::F32 => Dtype::F32,
        StorageType::F16 => Dtype::F16,
        StorageType::BF16 => Dtype::BF16,
        StorageType::I64 => Dtype::I64,
        StorageType::I32 => Dtype::I32,
        StorageType::I16 => Dtype::I16,
        StorageType::I8 => Dtype::I8,
        StorageType::U8 => Dtype::U8,
        StorageType::Bool => Dtype::BOOL,
    }
}
