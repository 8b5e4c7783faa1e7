//! Model hyperparameters and weights, resolved from a parsed GGUF file without copying.

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

use crate::config::{self, keys, tensors};
use crate::error::{Error, ModelError, name};
use crate::gguf::{Gguf, TensorInfo, Value};
use crate::tensor::{GgmlType, Matrix};

#[cfg(target_endian = "big")]
compile_error!("mamba-core reads GGUF tensor data in place and supports little-endian targets only");

/// The model family, from `general.architecture`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Mamba-1 (`mamba`), including Falcon-Mamba (`mamba` with `ssm.dt_b_c_rms`).
    Mamba,
    /// Mamba-2 (`mamba2`): the SSD layer with per-head scalar A and grouped B and C.
    Mamba2,
}

impl Arch {
    /// Returns the GGUF architecture name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Mamba => config::ARCH_MAMBA,
            Self::Mamba2 => config::ARCH_MAMBA2,
        }
    }
}

/// Largest accepted value of any single dimension; keeps every size product far from overflow.
const MAX_DIM: u64 = 1 << 24;

/// Hyperparameters of a Mamba model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// Model family.
    pub arch: Arch,
    /// Residual stream width.
    pub d_model: usize,
    /// Number of layers.
    pub n_layer: usize,
    /// Channels of the SSM (x and the gate z each have `d_inner`).
    pub d_inner: usize,
    /// State size per channel.
    pub d_state: usize,
    /// Rank of the dt projection (Mamba-1); the number of heads (Mamba-2), as llama.cpp
    /// stores it.
    pub dt_rank: usize,
    /// Number of heads: `d_inner` for Mamba-1 (one channel each), `dt_rank` for Mamba-2.
    pub n_head: usize,
    /// Channels per head: `d_inner / n_head`.
    pub head_dim: usize,
    /// Number of B and C groups (Mamba-2 `n_groups`); 1 for Mamba-1.
    pub n_group: usize,
    /// Falcon-Mamba: RMS-normalise dt, B and C (without weights) before the scan.
    pub dt_b_c_rms: bool,
    /// Epsilon of that normalisation.
    pub dt_b_c_rms_eps: f32,
    /// Mamba-2: dt after softplus is clamped to `dt_min..=dt_max` (`time_step_limit`).
    pub dt_min: f32,
    /// Upper end of the dt clamp; infinity when unbounded.
    pub dt_max: f32,
    /// Width of the causal conv.
    pub d_conv: usize,
    /// Vocabulary size: rows of the token embedding.
    pub n_vocab: usize,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Training context length; informational, since the recurrence has no context limit.
    pub context_length: u64,
}

