//! Session handles: evaluation, logits, sampling, generation, streaming text and saved
//! state.

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use mamba_core::session::DEFAULT_MAX_BATCH;
use mamba_core::{Sampler, SamplerParams, Session};

use crate::engine::{Engine, MAMBA_BACKEND_CPU, MAMBA_BACKEND_VULKAN};
use crate::error::{FfiError, FfiResult, MambaStatus, guard};
use crate::handle::{Handle, check_out, free_handle, handle_ref, input_slice, output_slice, write_out};
use crate::model::{MambaModel, ModelInner, write_c_text};
use crate::stream::TextStream;

/// Largest accepted `max_batch`. The scratch buffer grows linearly with it, and chunks
/// longer than a few hundred tokens no longer speed up prefill.
const MAX_BATCH_LIMIT: u32 = 4096;

/// Largest accepted `n_threads`.
const MAX_THREADS: u32 = 1024;

/// Tokens of history kept for the repetition penalty; a larger `repeat_last_n` looks at
/// these only.
const HISTORY_LEN: usize = 4096;

/// Options of a session. Start from
/// `mamba_session_default_params()` and change the fields you need.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MambaSessionParams {
    /// Threads for this session's forward passes, the calling thread included, 1 to 1024;
    /// 0 uses every CPU the process may run on (`available_parallelism`). Each session with
    /// more than one thread starts its own worker threads, which stop when it is freed.
    pub n_threads: u32,
    /// Prompt tokens per forward chunk in `mamba_session_eval`, 1 to 4096; 0 selects the
    /// default (64). Larger chunks use more scratch memory.
    pub max_batch: u32,
    /// Compute backend: `MAMBA_BACKEND_CPU` (0) or `MAMBA_BACKEND_VULKAN` (1).
    /// Vulkan needs a library built with the `vulkan` feature; otherwise, and when no
    /// Vulkan device is found, `mamba_session_new` fails with `MAMBA_STATUS_BACKEND`.
    /// Saved states move between backends. `n_threads` applies to the CPU only.
    pub backend: u32,
    /// Vulkan device index, in the order `mamba-edge devices` lists them; -1 picks the
    /// first discrete GPU, else the first integrated, virtual or CPU device. Sessions of
    /// one model on one device share the weights uploaded for the first of them.
    pub device: i32,
}

/// Sampling settings. Start from
/// `mamba_sampler_default_params()` and change the fields you need.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MambaSamplerParams {
    /// Softmax temperature; 0 picks the most likely token (greedy). Must be finite and not
    /// negative.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; 0 keeps all.
    pub top_k: u32,
    /// Keep the smallest set of most likely tokens whose probabilities sum to `top_p`, in
    /// 0..=1; 1 keeps all.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one, in 0..=1; 0 keeps all.
    pub min_p: f32,
    /// Divide positive logits (multiply negative ones) of recently seen tokens by this;
    /// 1 turns the penalty off. Must be positive.
    pub repetition_penalty: f32,
    /// How many recent tokens the repetition penalty looks at (at most the last 4096).
    pub repeat_last_n: u32,
    /// Seed of the random number generator.
    pub seed: u64,
}

impl MambaSamplerParams {
    fn to_core(self, function: &str) -> FfiResult<SamplerParams> {
        let range = |name: &str, value: f32, rule: &str| {
            FfiError::invalid(format!("{function}: sampler param {name} = {value} is invalid: {rule}"))
        };
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(range("temperature", self.temperature, "use 0 for greedy or a positive number"));
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            return Err(range("top_p", self.top_p, "it must be in 0..=1"));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(range("min_p", self.min_p, "it must be in 0..=1"));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(range("repetition_penalty", self.repetition_penalty, "use 1 to turn it off or a positive number"));
        }
        Ok(SamplerParams {
            temperature: self.temperature,
            top_k: self.top_k as usize,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            repeat_last_n: self.repeat_last_n as usize,
            seed: self.seed,
        })
    }
}

/// Receives each token that `mamba_session_generate` produces, the text it completes and
/// the caller's `user_data`.
///
/// `piece` is `piece_len` bytes of UTF-8 followed by a NUL, and is valid only during the
/// call. It is empty while a multi-byte character is incomplete, and contains NUL bytes
/// only if the model generates them. Return 0 to continue, any other value to stop.
pub type MambaTokenCallback =
    Option<unsafe extern "C" fn(token: u32, piece: *const c_char, piece_len: usize, user_data: *mut c_void) -> c_int>;

