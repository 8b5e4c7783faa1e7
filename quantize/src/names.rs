//! Tensor roles of a Mamba-1, Falcon-Mamba or Mamba-2 model: their Hugging Face and GGUF names
//! and their shapes.
//!
//! GGUF names come from `mamba_core::config::tensors` (llama.cpp's names for archs `mamba` and
//! `mamba2`). The Hugging Face names are those of `transformers.MambaForCausalLM`,
//! `FalconMambaForCausalLM` and `Mamba2ForCausalLM`, which llama.cpp's
//! `gguf-py/gguf/tensor_mapping.py` (gguf 0.19) lists.

use mamba_core::config::tensors;

use crate::params::{Family, MambaParams};

/// Kind of a tensor, independent of its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Token embedding.
    TokenEmbd,
    /// Final RMSNorm weight.
    OutputNorm,
    /// LM head.
    Output,
    /// Pre-mixer RMSNorm weight.
    AttnNorm,
    /// in_proj weight.
    SsmIn,
    /// Depthwise conv kernel.
    SsmConv1dWeight,
    /// Depthwise conv bias.
    SsmConv1dBias,
    /// x_proj weight.
    SsmX,
    /// dt_proj weight.
    SsmDtWeight,
    /// dt_proj bias.
    SsmDtBias,
    /// A = -exp(A_log).
    SsmA,
    /// Skip connection D.
    SsmD,
    /// out_proj weight.
    SsmOut,
    /// Mamba-2 gated RMSNorm weight.
    SsmNorm,
}

/// Per-layer roles of Mamba-1 and Falcon-Mamba in the order they are written.
pub const LAYER_ROLES: [Role; 10] = [
    Role::AttnNorm,
    Role::SsmIn,
    Role::SsmConv1dWeight,
    Role::SsmConv1dBias,
    Role::SsmX,
    Role::SsmDtWeight,
    Role::SsmDtBias,
    Role::SsmA,
    Role::SsmD,
    Role::SsmOut,
];

/// Per-layer roles of Mamba-2 in the order they are written.
pub const MAMBA2_LAYER_ROLES: [Role; 9] = [
    Role::AttnNorm,
    Role::SsmIn,
    Role::SsmConv1dWeight,
    Role::SsmConv1dBias,
    Role::SsmDtBias,
    Role::SsmA,
    Role::SsmD,
    Role::SsmNorm,
    Role::SsmOut,
];

/// Returns the per-layer roles of `family`.
pub fn layer_roles(family: Family) -> &'static [Role] {
    match family {
        Family::Mamba | Family::FalconMamba => &LAYER_ROLES,
        Family::Mamba2 => &MAMBA2_LAYER_ROLES,
    }
}

/// Every per-layer role of any family, for name lookups.
const ALL_LAYER_ROLES: [Role; 11] = [
    Role::AttnNorm,
    Role::SsmIn,
    Role::SsmConv1dWeight,
    Role::SsmConv1dBias,
    Role::SsmX,
    Role::SsmDtWeight,
    Role::SsmDtBias,
    Role::SsmA,
    Role::SsmD,
    Role::SsmOut,
    Role::SsmNorm,
];