impl Config {
    /// Reads and checks the hyperparameters from GGUF metadata and the embedding shape.
    pub fn from_gguf(gguf: &Gguf<'_>) -> Result<Self, Error> {
        let arch_name = match gguf.get(keys::ARCHITECTURE) {
            Some(value) => value.as_str().ok_or_else(|| invalid(keys::ARCHITECTURE, "a string"))?,
            None => return Err(ModelError::MissingKey { key: name(keys::ARCHITECTURE) }.into()),
        };
        let arch = match arch_name {
            config::ARCH_MAMBA => Arch::Mamba,
            config::ARCH_MAMBA2 => Arch::Mamba2,
            other => return Err(ModelError::UnknownArchitecture { found: name(other) }.into()),
        };

        // Falcon-Mamba marks itself with this flag.
        let dt_b_c_rms = match arch_value(gguf, arch_name, keys::SSM_DT_B_C_RMS)? {
            Some(value) => value.as_bool().ok_or_else(|| invalid_arch(arch_name, keys::SSM_DT_B_C_RMS, "a bool"))?,
            None => false,
        };

        let d_model = arch_dim(gguf, arch_name, keys::EMBEDDING_LENGTH, "d_model")?;
        let n_layer = arch_dim(gguf, arch_name, keys::BLOCK_COUNT, "n_layer")?;
        let d_inner = arch_dim(gguf, arch_name, keys::SSM_INNER_SIZE, "d_inner")?;
        let d_state = arch_dim(gguf, arch_name, keys::SSM_STATE_SIZE, "d_state")?;
        let dt_rank = arch_dim(gguf, arch_name, keys::SSM_TIME_STEP_RANK, "dt_rank")?;
        let d_conv = arch_dim(gguf, arch_name, keys::SSM_CONV_KERNEL, "d_conv")?;

        let rms_eps = match arch_value(gguf, arch_name, keys::LAYER_NORM_RMS_EPSILON)? {
            Some(value) => value
                .as_f32()
                .filter(|eps| eps.is_finite() && *eps >= 0.0)
                .ok_or_else(|| invalid_arch(arch_name, keys::LAYER_NORM_RMS_EPSILON, "a finite non-negative float"))?,
            None => 1e-5,
        };
        let dt_b_c_rms_eps = optional_f32(gguf, arch_name, keys::SSM_DT_B_C_RMS_EPSILON, rms_eps)?;
        let dt_min = optional_f32(gguf, arch_name, keys::SSM_TIME_STEP_LIMIT_MIN, 0.0)?;
        let dt_max = match arch_value(gguf, arch_name, keys::SSM_TIME_STEP_LIMIT_MAX)? {
            Some(value) => value
                .as_f32()
                .filter(|max| !max.is_nan() && *max >= dt_min)
                .ok_or_else(|| invalid_arch(arch_name, keys::SSM_TIME_STEP_LIMIT_MAX, "a float not below the minimum"))?,
            None => f32::INFINITY,
        };
        let context_length = match arch_value(gguf, arch_name, keys::CONTEXT_LENGTH)? {
            Some(value) => value.as_u64().unwrap_or(0),
            None => 0,
        };

        let embd = gguf
            .tensor(tensors::TOKEN_EMBD)
            .ok_or_else(|| ModelError::MissingTensor { name: name(tensors::TOKEN_EMBD) })?;
        let n_vocab = if embd.n_dims == 2 { embd.dims[1] } else { 0 };
        let n_vocab = check_dim("n_vocab", n_vocab)?;

        let (n_head, n_group) = match arch {
            Arch::Mamba => (d_inner, 1),
            Arch::Mamba2 => {
                let n_group = arch_dim(gguf, arch_name, keys::SSM_GROUP_COUNT, "n_group")?;
                (dt_rank, n_group)
            }
        };
        if !d_inner.is_multiple_of(n_head) {
            return Err(hyperparameter("n_head", n_head, "must divide d_inner (ssm.time_step_rank for mamba2)"));
        }
        if !n_head.is_multiple_of(n_group) {
            return Err(hyperparameter("n_group", n_group, "must divide the number of heads (ssm.time_step_rank)"));
        }
        // Keeps conv_dim and in_proj_rows far from overflow on 32-bit targets.
        let in_proj_rows = 2 * d_inner as u64 + 2 * n_group as u64 * d_state as u64 + n_head as u64;
        if n_group as u64 * d_state as u64 > MAX_DIM || in_proj_rows > 4 * MAX_DIM {
            return Err(hyperparameter("n_group", n_group, "n_group * d_state must be at most 16777216"));
        }
        if arch == Arch::Mamba2 && dt_b_c_rms {
            return Err(invalid_arch(arch_name, keys::SSM_DT_B_C_RMS, "false: mamba2 has no dt, B and C normalisation"));
        }
        let head_dim = d_inner / n_head;

        Ok(Self {
            arch,
            d_model,
            n_layer,
            d_inner,
            d_state,
            dt_rank,
            n_head,
            head_dim,
            n_group,
            dt_b_c_rms,
            dt_b_c_rms_eps,
            dt_min,
            dt_max,
            d_conv,
            n_vocab,
            rms_eps,
            context_length,
        })
    }

    /// Channels of the causal conv: x for Mamba-1, x, B and C for Mamba-2.
    pub const fn conv_dim(&self) -> usize {
        match self.arch {
            Arch::Mamba => self.d_inner,
            Arch::Mamba2 => self.d_inner + 2 * self.n_group * self.d_state,
        }
    }

    /// Rows of in_proj: x and z for Mamba-1; z, x, B, C and dt for Mamba-2.
    pub const fn in_proj_rows(&self) -> usize {
        match self.arch {
            Arch::Mamba => 2 * self.d_inner,
            Arch::Mamba2 => self.d_inner + self.conv_dim() + self.n_head,
        }
    }