/// The mutable part of a session, behind the handle's mutex.
struct SessionState {
    /// The engine session. A CPU session borrows the model of the handle's
    /// `Arc<ModelInner>`.
    session: Engine,
    /// The sampler of the last sample or generate call; its RNG continues across calls
    /// with the same settings.
    sampler: Option<Sampler>,
    /// The most recent evaluated tokens, for the repetition penalty.
    history: Vec<u32>,
    /// Text decoding of generated tokens.
    stream: TextStream,
}

impl SessionState {
    fn remember(&mut self, tokens: &[u32]) {
        self.history.extend_from_slice(tokens);
        if self.history.len() > 2 * HISTORY_LEN {
            self.history.drain(..self.history.len() - HISTORY_LEN);
        }
    }

    /// Samples the next token from the current logits, with the sampler restarted from the
    /// seed when the settings differ from the previous call's.
    fn sample(&mut self, function: &str, params: SamplerParams) -> FfiResult<u32> {
        let Self { session, sampler, history, .. } = self;
        let logits = session.logits().ok_or_else(|| no_logits(function))?;
        if sampler.as_ref().is_none_or(|s| *s.params() != params) {
            *sampler = Some(Sampler::new(params));
        }
        let sampler = sampler.get_or_insert_with(|| Sampler::new(params));
        Ok(sampler.sample(logits, history))
    }

    fn clear(&mut self, function: &str) -> FfiResult {
        self.session.reset(function)?;
        self.sampler = None;
        self.history.clear();
        self.stream.clear();
        Ok(())
    }
}

/// A session of a model, used from C as an opaque `mamba_session *`: one sequence's state,
/// its sampler and its decode stream.
pub struct MambaSession {
    magic: AtomicU64,
    params: MambaSessionParams,
    /// Declared before `model` so the engine session is dropped before the model it borrows.
    state: Mutex<SessionState>,
    model: Arc<ModelInner>,
}

impl Handle for MambaSession {
    const MAGIC: u64 = u64::from_le_bytes(*b"MAMBASES");
    const NAME: &'static str = "mamba_session";

    fn magic(&self) -> &AtomicU64 {
        &self.magic
    }
}

impl MambaSession {
    /// Locks the session state, failing when another thread holds it or an earlier call
    /// panicked.
    fn lock(&self, function: &str) -> FfiResult<MutexGuard<'_, SessionState>> {
        match self.state.try_lock() {
            Ok(state) => Ok(state),
            Err(TryLockError::WouldBlock) => Err(FfiError::new(
                MambaStatus::Busy,
                format!(
                    "{function}: the session is in use by another call (another thread, or a token callback of mamba_session_generate); \
                     a session serves one call at a time, so use one session per thread"
                ),
            )),
            Err(TryLockError::Poisoned(_)) => Err(FfiError::new(
                MambaStatus::Panic,
                format!("{function}: an earlier call on this session panicked, so its state is unknown; call mamba_session_reset or free it"),
            )),
        }
    }
}

fn no_logits(function: &str) -> FfiError {
    FfiError::new(
        MambaStatus::NoLogits,
        format!("{function}: the session has no logits yet; evaluate at least one token with mamba_session_eval first"),
    )
}

/// Borrows a session handle after checking it.
///
/// # Safety
/// As for [`handle_ref`].
unsafe fn session_ref<'a>(function: &str, session: *const MambaSession) -> FfiResult<&'a MambaSession> {
    // SAFETY: forwarded from the caller's contract.
    unsafe { handle_ref(function, "session", session) }
}

/// Returns the default session options: `n_threads` 0 (library's choice), `max_batch` 0
/// (64 tokens), the CPU backend, device -1 (the preferred Vulkan device).
#[unsafe(no_mangle)]
pub extern "C" fn mamba_session_default_params() -> MambaSessionParams {
    MambaSessionParams { n_threads: 0, max_batch: 0, backend: MAMBA_BACKEND_CPU, device: -1 }
}