impl Role {
    /// GGUF name, without the `blk.N.` prefix for per-layer roles.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Role::TokenEmbd => tensors::TOKEN_EMBD,
            Role::OutputNorm => tensors::OUTPUT_NORM,
            Role::Output => tensors::OUTPUT,
            Role::AttnNorm => tensors::ATTN_NORM,
            Role::SsmIn => tensors::SSM_IN,
            Role::SsmConv1dWeight => tensors::SSM_CONV1D_WEIGHT,
            Role::SsmConv1dBias => tensors::SSM_CONV1D_BIAS,
            Role::SsmX => tensors::SSM_X,
            Role::SsmDtWeight => tensors::SSM_DT_WEIGHT,
            Role::SsmDtBias => tensors::SSM_DT_BIAS,
            Role::SsmA => tensors::SSM_A,
            Role::SsmD => tensors::SSM_D,
            Role::SsmOut => tensors::SSM_OUT,
            Role::SsmNorm => tensors::SSM_NORM,
        }
    }

    /// Hugging Face name, without the `backbone.layers.N.` prefix for per-layer roles.
    pub fn hf_name(self) -> &'static str {
        match self {
            Role::TokenEmbd => "backbone.embeddings.weight",
            Role::OutputNorm => "backbone.norm_f.weight",
            Role::Output => "lm_head.weight",
            Role::AttnNorm => "norm.weight",
            Role::SsmIn => "mixer.in_proj.weight",
            Role::SsmConv1dWeight => "mixer.conv1d.weight",
            Role::SsmConv1dBias => "mixer.conv1d.bias",
            Role::SsmX => "mixer.x_proj.weight",
            Role::SsmDtWeight => "mixer.dt_proj.weight",
            Role::SsmDtBias => "mixer.dt_proj.bias",
            Role::SsmA => "mixer.A_log",
            Role::SsmD => "mixer.D",
            Role::SsmOut => "mixer.out_proj.weight",
            Role::SsmNorm => "mixer.norm.weight",
        }
    }

    /// Hugging Face name in a checkpoint of `family`: Mamba-2 calls the dt bias `dt_bias`.
    pub fn hf_name_in(self, family: Family) -> &'static str {
        match (self, family) {
            (Role::SsmDtBias, Family::Mamba2) => "mixer.dt_bias",
            _ => self.hf_name(),
        }
    }

    /// Returns whether the tensor exists once per layer.
    pub fn is_per_layer(self) -> bool {
        !matches!(self, Role::TokenEmbd | Role::OutputNorm | Role::Output)
    }

    /// Returns whether the requested output type applies. llama.cpp's converter keeps 1-D tensors,
    /// norms, `ssm_conv1d.weight` and names without a `.weight` suffix (`ssm_a`, `ssm_d`)
    /// in F32, which leaves exactly these projection and embedding matrices.
    pub fn takes_requested_type(self) -> bool {
        matches!(
            self,
            Role::TokenEmbd
                | Role::Output
                | Role::SsmIn
                | Role::SsmX
                | Role::SsmDtWeight
                | Role::SsmOut
        )
    }

    /// GGUF dimensions in ggml order (`dims[0]` is the contiguous one).
    pub fn gguf_dims(self, p: &MambaParams) -> Vec<u64> {
        if p.family == Family::Mamba2 {
            // llama.cpp's converter reshapes A and D to [n_head, 1] and the norm to
            // [n_group, d_inner / n_group] (PyTorch order).
            match self {
                Role::SsmA | Role::SsmD => return vec![1, p.dt_rank],
                Role::SsmNorm => return vec![p.d_inner / p.n_group, p.n_group],
                _ => {}
            }
        }
        let mut dims = self.hf_shape(p);
        if self == Role::SsmConv1dWeight {
            // PyTorch stores the depthwise kernel as [d_inner, 1, d_conv]. The middle axis
            // is dropped, as llama.cpp's converter does with squeeze().
            dims.remove(1);
        }
        dims.reverse();
        dims
    }

    /// Shape in the Hugging Face checkpoint (PyTorch order, last axis contiguous).
    pub fn hf_shape(self, p: &MambaParams) -> Vec<u64> {
        if p.family == Family::Mamba2 {
            return self.mamba2_hf_shape(p);
        }
        match self {
            Role::TokenEmbd | Role::Output => vec![p.n_vocab, p.d_model],
            Role::OutputNorm | Role::AttnNorm => vec![p.d_model],
            Role::SsmIn => vec![2 * p.d_inner, p.d_model],
            Role::SsmConv1dWeight => vec![p.d_inner, 1, p.d_conv],
            Role::SsmConv1dBias | Role::SsmDtBias | Role::SsmD => vec![p.d_inner],
            Role::SsmX => vec![p.dt_rank + 2 * p.d_state, p.d_inner],
            Role::SsmDtWeight => vec![p.d_inner, p.dt_rank],
            Role::SsmA => vec![p.d_inner, p.d_state],
            Role::SsmOut => vec![p.d_model, p.d_inner],
            Role::SsmNorm => vec![p.d_inner],
        }
    }

    fn mamba2_hf_shape(self, p: &MambaParams) -> Vec<u64> {
        let n_head = p.dt_rank;
        match self {
            Role::TokenEmbd | Role::Output => vec![p.n_vocab, p.d_model],
            Role::OutputNorm | Role::AttnNorm => vec![p.d_model],
            Role::SsmIn => vec![p.in_proj_rows(), p.d_model],
            Role::SsmConv1dWeight => vec![p.conv_dim(), 1, p.d_conv],
            Role::SsmConv1dBias => vec![p.conv_dim()],
            Role::SsmDtBias | Role::SsmA | Role::SsmD => vec![n_head],
            Role::SsmNorm => vec![p.d_inner],
            Role::SsmOut => vec![p.d_model, p.d_inner],
            // Not Mamba-2 tensors; map_names rejects them first.
            Role::SsmX | Role::SsmDtWeight => vec![0],
        }
    }

    /// Returns the config dimensions that determine the shape in a model of `family`, for
    /// messages.
    pub fn shape_source(self, family: Family) -> &'static str {
        if family == Family::Mamba2 {
            return match self {
                Role::SsmIn => "2 * d_inner + 2 * n_groups * state_size + num_heads, hidden_size",
                Role::SsmConv1dWeight => "d_inner + 2 * n_groups * state_size, 1, conv_kernel",
                Role::SsmConv1dBias => "d_inner + 2 * n_groups * state_size",
                Role::SsmDtBias | Role::SsmA | Role::SsmD => "num_heads",
                Role::SsmNorm => "d_inner = expand * hidden_size",
                Role::SsmOut => "hidden_size, d_inner = expand * hidden_size",
                _ => self.shape_source(Family::Mamba),
            };
        }
        match self {
            Role::TokenEmbd | Role::Output => "vocab_size, hidden_size",
            Role::OutputNorm | Role::AttnNorm => "hidden_size",
            Role::SsmIn => "2 * intermediate_size, hidden_size",
            Role::SsmConv1dWeight => "intermediate_size, 1, conv_kernel",
            Role::SsmConv1dBias | Role::SsmDtBias | Role::SsmD => "intermediate_size",
            Role::SsmX => "time_step_rank + 2 * state_size, intermediate_size",
            Role::SsmDtWeight => "intermediate_size, time_step_rank",
            Role::SsmA => "intermediate_size, state_size",
            Role::SsmOut => "hidden_size, intermediate_size",
            Role::SsmNorm => "intermediate_size",
        }
    }
}

