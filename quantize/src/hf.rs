//! Conversion of a Hugging Face `MambaForCausalLM`, `FalconMambaForCausalLM` or
//! `Mamba2ForCausalLM` checkpoint directory.

use std::collections::BTreeMap;
use std::path::Path;

use mamba_core::GgmlType;

use crate::convert::{Notes, OutTensor, Transform, Values, settle_f16, write_gguf};
use crate::error::{ConvertError, Result};
use crate::metadata::{model_metadata, model_name, tokenizer_metadata};
use crate::names::{Role, TensorId, expected_tensors, layer_roles, parse_hf_name};
use crate::params::{Family, HfConfig};
use crate::plan::choose_type;
use crate::safetensors_input::{Checkpoint, StTensor};
use crate::state_spaces::read_config;
use crate::tokenizer::read_tokenizer;

/// Converts the safetensors checkpoint in `dir`, with the tokenizer file `tokenizer` or
/// `tokenizer.json` in `dir`. Returns (tensors written, bytes read, bytes written).
pub(crate) fn convert_hf(
    dir: &Path,
    output: &Path,
    target: GgmlType,
    tokenizer: Option<&Path>,
    notes: &mut Notes<'_>,
) -> Result<(usize, u64, u64)> {
    let config = read_config(dir)?;
    let checkpoint = Checkpoint::open(dir)?;
    let stored = checkpoint.tensors()?;
    let tokenizer = tokenizer.map_or_else(|| dir.join("tokenizer.json"), Path::to_path_buf);
    convert_tensors(dir, &config, &stored, &tokenizer, output, target, notes)
}

/// Converts the tensors `stored`, read from either weight format, with the config and
/// tokenizer file of the checkpoint in `dir`.
pub(crate) fn convert_tensors(
    dir: &Path,
    config: &HfConfig,
    stored: &BTreeMap<String, StTensor<'_>>,
    tokenizer: &Path,
    output: &Path,
    target: GgmlType,
    notes: &mut Notes<'_>,
) -> Result<(usize, u64, u64)> {
    let p = &config.params;
    let mut by_id = map_names(stored, config)?;

    let with_output = decide_output(config, &mut by_id, notes)?;
    let mut tensors = Vec::new();
    for id in expected_tensors(p, with_output) {
        tensors.push(plan_tensor(dir, config, &by_id, id, target, notes)?);
    }

    let tokenizer = read_tokenizer(tokenizer, &config.json, p.n_vocab)?;
    for note in &tokenizer.notes {
        notes.note(note.clone());
    }

    settle_f16(&mut tensors, notes)?;
    let name = model_name(config.name_or_path.as_deref(), dir);
    let n_params = tensors.iter().map(|t| t.dims.iter().product::<u64>()).sum();
    let mut metadata = model_metadata(&name, n_params, p, target);
    metadata.extend(tokenizer_metadata(&tokenizer));

    let bytes_in = tensors.iter().map(OutTensor::source_bytes).sum();
    let bytes_out = write_gguf(output, metadata, &tensors, &mut *notes.progress)?;
    Ok((tensors.len(), bytes_in, bytes_out))
}

/// A stored tensor with its name in the checkpoint.
type Named<'a> = (&'a str, StTensor<'a>);

/// Maps every stored tensor to its role. Unknown names, layers beyond `num_hidden_layers`
/// and two names for one tensor are errors.
fn map_names<'a>(
    stored: &'a BTreeMap<String, StTensor<'a>>,
    config: &HfConfig,
) -> Result<BTreeMap<TensorId, Named<'a>>> {
    let n_layer = config.params.n_layer;
    let family = config.params.family;
    let mut by_id = BTreeMap::new();
    for (name, tensor) in stored {
        let unexpected = |reason: String| ConvertError::UnexpectedTensor {
            path: tensor.file.to_path_buf(),
            tensor: name.clone(),
            reason,
        };
        let id = parse_hf_name(name).filter(|id| {
            let in_family = id.layer.is_none() || layer_roles(family).contains(&id.role);
            let spelled = id.layer.is_none() || *name == id.hf_name(family);
            in_family && spelled
        });
        let Some(id) = id else {
            return Err(unexpected(format!(
                "{} has no tensor of this name; check that config.json names the model's class",
                family_class(family)
            )));
        };
        if let Some(layer) = id.layer
            && layer >= n_layer
        {
            return Err(unexpected(format!(
                "layer {layer} is beyond num_hidden_layers = {n_layer} in {}",
                config.path.display()
            )));
        }
        if let Some((other, _)) = by_id.insert(id, (name.as_str(), tensor.clone())) {
            return Err(unexpected(format!(
                "{other} holds the same tensor; remove one of the two"
            )));
        }
    }
    Ok(by_id)
}

