//! A sequence's recurrent state and the forward pass that advances it.
//!
//! A [`Session`] borrows a [`Model`] and owns two flat f32 buffers: the state (conv and SSM
//! state of every layer, fixed size whatever the sequence length) and the scratch space of
//! one forward chunk. Prefill and decode run the same code: a prompt is processed in chunks
//! of up to `max_batch` tokens with matrix-matrix products, and a decode step is a chunk of
//! one token.
//!
//! A session runs on the calling thread unless it is given an executor with
//! [`Session::set_threads`] or [`Session::set_parallel`]. Then every projection, the conv
//! and the scan are split across threads, and the logits are the same bits for any number
//! of threads.

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

mod mamba2;

use crate::error::{Error, StateError};
use crate::kernels::{Inputs, dequantize_matrix_row, matmul_with, matvec_with};
use crate::model::{Arch, Config, Layer, LayerWeights, Model};
use crate::ops::conv1d::{ConvShape, causal_conv1d, causal_conv1d_advance, causal_conv1d_tokens};
use crate::ops::fast_math::{silu_slice, softplus_bias_slice};
use crate::ops::norm::{rms_normalize, rmsnorm, rmsnorm_rows};
use crate::ops::ssm_scan::{SCAN_BLOCK, ScanInputs, selective_scan_fast_channels};
use crate::pool::{DisjointMut, Parallel, Serial};
#[cfg(feature = "std")]
use crate::pool::ThreadPool;
use crate::tensor::Matrix;

/// Default number of prompt tokens per forward chunk.
pub const DEFAULT_MAX_BATCH: usize = 64;
/// Largest accepted chunk size; larger requests are capped to it. Beyond a few hundred tokens
/// a bigger chunk only costs scratch memory.
pub const MAX_BATCH_LIMIT: usize = 4096;

/// Offsets of the per-chunk buffers inside the scratch slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScratchLayout {
    max_batch: usize,
    hidden: usize,
    normed: usize,
    xz: usize,
    xc: usize,
    dbc: usize,
    dt_in: usize,
    dt: usize,
    y: usize,
    out: usize,
    logits: usize,
    len: usize,
}

impl ScratchLayout {
    /// Computes the layout for chunks of up to `max_batch` tokens, clamped to
    /// `1..=MAX_BATCH_LIMIT`. Offsets saturate instead of overflowing, so a model too large
    /// for the address space gives a length no buffer can satisfy.
    pub const fn new(c: &Config, max_batch: usize) -> Self {
        let t = if max_batch == 0 {
            1
        } else if max_batch > MAX_BATCH_LIMIT {
            MAX_BATCH_LIMIT
        } else {
            max_batch
        };
        let widths = RowWidths::new(c);
        let hidden = 0;
        let normed = add(hidden, mul(t, c.d_model));
        let xz = add(normed, mul(t, c.d_model));
        let xc = add(xz, mul(t, widths.xz));
        let dbc = add(xc, mul(t, widths.xc));
        let dt_in = add(dbc, mul(t, widths.dbc));
        let dt = add(dt_in, mul(t, widths.dt_in));
        let y = add(dt, mul(t, widths.dt));
        let out = add(y, mul(t, c.d_inner));
        let logits = add(out, mul(t, c.d_model));
        let len = add(logits, c.n_vocab);
        Self { max_batch: t, hidden, normed, xz, xc, dbc, dt_in, dt, y, out, logits, len }
    }

    /// Number of f32 values the scratch buffer needs.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Always false: a layout has at least the logits.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Tokens per chunk.
    pub const fn max_batch(&self) -> usize {
        self.max_batch
    }
}

const fn add(a: usize, b: usize) -> usize {
    a.saturating_add(b)
}

const fn mul(a: usize, b: usize) -> usize {
    a.saturating_mul(b)
}

/// Magic at the start of saved session state.
pub const STATE_MAGIC: [u8; 4] = *b"MEST";
/// Version of the saved state layout.
pub const STATE_VERSION: u32 = 1;
/// Bytes of the saved-state header.
const STATE_HEADER_LEN: usize = 64;

/// One sequence being processed by a model.
pub struct Session<'m, S> {
    model: &'m Model<'m>,
    state: S,
    scratch: S,
    layout: ScratchLayout,
    n_past: u64,
    has_logits: bool,
    executor: Executor<'m>,
    min_parallel_work: usize,
    inputs: Inputs,
}

/// The executor a session splits its forward pass with.
enum Executor<'m> {
    Serial,
    Borrowed(&'m dyn Parallel),
    #[cfg(feature = "std")]
    Pool(ThreadPool),
}