/// Returns the default sampling settings, those of llama.cpp's command line: temperature
/// 0.8, top-k 40, top-p 0.95, min-p 0.05, repetition penalty 1 (off) over 64 tokens, seed 0.
#[unsafe(no_mangle)]
pub extern "C" fn mamba_sampler_default_params() -> MambaSamplerParams {
    let p = SamplerParams::default();
    MambaSamplerParams {
        temperature: p.temperature,
        top_k: p.top_k as u32,
        top_p: p.top_p,
        min_p: p.min_p,
        repetition_penalty: p.repetition_penalty,
        repeat_last_n: p.repeat_last_n as u32,
        seed: p.seed,
    }
}

/// Creates a session of `model`, at the start of a sequence.
///
/// `params` may be NULL for the defaults. The session keeps the model's weights alive, so
/// the model handle may be freed first. On success `*out_session` receives a new handle,
/// to be released with `mamba_session_free`.
///
/// Errors: `MAMBA_STATUS_INVALID_ARGUMENT` (`max_batch` above 4096, `n_threads` above 1024,
/// an unknown `backend`, `device` below -1), `MAMBA_STATUS_BACKEND` (Vulkan requested but
/// not built in, no Vulkan driver or device, or a GPU error).
///
/// # Safety
/// `model` must be NULL or a live model handle; `params` NULL or readable; `out_session`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_session_new(
    model: *const MambaModel,
    params: *const MambaSessionParams,
    out_session: *mut *mut MambaSession,
) -> MambaStatus {
    const FUNCTION: &str = "mamba_session_new";
    guard(FUNCTION, || {
        // SAFETY: the caller passes NULL or a live handle.
        let model = Arc::clone(&unsafe { handle_ref(FUNCTION, "model", model)? }.inner);
        check_out(FUNCTION, "out_session", out_session)?;
        let params = if params.is_null() {
            mamba_session_default_params()
        } else {
            // SAFETY: non-NULL, and the caller guarantees it is readable; the struct has
            // no invalid bit patterns.
            unsafe { params.read_unaligned() }
        };
        if params.max_batch > MAX_BATCH_LIMIT {
            return Err(FfiError::invalid(format!(
                "{FUNCTION}: max_batch = {} is too large; use 1 to {MAX_BATCH_LIMIT}, or 0 for the default",
                params.max_batch
            )));
        }
        let max_batch = if params.max_batch == 0 { DEFAULT_MAX_BATCH } else { params.max_batch as usize };
        if params.n_threads > MAX_THREADS {
            return Err(FfiError::invalid(format!(
                "{FUNCTION}: n_threads = {} is too large; use 1 to {MAX_THREADS}, or 0 for one per CPU",
                params.n_threads
            )));
        }
        let threads = match params.n_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n as usize,
        };

        let session = match params.backend {
            MAMBA_BACKEND_CPU => {
                // SAFETY: the new handle stores `model` (an Arc of this ModelInner) and drops
                // it after the session, which is the only user of the reference.
                let engine_model = unsafe { model.model_static() };
                let mut session = Session::with_max_batch(engine_model, max_batch);
                session.set_threads(threads);
                Engine::Cpu(session)
            }
            MAMBA_BACKEND_VULKAN => vulkan_engine(FUNCTION, &model, params.device, max_batch)?,
            other => {
                return Err(FfiError::invalid(format!(
                    "{FUNCTION}: backend = {other} is invalid; use MAMBA_BACKEND_CPU (0) or MAMBA_BACKEND_VULKAN (1)"
                )));
            }
        };
        let state = SessionState {
            session,
            sampler: None,
            history: Vec::new(),
            stream: TextStream::default(),
        };
        let handle = MambaSession { magic: AtomicU64::new(MambaSession::MAGIC), params, state: Mutex::new(state), model };
        let raw = Box::into_raw(Box::new(handle));
        // SAFETY: checked non-NULL and aligned above; the caller guarantees it is writable.
        unsafe { write_out(FUNCTION, "out_session", out_session, raw) }
    })
}

