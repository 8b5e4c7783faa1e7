//! Model handles: loading from a file or a buffer, hyperparameters, tokenization.

use std::alloc::{self, Layout};
use std::ffi::{CStr, c_char};
use std::fs::File;
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use mamba_core::Model;
use memmap2::Mmap;
use tokenizers::Tokenizer;

use crate::error::{FfiError, FfiResult, MambaStatus, guard};
use crate::handle::{Handle, check_out, free_handle, handle_ref, input_slice, output_slice, write_out};
use crate::tokenizer::{self, SpecialTokens};

/// Alignment of the copy that `mamba_model_load_buffer` makes: a cache line, which also
/// covers the 4-byte alignment that f32 tensors need and GGUF's default 32-byte data
/// alignment.
const BUFFER_ALIGN: usize = 64;

/// The bytes of a model file, wherever they live.
enum Storage {
    /// A read-only memory map of the file.
    Mapped(Mmap),
    /// A copy in an allocation aligned to [`BUFFER_ALIGN`].
    Owned(AlignedBytes),
    /// The caller's buffer, which the caller keeps alive and unchanged.
    Borrowed { ptr: NonNull<u8>, len: usize },
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Mapped(map) => map,
            Self::Owned(bytes) => bytes.as_slice(),
            // SAFETY: `mamba_model_load_buffer_borrowed` requires the caller to keep `len`
            // bytes at `ptr` alive and unmodified until the model and its sessions are freed,
            // and the storage is dropped no earlier.
            Self::Borrowed { ptr, len } => unsafe { std::slice::from_raw_parts(ptr.as_ptr(), *len) },
        }
    }
}

// SAFETY: a borrowed buffer is only read, and its owner promised not to modify or free it
// while the model exists, so sharing and sending the pointer between threads is sound.
unsafe impl Send for Storage {}
// SAFETY: as for Send; `Storage` offers no mutation.
unsafe impl Sync for Storage {}