impl Executor<'_> {
    fn get(&self) -> &dyn Parallel {
        match self {
            Self::Serial => &Serial,
            Self::Borrowed(executor) => *executor,
            #[cfg(feature = "std")]
            Self::Pool(pool) => pool,
        }
    }
}

#[cfg(feature = "alloc")]
impl<'m> Session<'m, Vec<f32>> {
    /// Creates a session with heap buffers and the default chunk size.
    pub fn new(model: &'m Model<'m>) -> Self {
        Self::with_max_batch(model, DEFAULT_MAX_BATCH)
    }

    /// Creates a session with heap buffers and chunks of up to `max_batch` prompt tokens.
    pub fn with_max_batch(model: &'m Model<'m>, max_batch: usize) -> Self {
        let layout = ScratchLayout::new(&model.config, max_batch);
        let state = alloc::vec![0.0; model.config.state_len()];
        let scratch = alloc::vec![0.0; layout.len()];
        Self { model, state, scratch, layout, n_past: 0, has_logits: false, executor: Executor::Serial, min_parallel_work: MIN_PARALLEL_WORK, inputs: Inputs::Int8 }
    }
}

impl<'m, S: AsRef<[f32]> + AsMut<[f32]>> Session<'m, S> {
    /// Creates a session over caller-provided buffers. `state` needs
    /// `model.config.state_len()` values and `scratch` needs
    /// `ScratchLayout::new(&model.config, max_batch).len()`; both are zeroed.
    /// [`BufferSizes`](crate::buffers::BufferSizes) gives both sizes at compile time.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] naming the buffer and the bytes it needs when one is too
    /// small for this model.
    pub fn with_buffers(model: &'m Model<'m>, mut state: S, mut scratch: S, max_batch: usize) -> Result<Self, Error> {
        let layout = ScratchLayout::new(&model.config, max_batch);
        let state_len = model.config.state_len();
        if state.as_ref().len() < state_len {
            let found = core::mem::size_of_val(state.as_ref());
            return Err(Error::BufferTooSmall { buffer: "state", needed: model.config.state_bytes(), found });
        }
        if scratch.as_ref().len() < layout.len() {
            let found = core::mem::size_of_val(scratch.as_ref());
            return Err(Error::BufferTooSmall { buffer: "scratch", needed: layout.bytes(), found });
        }
        state.as_mut().fill(0.0);
        scratch.as_mut().fill(0.0);
        Ok(Self { model, state, scratch, layout, n_past: 0, has_logits: false, executor: Executor::Serial, min_parallel_work: MIN_PARALLEL_WORK, inputs: Inputs::Int8 })
    }

    /// Runs the forward pass on `threads` threads: the caller and a pool of `threads - 1`
    /// workers that the session starts now and stops when it is dropped or this is called
    /// again. `threads` 0 or 1 runs everything on the calling thread, as a new session does.
    ///
    /// # Panics
    /// Panics when the operating system cannot start a thread.
    #[cfg(feature = "std")]
    pub fn set_threads(&mut self, threads: usize) {
        self.executor = Executor::Serial;
        if threads > 1 {
            self.executor = Executor::Pool(ThreadPool::new(threads));
        }
    }

    /// Runs the forward pass on `executor`, for example a [`ThreadPool`](crate::pool::ThreadPool)
    /// shared by several sessions, or [`Serial`] to go back to the calling thread.
    pub fn set_parallel(&mut self, executor: &'m dyn Parallel) {
        self.executor = Executor::Borrowed(executor);
    }

    /// Sets the smallest step, in multiply-adds or an estimated equivalent, that is split
    /// across threads; smaller steps run on the calling thread. The default is
    /// [`MIN_PARALLEL_WORK`]. The logits do not depend on it.
    pub fn set_min_parallel_work(&mut self, work: usize) {
        self.min_parallel_work = work;
    }

    /// Sets how the matrix products of [`Session::step`], the decode path, treat their
    /// inputs. The default, [`Inputs::Int8`], rounds the inputs of Q8_0 and Q4_0 matrices to
    /// 8 bits where the CPU has integer kernels for them, as llama.cpp does, which speeds up
    /// decoding. [`Inputs::Exact`] keeps them f32, so the logits depend on the weights alone.
    /// Prefill always keeps f32 inputs: there the f32 matmul decodes each weight once per
    /// chunk, and it measured faster than the integer kernels.
    pub fn set_inputs(&mut self, inputs: Inputs) {
        self.inputs = inputs;
    }

    /// Returns how the matrix products of decode steps treat their inputs ([`Session::set_inputs`]).
    pub fn inputs(&self) -> Inputs {
        self.inputs
    }