/// Creates a session on a Vulkan device, uploading the model's weights to it unless an
/// earlier session of the same model did.
#[cfg(feature = "vulkan")]
fn vulkan_engine(function: &str, model: &ModelInner, device: i32, max_batch: usize) -> FfiResult<Engine> {
    let device = match device {
        -1 => None,
        index if index >= 0 => Some(index as usize),
        other => {
            return Err(FfiError::invalid(format!(
                "{function}: device = {other} is invalid; use a device index from 0, or -1 for the preferred device"
            )));
        }
    };
    let gpu_model = model.gpu_model(function, device)?;
    let session = mamba_vulkan::GpuSession::with_max_batch(&gpu_model, max_batch).map_err(|e| FfiError::vulkan(function, e))?;
    Ok(Engine::Vulkan(Box::new(session)))
}

/// Fails: this library has no Vulkan backend.
#[cfg(not(feature = "vulkan"))]
fn vulkan_engine(function: &str, _model: &ModelInner, _device: i32, _max_batch: usize) -> FfiResult<Engine> {
    Err(FfiError::new(
        MambaStatus::Backend,
        format!("{function}: this library was built without the Vulkan backend; rebuild mamba-ffi with `--features vulkan`"),
    ))
}

/// Releases a session. NULL is accepted and does nothing. A freed handle must not be used
/// again, and the call must not run while another thread uses the session. A token
/// callback that frees the session generating it gets `MAMBA_STATUS_BUSY`.
///
/// # Safety
/// `session` must be NULL or a handle from `mamba_session_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_session_free(session: *mut MambaSession) -> MambaStatus {
    const FUNCTION: &str = "mamba_session_free";
    guard(FUNCTION, || {
        if !session.is_null() {
            // SAFETY: the caller passes NULL or a live handle.
            let handle = unsafe { session_ref(FUNCTION, session)? };
            // A call in progress on this thread (a generate whose callback is running)
            // holds the lock; dropping the session under it would be a use after free.
            if let Err(TryLockError::WouldBlock) = handle.state.try_lock() {
                return handle.lock(FUNCTION).map(drop);
            }
        }
        // SAFETY: forwarded from the caller's contract.
        unsafe { free_handle(FUNCTION, session) }
    })
}

/// Writes the options the session was created with to `*out_params` (with 0 fields as
/// given, not resolved to defaults).
///
/// # Safety
/// `session` must be NULL or a live session handle; `out_params` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_session_get_params(
    session: *const MambaSession,
    out_params: *mut MambaSessionParams,
) -> MambaStatus {
    const FUNCTION: &str = "mamba_session_get_params";
    guard(FUNCTION, || {
        // SAFETY: the caller passes NULL or a live handle.
        let session = unsafe { session_ref(FUNCTION, session)? };
        // SAFETY: the caller guarantees `out_params` is NULL or writable.
        unsafe { write_out(FUNCTION, "out_params", out_params, session.params) }
    })
}

/// Evaluates `n_tokens` tokens in order (a prompt, or tokens chosen by the caller),
/// advancing the session's state, and keeps the logits after the last one.
///
/// On error the session is unchanged. Errors: `MAMBA_STATUS_INVALID_ARGUMENT` (no tokens),
/// `MAMBA_STATUS_TOKEN_OUT_OF_RANGE`, `MAMBA_STATUS_BUSY`.
///
/// # Safety
/// `session` must be NULL or a live session handle; `tokens` must point to `n_tokens` ids.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_session_eval(session: *mut MambaSession, tokens: *const u32, n_tokens: usize) -> MambaStatus {
    const FUNCTION: &str = "mamba_session_eval";
    guard(FUNCTION, || {
        // SAFETY: the caller passes NULL or a live handle.
        let session = unsafe { session_ref(FUNCTION, session)? };
        // SAFETY: the caller guarantees `n_tokens` ids at `tokens`.
        let tokens = unsafe { input_slice(FUNCTION, "tokens", tokens, n_tokens)? };
        let mut state = session.lock(FUNCTION)?;
        state.session.prefill(FUNCTION, tokens)?;
        state.remember(tokens);
        Ok(())
    })
}