    /// Number of f32 values in one session's recurrent state: per layer, the conv state
    /// `[conv_dim, d_conv - 1]` and the SSM state, `[d_inner, d_state]` for Mamba-1 and
    /// `[n_head, head_dim, d_state]` (the same count) for Mamba-2.
    pub const fn state_len(&self) -> usize {
        self.n_layer * self.layer_state_len()
    }

    /// Number of f32 values of one layer's recurrent state.
    pub const fn layer_state_len(&self) -> usize {
        self.conv_dim() * (self.d_conv - 1) + self.d_inner * self.d_state
    }
}

fn hyperparameter(std_name: &'static str, value: usize, rule: &'static str) -> Error {
    ModelError::InvalidHyperparameter { name: std_name, value: value as u64, rule }.into()
}

fn optional_f32(gguf: &Gguf<'_>, arch: &str, key: &str, default: f32) -> Result<f32, Error> {
    match arch_value(gguf, arch, key)? {
        Some(value) => value
            .as_f32()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| invalid_arch(arch, key, "a finite non-negative float")),
        None => Ok(default),
    }
}

fn invalid(key: &str, expected: &'static str) -> Error {
    ModelError::InvalidKey { key: name(key), expected }.into()
}

fn invalid_arch(arch: &str, key: &str, expected: &'static str) -> Error {
    let mut buf = [0u8; 96];
    let full = config::arch_key(&mut buf, arch, key).unwrap_or(key);
    invalid(full, expected)
}

fn arch_value<'a>(gguf: &Gguf<'a>, arch: &str, key: &str) -> Result<Option<Value<'a>>, Error> {
    let mut buf = [0u8; 96];
    let full = config::arch_key(&mut buf, arch, key).ok_or_else(|| invalid(key, "a key shorter than 96 bytes"))?;
    Ok(gguf.get(full))
}

fn arch_dim(gguf: &Gguf<'_>, arch: &str, key: &str, std_name: &'static str) -> Result<usize, Error> {
    let value = arch_value(gguf, arch, key)?.ok_or_else(|| {
        let mut buf = [0u8; 96];
        let full = config::arch_key(&mut buf, arch, key).unwrap_or(key);
        Error::from(ModelError::MissingKey { key: name(full) })
    })?;
    let value = value.as_u64().ok_or_else(|| invalid_arch(arch, key, "an unsigned integer"))?;
    check_dim(std_name, value)
}

fn check_dim(std_name: &'static str, value: u64) -> Result<usize, Error> {
    if value == 0 || value > MAX_DIM {
        return Err(ModelError::InvalidHyperparameter {
            name: std_name,
            value,
            rule: "must be between 1 and 16777216",
        }
        .into());
    }
    Ok(value as usize)
}

/// The weights of one Mamba-1 (or Falcon-Mamba) layer, borrowed from the file.
#[derive(Clone, Copy, Debug)]
pub struct Layer<'a> {
    /// RMSNorm weight, `[d_model]`.
    pub attn_norm: &'a [f32],
    /// in_proj, `[2 * d_inner, d_model]` as rows × cols.
    pub ssm_in: Matrix<'a>,
    /// Conv kernel, `[d_inner, d_conv]`.
    pub conv_weight: &'a [f32],
    /// Conv bias, `[d_inner]`; `None` when the checkpoint has no conv bias.
    pub conv_bias: Option<&'a [f32]>,
    /// x_proj, `[dt_rank + 2 * d_state, d_inner]`.
    pub ssm_x: Matrix<'a>,
    /// dt_proj weight, `[d_inner, dt_rank]`.
    pub dt_weight: Matrix<'a>,
    /// dt_proj bias, `[d_inner]`.
    pub dt_bias: &'a [f32],
    /// A = -exp(A_log), `[d_inner, d_state]`.
    pub a: &'a [f32],
    /// D, `[d_inner]`.
    pub d: &'a [f32],
    /// out_proj, `[d_model, d_inner]`.
    pub ssm_out: Matrix<'a>,
}