    /// Maximum number of threads the forward pass runs on.
    pub fn threads(&self) -> usize {
        self.executor.get().threads()
    }

    /// Returns the model this session runs.
    pub fn model(&self) -> &'m Model<'m> {
        self.model
    }

    /// Number of tokens processed since creation or the last reset.
    pub fn n_past(&self) -> u64 {
        self.n_past
    }

    /// Clears the state so the next token starts a new sequence.
    pub fn reset(&mut self) {
        self.state.as_mut().fill(0.0);
        self.n_past = 0;
        self.has_logits = false;
    }

    /// Returns the logits after the last processed token, or `None` before any token.
    pub fn logits(&self) -> Option<&[f32]> {
        self.has_logits.then(|| self.logits_slice())
    }

    /// Returns the recurrent state: per layer, conv state `[conv_dim, d_conv - 1]` then SSM state
    /// (`[d_inner, d_state]`, for Mamba-2 `[n_head, head_dim, d_state]`).
    pub fn state(&self) -> &[f32] {
        &self.state.as_ref()[..self.model.config.state_len()]
    }

    fn logits_slice(&self) -> &[f32] {
        let start = self.layout.logits;
        &self.scratch.as_ref()[start..start + self.model.config.n_vocab]
    }

    /// Processes one token and returns the logits for the next. This is the decode path: its
    /// matrix products treat their inputs as set by [`Session::set_inputs`].
    pub fn step(&mut self, token: u32) -> Result<&[f32], Error> {
        self.check_tokens(&[token])?;
        self.forward_chunk(&[token], Logits::Last, self.inputs, &mut |_, _| {});
        self.has_logits = true;
        Ok(self.logits_slice())
    }