/// Points `*out_logits` at the logits after the last evaluated token, `*out_n_vocab`
/// floats long.
///
/// The pointer stays valid until the next call on this session (any function taking it)
/// or until the session is freed; copy the values to keep them longer.
///
/// Errors: `MAMBA_STATUS_NO_LOGITS` (nothing evaluated since creation or reset).
///
/// # Safety
/// `session` must be NULL or a live session handle; the outputs NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_session_logits(
    session: *mut MambaSession,
    out_logits: *mut *const f32,
    out_n_vocab: *mut usize,
) -> MambaStatus {
    const FUNCTION: &str = "mamba_session_logits";
    guard(FUNCTION, || {
        // SAFETY: the caller passes NULL or a live handle.
        let session = unsafe { session_ref(FUNCTION, session)? };
        check_out(FUNCTION, "out_logits", out_logits)?;
        check_out(FUNCTION, "out_n_vocab", out_n_vocab)?;
        let state = session.lock(FUNCTION)?;
        let logits = state.session.logits().ok_or_else(|| no_logits(FUNCTION))?;
        // SAFETY: both checked non-NULL and aligned; the caller guarantees they are writable.
        // The logits live in the session's scratch buffer, which only a later call on the
        // session changes or frees.
        unsafe {
            write_out(FUNCTION, "out_logits", out_logits, logits.as_ptr())?;
            write_out(FUNCTION, "out_n_vocab", out_n_vocab, logits.len())
        }
    })
}

/// Picks the next token from the current logits with `params` and writes it to
/// `*out_token`. Does not evaluate it: pass it to `mamba_session_eval` to continue.
///
/// The repetition penalty looks at the tokens evaluated since creation, reset or
/// load_state. The random number generator continues across calls with equal `params`;
/// different `params` (the seed included), `mamba_session_reset` and
/// `mamba_session_load_state` restart it from `params->seed`.
///
/// Errors: `MAMBA_STATUS_INVALID_ARGUMENT` (a setting out of range), `MAMBA_STATUS_NO_LOGITS`.
///
/// # Safety
/// `session` must be NULL or a live session handle; `params` NULL or readable;
/// `out_token` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_session_sample(
    session: *mut MambaSession,
    params: *const MambaSamplerParams,
    out_token: *mut u32,
) -> MambaStatus {
    const FUNCTION: &str = "mamba_session_sample";
    guard(FUNCTION, || {
        // SAFETY: the caller passes NULL or a live handle.
        let session = unsafe { session_ref(FUNCTION, session)? };
        // SAFETY: the caller guarantees `params` is NULL or readable.
        let params = unsafe { read_sampler_params(FUNCTION, params)? };
        check_out(FUNCTION, "out_token", out_token)?;
        let token = session.lock(FUNCTION)?.sample(FUNCTION, params)?;
        // SAFETY: the caller guarantees `out_token` is writable.
        unsafe { write_out(FUNCTION, "out_token", out_token, token) }
    })
}

/// # Safety
/// `params` must be NULL or readable.
unsafe fn read_sampler_params(function: &str, params: *const MambaSamplerParams) -> FfiResult<SamplerParams> {
    if params.is_null() {
        return Err(FfiError::null(function, "params"));
    }
    // SAFETY: non-NULL, and the caller guarantees it is readable; every bit pattern is a
    // valid value of the struct's fields.
    unsafe { params.read_unaligned() }.to_core(function)
}