/// The weights of one Mamba-2 layer, borrowed from the file.
#[derive(Clone, Copy, Debug)]
pub struct Mamba2Layer<'a> {
    /// RMSNorm weight, `[d_model]`.
    pub attn_norm: &'a [f32],
    /// in_proj, `[in_proj_rows, d_model]`: rows give z, x, B, C, dt.
    pub ssm_in: Matrix<'a>,
    /// Conv kernel over x, B and C, `[conv_dim, d_conv]`.
    pub conv_weight: &'a [f32],
    /// Conv bias, `[conv_dim]`; `None` when the checkpoint has no conv bias.
    pub conv_bias: Option<&'a [f32]>,
    /// dt bias, `[n_head]`.
    pub dt_bias: &'a [f32],
    /// A = -exp(A_log), `[n_head]`.
    pub a: &'a [f32],
    /// D, `[n_head]`.
    pub d: &'a [f32],
    /// Gated RMSNorm weight, `[d_inner]`, normalised in `n_group` groups; `None` when the
    /// file has no `ssm_norm` (llama.cpp then applies only the gate).
    pub norm: Option<&'a [f32]>,
    /// out_proj, `[d_model, d_inner]`.
    pub ssm_out: Matrix<'a>,
}

/// The weights of one layer of either family.
#[derive(Clone, Copy, Debug)]
pub enum LayerWeights<'a> {
    /// A Mamba-1 or Falcon-Mamba layer.
    Mamba(Layer<'a>),
    /// A Mamba-2 layer.
    Mamba2(Mamba2Layer<'a>),
}

/// A loaded model: hyperparameters plus views into the GGUF bytes. Shared read-only by any
/// number of sessions.
#[derive(Clone, Debug)]
pub struct Model<'a> {
    /// Hyperparameters.
    pub config: Config,
    /// The parsed file, for metadata such as the tokenizer.
    pub gguf: Gguf<'a>,
    /// Token embedding, `[n_vocab, d_model]`.
    pub token_embd: Matrix<'a>,
    /// Final norm weight, `[d_model]`.
    pub output_norm: &'a [f32],
    /// LM head, `[n_vocab, d_model]`; the embedding itself when the file has no `output.weight`.
    pub output: Matrix<'a>,
    /// Whether the LM head is the token embedding.
    pub tied_output: bool,
    #[cfg(feature = "alloc")]
    layers: Vec<LayerWeights<'a>>,
}

impl<'a> Model<'a> {
    /// Parses `bytes` as GGUF and resolves every weight, checking names, shapes and types.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, Error> {
        Self::from_gguf(Gguf::parse(bytes)?)
    }

    /// Resolves every weight of an already parsed file.
    pub fn from_gguf(gguf: Gguf<'a>) -> Result<Self, Error> {
        let config = Config::from_gguf(&gguf)?;
        let c = &config;

        let token_embd = matrix(&gguf, tensors::TOKEN_EMBD, c.n_vocab, c.d_model)?;
        let output_norm = vector(&gguf, tensors::OUTPUT_NORM, c.d_model)?;
        let (output, tied_output) = match gguf.tensor(tensors::OUTPUT) {
            Some(_) => (matrix(&gguf, tensors::OUTPUT, c.n_vocab, c.d_model)?, false),
            None => (token_embd, true),
        };

        // Resolving every layer now reports a bad file at load time, not mid-generation.
        #[cfg(feature = "alloc")]
        let layers = (0..c.n_layer).map(|i| resolve_layer(&gguf, c, i)).collect::<Result<Vec<_>, _>>()?;
        #[cfg(not(feature = "alloc"))]
        for i in 0..c.n_layer {
            resolve_layer(&gguf, c, i)?;
        }

        Ok(Self {
            config,
            gguf,
            token_embd,
            output_norm,
            output,
            tied_output,
            #[cfg(feature = "alloc")]
            layers,
        })
    }

    /// Returns the weights of layer `i`.
    ///
    /// # Panics
    /// Panics when `i >= config.n_layer`.
    pub fn layer(&self, i: usize) -> LayerWeights<'a> {
        #[cfg(feature = "alloc")]
        {
            self.layers[i]
        }
        #[cfg(not(feature = "alloc"))]
        {
            assert!(i < self.config.n_layer, "layer index out of range");
            match resolve_layer(&self.gguf, &self.config, i) {
                Ok(layer) => layer,
                // Every layer resolved once in `from_gguf`, and the bytes are immutable.
                Err(_) => unreachable!("layer {i} resolved at load time"),
            }
        }
    }

    /// Total bytes of tensor data in the file.
    pub fn weight_bytes(&self) -> u64 {
        self.gguf.tensors().map(|t| t.data.len() as u64).sum()
    }
}

