//! A model's weights in GPU memory.

use std::sync::Arc;

use mamba_core::model::{Layer, LayerWeights};
use mamba_core::{Arch, Config, GgmlType, Matrix, Model};
use vulkano::buffer::Subbuffer;

use crate::error::VulkanError;
use crate::gpu::Gpu;

/// A weight matrix uploaded in its GGUF layout, as 32-bit words (the last one zero-padded).
#[derive(Clone)]
pub(crate) struct GpuMatrix {
    pub dtype: GgmlType,
    pub rows: u32,
    pub cols: u32,
    pub row_bytes: u32,
    pub data: Subbuffer<[u32]>,
}

impl GpuMatrix {
    /// Uploads `matrix` as `name`.
    pub fn upload(gpu: &Gpu, name: &str, matrix: &Matrix<'_>) -> Result<Self, VulkanError> {
        let too_large = || VulkanError::BufferTooLarge {
            buffer: name.to_owned(),
            bytes: matrix.data.len() as u64,
            max: u64::from(u32::MAX),
            device: gpu.info().name.clone(),
        };
        // Byte offsets in the shaders are u32.
        let row_bytes = u32::try_from(matrix.row_bytes()).map_err(|_| too_large())?;
        u32::try_from(matrix.data.len()).map_err(|_| too_large())?;

        let mut words = vec![0u32; matrix.data.len().div_ceil(4)];
        for (word, bytes) in words.iter_mut().zip(matrix.data.chunks(4)) {
            let mut le = [0u8; 4];
            le[..bytes.len()].copy_from_slice(bytes);
            *word = u32::from_le_bytes(le);
        }
        Ok(Self {
            dtype: matrix.dtype,
            rows: matrix.rows as u32,
            cols: matrix.cols as u32,
            row_bytes,
            data: gpu.upload(name, &words)?,
        })
    }
}

/// The weights of one layer in GPU memory.
pub(crate) struct GpuLayer {
    pub attn_norm: Subbuffer<[f32]>,
    pub ssm_in: GpuMatrix,
    pub conv_weight: Subbuffer<[f32]>,
    /// `None` when the checkpoint has no conv bias.
    pub conv_bias: Option<Subbuffer<[f32]>>,
    pub ssm_x: GpuMatrix,
    pub dt_weight: GpuMatrix,
    pub dt_bias: Subbuffer<[f32]>,
    pub a: Subbuffer<[f32]>,
    pub d: Subbuffer<[f32]>,
    pub ssm_out: GpuMatrix,
}

/// A Mamba-1 model whose weights were uploaded once to a [`Gpu`].
pub struct GpuModel {
    pub(crate) gpu: Arc<Gpu>,
    pub(crate) config: Config,
    pub(crate) token_embd: GpuMatrix,
    pub(crate) output_norm: Subbuffer<[f32]>,
    pub(crate) output: GpuMatrix,
    pub(crate) layers: Vec<GpuLayer>,
    /// A one-element buffer bound where a shader declares a buffer it does not read.
    pub(crate) unused: Subbuffer<[f32]>,
}

impl GpuModel {
    /// Uploads every weight of `model` to `gpu`. Sessions share the result.
    pub fn new(gpu: Arc<Gpu>, model: &Model<'_>) -> Result<Arc<Self>, VulkanError> {
        let config = model.config;
        // NOTE: Mamba-2 layers and Falcon-Mamba's dt, B and C normalisation need their own
        // shaders; only Mamba-1 is implemented.
        if config.arch != Arch::Mamba {
            return Err(VulkanError::UnsupportedArchitecture(config.arch.name().to_owned()));
        }
        if config.dt_b_c_rms {
            return Err(VulkanError::UnsupportedArchitecture("falcon-mamba (mamba with ssm.dt_b_c_rms)".to_owned()));
        }
        check_sizes(&gpu, &config)?;

        let token_embd = GpuMatrix::upload(&gpu, "token_embd.weight", &model.token_embd)?;
        let output = if model.tied_output {
            token_embd.clone()
        } else {
            GpuMatrix::upload(&gpu, "output.weight", &model.output)?
        };
        let output_norm = gpu.upload("output_norm.weight", model.output_norm)?;
        let layers = (0..config.n_layer)
            .map(|i| match model.layer(i) {
                LayerWeights::Mamba(layer) => upload_layer(&gpu, i, &layer),
                LayerWeights::Mamba2(_) => Err(VulkanError::UnsupportedArchitecture(Arch::Mamba2.name().to_owned())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let unused = gpu.device_buffer::<f32>("unused binding", 1)?;
        Ok(Arc::new(Self { gpu, config, token_embd, output_norm, output, layers, unused }))
    }

    /// Returns the model's hyperparameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Returns the device the weights live on.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }
}

fn upload_layer(gpu: &Gpu, i: usize, layer: &Layer<'_>) -> Result<GpuLayer, VulkanError> {
    let name = |suffix: &str| format!("blk.{i}.{suffix}");
    Ok(GpuLayer {
        attn_norm: gpu.upload(&name("attn_norm.weight"), layer.attn_norm)?,
        ssm_in: GpuMatrix::upload(gpu, &name("ssm_in.weight"), &layer.ssm_in)?,
        conv_weight: gpu.upload(&name("ssm_conv1d.weight"), layer.conv_weight)?,
        conv_bias: layer.conv_bias.map(|bias| gpu.upload(&name("ssm_conv1d.bias"), bias)).transpose()?,
        ssm_x: GpuMatrix::upload(gpu, &name("ssm_x.weight"), &layer.ssm_x)?,
        dt_weight: GpuMatrix::upload(gpu, &name("ssm_dt.weight"), &layer.dt_weight)?,
        dt_bias: gpu.upload(&name("ssm_dt.bias"), layer.dt_bias)?,
        a: gpu.upload(&name("ssm_a"), layer.a)?,
        d: gpu.upload(&name("ssm_d"), layer.d)?,
        ssm_out: GpuMatrix::upload(gpu, &name("ssm_out.weight"), &layer.ssm_out)?,
    })
}

/// Checks that the state and the largest activation of a chunk of
/// [`mamba_core::session::MAX_BATCH_LIMIT`] tokens stay within u32 element offsets.
fn check_sizes(gpu: &Gpu, c: &Config) -> Result<(), VulkanError> {
    let widest = (2 * c.d_inner).max(c.n_vocab).max(c.dt_rank + 2 * c.d_state);
    let largest = (mamba_core::session::MAX_BATCH_LIMIT * widest).max(c.state_len());
    let bytes = 4 * largest as u64;
    if bytes > u64::from(u32::MAX) {
        return Err(VulkanError::BufferTooLarge { buffer: "activations".into(), bytes, max: u64::from(u32::MAX), device: gpu.info().name.clone() });
    }
    Ok(())
}
