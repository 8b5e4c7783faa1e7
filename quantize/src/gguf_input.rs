//! Requantization of an existing Mamba GGUF file: every tensor is decoded to f32 and encoded
//! again, and the metadata is copied with `general.file_type` updated.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;

use mamba_core::GgmlType;
use mamba_core::config::{ARCH_MAMBA, ARCH_MAMBA2, keys};
use mamba_core::gguf::{Gguf, MetaValue, Value};
use memmap2::Mmap;

use crate::convert::{Notes, OutTensor, Transform, Values, settle_f16, write_gguf};
use crate::error::{ConvertError, Result};
use crate::metadata::QUANTIZATION_VERSION;
use crate::names::{Role, TensorId, expected_tensors, layer_roles, parse_gguf_name};
use crate::params::{Family, MambaParams};
use crate::plan::{choose_type, file_type};

/// Requantizes the GGUF file at `path`. Returns (tensors written, bytes read, bytes written).
pub(crate) fn requantize(
    path: &Path,
    output: &Path,
    target: GgmlType,
    notes: &mut Notes<'_>,
) -> Result<(usize, u64, u64)> {
    let io = |source| ConvertError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    // SAFETY: the map is only read. Another process truncating the file while it is mapped
    // could raise SIGBUS, a risk every mmap-based model loader accepts.
    let map = unsafe { Mmap::map(&file) }.map_err(io)?;
    let gguf = Gguf::parse(&map).map_err(|err| ConvertError::GgufRead {
        path: path.to_path_buf(),
        message: err.to_string(),
    })?;

    let arch = gguf.get(keys::ARCHITECTURE).and_then(|v| v.as_str());
    let Some(arch) = arch.filter(|arch| [ARCH_MAMBA, ARCH_MAMBA2].contains(arch)) else {
        return Err(ConvertError::UnsupportedArchitecture {
            path: path.to_path_buf(),
            found: arch.map_or_else(|| "(no general.architecture key)".to_owned(), str::to_owned),
        });
    };
    let p = params_from_gguf(path, &gguf, arch)?;
    let mut tensors = plan_tensors(path, &gguf, &p, target, notes)?;
    settle_f16(&mut tensors, notes)?;
    let metadata = copy_metadata(path, &gguf, target)?;

    let bytes_in = tensors.iter().map(OutTensor::source_bytes).sum();
    let bytes_out = write_gguf(output, metadata, &tensors, &mut *notes.progress)?;
    Ok((tensors.len(), bytes_in, bytes_out))
}

/// Reads the model dimensions from the `{arch}.*` keys and the embedding's row count.
fn params_from_gguf(path: &Path, gguf: &Gguf<'_>, arch: &str) -> Result<MambaParams> {
    let mamba_key = |key: &str| format!("{arch}.{key}");
    let dim = |key: &str| -> Result<u64> {
        let full = mamba_key(key);
        let value = gguf.get(&full).ok_or_else(|| ConvertError::MissingKey {
            path: path.to_path_buf(),
            key: full.clone(),
            hint: "every Mamba GGUF file has it; convert the model again from its Hugging Face checkpoint",
        })?;
        match value.as_u64() {
            Some(v) if v > 0 && v <= 1 << 31 => Ok(v),
            _ => Err(ConvertError::InvalidValue {
                path: path.to_path_buf(),
                key: full,
                value: value.as_u64().map_or_else(|| format!("a value of type {}", value.value_type()), |v| v.to_string()),
                expected: "a positive integer up to 2^31".to_owned(),
            }),
        }
    };
    let eps_key = mamba_key(keys::LAYER_NORM_RMS_EPSILON);
    let rms_norm_eps = match gguf.get(&eps_key) {
        Some(value) => value.as_f32().ok_or_else(|| ConvertError::InvalidValue {
            path: path.to_path_buf(),
            key: eps_key.clone(),
            value: format!("{value:?}"),
            expected: "an f32".to_owned(),
        })?,
        None => {
            return Err(ConvertError::MissingKey {
                path: path.to_path_buf(),
                key: eps_key,
                hint: "every Mamba GGUF file has it; convert the model again from its Hugging Face checkpoint",
            });
        }
    };
    let n_vocab = gguf
        .tensor(Role::TokenEmbd.gguf_name())
        .filter(|t| t.n_dims == 2)
        .map(|t| t.dims[1])
        .ok_or_else(|| ConvertError::MissingTensor {
            path: path.to_path_buf(),
            tensor: Role::TokenEmbd.gguf_name().to_owned(),
            hint: "a 2-D token embedding is required".to_owned(),
        })?;
    let mut params = MambaParams::mamba1(
        dim(keys::EMBEDDING_LENGTH)?,
        dim(keys::BLOCK_COUNT)?,
        dim(keys::SSM_INNER_SIZE)?,
        dim(keys::SSM_STATE_SIZE)?,
        dim(keys::SSM_CONV_KERNEL)?,
        dim(keys::SSM_TIME_STEP_RANK)?,
        n_vocab,
        rms_norm_eps,
    );
    if arch == ARCH_MAMBA2 {
        params.family = Family::Mamba2;
        params.n_group = dim(keys::SSM_GROUP_COUNT)?;
        let (n_head, n_group) = (params.dt_rank, params.n_group);
        if !params.d_inner.is_multiple_of(n_head) || !n_head.is_multiple_of(n_group) {
            return Err(ConvertError::InvalidValue {
                path: path.to_path_buf(),
                key: mamba_key(keys::SSM_GROUP_COUNT),
                value: format!("{n_group} with {n_head} heads and inner size {}", params.d_inner),
                expected: "heads that divide the inner size and groups that divide the heads".to_owned(),
            });
        }
    } else if gguf.get(&mamba_key(keys::SSM_DT_B_C_RMS)).and_then(|v| v.as_bool()) == Some(true) {
        params.family = Family::FalconMamba;
    }
    Ok(params)
}