fn resolve_layer<'a>(gguf: &Gguf<'a>, c: &Config, i: usize) -> Result<LayerWeights<'a>, Error> {
    match c.arch {
        Arch::Mamba => resolve_mamba_layer(gguf, c, i).map(LayerWeights::Mamba),
        Arch::Mamba2 => resolve_mamba2_layer(gguf, c, i).map(LayerWeights::Mamba2),
    }
}

fn resolve_mamba2_layer<'a>(gguf: &Gguf<'a>, c: &Config, i: usize) -> Result<Mamba2Layer<'a>, Error> {
    let mut buf = [0u8; 96];
    let mut tensor_name = |suffix: &str| -> heapless::String<96> {
        let full = config::layer_tensor_name(&mut buf, i, suffix).unwrap_or(suffix);
        name(full)
    };
    let conv_dim = c.conv_dim();

    let attn_norm = vector(gguf, &tensor_name(tensors::ATTN_NORM), c.d_model)?;
    let ssm_in = matrix(gguf, &tensor_name(tensors::SSM_IN), c.in_proj_rows(), c.d_model)?;
    let conv_weight = conv_kernel(gguf, &tensor_name(tensors::SSM_CONV1D_WEIGHT), c.d_conv, conv_dim)?;
    let conv_bias_name = tensor_name(tensors::SSM_CONV1D_BIAS);
    let conv_bias = match gguf.tensor(&conv_bias_name) {
        Some(_) => Some(vector(gguf, &conv_bias_name, conv_dim)?),
        None => None,
    };
    let dt_bias = vector(gguf, &tensor_name(tensors::SSM_DT_BIAS), c.n_head)?;
    let a = head_vector(gguf, &tensor_name(tensors::SSM_A), c.n_head)?;
    let d = head_vector(gguf, &tensor_name(tensors::SSM_D), c.n_head)?;
    let norm_name = tensor_name(tensors::SSM_NORM);
    let norm = match gguf.tensor(&norm_name) {
        Some(info) if info.dims == [c.d_inner as u64, 1, 1, 1] => Some(f32_data(&info)?),
        Some(_) => {
            let dims = [(c.d_inner / c.n_group) as u64, c.n_group as u64, 1, 1];
            Some(f32_tensor(gguf, &norm_name, dims)?)
        }
        None => None,
    };
    let ssm_out = matrix(gguf, &tensor_name(tensors::SSM_OUT), c.d_model, c.d_inner)?;

    Ok(Mamba2Layer { attn_norm, ssm_in, conv_weight, conv_bias, dt_bias, a, d, norm, ssm_out })
}

/// Resolves a per-head f32 tensor, stored `[1, n_head]` by llama.cpp's converter or `[n_head]`.
fn head_vector<'a>(gguf: &Gguf<'a>, tensor_name: &str, n_head: usize) -> Result<&'a [f32], Error> {
    let info = find(gguf, tensor_name)?;
    if info.dims == [n_head as u64, 1, 1, 1] {
        return f32_data(&info);
    }
    f32_tensor(gguf, tensor_name, [1, n_head as u64, 1, 1])
}