/// Generates up to `max_tokens` tokens: samples with `params`, evaluates each token and
/// passes it to `callback` with its text piece.
///
/// Starts from the current logits, so evaluate a prompt first. Stops early when the model's
/// end-of-sequence token is sampled (that token is neither passed on nor evaluated) or when
/// the callback returns non-zero. Every token passed to the callback has been evaluated, so
/// the session continues after the last one. `callback` may be NULL; `*out_n_generated`
/// (if `out_n_generated` is not NULL) receives the number of tokens generated, also on
/// error. Text pieces come from the session's decode stream, as in
/// `mamba_session_decode_token`; they are empty when the model has no tokenizer.
///
/// The callback must not call functions on this session (they fail with
/// `MAMBA_STATUS_BUSY`); other sessions and the model are fine. It must not unwind (throw a
/// C++ exception or panic) through this call.
///
/// Errors: `MAMBA_STATUS_INVALID_ARGUMENT`, `MAMBA_STATUS_NO_LOGITS`, `MAMBA_STATUS_TOKENIZER`.
///
/// # Safety
/// `session` must be NULL or a live session handle; `params` NULL or readable;
/// `out_n_generated` NULL or writable; `callback` NULL or a function of the documented type.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_session_generate(
    session: *mut MambaSession,
    params: *const MambaSamplerParams,
    max_tokens: usize,
    callback: MambaTokenCallback,
    user_data: *mut c_void,
    out_n_generated: *mut usize,
) -> MambaStatus {
    const FUNCTION: &str = "mamba_session_generate";
    guard(FUNCTION, || {
        // SAFETY: the caller passes NULL or a live handle.
        let session = unsafe { session_ref(FUNCTION, session)? };
        // SAFETY: the caller guarantees `params` is NULL or readable.
        let params = unsafe { read_sampler_params(FUNCTION, params)? };
        let report = |n: usize| -> FfiResult {
            if out_n_generated.is_null() {
                return Ok(());
            }
            // SAFETY: non-NULL, and the caller guarantees it is writable.
            unsafe { write_out(FUNCTION, "out_n_generated", out_n_generated, n) }
        };
        report(0)?;
        let mut state = session.lock(FUNCTION)?;
        let tokenizer = session.model.tokenizer(FUNCTION).ok();
        let eos = session.model.eos();

        let mut piece = Vec::new();
        for n in 0..max_tokens {
            // Sample; the end-of-sequence token ends generation without being evaluated.
            let token = state.sample(FUNCTION, params)?;
            if Some(token) == eos {
                break;
            }

            // Decode the text piece, then evaluate the token so the state includes it.
            piece.clear();
            if let Some(tokenizer) = tokenizer {
                let text = state.stream.push(tokenizer, token).map_err(|e| {
                    FfiError::new(MambaStatus::Tokenizer, format!("{FUNCTION}: the tokenizer failed on token {token}: {e}"))
                })?;
                piece.extend_from_slice(text.as_bytes());
            }
            state.session.step(FUNCTION, token)?;
            state.remember(&[token]);
            report(n + 1)?;

            // Hand the token to the caller, who may stop here.
            if let Some(callback) = callback {
                let piece_len = piece.len();
                piece.push(0);
                // SAFETY: the caller guarantees the callback's type. `piece` is
                // NUL-terminated, `piece_len` bytes before the NUL, and outlives the call.
                let stop = unsafe { callback(token, piece.as_ptr().cast::<c_char>(), piece_len, user_data) };
                if stop != 0 {
                    break;
                }
            }
        }
        Ok(())
    })
}

/// Adds a generated token to the session's decode stream and writes the text it
/// completes, NUL-terminated, to `text` (`*text_len` receives the length without the NUL).
///
/// The text is always complete UTF-8: a token that ends inside a multi-byte character
/// gives an empty piece, and the character comes with the token that completes it.
/// Concatenating the pieces gives the detokenization of all the tokens at once. Special
/// tokens are decoded as text. The stream is shared with `mamba_session_generate` and
/// emptied by `mamba_session_reset`, `mamba_session_load_state` and
/// `mamba_session_decode_flush`. When `capacity` is too small the call returns
/// `MAMBA_STATUS_BUFFER_TOO_SMALL`, leaves the stream unchanged and sets `*text_len` to the
/// length needed (without the NUL).
///
/// Errors: `MAMBA_STATUS_TOKEN_OUT_OF_RANGE`, `MAMBA_STATUS_TOKENIZER`,
/// `MAMBA_STATUS_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `session` must be NULL or a live session handle; `text` must point to `capacity`
/// writable bytes; `text_len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_session_decode_token(
    session: *mut MambaSession,
    token: u32,
    text: *mut c_char,
    capacity: usize,
    text_len: *mut usize,
) -> MambaStatus {
    const FUNCTION: &str = "mamba_session_decode_token";
    guard(FUNCTION, || {
        // SAFETY: the caller passes NULL or a live handle.
        let session = unsafe { session_ref(FUNCTION, session)? };
        check_out(FUNCTION, "text_len", text_len)?;
        session.model.check_tokens(FUNCTION, &[token])?;
        let tokenizer = session.model.tokenizer(FUNCTION)?;
        let mut state = session.lock(FUNCTION)?;

        // Decode on a copy of the stream, kept only when the piece fits.
        let mut stream = state.stream.clone();
        let piece = stream.push(tokenizer, token).map_err(|e| {
            FfiError::new(MambaStatus::Tokenizer, format!("{FUNCTION}: the tokenizer failed on token {token}: {e}"))
        })?;
        // SAFETY: the caller guarantees `text` is writable for `capacity` bytes and
        // `text_len` is writable.
        unsafe { write_c_text(FUNCTION, piece.as_bytes(), text, capacity, text_len)? };
        state.stream = stream;
        Ok(())
    })
}