    /// Processes `tokens` in order and returns the logits after the last one. The matrix
    /// products keep exact f32 inputs, so the result does not depend on how the prompt is
    /// split into chunks.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[f32], Error> {
        self.check_tokens(tokens)?;
        let last_chunk_start = (tokens.len() - 1) / self.layout.max_batch * self.layout.max_batch;
        for (i, chunk) in tokens.chunks(self.layout.max_batch).enumerate() {
            let is_last = i * self.layout.max_batch == last_chunk_start;
            self.forward_chunk(chunk, if is_last { Logits::Last } else { Logits::None }, Inputs::Exact, &mut |_, _| {});
        }
        self.has_logits = true;
        Ok(self.logits_slice())
    }

    /// Processes `tokens` in order and calls `on_logits(i, logits)` with the logits after each
    /// token `i`.
    pub fn prefill_all(&mut self, tokens: &[u32], mut on_logits: impl FnMut(usize, &[f32])) -> Result<(), Error> {
        self.check_tokens(tokens)?;
        for (i, chunk) in tokens.chunks(self.layout.max_batch).enumerate() {
            let base = i * self.layout.max_batch;
            self.forward_chunk(chunk, Logits::All, Inputs::Exact, &mut |t, logits| on_logits(base + t, logits));
        }
        self.has_logits = true;
        Ok(())
    }

    /// Bytes that [`Session::save_state`] writes for this model.
    pub fn state_bytes_len(&self) -> usize {
        state_bytes_len(&self.model.config)
    }

    /// Writes the state, the position and the last logits to `out` and returns the byte count.
    /// See [`encode_state`] for the layout.
    pub fn save_state(&self, out: &mut [u8]) -> Result<usize, Error> {
        let saved = SavedState { n_past: self.n_past, has_logits: self.has_logits, state: self.state(), logits: self.logits_slice() };
        encode_state(&self.model.config, &saved, out)
    }

    /// Saves the state into a new vector; see [`Session::save_state`].
    #[cfg(feature = "alloc")]
    pub fn save_state_to_vec(&self) -> Vec<u8> {
        let mut out = alloc::vec![0u8; self.state_bytes_len()];
        // The buffer has exactly the length save_state needs.
        let _ = self.save_state(&mut out);
        out
    }

    /// Restores what [`Session::save_state`] wrote, after checking it as [`decode_state`]
    /// does. On error the session is unchanged.
    pub fn load_state(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let c = self.model.config;
        let logits_start = self.layout.logits;
        let (state, scratch) = (self.state.as_mut(), self.scratch.as_mut());
        let header = decode_state(&c, bytes, &mut state[..c.state_len()], &mut scratch[logits_start..logits_start + c.n_vocab])?;
        self.n_past = header.n_past;
        self.has_logits = header.has_logits;
        Ok(())
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<(), Error> {
        if tokens.is_empty() {
            return Err(Error::EmptyInput);
        }
        let n_vocab = self.model.config.n_vocab;
        match tokens.iter().find(|&&t| t as usize >= n_vocab) {
            Some(&token) => Err(Error::TokenOutOfRange { token, n_vocab }),
            None => Ok(()),
        }
    }

    /// Runs every layer over one chunk of at most `max_batch` checked tokens, with the matrix
    /// inputs treated as `inputs` selects.
    fn forward_chunk(&mut self, tokens: &[u32], logits: Logits, inputs: Inputs, on_logits: &mut dyn FnMut(usize, &[f32])) {
        let model = self.model;
        let c = model.config;
        let n = tokens.len();
        let l = self.layout;
        let scratch = self.scratch.as_mut();
        let state = self.state.as_mut();
        let par = Split { executor: self.executor.get(), min_work: self.min_parallel_work, inputs };

        // Split the scratch buffer into its named parts, each `n` rows long.
        let (hidden, rest) = scratch[l.hidden..].split_at_mut(l.normed - l.hidden);
        let (normed, rest) = rest.split_at_mut(l.xz - l.normed);
        let (xz, rest) = rest.split_at_mut(l.xc - l.xz);
        let (xc, rest) = rest.split_at_mut(l.dbc - l.xc);
        let (dbc, rest) = rest.split_at_mut(l.dt_in - l.dbc);
        let (dt_in, rest) = rest.split_at_mut(l.dt - l.dt_in);
        let (dt, rest) = rest.split_at_mut(l.y - l.dt);
        let (y, rest) = rest.split_at_mut(l.out - l.y);
        let (out, rest) = rest.split_at_mut(l.logits - l.out);
        let logits_buf = &mut rest[..c.n_vocab];
        let widths = RowWidths::new(&c);
        let mut bufs = ChunkBuffers {
            hidden: &mut hidden[..n * c.d_model],
            normed: &mut normed[..n * c.d_model],
            xz: &mut xz[..n * widths.xz],
            xc: &mut xc[..n * widths.xc],
            dbc: &mut dbc[..n * widths.dbc],
            dt_in: &mut dt_in[..n * widths.dt_in],
            dt: &mut dt[..n * widths.dt],
            y: &mut y[..n * c.d_inner],
            out: &mut out[..n * c.d_model],
        };

        // Token embeddings.
        for (t, &token) in tokens.iter().enumerate() {
            dequantize_matrix_row(&model.token_embd, token as usize, &mut bufs.hidden[t * c.d_model..(t + 1) * c.d_model]);
        }

        for (i, layer_state) in state.chunks_exact_mut(c.layer_state_len()).take(c.n_layer).enumerate() {
            match model.layer(i) {
                LayerWeights::Mamba(layer) => mamba_layer(&c, &layer, par, n, layer_state, &mut bufs),
                LayerWeights::Mamba2(layer) => mamba2::mamba2_layer(&c, &layer, par, n, layer_state, &mut bufs),
            }
        }
        self.n_past += n as u64;

        // Final norm and LM head for the positions that need logits.
        let positions = match logits {
            Logits::None => 0..0,
            Logits::Last => n - 1..n,
            Logits::All => 0..n,
        };
        for t in positions {
            let row = &bufs.hidden[t * c.d_model..(t + 1) * c.d_model];
            let normed_row = &mut bufs.normed[..c.d_model];
            rmsnorm(row, model.output_norm, c.rms_eps, normed_row);
            par_matvec(par, &model.output, normed_row, logits_buf);
            on_logits(t, logits_buf);
        }
    }
}

/// Per-token widths of the scratch rows, which depend on the architecture.
#[derive(Clone, Copy)]
struct RowWidths {
    /// in_proj output.
    xz: usize,
    /// Conv output.
    xc: usize,
    /// Mamba-1 x_proj output; 0 for Mamba-2.
    dbc: usize,
    /// Mamba-1 dt_proj input; 0 for Mamba-2.
    dt_in: usize,
    /// Step sizes: one per channel (Mamba-1) or per head (Mamba-2).
    dt: usize,
}

impl RowWidths {
    const fn new(c: &Config) -> Self {
        match c.arch {
            Arch::Mamba => Self {
                xz: c.in_proj_rows(),
                xc: c.conv_dim(),
                dbc: c.dt_rank + 2 * c.d_state,
                dt_in: c.dt_rank,
                dt: c.d_inner,
            },
            Arch::Mamba2 => Self { xz: c.in_proj_rows(), xc: c.conv_dim(), dbc: 0, dt_in: 0, dt: c.n_head },
        }
    }
}