/// One tensor of the model: a role and, for per-layer roles, the layer index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId {
    /// Kind of tensor.
    pub role: Role,
    /// Layer index for per-layer roles, `None` otherwise.
    pub layer: Option<u64>,
}

impl TensorId {
    /// Returns the full GGUF name, for example `blk.3.ssm_in.weight`.
    pub fn gguf_name(&self) -> String {
        match self.layer {
            Some(layer) => format!("blk.{layer}.{}", self.role.gguf_name()),
            None => self.role.gguf_name().to_owned(),
        }
    }

    /// Returns the full Hugging Face name in a checkpoint of `family`, for example
    /// `backbone.layers.3.mixer.in_proj.weight`.
    pub fn hf_name(&self, family: Family) -> String {
        match self.layer {
            Some(layer) => format!("backbone.layers.{layer}.{}", self.role.hf_name_in(family)),
            None => self.role.hf_name().to_owned(),
        }
    }
}

/// Maps a Hugging Face tensor name to its role, or `None` for a name no family uses.
/// Whether the role belongs to the checkpoint's family is checked by the caller.
///
/// `backbone.embedding.weight` (singular, as `mamba_ssm` names it) and Mamba-2's
/// `mixer.dt_bias` are accepted too.
pub fn parse_hf_name(name: &str) -> Option<TensorId> {
    if name == "backbone.embedding.weight" {
        return Some(TensorId {
            role: Role::TokenEmbd,
            layer: None,
        });
    }
    parse_name(name, "backbone.layers.", Role::hf_name)
        .or_else(|| parse_name(name, "backbone.layers.", |role| role.hf_name_in(Family::Mamba2)))
}