/// Writes the text of tokens the decode stream still holds back (an incomplete UTF-8
/// character, as U+FFFD) and empties the stream. Call it at the end of a generation to
/// print everything. Same buffer rules as `mamba_session_decode_token`.
///
/// # Safety
/// As for `mamba_session_decode_token`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_session_decode_flush(
    session: *mut MambaSession,
    text: *mut c_char,
    capacity: usize,
    text_len: *mut usize,
) -> MambaStatus {
    const FUNCTION: &str = "mamba_session_decode_flush";
    guard(FUNCTION, || {
        // SAFETY: the caller passes NULL or a live handle.
        let session = unsafe { session_ref(FUNCTION, session)? };
        check_out(FUNCTION, "text_len", text_len)?;
        let tokenizer = session.model.tokenizer(FUNCTION)?;
        let mut state = session.lock(FUNCTION)?;
        let mut stream = state.stream.clone();
        let piece = stream
            .flush(tokenizer)
            .map_err(|e| FfiError::new(MambaStatus::Tokenizer, format!("{FUNCTION}: the tokenizer failed: {e}")))?;
        // SAFETY: as in mamba_session_decode_token.
        unsafe { write_c_text(FUNCTION, piece.as_bytes(), text, capacity, text_len)? };
        state.stream = stream;
        Ok(())
    })
}

/// Returns the session to the start of a sequence: clears the state, the logits, the
/// repetition history, the decode stream and the sampler. Also makes a session usable
/// again after a `MAMBA_STATUS_PANIC`.
///
/// # Safety
/// `session` must be NULL or a live session handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_session_reset(session: *mut MambaSession) -> MambaStatus {
    const FUNCTION: &str = "mamba_session_reset";
    guard(FUNCTION, || {
        // SAFETY: the caller passes NULL or a live handle.
        let session = unsafe { session_ref(FUNCTION, session)? };
        let mut state = match session.state.try_lock() {
            Ok(state) => state,
            Err(TryLockError::Poisoned(poisoned)) => {
                session.state.clear_poison();
                poisoned.into_inner()
            }
            Err(TryLockError::WouldBlock) => return session.lock(FUNCTION).map(drop),
        };
        state.clear(FUNCTION)?;
        Ok(())
    })
}

/// Writes the number of tokens evaluated since creation or reset (restored by
/// `mamba_session_load_state`) to `*out_n_past`.
///
/// # Safety
/// `session` must be NULL or a live session handle; `out_n_past` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_session_n_past(session: *mut MambaSession, out_n_past: *mut u64) -> MambaStatus {
    const FUNCTION: &str = "mamba_session_n_past";
    guard(FUNCTION, || {
        // SAFETY: the caller passes NULL or a live handle.
        let session = unsafe { session_ref(FUNCTION, session)? };
        check_out(FUNCTION, "out_n_past", out_n_past)?;
        let n_past = session.lock(FUNCTION)?.session.n_past();
        // SAFETY: the caller guarantees `out_n_past` is writable.
        unsafe { write_out(FUNCTION, "out_n_past", out_n_past, n_past) }
    })
}

/// Writes the size in bytes of a saved state (`mamba_session_save_state`) to
/// `*out_size`. It depends only on the model, not on the tokens evaluated.
///
/// # Safety
/// `session` must be NULL or a live session handle; `out_size` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_session_state_size(session: *mut MambaSession, out_size: *mut usize) -> MambaStatus {
    const FUNCTION: &str = "mamba_session_state_size";
    guard(FUNCTION, || {
        // SAFETY: the caller passes NULL or a live handle.
        let session = unsafe { session_ref(FUNCTION, session)? };
        check_out(FUNCTION, "out_size", out_size)?;
        let size = session.lock(FUNCTION)?.session.state_bytes_len();
        // SAFETY: the caller guarantees `out_size` is writable.
        unsafe { write_out(FUNCTION, "out_size", out_size, size) }
    })
}