/// The scratch rows of one forward chunk of `n` tokens, each cut to `n` rows.
struct ChunkBuffers<'s> {
    /// Residual stream, `[n, d_model]`.
    hidden: &'s mut [f32],
    /// Normalised residual, `[n, d_model]`.
    normed: &'s mut [f32],
    /// in_proj output.
    xz: &'s mut [f32],
    /// Conv output after SiLU.
    xc: &'s mut [f32],
    /// Mamba-1 x_proj output.
    dbc: &'s mut [f32],
    /// Mamba-1 dt_proj input.
    dt_in: &'s mut [f32],
    /// Step sizes after softplus.
    dt: &'s mut [f32],
    /// Scan output, `[n, d_inner]`.
    y: &'s mut [f32],
    /// out_proj output, `[n, d_model]`.
    out: &'s mut [f32],
}

/// Runs one Mamba-1 (or Falcon-Mamba) layer over `n` tokens and adds its output to the
/// residual stream.
fn mamba_layer(c: &Config, layer: &Layer<'_>, par: Split<'_>, n: usize, layer_state: &mut [f32], bufs: &mut ChunkBuffers<'_>) {
    let ChunkBuffers { hidden, normed, xz, xc, dbc, dt_in, dt, y, out } = bufs;
    let dbc_width = c.dt_rank + 2 * c.d_state;
    let (conv_state, ssm_state) = layer_state.split_at_mut(c.d_inner * (c.d_conv - 1));

    // Pre-norm and in_proj: each row of xz is [x (d_inner) | z (d_inner)].
    rmsnorm_rows(hidden, layer.attn_norm, c.rms_eps, normed);
    par_matmul(par, &layer.ssm_in, normed, xz);

    // Causal conv over x and SiLU, then the conv state: split over channels for one token,
    // over positions for several.
    let shape = ConvShape { d_inner: c.d_inner, d_conv: c.d_conv, x_stride: 2 * c.d_inner };
    if n == 1 {
        conv_step(par, shape, conv_state, xz, layer.conv_weight, layer.conv_bias, xc);
    } else {
        let xc_out = DisjointMut::new(xc);
        let par = par.for_work(n * c.d_inner * (c.d_conv + ACTIVATION_COST));
        par.run(n, &|tokens| {
            // SAFETY: `run` passes disjoint token ranges, so these rows are disjoint.
            let out = unsafe { xc_out.slice(tokens.start * c.d_inner..tokens.end * c.d_inner) };
            causal_conv1d_tokens(shape, &*conv_state, xz, layer.conv_weight, layer.conv_bias, tokens, out);
            silu_slice(out);
        });
        causal_conv1d_advance(shape, conv_state, xz, n);
    }

    // x_proj gives each row [dt (dt_rank) | B (d_state) | C (d_state)]. It keeps exact
    // inputs in decode too: its outputs drive the recurrence, and keeping them exact lowered
    // the Q8_0 decode error of the `quant` conformance fixture from 5.6e-2 to 5.3e-2. The
    // 130M config has 2% of its weights here.
    par_matmul(par.exact(), &layer.ssm_x, xc, dbc);

    // Falcon-Mamba normalises each of the three parts, without weights.
    if c.dt_b_c_rms {
        for row in dbc.chunks_exact_mut(dbc_width) {
            let (dt_part, bc) = row.split_at_mut(c.dt_rank);
            let (b, c_part) = bc.split_at_mut(c.d_state);
            rms_normalize(dt_part, c.dt_b_c_rms_eps);
            rms_normalize(b, c.dt_b_c_rms_eps);
            rms_normalize(c_part, c.dt_b_c_rms_eps);
        }
    }

    // dt_proj with bias, then softplus.
    for (row, dst) in dbc.chunks_exact(dbc_width).zip(dt_in.chunks_exact_mut(c.dt_rank)) {
        dst.copy_from_slice(&row[..c.dt_rank]);
    }
    if n == 1 {
        dt_step(c, layer, par, dt_in, dt);
    } else {
        par_matmul(par, &layer.dt_weight, dt_in, dt);
        let dt_out = DisjointMut::new(dt);
        let par = par.for_work(n * c.d_inner * ACTIVATION_COST);
        par.run(c.d_inner, &|channels| {
            let bias = &layer.dt_bias[channels.clone()];
            for t in 0..n {
                let at = t * c.d_inner;
                // SAFETY: `run` passes disjoint channel ranges, so these windows of
                // row t are disjoint.
                let row = unsafe { dt_out.slice(at + channels.start..at + channels.end) };
                softplus_bias_slice(row, bias);
            }
        });
    }

    // Selective scan with skip connection and SiLU(z) gate, split over blocks of
    // channels, each with its own rows of the SSM state.
    let inputs = ScanInputs {
        d_inner: c.d_inner,
        d_state: c.d_state,
        x: xc,
        dt,
        a: layer.a,
        bc: dbc,
        bc_stride: dbc_width,
        b_offset: c.dt_rank,
        c_offset: c.dt_rank + c.d_state,
        d: layer.d,
        z: &xz[c.d_inner..],
        z_stride: 2 * c.d_inner,
    };
    {
        let states = DisjointMut::new(ssm_state);
        let y_out = DisjointMut::new(y);
        // One state update is about one multiply-add once vectorised (an estimate).
        let par = par.for_work(n * c.d_inner * c.d_state);
        par.run(c.d_inner.div_ceil(SCAN_BLOCK), &|blocks| {
            let channels = blocks.start * SCAN_BLOCK..(blocks.end * SCAN_BLOCK).min(c.d_inner);
            // SAFETY: `run` passes disjoint block ranges, so the channel ranges, their
            // state rows and their windows of each row of y are disjoint.
            let state = unsafe { states.slice(channels.start * c.d_state..channels.end * c.d_state) };
            let mut emit = |t: usize, c0: usize, values: &[f32]| {
                let at = t * c.d_inner + c0;
                // SAFETY: `c0..` lies inside this task's channel range, so the
                // window is disjoint from every other task's, as above.
                unsafe { y_out.slice(at..at + values.len()) }.copy_from_slice(values);
            };
            selective_scan_fast_channels(&inputs, n, channels, state, &mut emit);
        });
    }

    // out_proj and residual.
    par_matmul(par, &layer.ssm_out, y, out);
    for (h, &o) in hidden.iter_mut().zip(out.iter()) {
        *h += o;
    }
}

