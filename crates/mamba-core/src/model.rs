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
    /// Mamba-1 (`mamba`).
    Mamba,
}

impl Arch {
    /// Returns the GGUF architecture name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Mamba => config::ARCH_MAMBA,
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
    /// Channels of the SSM (in_proj gives `2 * d_inner`: x and the gate z).
    pub d_inner: usize,
    /// State size per channel.
    pub d_state: usize,
    /// Rank of the dt projection.
    pub dt_rank: usize,
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
            other => return Err(ModelError::UnknownArchitecture { found: name(other) }.into()),
        };

        // Falcon-Mamba marks itself with this flag; its extra normalisation is not implemented.
        let dt_b_c_rms = arch_value(gguf, arch_name, keys::SSM_DT_B_C_RMS)?.and_then(|v| v.as_bool());
        if dt_b_c_rms == Some(true) {
            return Err(ModelError::UnknownArchitecture { found: name("mamba with ssm.dt_b_c_rms (Falcon-Mamba)") }.into());
        }

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
        let context_length = match arch_value(gguf, arch_name, keys::CONTEXT_LENGTH)? {
            Some(value) => value.as_u64().unwrap_or(0),
            None => 0,
        };

        let embd = gguf
            .tensor(tensors::TOKEN_EMBD)
            .ok_or_else(|| ModelError::MissingTensor { name: name(tensors::TOKEN_EMBD) })?;
        let n_vocab = if embd.n_dims == 2 { embd.dims[1] } else { 0 };
        let n_vocab = check_dim("n_vocab", n_vocab)?;

        Ok(Self { arch, d_model, n_layer, d_inner, d_state, dt_rank, d_conv, n_vocab, rms_eps, context_length })
    }

    /// Number of f32 values in one session's recurrent state: per layer, the conv state
    /// `[d_inner, d_conv - 1]` and the SSM state `[d_inner, d_state]`.
    pub const fn state_len(&self) -> usize {
        self.n_layer * self.layer_state_len()
    }

    /// Number of f32 values of one layer's recurrent state.
    pub const fn layer_state_len(&self) -> usize {
        self.d_inner * (self.d_conv - 1 + self.d_state)
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

/// The weights of one Mamba-1 layer, borrowed from the file.
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
    layers: Vec<Layer<'a>>,
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
    pub fn layer(&self, i: usize) -> Layer<'a> {
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

fn resolve_layer<'a>(gguf: &Gguf<'a>, c: &Config, i: usize) -> Result<Layer<'a>, Error> {
    let mut buf = [0u8; 96];
    let mut tensor_name = |suffix: &str| -> heapless::String<96> {
        let full = config::layer_tensor_name(&mut buf, i, suffix).unwrap_or(suffix);
        name(full)
    };

    let attn_norm = vector(gguf, &tensor_name(tensors::ATTN_NORM), c.d_model)?;
    let ssm_in = matrix(gguf, &tensor_name(tensors::SSM_IN), 2 * c.d_inner, c.d_model)?;
    let conv_weight = conv_kernel(gguf, &tensor_name(tensors::SSM_CONV1D_WEIGHT), c)?;
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

/// Resolves the conv kernel, stored `[d_conv, d_inner]` by llama.cpp's converter or `[d_conv, 1, d_inner]`
/// as the checkpoint has it.
fn conv_kernel<'a>(gguf: &Gguf<'a>, tensor_name: &str, c: &Config) -> Result<&'a [f32], Error> {
    let info = find(gguf, tensor_name)?;
    let (d_conv, d_inner) = (c.d_conv as u64, c.d_inner as u64);
    if info.dims == [d_conv, 1, d_inner, 1] {
        return f32_data(&info);
    }
    f32_tensor(gguf, tensor_name, [d_conv, d_inner, 1, 1])
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