/// Checks every tensor's name and shape and picks its new type, keeping the file's order.
fn plan_tensors<'a>(
    path: &'a Path,
    gguf: &Gguf<'a>,
    p: &MambaParams,
    target: GgmlType,
    notes: &mut Notes<'_>,
) -> Result<Vec<OutTensor<'a>>> {
    let mut seen = BTreeSet::new();
    let mut tensors = Vec::new();
    for info in gguf.tensors() {
        let unexpected = |reason: String| ConvertError::UnexpectedTensor {
            path: path.to_path_buf(),
            tensor: info.name.to_owned(),
            reason,
        };
        let Some(id) = parse_gguf_name(info.name) else {
            return Err(unexpected(format!("a GGUF file of arch {} has no tensor of this name", p.family.gguf_arch())));
        };
        if id.layer.is_some() && !layer_roles(p.family).contains(&id.role) {
            return Err(unexpected(format!("a GGUF file of arch {} has no tensor of this name", p.family.gguf_arch())));
        }
        if let Some(layer) = id.layer
            && layer >= p.n_layer
        {
            return Err(unexpected(format!(
                "layer {layer} is beyond {}.block_count = {}",
                p.family.gguf_arch(),
                p.n_layer
            )));
        }
        let expected = id.role.gguf_dims(p);
        if info.shape() != expected.as_slice() {
            return Err(ConvertError::ShapeMismatch {
                path: path.to_path_buf(),
                tensor: info.name.to_owned(),
                found: info.shape().to_vec(),
                expected,
                from: format!(
                    "the {}.* keys, ggml order [{}] reversed",
                    p.family.gguf_arch(),
                    id.role.shape_source(p.family)
                ),
            });
        }
        seen.insert(id);

        let choice = choose_type(id.role, expected[0], target);
        if let Some(reason) = choice.fallback {
            notes.note(format!("{}: {reason}", info.name));
        }
        tensors.push(OutTensor {
            name: info.name.to_owned(),
            dims: expected,
            dtype: choice.dtype,
            values: Values::Gguf {
                dtype: info.dtype,
                data: info.data,
            },
            // ssm_a already contains A, not A_log.
            transform: Transform::Identity,
            source_file: path,
            source_name: info.name.to_owned(),
        });
    }

    let with_output = seen.contains(&TensorId {
        role: Role::Output,
        layer: None,
    });
    if let Some(missing) = expected_tensors(p, with_output)
        .into_iter()
        .find(|id| !seen.contains(id))
    {
        return Err(ConvertError::MissingTensor {
            path: path.to_path_buf(),
            tensor: missing.gguf_name(),
            hint: "every GGUF file of this arch has it; convert the model again from its Hugging Face checkpoint".to_owned(),
        });
    }
    Ok(tensors)
}

/// Copies every metadata entry in order, replacing `general.file_type` and
/// `general.quantization_version`. `general.alignment` is left to the writer, which uses
/// its default alignment.
fn copy_metadata(
    path: &Path,
    gguf: &Gguf<'_>,
    target: GgmlType,
) -> Result<Vec<(String, MetaValue)>> {
    let mut entries = Vec::new();
    let mut has_file_type = false;
    let mut has_version = false;
    for (key, value) in gguf.metadata() {
        let value = match key {
            k if k == keys::ALIGNMENT => continue,
            k if k == keys::FILE_TYPE => {
                has_file_type = true;
                MetaValue::U32(file_type(target))
            }
            k if k == keys::QUANTIZATION_VERSION => {
                has_version = true;
                MetaValue::U32(QUANTIZATION_VERSION)
            }
            _ => to_meta_value(&value).ok_or_else(|| ConvertError::GgufRead {
                path: path.to_path_buf(),
                message: format!("metadata key {key} has an array whose elements cannot be read"),
            })?,
        };
        entries.push((key.to_owned(), value));
    }
    if !has_file_type {
        entries.push((
            keys::FILE_TYPE.to_owned(),
            MetaValue::U32(file_type(target)),
        ));
    }
    if !has_version {
        entries.push((
            keys::QUANTIZATION_VERSION.to_owned(),
            MetaValue::U32(QUANTIZATION_VERSION),
        ));
    }
    Ok(entries)
}

/// Converts a borrowed value to an owned one, or `None` when an array is shorter than
/// its stated length.
fn to_meta_value(value: &Value<'_>) -> Option<MetaValue> {
    Some(match *value {
        Value::U8(v) => MetaValue::U8(v),
        Value::I8(v) => MetaValue::I8(v),
        Value::U16(v) => MetaValue::U16(v),
        Value::I16(v) => MetaValue::I16(v),
        Value::U32(v) => MetaValue::U32(v),
        Value::I32(v) => MetaValue::I32(v),
        Value::F32(v) => MetaValue::F32(v),
        Value::Bool(v) => MetaValue::Bool(v),
        Value::String(v) => MetaValue::String(v.to_owned()),
        Value::U64(v) => MetaValue::U64(v),
        Value::I64(v) => MetaValue::I64(v),
        Value::F64(v) => MetaValue::F64(v),
        Value::Array(array) => {
            let items = array
                .iter()
                .map(|item| to_meta_value(&item))
                .collect::<Option<Vec<_>>>()?;
            if items.len() as u64 != array.len() {
                return None;
            }
            MetaValue::Array(array.elem_type(), items)
        }
    })
}