/// Maps a GGUF tensor name to its role, or `None` for a name no family uses.
pub fn parse_gguf_name(name: &str) -> Option<TensorId> {
    parse_name(name, "blk.", Role::gguf_name)
}

fn parse_name(
    name: &str,
    layer_prefix: &str,
    role_name: fn(Role) -> &'static str,
) -> Option<TensorId> {
    let global = [Role::TokenEmbd, Role::OutputNorm, Role::Output];
    if let Some(role) = global.into_iter().find(|role| role_name(*role) == name) {
        return Some(TensorId { role, layer: None });
    }
    let rest = name.strip_prefix(layer_prefix)?;
    let (digits, suffix) = rest.split_once('.')?;
    // Reject "+1", "01" and other spellings that would map two names to one tensor.
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    let layer = digits.parse().ok()?;
    let role = ALL_LAYER_ROLES
        .into_iter()
        .find(|role| role_name(*role) == suffix)?;
    Some(TensorId {
        role,
        layer: Some(layer),
    })
}

/// Lists every tensor of a model in the order the converter writes them: the globals, then
/// each layer in [`layer_roles`] order. `with_output` adds the untied LM head.
pub fn expected_tensors(p: &MambaParams, with_output: bool) -> Vec<TensorId> {
    let mut ids = vec![
        TensorId {
            role: Role::TokenEmbd,
            layer: None,
        },
        TensorId {
            role: Role::OutputNorm,
            layer: None,
        },
    ];
    if with_output {
        ids.push(TensorId {
            role: Role::Output,
            layer: None,
        });
    }
    for layer in 0..p.n_layer {
        ids.extend(layer_roles(p.family).iter().map(|&role| TensorId {
            role,
            layer: Some(layer),
        }));
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> MambaParams {
        MambaParams::mamba1(768, 24, 1536, 16, 4, 48, 50280, 1e-5)
    }

    /// Returns the dimensions of state-spaces/mamba2-130m: 24 heads of 64, one group.
    fn mamba2_params() -> MambaParams {
        MambaParams {
            family: Family::Mamba2,
            n_group: 1,
            ..MambaParams::mamba1(768, 24, 1536, 128, 4, 24, 50288, 1e-5)
        }
    }

    #[test]
    fn mamba2_gguf_dims_match_llama_cpp() {
        // Shapes from llama.cpp's Mamba-2 loader (src/llama-model.cpp), ggml order.
        let p = mamba2_params();
        let cases = [
            (Role::SsmIn, vec![768, 2 * 1536 + 2 * 128 + 24]),
            (Role::SsmConv1dWeight, vec![4, 1536 + 2 * 128]),
            (Role::SsmConv1dBias, vec![1536 + 2 * 128]),
            (Role::SsmDtBias, vec![24]),
            (Role::SsmA, vec![1, 24]),
            (Role::SsmD, vec![1, 24]),
            (Role::SsmNorm, vec![1536, 1]),
            (Role::SsmOut, vec![1536, 768]),
        ];
        for (role, dims) in cases {
            assert_eq!(role.gguf_dims(&p), dims, "{role:?}");
        }
        assert_eq!(expected_tensors(&p, false).len(), 2 + 24 * 9);
    }

    #[test]
    fn mamba2_hf_names_map_to_gguf_names() {
        for (hf, gguf) in [
            ("backbone.layers.0.mixer.dt_bias", "blk.0.ssm_dt.bias"),
            ("backbone.layers.1.mixer.norm.weight", "blk.1.ssm_norm.weight"),
        ] {
            let id = parse_hf_name(hf).unwrap_or_else(|| panic!("{hf} did not map"));
            assert_eq!(id.gguf_name(), gguf, "{hf}");
            assert_eq!(id.hf_name(Family::Mamba2), hf);
        }
    }

    #[test]
    fn hf_names_map_to_gguf_names() {
        let cases = [
            ("backbone.embeddings.weight", "token_embd.weight"),
            ("backbone.embedding.weight", "token_embd.weight"),
            ("backbone.norm_f.weight", "output_norm.weight"),
            ("lm_head.weight", "output.weight"),
            ("backbone.layers.0.norm.weight", "blk.0.attn_norm.weight"),
            (
                "backbone.layers.1.mixer.in_proj.weight",
                "blk.1.ssm_in.weight",
            ),
            (
                "backbone.layers.2.mixer.conv1d.weight",
                "blk.2.ssm_conv1d.weight",
            ),
            (
                "backbone.layers.3.mixer.conv1d.bias",
                "blk.3.ssm_conv1d.bias",
            ),
            (
                "backbone.layers.4.mixer.x_proj.weight",
                "blk.4.ssm_x.weight",
            ),
            (
                "backbone.layers.5.mixer.dt_proj.weight",
                "blk.5.ssm_dt.weight",
            ),
            ("backbone.layers.6.mixer.dt_proj.bias", "blk.6.ssm_dt.bias"),
            ("backbone.layers.7.mixer.A_log", "blk.7.ssm_a"),
            ("backbone.layers.8.mixer.D", "blk.8.ssm_d"),
            (
                "backbone.layers.10.mixer.out_proj.weight",
                "blk.10.ssm_out.weight",
            ),
        ];
        for (hf, gguf) in cases {
            let id = parse_hf_name(hf).unwrap_or_else(|| panic!("{hf} did not map"));
            assert_eq!(id.gguf_name(), gguf, "{hf}");
            assert_eq!(parse_gguf_name(gguf), Some(id), "{gguf}");
        }
    }

    #[test]
    fn unknown_names_do_not_map() {
        for name in [
            "backbone.layers.0.mixer.in_proj.bias",
            "backbone.layers.x.norm.weight",
            "backbone.layers.01.norm.weight",
            "backbone.layers.+1.norm.weight",
            "backbone.layers..norm.weight",
            "model.embed_tokens.weight",
            "blk.0.ssm_a.weight",
        ] {
            assert_eq!(parse_hf_name(name), None, "{name}");
            assert_eq!(parse_gguf_name(name), None, "{name}");
        }
    }

    #[test]
    fn gguf_dims_match_llama_cpp() {
        // Shapes from llama.cpp's Mamba loader (src/models/mamba.cpp), ggml order.
        let p = params();
        let cases = [
            (Role::TokenEmbd, vec![768, 50280]),
            (Role::Output, vec![768, 50280]),
            (Role::OutputNorm, vec![768]),
            (Role::AttnNorm, vec![768]),
            (Role::SsmIn, vec![768, 3072]),
            (Role::SsmConv1dWeight, vec![4, 1536]),
            (Role::SsmConv1dBias, vec![1536]),
            (Role::SsmX, vec![1536, 80]),
            (Role::SsmDtWeight, vec![48, 1536]),
            (Role::SsmDtBias, vec![1536]),
            (Role::SsmA, vec![16, 1536]),
            (Role::SsmD, vec![1536]),
            (Role::SsmOut, vec![1536, 768]),
        ];
        for (role, dims) in cases {
            assert_eq!(role.gguf_dims(&p), dims, "{role:?}");
        }
    }

    #[test]
    fn expected_tensor_count() {
        let p = params();
        assert_eq!(expected_tensors(&p, false).len(), 2 + 24 * 10);
        assert_eq!(expected_tensors(&p, true).len(), 3 + 24 * 10);
    }

    #[test]
    fn only_matrices_take_requested_type() {
        let matrices: Vec<Role> = LAYER_ROLES
            .into_iter()
            .chain([Role::TokenEmbd, Role::OutputNorm, Role::Output])
            .filter(|role| role.takes_requested_type())
            .collect();
        assert_eq!(matrices.len(), 6, "{matrices:?}");
        assert!(!Role::SsmConv1dWeight.takes_requested_type());
        assert!(!Role::SsmA.takes_requested_type());
    }
}