fn resolve_mamba_layer<'a>(gguf: &Gguf<'a>, c: &Config, i: usize) -> Result<Layer<'a>, Error> {
    let mut buf = [0u8; 96];
    let mut tensor_name = |suffix: &str| -> heapless::String<96> {
        let full = config::layer_tensor_name(&mut buf, i, suffix).unwrap_or(suffix);
        name(full)
    };

    let attn_norm = vector(gguf, &tensor_name(tensors::ATTN_NORM), c.d_model)?;
    let ssm_in = matrix(gguf, &tensor_name(tensors::SSM_IN), 2 * c.d_inner, c.d_model)?;
    let conv_weight = conv_kernel(gguf, &tensor_name(tensors::SSM_CONV1D_WEIGHT), c.d_conv, c.d_inner)?;
    let conv_bias_name = tensor_name(tensors::SSM_CONV1D_BIAS);
    let conv_bias = match gguf.tensor(&conv_bias_name) {
        Some(_) => Some(vector(gguf, &conv_bias_name, c.d_inner)?),
        None => None,
    };
    let ssm_x = matrix(gguf, &tensor_name(tensors::SSM_X), c.dt_rank + 2 * c.d_state, c.d_inner)?;
    let dt_weight = matrix(gguf, &tensor_name(tensors::SSM_DT_WEIGHT), c.d_inner, c.dt_rank)?;
    let dt_bias = vector(gguf, &tensor_name(tensors::SSM_DT_BIAS), c.d_inner)?;
    let a = f32_tensor(gguf, &tensor_name(tensors::SSM_A), [c.d_state as u64, c.d_inner as u64, 1, 1])?;
    let d = vector(gguf, &tensor_name(tensors::SSM_D), c.d_inner)?;
    let ssm_out = matrix(gguf, &tensor_name(tensors::SSM_OUT), c.d_model, c.d_inner)?;

    Ok(Layer { attn_norm, ssm_in, conv_weight, conv_bias, ssm_x, dt_weight, dt_bias, a, d, ssm_out })
}

fn find<'a>(gguf: &Gguf<'a>, tensor_name: &str) -> Result<TensorInfo<'a>, Error> {
    gguf.tensor(tensor_name).ok_or_else(|| ModelError::MissingTensor { name: name(tensor_name) }.into())
}

fn check_shape(info: &TensorInfo<'_>, expected: [u64; 4]) -> Result<(), Error> {
    if info.dims != expected {
        return Err(ModelError::TensorShape { name: name(info.name), expected, found: info.dims }.into());
    }
    Ok(())
}

/// Resolves a weight matrix of `rows × cols` in any supported format.
fn matrix<'a>(gguf: &Gguf<'a>, tensor_name: &str, rows: usize, cols: usize) -> Result<Matrix<'a>, Error> {
    let info = find(gguf, tensor_name)?;
    check_shape(&info, [cols as u64, rows as u64, 1, 1])?;
    Matrix::new(info.dtype, rows, cols, info.data).ok_or_else(|| {
        ModelError::TensorShape { name: name(tensor_name), expected: [cols as u64, rows as u64, 1, 1], found: info.dims }
            .into()
    })
}

/// Resolves a 1-D f32 tensor of `len` elements.
fn vector<'a>(gguf: &Gguf<'a>, tensor_name: &str, len: usize) -> Result<&'a [f32], Error> {
    f32_tensor(gguf, tensor_name, [len as u64, 1, 1, 1])
}

/// Resolves the conv kernel of `channels` channels, stored `[d_conv, channels]` by llama.cpp's
/// converter or `[d_conv, 1, channels]` as the checkpoint has it.
fn conv_kernel<'a>(gguf: &Gguf<'a>, tensor_name: &str, d_conv: usize, channels: usize) -> Result<&'a [f32], Error> {
    let info = find(gguf, tensor_name)?;
    let (d_conv, channels) = (d_conv as u64, channels as u64);
    if info.dims == [d_conv, 1, channels, 1] {
        return f32_data(&info);
    }
    f32_tensor(gguf, tensor_name, [d_conv, channels, 1, 1])
}

fn f32_tensor<'a>(gguf: &Gguf<'a>, tensor_name: &str, dims: [u64; 4]) -> Result<&'a [f32], Error> {
    let info = find(gguf, tensor_name)?;
    check_shape(&info, dims)?;
    f32_data(&info)
}

fn f32_data<'a>(info: &TensorInfo<'a>) -> Result<&'a [f32], Error> {
    if info.dtype != GgmlType::F32 {
        return Err(ModelError::TensorType { name: name(info.name), found: info.dtype, expected: "f32" }.into());
    }
    bytemuck::try_cast_slice(info.data).map_err(|_| ModelError::Misaligned { name: name(info.name) }.into())
}
