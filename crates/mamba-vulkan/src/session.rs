//! A sequence run on the GPU: the session state and the activations in GPU memory, and the
//! command buffers of the forward pass.

use std::collections::HashMap;
use std::sync::Arc;

use mamba_core::session::{self, SavedState, DEFAULT_MAX_BATCH, MAX_BATCH_LIMIT};
use vulkano::buffer::Subbuffer;
use vulkano::command_buffer::{CommandBufferUsage, CopyBufferInfo, PrimaryAutoCommandBuffer};

use crate::error::{VulkanContext, VulkanError};
use crate::model::GpuModel;
use crate::record::{ConvParams, Epilogue, MatmulLayout, Recorder, ScanBuffers, ScanParams};

/// Positions of a chunk whose logits the forward pass computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Logits {
    Last,
    All,
}

/// One sequence processed by a [`GpuModel`], like [`mamba_core::Session`] on the CPU.
///
/// The recurrent state stays in GPU memory between tokens, in the CPU session's value order.
/// Each chunk of tokens is one command buffer: embedding, every layer, final norm and LM
/// head. A command buffer is recorded once per chunk length and logits mode and replayed
/// afterwards, so decoding replays the same one-token buffer at every step. Only the token
/// ids are written before each submission.
pub struct GpuSession {
    model: Arc<GpuModel>,
    max_batch: usize,
    buffers: Buffers,
    recorded: HashMap<(usize, Logits), Arc<PrimaryAutoCommandBuffer>>,
    logits: Vec<f32>,
    n_past: u64,
    has_logits: bool,
}

/// GPU buffers of one session. Activations are `[max_batch, width]`, row-major.
struct Buffers {
    /// Token ids of the chunk, written by the host.
    tokens: Subbuffer<[u32]>,
    hidden: Subbuffer<[f32]>,
    normed: Subbuffer<[f32]>,
    /// Rows of `[x (d_inner) | z (d_inner)]`.
    xz: Subbuffer<[f32]>,
    /// Conv output after SiLU.
    xc: Subbuffer<[f32]>,
    /// Rows of `[dt (dt_rank) | B (d_state) | C (d_state)]`.
    dbc: Subbuffer<[f32]>,
    /// dt after dt_proj, bias and softplus.
    dt: Subbuffer<[f32]>,
    y: Subbuffer<[f32]>,
    /// `[max_batch, n_vocab]`.
    logits: Subbuffer<[f32]>,
    /// Host-readable copy of the logits the last chunk computed.
    logits_host: Subbuffer<[f32]>,
    /// Per layer, conv state `[d_inner, d_conv - 1]` then SSM state `[d_inner, d_state]`.
    state: Subbuffer<[f32]>,
}

impl GpuSession {
    /// Creates a session with chunks of [`DEFAULT_MAX_BATCH`] prompt tokens.
    pub fn new(model: &Arc<GpuModel>) -> Result<Self, VulkanError> {
        Self::with_max_batch(model, DEFAULT_MAX_BATCH)
    }

    /// Creates a session with chunks of up to `max_batch` prompt tokens, clamped to
    /// `1..=MAX_BATCH_LIMIT` as on the CPU.
    pub fn with_max_batch(model: &Arc<GpuModel>, max_batch: usize) -> Result<Self, VulkanError> {
        let max_batch = max_batch.clamp(1, MAX_BATCH_LIMIT);
        let c = model.config;
        let gpu = &model.gpu;
        let t = max_batch;
        let buffers = Buffers {
            tokens: gpu.host_buffer::<u32>(t)?,
            hidden: gpu.device_buffer("hidden", t * c.d_model)?,
            normed: gpu.device_buffer("normed", t * c.d_model)?,
            xz: gpu.device_buffer("xz", t * 2 * c.d_inner)?,
            xc: gpu.device_buffer("xc", t * c.d_inner)?,
            dbc: gpu.device_buffer("dbc", t * (c.dt_rank + 2 * c.d_state))?,
            dt: gpu.device_buffer("dt", t * c.d_inner)?,
            y: gpu.device_buffer("y", t * c.d_inner)?,
            logits: gpu.device_buffer("logits", t * c.n_vocab)?,
            logits_host: gpu.host_buffer::<f32>(t * c.n_vocab)?,
            state: gpu.upload("state", &vec![0.0f32; c.state_len()])?,
        };
        Ok(Self { model: model.clone(), max_batch, buffers, recorded: HashMap::new(), logits: vec![0.0; c.n_vocab], n_past: 0, has_logits: false })
    }

    /// Returns the model this session runs.
    pub fn model(&self) -> &Arc<GpuModel> {
        &self.model
    }

    /// Number of tokens processed since creation or the last reset.
    pub fn n_past(&self) -> u64 {
        self.n_past
    }

    /// Returns the logits after the last processed token, or `None` before any token.
    pub fn logits(&self) -> Option<&[f32]> {
        self.has_logits.then_some(&self.logits[..])
    }