/// A heap copy of a byte buffer with a fixed alignment.
struct AlignedBytes {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl AlignedBytes {
    /// Copies `bytes` (not empty) into a new allocation aligned to [`BUFFER_ALIGN`].
    fn copy_from(bytes: &[u8]) -> FfiResult<Self> {
        let layout = Layout::from_size_align(bytes.len(), BUFFER_ALIGN)
            .map_err(|_| FfiError::invalid(format!("a buffer of {} bytes is too large to copy", bytes.len())))?;
        // SAFETY: `layout` has a non-zero size because the caller passes a non-empty slice.
        let raw = unsafe { alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else { alloc::handle_alloc_error(layout) };
        // SAFETY: `ptr` is a fresh allocation of `bytes.len()` bytes that cannot overlap `bytes`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.as_ptr(), bytes.len()) };
        Ok(Self { ptr, layout })
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` points to `layout.size()` bytes initialised by `copy_from`, owned by
        // `self` and never written again.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for AlignedBytes {
    fn drop(&mut self) {
        // SAFETY: `ptr` was allocated with `layout` in `copy_from` and is freed only here.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

// SAFETY: `AlignedBytes` owns its allocation exclusively and only reads it after creation.
unsafe impl Send for AlignedBytes {}
// SAFETY: as for Send; no method mutates the bytes.
unsafe impl Sync for AlignedBytes {}

/// A loaded model, shared by its handle and every session created from it.
pub(crate) struct ModelInner {
    /// Views into `storage`. Declared first so it is dropped before the bytes it borrows.
    model: Model<'static>,
    /// The text tokenizer, or why the file has none.
    tokenizer: Result<Tokenizer, String>,
    /// BOS and EOS ids declared in the file.
    special: SpecialTokens,
    /// Weights uploaded to Vulkan devices, by requested device index, shared by the
    /// sessions of this model.
    #[cfg(feature = "vulkan")]
    gpu_models: std::sync::Mutex<Vec<(Option<usize>, Arc<mamba_vulkan::GpuModel>)>>,
    /// The file's bytes, dropped last.
    #[expect(dead_code, reason = "only owns the bytes that `model` borrows")]
    storage: Storage,
}

impl ModelInner {
    fn new(storage: Storage, function: &str) -> FfiResult<Self> {
        let bytes = storage.bytes();
        // SAFETY: the slice points into `storage`, whose bytes stay at the same address when
        // the storage moves (a map, a heap allocation or the caller's buffer) and live until
        // the storage is dropped. `storage` moves into the same `ModelInner` as the model
        // and is dropped after it, and `ModelInner::model` shortens the lifetime again, so
        // no reference outlives the bytes.
        let bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) };
        let model = Model::from_bytes(bytes).map_err(|e| FfiError::core(function, e))?;
        let tokenizer = tokenizer::from_gguf(&model.gguf);
        let special = SpecialTokens::from_gguf(&model.gguf);
        Ok(Self {
            model,
            tokenizer,
            special,
            #[cfg(feature = "vulkan")]
            gpu_models: std::sync::Mutex::default(),
            storage,
        })
    }

    /// The model with the lifetime of its storage erased, for sessions that keep an `Arc`
    /// of this `ModelInner`.
    ///
    /// # Safety
    /// The caller must keep an `Arc<ModelInner>` to `self` alive for as long as it uses the
    /// returned reference or anything borrowed from it.
    pub unsafe fn model_static(&self) -> &'static Model<'static> {
        // SAFETY: the caller keeps `self` alive, with its storage, while the reference is used.
        unsafe { &*(&self.model as *const Model<'static>) }
    }

    /// Returns the weights uploaded to Vulkan device `device` (`None`: the preferred one),
    /// uploading them on the first request.
    #[cfg(feature = "vulkan")]
    pub fn gpu_model(&self, function: &str, device: Option<usize>) -> FfiResult<Arc<mamba_vulkan::GpuModel>> {
        // A panic while uploading leaves the list as it was, so a poisoned lock is still usable.
        let mut uploaded = self.gpu_models.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, gpu_model)) = uploaded.iter().find(|(index, _)| *index == device) {
            return Ok(gpu_model.clone());
        }
        let gpu = mamba_vulkan::Gpu::new(device).map_err(|e| FfiError::vulkan(function, e))?;
        let gpu_model = mamba_vulkan::GpuModel::new(gpu, &self.model).map_err(|e| FfiError::vulkan(function, e))?;
        uploaded.push((device, gpu_model.clone()));
        Ok(gpu_model)
    }

    /// Returns the tokenizer, or a `MAMBA_STATUS_TOKENIZER` error that explains why there is none.
    pub fn tokenizer(&self, function: &str) -> FfiResult<&Tokenizer> {
        self.tokenizer
            .as_ref()
            .map_err(|why| FfiError::new(MambaStatus::Tokenizer, format!("{function}: {why}")))
    }

    /// Returns the end-of-sequence token, if the file declares one inside the vocabulary.
    pub fn eos(&self) -> Option<u32> {
        self.special.eos.filter(|&id| (id as usize) < self.model.config.n_vocab)
    }

    /// Rejects the first token id that is not below the vocabulary size.
    pub fn check_tokens(&self, function: &str, tokens: &[u32]) -> FfiResult {
        let n_vocab = self.model.config.n_vocab;
        match tokens.iter().position(|&t| t as usize >= n_vocab) {
            Some(i) => Err(FfiError::core(function, mamba_core::Error::TokenOutOfRange { token: tokens[i], n_vocab })),
            None => Ok(()),
        }
    }
}

/// A loaded model, used from C as an opaque `mamba_model *`.
pub struct MambaModel {
    magic: AtomicU64,
    pub(crate) inner: Arc<ModelInner>,
}

impl Handle for MambaModel {
    const MAGIC: u64 = u64::from_le_bytes(*b"MAMBAMDL");
    const NAME: &'static str = "mamba_model";

    fn magic(&self) -> &AtomicU64 {
        &self.magic
    }
}

impl MambaModel {
    fn into_raw(inner: ModelInner) -> *mut Self {
        Box::into_raw(Box::new(Self { magic: AtomicU64::new(Self::MAGIC), inner: Arc::new(inner) }))
    }
}

/// Hyperparameters and special tokens of a model.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MambaModelInfo {
    /// Vocabulary size: rows of the token embedding and length of the logits.
    pub n_vocab: u32,
    /// Residual stream width.
    pub d_model: u32,
    /// Number of layers.
    pub n_layer: u32,
    /// Channels of the selective scan.
    pub d_inner: u32,
    /// SSM state size per channel.
    pub d_state: u32,
    /// Rank of the dt projection.
    pub dt_rank: u32,
    /// Width of the causal convolution.
    pub d_conv: u32,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Training context length from the file, 0 when absent. Informational: the recurrence
    /// has no context limit.
    pub context_length: u64,
    /// Total bytes of tensor data.
    pub weight_bytes: u64,
    /// Beginning-of-sequence token, or -1 when the file declares none below `n_vocab`.
    pub bos_token_id: i32,
    /// End-of-sequence token, or -1 when the file declares none below `n_vocab`.
    pub eos_token_id: i32,
    /// Whether tokenize and detokenize work: false when the file has no usable tokenizer.
    pub has_tokenizer: bool,
}

const LOAD_FILE: &str = "mamba_model_load_file";
const LOAD_BUFFER: &str = "mamba_model_load_buffer";
const LOAD_BORROWED: &str = "mamba_model_load_buffer_borrowed";

/// Opens a GGUF model file and memory-maps it read-only.
///
/// `path` is a NUL-terminated path (bytes on Unix, UTF-8 elsewhere). On success `*out_model`
/// receives a new handle, to be released with `mamba_model_free`. Do not modify or truncate
/// the file while the model or a session of it is alive: the process would read the new
/// bytes or crash with SIGBUS.
///
/// Errors: `MAMBA_STATUS_NULL_POINTER`, `MAMBA_STATUS_IO` (cannot open or map the file),
/// `MAMBA_STATUS_INVALID_MODEL` (not a GGUF file of a Mamba model).
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string; `out_model` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_model_load_file(path: *const c_char, out_model: *mut *mut MambaModel) -> MambaStatus {
    guard(LOAD_FILE, || {
        check_out(LOAD_FILE, "out_model", out_model)?;
        if path.is_null() {
            return Err(FfiError::null(LOAD_FILE, "path"));
        }
        // SAFETY: the caller passes a NUL-terminated string.
        let path = path_from_c(unsafe { CStr::from_ptr(path) })?;
        let io_error = |e: std::io::Error| {
            FfiError::new(MambaStatus::Io, format!("{LOAD_FILE}: cannot open {}: {e}; check the path", path.display()))
        };
        let file = File::open(&path).map_err(io_error)?;
        // SAFETY: the map is read-only. If another process truncates the file while it is
        // mapped, reads fault (SIGBUS); the function's documentation forbids that.
        let map = unsafe { Mmap::map(&file) }.map_err(io_error)?;
        let inner = ModelInner::new(Storage::Mapped(map), LOAD_FILE).map_err(|mut e| {
            e.message = format!("{}: {}", path.display(), e.message);
            e
        })?;
        // SAFETY: checked non-NULL and aligned above; the caller guarantees it is writable.
        unsafe { write_out(LOAD_FILE, "out_model", out_model, MambaModel::into_raw(inner)) }
    })
}

#[cfg(unix)]
fn path_from_c(path: &CStr) -> FfiResult<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(path.to_bytes())))
}

#[cfg(not(unix))]
fn path_from_c(path: &CStr) -> FfiResult<PathBuf> {
    path.to_str()
        .map(PathBuf::from)
        .map_err(|e| FfiError::invalid(format!("{LOAD_FILE}: `path` is not valid UTF-8 ({e}); pass a UTF-8 path")))
}

/// Loads a model from a GGUF file image in memory, copying it into an aligned allocation.
///
/// The caller's buffer may be freed as soon as the call returns. On success `*out_model`
/// receives a new handle, to be released with `mamba_model_free`.
///
/// Errors: `MAMBA_STATUS_NULL_POINTER`, `MAMBA_STATUS_INVALID_ARGUMENT` (`len` is 0),
/// `MAMBA_STATUS_INVALID_MODEL`.
///
/// # Safety
/// `data` must point to `len` readable bytes; `out_model` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_model_load_buffer(data: *const u8, len: usize, out_model: *mut *mut MambaModel) -> MambaStatus {
    guard(LOAD_BUFFER, || {
        check_out(LOAD_BUFFER, "out_model", out_model)?;
        // SAFETY: the caller guarantees `len` readable bytes at `data`.
        let bytes = unsafe { non_empty_buffer(LOAD_BUFFER, data, len)? };
        let inner = ModelInner::new(Storage::Owned(AlignedBytes::copy_from(bytes)?), LOAD_BUFFER)?;
        // SAFETY: checked non-NULL and aligned above; the caller guarantees it is writable.
        unsafe { write_out(LOAD_BUFFER, "out_model", out_model, MambaModel::into_raw(inner)) }
    })
}

/// Loads a model from a GGUF file image in memory without copying it.
///
/// The model reads the caller's bytes in place, so the caller promises that the `len` bytes
/// at `data` stay allocated and unmodified until the model handle and every session created
/// from it are freed. `data` must be aligned to at least 4 bytes (f32 tensors are read in
/// place); a GGUF file in a buffer from `malloc` or `mmap` qualifies.
///
/// Errors: `MAMBA_STATUS_NULL_POINTER`, `MAMBA_STATUS_INVALID_ARGUMENT` (`len` is 0 or `data`
/// is not 4-byte aligned), `MAMBA_STATUS_INVALID_MODEL`.
///
/// # Safety
/// As above; breaking the lifetime promise is undefined behaviour.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_model_load_buffer_borrowed(
    data: *const u8,
    len: usize,
    out_model: *mut *mut MambaModel,
) -> MambaStatus {
    guard(LOAD_BORROWED, || {
        check_out(LOAD_BORROWED, "out_model", out_model)?;
        // SAFETY: the caller guarantees `len` readable bytes at `data`.
        let bytes = unsafe { non_empty_buffer(LOAD_BORROWED, data, len)? };
        if !(bytes.as_ptr() as usize).is_multiple_of(4) {
            return Err(FfiError::invalid(format!(
                "{LOAD_BORROWED}: `data` ({:p}) is not 4-byte aligned; pass an aligned buffer or use mamba_model_load_buffer, which copies",
                bytes.as_ptr()
            )));
        }
        let ptr = NonNull::from(bytes).cast::<u8>();
        let inner = ModelInner::new(Storage::Borrowed { ptr, len }, LOAD_BORROWED)?;
        // SAFETY: checked non-NULL and aligned above; the caller guarantees it is writable.
        unsafe { write_out(LOAD_BORROWED, "out_model", out_model, MambaModel::into_raw(inner)) }
    })
}

/// # Safety
/// `data` must point to `len` readable bytes when `len > 0`.
unsafe fn non_empty_buffer<'a>(function: &str, data: *const u8, len: usize) -> FfiResult<&'a [u8]> {
    if data.is_null() {
        return Err(FfiError::null(function, "data"));
    }
    if len == 0 {
        return Err(FfiError::invalid(format!("{function}: `len` is 0; pass the size of the GGUF file image in bytes")));
    }
    // SAFETY: forwarded from the caller's contract.
    unsafe { input_slice(function, "data", data, len) }
}

/// Releases a model handle. NULL is accepted and does nothing.
///
/// Sessions created from the model keep its weights alive, so they may outlive the handle
/// and are freed separately. A freed handle must not be used again; a second free is
/// reported as `MAMBA_STATUS_INVALID_HANDLE` only while its memory has not been reused.
/// Must not run while another thread uses the same handle.
///
/// # Safety
/// `model` must be NULL or a handle from a `mamba_model_load_*` function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_model_free(model: *mut MambaModel) -> MambaStatus {
    const FUNCTION: &str = "mamba_model_free";
    // SAFETY: forwarded from the caller's contract.
    guard(FUNCTION, || unsafe { free_handle(FUNCTION, model) })
}

/// Writes the model's hyperparameters and special tokens to `*out_info`.
///
/// # Safety
/// `model` must be NULL or a live model handle; `out_info` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_model_get_info(model: *const MambaModel, out_info: *mut MambaModelInfo) -> MambaStatus {
    const FUNCTION: &str = "mamba_model_get_info";
    guard(FUNCTION, || {
        // SAFETY: the caller passes NULL or a live handle.
        let inner = &unsafe { handle_ref(FUNCTION, "model", model)? }.inner;
        let c = &inner.model.config;
        let token_id = |id: Option<u32>| id.filter(|&id| (id as usize) < c.n_vocab).map_or(-1, |id| id as i32);
        // Every dimension is at most 2^24 (checked when the model loaded), so each fits in u32.
        let info = MambaModelInfo {
            n_vocab: c.n_vocab as u32,
            d_model: c.d_model as u32,
            n_layer: c.n_layer as u32,
            d_inner: c.d_inner as u32,
            d_state: c.d_state as u32,
            dt_rank: c.dt_rank as u32,
            d_conv: c.d_conv as u32,
            rms_eps: c.rms_eps,
            context_length: c.context_length,
            weight_bytes: inner.model.weight_bytes(),
            bos_token_id: token_id(inner.special.bos),
            eos_token_id: token_id(inner.special.eos),
            has_tokenizer: inner.tokenizer.is_ok(),
        };
        // SAFETY: the caller guarantees `out_info` is NULL or writable.
        unsafe { write_out(FUNCTION, "out_info", out_info, info) }
    })
}

/// Converts UTF-8 text to token ids with the model's tokenizer.
///
/// `text` contains `text_len` bytes (no NUL terminator needed; NULL is allowed when
/// `text_len` is 0). `add_special` adds the tokens the tokenizer's post-processor defines,
/// such as BOS, as Hugging Face `encode(text, add_special_tokens=True)` does. The ids go to
/// `tokens`, which has room for `capacity` ids, and `*n_tokens` receives their count. When
/// `capacity` is too small the call returns `MAMBA_STATUS_BUFFER_TOO_SMALL`, writes no ids
/// and sets `*n_tokens` to the count needed; `tokens` may be NULL with `capacity` 0 to
/// query the count.
///
/// Errors: `MAMBA_STATUS_INVALID_ARGUMENT` (text not UTF-8), `MAMBA_STATUS_TOKENIZER`,
/// `MAMBA_STATUS_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `model` must be NULL or a live model handle; `text` must point to `text_len` readable
/// bytes; `tokens` to `capacity` writable ids; `n_tokens` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_model_tokenize(
    model: *const MambaModel,
    text: *const c_char,
    text_len: usize,
    add_special: bool,
    tokens: *mut u32,
    capacity: usize,
    n_tokens: *mut usize,
) -> MambaStatus {
    const FUNCTION: &str = "mamba_model_tokenize";
    guard(FUNCTION, || {
        // SAFETY: the caller passes NULL or a live handle.
        let inner = &unsafe { handle_ref(FUNCTION, "model", model)? }.inner;
        check_out(FUNCTION, "n_tokens", n_tokens)?;
        // SAFETY: the caller guarantees `text_len` readable bytes at `text`.
        let bytes = unsafe { input_slice(FUNCTION, "text", text.cast::<u8>(), text_len)? };
        let text = std::str::from_utf8(bytes).map_err(|e| {
            FfiError::invalid(format!("{FUNCTION}: `text` is not valid UTF-8 ({e}); pass UTF-8 text"))
        })?;
        let tokenizer = inner.tokenizer(FUNCTION)?;
        let encoding = tokenizer
            .encode(text, add_special)
            .map_err(|e| FfiError::new(MambaStatus::Tokenizer, format!("{FUNCTION}: the tokenizer failed: {e}")))?;
        let ids = encoding.get_ids();

        // SAFETY: the caller guarantees `n_tokens` is writable.
        unsafe { write_out(FUNCTION, "n_tokens", n_tokens, ids.len())? };
        if ids.len() > capacity {
            return Err(FfiError::too_small(FUNCTION, "tokens", ids.len(), capacity));
        }
        // SAFETY: the caller guarantees `capacity` writable ids at `tokens`.
        let out = unsafe { output_slice(FUNCTION, "tokens", tokens, capacity)? };
        out[..ids.len()].copy_from_slice(ids);
        Ok(())
    })
}

/// Converts token ids to UTF-8 text with the model's tokenizer, all at once.
///
/// `skip_special` leaves out special tokens such as EOS. The text goes to `text` with a
/// terminating NUL, so `capacity` must be at least the text length + 1; `*text_len`
/// receives the length without the NUL. When `capacity` is too small the call returns
/// `MAMBA_STATUS_BUFFER_TOO_SMALL`, writes nothing to `text` and sets `*text_len` to the
/// length needed (without the NUL). For streaming output use `mamba_session_decode_token`.
///
/// Errors: `MAMBA_STATUS_TOKEN_OUT_OF_RANGE`, `MAMBA_STATUS_TOKENIZER`,
/// `MAMBA_STATUS_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `model` must be NULL or a live model handle; `tokens` must point to `n_tokens` ids;
/// `text` to `capacity` writable bytes; `text_len` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mamba_model_detokenize(
    model: *const MambaModel,
    tokens: *const u32,
    n_tokens: usize,
    skip_special: bool,
    text: *mut c_char,
    capacity: usize,
    text_len: *mut usize,
) -> MambaStatus {
    const FUNCTION: &str = "mamba_model_detokenize";
    guard(FUNCTION, || {
        // SAFETY: the caller passes NULL or a live handle.
        let inner = &unsafe { handle_ref(FUNCTION, "model", model)? }.inner;
        check_out(FUNCTION, "text_len", text_len)?;
        // SAFETY: the caller guarantees `n_tokens` ids at `tokens`.
        let ids = unsafe { input_slice(FUNCTION, "tokens", tokens, n_tokens)? };
        inner.check_tokens(FUNCTION, ids)?;
        let tokenizer = inner.tokenizer(FUNCTION)?;
        let decoded = tokenizer
            .decode(ids, skip_special)
            .map_err(|e| FfiError::new(MambaStatus::Tokenizer, format!("{FUNCTION}: the tokenizer failed: {e}")))?;
        // SAFETY: the caller guarantees `text` is writable for `capacity` bytes and
        // `text_len` is writable.
        unsafe { write_c_text(FUNCTION, decoded.as_bytes(), text, capacity, text_len) }
    })
}

/// Copies `piece` and a NUL into `text` and its length into `*text_len`, or reports
/// `MAMBA_STATUS_BUFFER_TOO_SMALL` with the length needed in `*text_len`.
///
/// # Safety
/// `text` must point to `capacity` writable bytes; `text_len` must be writable.
pub(crate) unsafe fn write_c_text(
    function: &str,
    piece: &[u8],
    text: *mut c_char,
    capacity: usize,
    text_len: *mut usize,
) -> FfiResult {
    // SAFETY: forwarded from the caller's contract.
    unsafe { write_out(function, "text_len", text_len, piece.len())? };
    if piece.len() >= capacity {
        return Err(FfiError::too_small(function, "text", piece.len() + 1, capacity));
    }
    // SAFETY: forwarded from the caller's contract.
    let out = unsafe { output_slice(function, "text", text.cast::<u8>(), capacity)? };
    out[..piece.len()].copy_from_slice(piece);
    out[piece.len()] = 0;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn model_types_are_send_sync() {
        assert_send_sync::<ModelInner>();
        assert_send_sync::<MambaModel>();
    }

    #[test]
    fn aligned_copy_is_aligned() {
        let bytes: Vec<u8> = (0..=255).collect();
        let copy = AlignedBytes::copy_from(&bytes[1..]).unwrap();
        assert_eq!(copy.as_slice(), &bytes[1..]);
        assert_eq!(copy.ptr.as_ptr() as usize % BUFFER_ALIGN, 0);
    }
}