/// Decides whether the file gets its own `output.weight`, and removes `lm_head.weight` from
/// `by_id` when it does not.
///
/// With `tie_word_embeddings` the LM head is the embedding, as in transformers, so a stored
/// `lm_head.weight` is ignored. Without it, an LM head identical to the embedding is still
/// omitted, as llama.cpp's converter does, because llama.cpp then reuses the embedding.
fn decide_output(
    config: &HfConfig,
    by_id: &mut BTreeMap<TensorId, Named<'_>>,
    notes: &mut Notes<'_>,
) -> Result<bool> {
    let output_id = TensorId {
        role: Role::Output,
        layer: None,
    };
    let embd_id = TensorId {
        role: Role::TokenEmbd,
        layer: None,
    };
    let lm_head = by_id.get(&output_id).cloned();
    match (config.tie_word_embeddings, lm_head) {
        (true, None) => Ok(false),
        (true, Some((name, _))) => {
            notes.note(format!(
                "{name} is ignored because tie_word_embeddings is true; the output layer reuses token_embd.weight"
            ));
            by_id.remove(&output_id);
            Ok(false)
        }
        (false, None) => Err(ConvertError::MissingTensor {
            path: config.path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            tensor: "lm_head.weight".to_owned(),
            hint: format!(
                "tie_word_embeddings is false in {}, so the checkpoint needs its own LM head; \
                 set tie_word_embeddings to true if the head shares the embedding",
                config.path.display()
            ),
        }),
        (false, Some((name, head))) => {
            // Equal bytes of equal dtype and shape mean equal values. A copy stored in
            // another dtype counts as different, which only costs file size.
            let same = by_id.get(&embd_id).is_some_and(|(_, embd)| {
                embd.dtype == head.dtype && embd.shape == head.shape && embd.data == head.data
            });
            if same {
                notes.note(format!(
                    "{name} equals the token embedding, so output.weight is omitted"
                ));
                by_id.remove(&output_id);
            }
            Ok(!same)
        }
    }
}

/// Checks one expected tensor and describes how to write it.
fn plan_tensor<'a>(
    dir: &'a Path,
    config: &HfConfig,
    by_id: &BTreeMap<TensorId, Named<'a>>,
    id: TensorId,
    target: GgmlType,
    notes: &mut Notes<'_>,
) -> Result<OutTensor<'a>> {
    let p = &config.params;
    let dims = id.role.gguf_dims(p);
    let gguf_name = id.gguf_name();

    let (source_name, source_file, values) = match by_id.get(&id) {
        Some((name, tensor)) => {
            check_shape(name, tensor, id.role, config)?;
            let dtype = tensor.source_dtype(name)?;
            (
                name.to_string(),
                tensor.file,
                Values::Safetensors {
                    dtype,
                    data: tensor.data,
                },
            )
        }
        // llama.cpp requires ssm_conv1d.bias, so a model without one gets zeros, which
        // computes the same as no bias.
        None if id.role == Role::SsmConv1dBias && !config.use_conv_bias => {
            notes.note(format!(
                "{gguf_name}: use_conv_bias is false, so a zero bias is written"
            ));
            (id.hf_name(p.family), dir, Values::Zeros)
        }
        None => {
            return Err(ConvertError::MissingTensor {
                path: dir.to_path_buf(),
                tensor: id.hf_name(p.family),
                hint: format!(
                    "every {} checkpoint has it; the checkpoint is incomplete or of another class",
                    family_class(p.family)
                ),
            });
        }
    };

    let choice = choose_type(id.role, dims[0], target);
    if let Some(reason) = choice.fallback {
        notes.note(format!("{gguf_name}: {reason}"));
    }
    let transform = if id.role == Role::SsmA {
        Transform::NegExp
    } else {
        Transform::Identity
    };
    Ok(OutTensor {
        name: gguf_name,
        dims,
        dtype: choice.dtype,
        values,
        transform,
        source_file,
        source_name,
    })
}

/// Compares a stored shape with the one the config implies. The conv kernel may also be
/// stored without its middle axis of 1.
fn check_shape(name: &str, tensor: &StTensor<'_>, role: Role, config: &HfConfig) -> Result<()> {
    let found: Vec<u64> = tensor.shape.iter().map(|&d| d as u64).collect();
    let expected = role.hf_shape(&config.params);
    let squeezed_conv = role == Role::SsmConv1dWeight
        && found.len() == 2
        && found[..] == [expected[0], expected[2]];
    if found == expected || squeezed_conv {
        return Ok(());
    }
    Err(ConvertError::ShapeMismatch {
        path: tensor.file.to_path_buf(),
        tensor: name.to_owned(),
        found,
        expected,
        from: format!(
            "[{}] in {}",
            role.shape_source(config.params.family),
            config.path.display()
        ),
    })
}

/// Returns the `transformers` class name of `family`, for messages.
fn family_class(family: Family) -> &'static str {
    match family {
        Family::Mamba => "MambaForCausalLM",
        Family::FalconMamba => "FalconMambaForCausalLM",
        Family::Mamba2 => "Mamba2ForCausalLM",
    }
}