/// Runs the causal conv and SiLU of one token and advances the conv state, split over
/// blocks of channels. Each channel's output and state equal those of one call over all
/// channels. `x` is the token's row of conv inputs, `shape.d_inner` channels long.
fn conv_step(par: Split<'_>, shape: ConvShape, state: &mut [f32], x: &[f32], weight: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    let (channels, d_conv) = (shape.d_inner, shape.d_conv);
    let history = d_conv - 1;
    let states = DisjointMut::new(state);
    let out = DisjointMut::new(out);
    let par = par.for_work(channels * (d_conv + ACTIVATION_COST));
    par.run(channels.div_ceil(SCAN_BLOCK), &|blocks| {
        let range = blocks.start * SCAN_BLOCK..(blocks.end * SCAN_BLOCK).min(channels);
        let part = ConvShape { d_inner: range.len(), ..shape };
        // SAFETY: `run` passes disjoint block ranges, so these channels' state rows and
        // outputs are disjoint.
        let (state, out) = unsafe { (states.slice(range.start * history..range.end * history), out.slice(range.clone())) };
        let bias = bias.map(|bias| &bias[range.clone()]);
        causal_conv1d(part, state, &x[range.start..], &weight[range.start * d_conv..range.end * d_conv], bias, out);
        silu_slice(out);
    });
}

/// Computes dt_proj with bias and softplus for one token, split over channels: each range
/// multiplies its own rows of the dt_proj weight. The inputs stay exact, as in prefill.
fn dt_step(c: &Config, layer: &Layer<'_>, par: Split<'_>, dt_in: &[f32], dt: &mut [f32]) {
    let w = &layer.dt_weight;
    let row_bytes = w.row_bytes();
    let dt_out = DisjointMut::new(dt);
    let par = par.for_work(c.d_inner * (c.dt_rank + ACTIVATION_COST));
    par.run(c.d_inner, &|channels| {
        let rows = Matrix { dtype: w.dtype, rows: channels.len(), cols: w.cols, data: &w.data[channels.start * row_bytes..channels.end * row_bytes] };
        // SAFETY: `run` passes disjoint channel ranges.
        let out = unsafe { dt_out.slice(channels.clone()) };
        matvec_with(&rows, dt_in, out, Inputs::Exact);
        softplus_bias_slice(out, &layer.dt_bias[channels]);
    });
}

/// A session's state in memory, as [`encode_state`] writes it: the recurrent state of
/// every layer, the position and the last logits.
#[derive(Clone, Copy, Debug)]
pub struct SavedState<'a> {
    /// Tokens processed.
    pub n_past: u64,
    /// Whether `logits` are the logits after the last token.
    pub has_logits: bool,
    /// `config.state_len()` values: per layer, conv state `[conv_dim, d_conv - 1]` then SSM
    /// state `[d_inner, d_state]`.
    pub state: &'a [f32],
    /// `config.n_vocab` values.
    pub logits: &'a [f32],
}