/// Saves the session's state, position and last logits into `buffer` (`capacity` bytes)
/// and writes the byte count to `*out_written`.
///
/// The format is versioned, records the model's hyperparameters and carries a checksum;
/// `mamba_session_load_state` checks all three. It does not include the repetition
/// history, the decode stream or the sampler. When `capacity` is too small the call
/// returns `MAMBA_STATUS_BUFFER_TOO_SMALL` and sets `*out_written` to the size needed;
/// `buffer` may be NULL with `capacity` 0 to query it.
///
/// # Safety
/// `session` must be NULL or a live session handle; `buffer` must point to `capacity`
/// writable bytes; `out_written` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_session_save_state(
    session: *mut MambaSession,
    buffer: *mut u8,
    capacity: usize,
    out_written: *mut usize,
) -> MambaStatus {
    const FUNCTION: &str = "mamba_session_save_state";
    guard(FUNCTION, || {
        // SAFETY: the caller passes NULL or a live handle.
        let session = unsafe { session_ref(FUNCTION, session)? };
        check_out(FUNCTION, "out_written", out_written)?;
        let state = session.lock(FUNCTION)?;
        let needed = state.session.state_bytes_len();
        // SAFETY: the caller guarantees `out_written` is writable.
        unsafe { write_out(FUNCTION, "out_written", out_written, needed)? };
        if capacity < needed {
            return Err(FfiError::too_small(FUNCTION, "buffer (bytes)", needed, capacity));
        }
        // SAFETY: the caller guarantees `capacity` writable bytes at `buffer`.
        let out = unsafe { output_slice(FUNCTION, "buffer", buffer, capacity)? };
        state.session.save_state(FUNCTION, out)?;
        Ok(())
    })
}

/// Restores a state written by `mamba_session_save_state`, from a session of the same
/// model or of a model with the same hyperparameters, and empties the repetition history,
/// the decode stream and the sampler.
///
/// On error the session is unchanged. Errors: `MAMBA_STATUS_STATE_MISMATCH` (saved for a
/// model with other hyperparameters), `MAMBA_STATUS_STATE_INVALID` (damaged, truncated or
/// from another format version).
///
/// # Safety
/// `session` must be NULL or a live session handle; `buffer` must point to `len` readable
/// bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_session_load_state(session: *mut MambaSession, buffer: *const u8, len: usize) -> MambaStatus {
    const FUNCTION: &str = "mamba_session_load_state";
    guard(FUNCTION, || {
        // SAFETY: the caller passes NULL or a live handle.
        let session = unsafe { session_ref(FUNCTION, session)? };
        if buffer.is_null() {
            return Err(FfiError::null(FUNCTION, "buffer"));
        }
        // SAFETY: the caller guarantees `len` readable bytes at `buffer`.
        let bytes = unsafe { input_slice(FUNCTION, "buffer", buffer, len)? };
        let mut state = session.lock(FUNCTION)?;
        state.session.load_state(FUNCTION, bytes)?;
        state.sampler = None;
        state.history.clear();
        state.stream.clear();
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn session_is_send_sync() {
        assert_send_sync::<MambaSession>();
    }

    #[test]
    fn default_sampler_params_are_valid() {
        let core = mamba_sampler_default_params().to_core("test").unwrap();
        assert_eq!(core, SamplerParams::default());
    }

    #[test]
    fn sampler_params_rejected() {
        let base = mamba_sampler_default_params();
        let cases = [
            MambaSamplerParams { temperature: f32::NAN, ..base },
            MambaSamplerParams { temperature: -1.0, ..base },
            MambaSamplerParams { top_p: 1.5, ..base },
            MambaSamplerParams { min_p: -0.1, ..base },
            MambaSamplerParams { repetition_penalty: 0.0, ..base },
            MambaSamplerParams { repetition_penalty: f32::INFINITY, ..base },
        ];
        for params in cases {
            let error = params.to_core("test").unwrap_err();
            assert_eq!(error.status, MambaStatus::InvalidArgument, "{params:?}");
        }
    }
}