    /// Clears the state so the next token starts a new sequence.
    pub fn reset(&mut self) -> Result<(), VulkanError> {
        let zeros = vec![0.0f32; self.model.config.state_len()];
        self.model.gpu.write(&self.buffers.state, &zeros)?;
        self.n_past = 0;
        self.has_logits = false;
        Ok(())
    }

    /// Processes one token and returns the logits for the next.
    pub fn step(&mut self, token: u32) -> Result<&[f32], VulkanError> {
        self.prefill(&[token])
    }

    /// Processes `tokens` in order and returns the logits after the last one.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[f32], VulkanError> {
        self.check_tokens(tokens)?;
        let chunks = tokens.len().div_ceil(self.max_batch);
        for (i, chunk) in tokens.chunks(self.max_batch).enumerate() {
            // Earlier chunks compute the last position's logits too; they are discarded.
            self.forward_chunk(chunk, Logits::Last)?;
            if i + 1 == chunks {
                let values = self.buffers.logits_host.read().during("reading the logits")?;
                self.logits.copy_from_slice(&values[..self.model.config.n_vocab]);
            }
        }
        self.has_logits = true;
        Ok(&self.logits)
    }

    /// Processes `tokens` in order and calls `on_logits(i, logits)` with the logits after each
    /// token `i`.
    pub fn prefill_all(&mut self, tokens: &[u32], mut on_logits: impl FnMut(usize, &[f32])) -> Result<(), VulkanError> {
        self.check_tokens(tokens)?;
        let n_vocab = self.model.config.n_vocab;
        for (i, chunk) in tokens.chunks(self.max_batch).enumerate() {
            self.forward_chunk(chunk, Logits::All)?;
            let values = self.buffers.logits_host.read().during("reading the logits")?;
            for (t, row) in values.chunks_exact(n_vocab).take(chunk.len()).enumerate() {
                on_logits(i * self.max_batch + t, row);
            }
            self.logits.copy_from_slice(&values[(chunk.len() - 1) * n_vocab..chunk.len() * n_vocab]);
        }
        self.has_logits = true;
        Ok(())
    }

    /// Returns a copy of the recurrent state: per layer, conv state `[d_inner, d_conv - 1]`
    /// then SSM state `[d_inner, d_state]`, as [`mamba_core::Session::state`] orders it.
    pub fn state(&self) -> Result<Vec<f32>, VulkanError> {
        self.model.gpu.read(&self.buffers.state, self.model.config.state_len())
    }

    /// Bytes that [`GpuSession::save_state`] writes for this model.
    pub fn state_bytes_len(&self) -> usize {
        session::state_bytes_len(&self.model.config)
    }

    /// Writes the state, the position and the last logits to `out` in the layout of
    /// [`mamba_core::Session::save_state`], so a CPU session can restore it, and returns
    /// the byte count.
    pub fn save_state(&self, out: &mut [u8]) -> Result<usize, VulkanError> {
        let state = self.state()?;
        let saved = SavedState { n_past: self.n_past, has_logits: self.has_logits, state: &state, logits: &self.logits };
        Ok(session::encode_state(&self.model.config, &saved, out)?)
    }

    /// Saves the state into a new vector; see [`GpuSession::save_state`].
    pub fn save_state_to_vec(&self) -> Result<Vec<u8>, VulkanError> {
        let mut out = vec![0u8; self.state_bytes_len()];
        self.save_state(&mut out)?;
        Ok(out)
    }

    /// Restores a state saved by this backend or by [`mamba_core::Session::save_state`],
    /// after the checks of [`mamba_core::session::decode_state`]. On error the session is
    /// unchanged.
    pub fn load_state(&mut self, bytes: &[u8]) -> Result<(), VulkanError> {
        let c = self.model.config;
        let mut state = vec![0.0f32; c.state_len()];
        let mut logits = vec![0.0f32; c.n_vocab];
        let header = session::decode_state(&c, bytes, &mut state, &mut logits)?;
        self.model.gpu.write(&self.buffers.state, &state)?;
        self.logits = logits;
        self.n_past = header.n_past;
        self.has_logits = header.has_logits;
        Ok(())
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<(), VulkanError> {
        if tokens.is_empty() {
            return Err(mamba_core::Error::EmptyInput.into());
        }
        let n_vocab = self.model.config.n_vocab;
        match tokens.iter().find(|&&t| t as usize >= n_vocab) {
            Some(&token) => Err(mamba_core::Error::TokenOutOfRange { token, n_vocab }.into()),
            None => Ok(()),
        }
    }

    /// Runs one chunk of at most `max_batch` checked tokens and waits for it; the logits
    /// are then in `logits_host`.
    fn forward_chunk(&mut self, tokens: &[u32], logits: Logits) -> Result<(), VulkanError> {
        let key = (tokens.len(), logits);
        let commands = match self.recorded.get(&key) {
            Some(commands) => commands.clone(),
            None => {
                let commands = self.record(tokens.len(), logits)?;
                self.recorded.insert(key, commands.clone());
                commands
            }
        };
        self.buffers.tokens.write().during("writing the token ids")?[..tokens.len()].copy_from_slice(tokens);
        self.model.gpu.run(commands)?;
        self.n_past += tokens.len() as u64;
        Ok(())
    }

    /// Records the forward pass of a chunk of `n` tokens.
    fn record(&self, n: usize, logits: Logits) -> Result<Arc<PrimaryAutoCommandBuffer>, VulkanError> {
        let model = &*self.model;
        let c = model.config;
        let b = &self.buffers;
        let gpu = &model.gpu;
        // check_sizes in GpuModel::new keeps every offset below within u32.
        let n32 = n as u32;
        let (d_model, d_inner, d_state) = (c.d_model as u32, c.d_inner as u32, c.d_state as u32);
        let (dt_rank, d_conv) = (c.dt_rank as u32, c.d_conv as u32);
        let dbc_width = dt_rank + 2 * d_state;
        let mut rec = Recorder::new(gpu, gpu.builder(CommandBufferUsage::MultipleSubmit)?);

        // Token embeddings.
        rec.embed(&model.token_embd, &b.tokens, &b.hidden, n32)?;

        let matmul = |x_stride: u32, y_stride: u32, epilogue: Epilogue| MatmulLayout {
            n_tokens: n32,
            x_offset: 0,
            x_stride,
            y_offset: 0,
            y_stride,
            epilogue,
        };
        for (i, layer) in model.layers.iter().enumerate() {
            let layer_state = (i * c.layer_state_len()) as u32;

            // Pre-norm and in_proj: each row of xz is [x | z].
            rec.rmsnorm(&b.hidden, &layer.attn_norm, &b.normed, d_model, c.rms_eps, 0, n32)?;
            rec.matmul(&layer.ssm_in, &b.normed, &b.xz, &model.unused, matmul(d_model, 2 * d_inner, Epilogue::Store))?;

            // Causal conv over x with SiLU, advancing the conv state.
            let conv = ConvParams {
                d_inner,
                d_conv,
                n_tokens: n32,
                x_stride: 2 * d_inner,
                state_offset: layer_state,
                has_bias: u32::from(layer.conv_bias.is_some()),
            };
            let conv_bias = layer.conv_bias.as_ref().unwrap_or(&model.unused);
            rec.conv(&b.xz, &layer.conv_weight, conv_bias, &b.state, &b.xc, conv)?;

            // x_proj gives [dt | B | C]; dt_proj reads the dt columns and applies bias and
            // softplus.
            rec.matmul(&layer.ssm_x, &b.xc, &b.dbc, &model.unused, matmul(d_inner, dbc_width, Epilogue::Store))?;
            rec.matmul(&layer.dt_weight, &b.dbc, &b.dt, &layer.dt_bias, matmul(dbc_width, d_inner, Epilogue::SoftplusBias))?;

            // Selective scan with skip connection and SiLU(z) gate, advancing the SSM state.
            let scan = ScanParams {
                d_inner,
                d_state,
                n_tokens: n32,
                dbc_stride: dbc_width,
                b_offset: dt_rank,
                c_offset: dt_rank + d_state,
                z_offset: d_inner,
                z_stride: 2 * d_inner,
                state_offset: layer_state + d_inner * (d_conv - 1),
            };
            let scan_buffers = ScanBuffers {
                xc: &b.xc,
                dt: &b.dt,
                a: &layer.a,
                dbc: &b.dbc,
                d: &layer.d,
                xz: &b.xz,
                state: &b.state,
                y: &b.y,
            };
            rec.scan(&scan_buffers, scan)?;

            // out_proj, added to the residual stream.
            rec.matmul(&layer.ssm_out, &b.y, &b.hidden, &model.unused, matmul(d_inner, d_model, Epilogue::Add))?;
        }

        // Final norm and LM head for the positions that need logits.
        let n_vocab = c.n_vocab as u32;
        let (first, rows) = match logits {
            Logits::Last => (n32 - 1, 1),
            Logits::All => (0, n32),
        };
        rec.rmsnorm(&b.hidden, &model.output_norm, &b.normed, d_model, c.rms_eps, first, rows)?;
        let head = MatmulLayout {
            n_tokens: rows,
            x_offset: first * d_model,
            x_stride: d_model,
            y_offset: 0,
            y_stride: n_vocab,
            epilogue: Epilogue::Store,
        };
        rec.matmul(&model.output, &b.normed, &b.logits, &model.unused, head)?;
        let len = u64::from(rows * n_vocab);
        rec.builder
            .copy_buffer(CopyBufferInfo::buffers(b.logits.clone().slice(0..len), b.logits_host.clone().slice(0..len)))
            .during("recording the logits read-back")?;

        rec.builder.build().during("building the forward command buffer")
    }
}