/// The header fields of a saved state that [`decode_state`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SavedHeader {
    /// Tokens processed.
    pub n_past: u64,
    /// Whether the saved logits are the logits after the last token.
    pub has_logits: bool,
}

/// Bytes that [`encode_state`] writes for a model with hyperparameters `config`.
pub const fn state_bytes_len(config: &Config) -> usize {
    STATE_HEADER_LEN + 4 * (config.state_len() + config.n_vocab)
}

/// Writes `saved` to `out` and returns the byte count. Any backend that keeps the state in
/// this value order can save and restore sessions of the CPU backend and vice versa.
///
/// Layout (little-endian): a 64-byte header (magic `MEST`, format version, the model's
/// hyperparameters, `n_past`, a logits flag and an FNV-1a checksum of the body), then the
/// state values, then `n_vocab` logits.
///
/// Fails when `out` is shorter than [`state_bytes_len`] or when `saved.state` or
/// `saved.logits` do not have the lengths `config` gives.
pub fn encode_state(config: &Config, saved: &SavedState<'_>, out: &mut [u8]) -> Result<usize, Error> {
    let needed = state_bytes_len(config);
    let found = out.len();
    let out = out.get_mut(..needed).ok_or(Error::BufferTooSmall { buffer: "saved state", needed, found })?;
    if saved.state.len() != config.state_len() {
        return Err(StateError::Length { expected: config.state_len(), found: saved.state.len() }.into());
    }
    if saved.logits.len() != config.n_vocab {
        return Err(StateError::Length { expected: config.n_vocab, found: saved.logits.len() }.into());
    }
    let (header, body) = out.split_at_mut(STATE_HEADER_LEN);

    let values = saved.state.iter().chain(saved.logits.iter());
    for (dst, v) in body.chunks_exact_mut(4).zip(values) {
        dst.copy_from_slice(&v.to_le_bytes());
    }

    header.fill(0);
    header[0..4].copy_from_slice(&STATE_MAGIC);
    header[4..8].copy_from_slice(&STATE_VERSION.to_le_bytes());
    for (i, (_, value)) in header_fields(config).iter().enumerate() {
        let at = 8 + 4 * i;
        header[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }
    header[40..48].copy_from_slice(&saved.n_past.to_le_bytes());
    header[48..52].copy_from_slice(&u32::from(saved.has_logits).to_le_bytes());
    header[56..64].copy_from_slice(&fnv1a64(body).to_le_bytes());
    Ok(needed)
}

/// Checks what [`encode_state`] wrote (magic, version, every hyperparameter, length and
/// checksum), then copies the state values into `state` and the logits into `logits` and
/// returns the header. On error neither slice is changed.
///
/// # Panics
/// Panics when `state` is shorter than `config.state_len()` or `logits` than
/// `config.n_vocab`.
pub fn decode_state(config: &Config, bytes: &[u8], state: &mut [f32], logits: &mut [f32]) -> Result<SavedHeader, Error> {
    let read_u32 = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if bytes.len() < STATE_HEADER_LEN {
        if bytes.len() >= 4 && bytes[..4] != STATE_MAGIC {
            return Err(StateError::BadMagic.into());
        }
        return Err(StateError::Length { expected: STATE_HEADER_LEN, found: bytes.len() }.into());
    }
    if bytes[..4] != STATE_MAGIC {
        return Err(StateError::BadMagic.into());
    }
    let version = read_u32(4);
    if version != STATE_VERSION {
        return Err(StateError::UnsupportedVersion { found: version, supported: STATE_VERSION }.into());
    }
    for (i, (field, value)) in header_fields(config).iter().enumerate() {
        let saved = read_u32(8 + 4 * i);
        if saved != *value {
            return Err(StateError::ModelMismatch { field, saved: saved.into(), model: (*value).into() }.into());
        }
    }
    let expected = state_bytes_len(config);
    if bytes.len() != expected {
        return Err(StateError::Length { expected, found: bytes.len() }.into());
    }
    let body = &bytes[STATE_HEADER_LEN..];
    let mut checksum = [0u8; 8];
    checksum.copy_from_slice(&bytes[56..64]);
    if u64::from_le_bytes(checksum) != fnv1a64(body) {
        return Err(StateError::Checksum.into());
    }

    // Everything checked: copy the values in.
    let mut n_past = [0u8; 8];
    n_past.copy_from_slice(&bytes[40..48]);
    let mut values = body.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    for (dst, v) in state[..config.state_len()].iter_mut().zip(&mut values) {
        *dst = v;
    }
    for (dst, v) in logits[..config.n_vocab].iter_mut().zip(&mut values) {
        *dst = v;
    }
    Ok(SavedHeader { n_past: u64::from_le_bytes(n_past), has_logits: read_u32(48) != 0 })
}

/// Returns the hyperparameters recorded in a saved state, in header order.
fn header_fields(c: &Config) -> [(&'static str, u32); 8] {
    // Every dimension is at most 2^24 (checked when the model loaded), so each fits in u32.
    let architecture = match (c.arch, c.dt_b_c_rms) {
        (Arch::Mamba, false) => 1,
        (Arch::Mamba2, _) => 2,
        (Arch::Mamba, true) => 3,
    };
    [
        ("architecture", architecture),
        ("n_layer", c.n_layer as u32),
        ("d_model", c.d_model as u32),
        ("d_inner", c.d_inner as u32),
        ("d_state", c.d_state as u32),
        ("d_conv", c.d_conv as u32),
        ("dt_rank", c.dt_rank as u32),
        ("n_vocab", c.n_vocab as u32),
    ]
}

/// Default smallest step, in multiply-adds or an estimated equivalent, that is split across
/// threads. Waking the workers and waiting for them costs microseconds, but every step a
/// decode runs serially leaves the other threads idle. At 2^13 the conv, x_proj, dt_proj and
/// scan of one 130M token are split too. On two threads of the benchmark machine
/// (`docs/BENCHMARKS.md`), builds that differed only in this constant decoded 10 to 20 %
/// faster at Q8_0 and Q4_0 with 2^13 than with 2^18, a noisy measurement.
pub const MIN_PARALLEL_WORK: usize = 1 << 13;

/// Estimated cost of one softplus or SiLU in multiply-adds: an exp, a division and, for
/// softplus, a log.
const ACTIVATION_COST: usize = 16;

/// A session's executor and the smallest step worth splitting with it.
#[derive(Clone, Copy)]
struct Split<'a> {
    executor: &'a dyn Parallel,
    min_work: usize,
    inputs: Inputs,
}

impl<'a> Split<'a> {
    /// Returns the same split with exact inputs.
    fn exact(self) -> Self {
        Self { inputs: Inputs::Exact, ..self }
    }

    /// Returns the executor, or [`Serial`] for a step of less than `min_work`.
    fn for_work(self, work: usize) -> &'a dyn Parallel {
        if work < self.min_work { &Serial } else { self.executor }
    }
}

/// Computes `y = x W^T` for the rows of `x` like [`matmul`], split across `par`'s threads: by
/// input rows when there are several, by weight rows for one.
///
/// Each output is computed as the serial call computes it, because row `t` of a matmul
/// equals the matvec of row `t` of `x` and each output row of a matvec depends only on its
/// own weight row.
fn par_matmul(par: Split<'_>, w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    let m = x.len().checked_div(w.cols).unwrap_or(0);
    let (split, inputs) = (par, par.inputs);
    let par = par.for_work(m * w.rows * w.cols);
    if par.threads() == 1 || w.cols == 0 {
        matmul_with(w, x, y, inputs);
        return;
    }
    if m == 1 {
        par_matvec(split, w, x, y);
        return;
    }
    assert_eq!(y.len(), m * w.rows, "matmul: y has {} elements, but {m} rows of {} are needed", y.len(), w.rows);
    let y_out = DisjointMut::new(y);
    par.run(m, &|rows| {
        let x = &x[rows.start * w.cols..rows.end * w.cols];
        // SAFETY: `run` passes disjoint input row ranges, so these rows of y are disjoint.
        let y = unsafe { y_out.slice(rows.start * w.rows..rows.end * w.rows) };
        matmul_with(w, x, y, inputs);
    });
}

/// Computes `y = W x` like [`matvec`], split across `par`'s threads by weight rows.
fn par_matvec(par: Split<'_>, w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    let inputs = par.inputs;
    let par = par.for_work(w.rows * w.cols);
    if par.threads() == 1 {
        matvec_with(w, x, y, inputs);
        return;
    }
    assert_eq!(y.len(), w.rows, "matvec: y has {} elements, but w has {} rows", y.len(), w.rows);
    let row_bytes = w.row_bytes();
    let y_out = DisjointMut::new(y);
    par.run(w.rows, &|rows| {
        let part = Matrix { dtype: w.dtype, rows: rows.len(), cols: w.cols, data: &w.data[rows.start * row_bytes..rows.end * row_bytes] };
        // SAFETY: `run` passes disjoint row ranges.
        let y = unsafe { y_out.slice(rows) };
        matvec_with(&part, x, y, inputs);
    });
}

/// Positions of a chunk that get logits.
#[derive(Clone, Copy)]
enum Logits {
    None,
    Last,
    All,
}

/// 64-bit FNV-1a hash, used to detect damaged saved state.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
