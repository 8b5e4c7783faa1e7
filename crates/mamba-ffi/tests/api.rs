//! The C API called from Rust as a C program would call it: handles, argument checks,
//! tokenization, generation, streaming text and saved state, on the tiny test model.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::PathBuf;
use std::ptr;

use mamba_edge::*;

/// Returns the path of the tiny test model converted by llama.cpp (Q8_0 weights, GPT-NeoX-style
/// tokenizer arrays).
fn tiny_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny/llamacpp-q8_0.gguf")
}

/// Returns the path of a model with other hyperparameters than the tiny one.
fn odd_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/odd/llamacpp-f32.gguf")
}

/// Writes a copy of the tiny model whose tokenizer is the embedded Hugging Face
/// `tokenizer.huggingface.json`, as mamba-quantize writes it, in place of llama.cpp's
/// `tokenizer.ggml.*` arrays, and returns its path.
fn tiny_hf_tokenizer_path() -> PathBuf {
    use mamba_core::gguf::{Gguf, GgufWriter, MetaValue, Value};

    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tiny-hf-tokenizer.gguf");
    let bytes = std::fs::read(tiny_path()).unwrap();
    let words = aligned_copy(&bytes);
    let source = Gguf::parse(&words_as_bytes(&words)[..bytes.len()]).unwrap();
    let json_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny/hf/tokenizer.json");
    let json = std::fs::read_to_string(json_path).unwrap();

    let mut writer = GgufWriter::new();
    for (key, value) in source.metadata() {
        let value = match value {
            _ if key.starts_with("tokenizer.ggml.") && !key.ends_with("_token_id") => continue,
            _ if key == "general.alignment" => continue,
            Value::U32(v) => MetaValue::U32(v),
            Value::U64(v) => MetaValue::U64(v),
            Value::I32(v) => MetaValue::I32(v),
            Value::F32(v) => MetaValue::F32(v),
            Value::Bool(v) => MetaValue::Bool(v),
            Value::String(v) => MetaValue::String(v.to_string()),
            other => panic!("metadata {key} has a type this helper does not copy: {other:?}"),
        };
        writer.add_metadata(key, value).unwrap();
    }
    writer.add_metadata("tokenizer.huggingface.json", MetaValue::String(json)).unwrap();
    let tensors: Vec<_> = source.tensors().collect();
    for tensor in &tensors {
        writer.add_tensor(tensor.name, tensor.dtype, tensor.shape()).unwrap();
    }
    let file = std::fs::File::create(&path).unwrap();
    writer.write_to(file, |i, sink| Ok(sink.write_all(tensors[i].data)?)).unwrap();
    path
}

fn last_error() -> String {
    // SAFETY: mamba_last_error returns a NUL-terminated string that stays valid until the
    // next failed call on this thread; it is copied at once.
    unsafe { CStr::from_ptr(mamba_last_error()) }.to_string_lossy().into_owned()
}

fn c_path(path: &std::path::Path) -> CString {
    CString::new(path.to_str().unwrap()).unwrap()
}

/// A model handle freed on drop.
struct Model(*mut MambaModel);

impl Model {
    fn load(path: &std::path::Path) -> Self {
        let mut raw = ptr::null_mut();
        // SAFETY: a NUL-terminated path and a writable output.
        let status = unsafe { mamba_model_load_file(c_path(path).as_ptr(), &mut raw) };
        assert_eq!(status, MambaStatus::Ok, "{}", last_error());
        Self(raw)
    }

    fn info(&self) -> MambaModelInfo {
        let mut info = MambaModelInfo::default();
        // SAFETY: a live handle and a writable output.
        assert_eq!(unsafe { mamba_model_get_info(self.0, &mut info) }, MambaStatus::Ok);
        info
    }

    fn tokenize(&self, text: &str) -> Vec<u32> {
        let mut tokens = vec![0u32; text.len() + 16];
        let mut n = 0;
        // SAFETY: a live handle, `text.len()` readable bytes and `tokens.len()` writable ids.
        let status = unsafe {
            mamba_model_tokenize(self.0, text.as_ptr().cast(), text.len(), false, tokens.as_mut_ptr(), tokens.len(), &mut n)
        };
        assert_eq!(status, MambaStatus::Ok, "{}", last_error());
        tokens.truncate(n);
        tokens
    }

    fn detokenize(&self, tokens: &[u32]) -> String {
        let mut text = vec![0u8; 4096];
        let mut len = 0;
        // SAFETY: a live handle, `tokens.len()` ids and `text.len()` writable bytes.
        let status = unsafe {
            mamba_model_detokenize(self.0, tokens.as_ptr(), tokens.len(), false, text.as_mut_ptr().cast(), text.len(), &mut len)
        };
        assert_eq!(status, MambaStatus::Ok, "{}", last_error());
        String::from_utf8(text[..len].to_vec()).unwrap()
    }

    fn session(&self) -> Session {
        Session::new(self.0, ptr::null())
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: the handle is live and freed only here.
        assert_eq!(unsafe { mamba_model_free(self.0) }, MambaStatus::Ok);
    }
}

/// A session handle freed on drop.
struct Session(*mut MambaSession);

// SAFETY: the C API allows moving a session to another thread between calls.
unsafe impl Send for Session {}

impl Session {
    fn new(model: *const MambaModel, params: *const MambaSessionParams) -> Self {
        let mut raw = ptr::null_mut();
        // SAFETY: a live model handle, NULL or readable params and a writable output.
        let status = unsafe { mamba_session_new(model, params, &mut raw) };
        assert_eq!(status, MambaStatus::Ok, "{}", last_error());
        Self(raw)
    }

    fn eval(&self, tokens: &[u32]) -> MambaStatus {
        // SAFETY: a live handle and `tokens.len()` ids.
        unsafe { mamba_session_eval(self.0, tokens.as_ptr(), tokens.len()) }
    }

    fn logits(&self) -> Result<Vec<f32>, MambaStatus> {
        let mut data = ptr::null();
        let mut len = 0;
        // SAFETY: a live handle and writable outputs.
        let status = unsafe { mamba_session_logits(self.0, &mut data, &mut len) };
        if status != MambaStatus::Ok {
            return Err(status);
        }
        // SAFETY: on success `data` points to `len` floats, valid until the next call on
        // the session; they are copied at once.
        Ok(unsafe { std::slice::from_raw_parts(data, len) }.to_vec())
    }

    fn n_past(&self) -> u64 {
        let mut n = 0;
        // SAFETY: a live handle and a writable output.
        assert_eq!(unsafe { mamba_session_n_past(self.0, &mut n) }, MambaStatus::Ok);
        n
    }

    fn sample(&self, params: &MambaSamplerParams) -> Result<u32, MambaStatus> {
        let mut token = 0;
        // SAFETY: a live handle, readable params and a writable output.
        match unsafe { mamba_session_sample(self.0, params, &mut token) } {
            MambaStatus::Ok => Ok(token),
            status => Err(status),
        }
    }

    /// Generates with `params`, returning the status and the tokens and pieces the callback
    /// saw. The callback stops after `stop_after` tokens.
    fn generate(&self, params: &MambaSamplerParams, max_tokens: usize, stop_after: usize) -> (MambaStatus, Collected, usize) {
        let mut collected = Collected { stop_after, ..Collected::default() };
        let mut n = usize::MAX;
        // SAFETY: a live handle, readable params, a callback of the right type whose
        // user data is `collected`, alive for the whole call, and a writable output.
        let status = unsafe {
            mamba_session_generate(self.0, params, max_tokens, Some(collect), (&raw mut collected).cast(), &mut n)
        };
        (status, collected, n)
    }

    fn decode(&self, token: u32) -> String {
        let mut text = [0u8; 256];
        let mut len = 0;
        // SAFETY: a live handle, `text.len()` writable bytes and a writable output.
        let status = unsafe { mamba_session_decode_token(self.0, token, text.as_mut_ptr().cast(), text.len(), &mut len) };
        assert_eq!(status, MambaStatus::Ok, "{}", last_error());
        assert_eq!(text[len], 0, "piece is NUL-terminated");
        String::from_utf8(text[..len].to_vec()).expect("every piece is complete UTF-8")
    }

    fn save(&self) -> Vec<u8> {
        let mut size = 0;
        // SAFETY: a live handle and a writable output.
        assert_eq!(unsafe { mamba_session_state_size(self.0, &mut size) }, MambaStatus::Ok);
        let mut bytes = vec![0u8; size];
        let mut written = 0;
        // SAFETY: a live handle, `bytes.len()` writable bytes and a writable output.
        let status = unsafe { mamba_session_save_state(self.0, bytes.as_mut_ptr(), bytes.len(), &mut written) };
        assert_eq!(status, MambaStatus::Ok, "{}", last_error());
        assert_eq!(written, size);
        bytes
    }

    fn load(&self, bytes: &[u8]) -> MambaStatus {
        // SAFETY: a live handle and `bytes.len()` readable bytes.
        unsafe { mamba_session_load_state(self.0, bytes.as_ptr(), bytes.len()) }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: the handle is live and freed only here.
        assert_eq!(unsafe { mamba_session_free(self.0) }, MambaStatus::Ok);
    }
}

/// What the generation callback saw.
#[derive(Default)]
struct Collected {
    tokens: Vec<u32>,
    text: Vec<u8>,
    stop_after: usize,
    /// Statuses of an eval and a free of the generating session from inside the callback.
    reentrant: Option<(MambaStatus, MambaStatus)>,
    session: Option<*mut MambaSession>,
}

unsafe extern "C" fn collect(token: u32, piece: *const c_char, piece_len: usize, user_data: *mut c_void) -> c_int {
    // SAFETY: `user_data` is the `Collected` that `Session::generate` passes, alive and not
    // otherwise borrowed during the call.
    let collected = unsafe { &mut *user_data.cast::<Collected>() };
    // SAFETY: the library passes `piece_len` readable bytes followed by a NUL.
    let bytes = unsafe { std::slice::from_raw_parts(piece.cast::<u8>(), piece_len + 1) };
    assert_eq!(bytes[piece_len], 0);
    collected.tokens.push(token);
    collected.text.extend_from_slice(&bytes[..piece_len]);
    if let Some(session) = collected.session {
        // SAFETY: the session is live; both calls are expected to fail with BUSY.
        collected.reentrant = Some(unsafe { (mamba_session_eval(session, &token, 1), mamba_session_free(session)) });
    }
    c_int::from(collected.tokens.len() >= collected.stop_after)
}

fn greedy() -> MambaSamplerParams {
    MambaSamplerParams { temperature: 0.0, ..mamba_sampler_default_params() }
}

#[test]
fn null_handles_rejected() {
    let mut n = 0usize;
    let mut token = 0u32;
    let mut info = MambaModelInfo::default();
    // SAFETY: every handle is NULL, which the API must reject without dereferencing.
    let statuses = unsafe {
        [
            mamba_model_get_info(ptr::null(), &mut info),
            mamba_model_tokenize(ptr::null(), c"a".as_ptr(), 1, false, ptr::null_mut(), 0, &mut n),
            mamba_session_new(ptr::null(), ptr::null(), &mut ptr::null_mut()),
            mamba_session_eval(ptr::null_mut(), &token, 1),
            mamba_session_sample(ptr::null_mut(), &greedy(), &mut token),
            mamba_session_generate(ptr::null_mut(), &greedy(), 1, None, ptr::null_mut(), ptr::null_mut()),
            mamba_session_reset(ptr::null_mut()),
            mamba_session_state_size(ptr::null_mut(), &mut n),
            mamba_session_load_state(ptr::null_mut(), [0u8].as_ptr(), 1),
        ]
    };
    for status in statuses {
        assert_eq!(status, MambaStatus::NullPointer);
    }
    assert!(last_error().contains("mamba_session_load_state"), "{}", last_error());
    assert!(last_error().contains("`session` is NULL"), "{}", last_error());
}

#[test]
fn free_null_is_noop() {
    // SAFETY: NULL is documented as accepted.
    unsafe {
        assert_eq!(mamba_model_free(ptr::null_mut()), MambaStatus::Ok);
        assert_eq!(mamba_session_free(ptr::null_mut()), MambaStatus::Ok);
    }
}

#[test]
fn foreign_handles_rejected() {
    let model = Model::load(&tiny_path());
    let session = model.session();
    // Readable, aligned memory larger than any handle, without a magic word.
    let mut junk = [0u64; 64];
    let mut info = MambaModelInfo::default();
    // SAFETY: each pointer is readable and large enough for the handle type it is passed as.
    unsafe {
        let status = mamba_model_get_info(junk.as_ptr().cast(), &mut info);
        assert_eq!(status, MambaStatus::InvalidHandle);
        assert!(last_error().contains("not a live mamba_model handle"), "{}", last_error());
        assert_eq!(mamba_session_reset(junk.as_mut_ptr().cast()), MambaStatus::InvalidHandle);
        // A session passed as a model, and a model as a session.
        assert_eq!(mamba_model_get_info(session.0.cast(), &mut info), MambaStatus::InvalidHandle);
        assert_eq!(mamba_session_reset(model.0.cast()), MambaStatus::InvalidHandle);
        // A misaligned pointer.
        let misaligned = junk.as_ptr().cast::<u8>().add(1).cast::<MambaModel>();
        assert_eq!(mamba_model_get_info(misaligned, &mut info), MambaStatus::InvalidHandle);
    }
}

#[test]
fn bad_paths_rejected() {
    let mut raw = ptr::null_mut();
    let missing = CString::new("/nonexistent/model.gguf").unwrap();
    // SAFETY: NUL-terminated paths and a writable output.
    unsafe {
        assert_eq!(mamba_model_load_file(missing.as_ptr(), &mut raw), MambaStatus::Io);
        assert!(last_error().contains("/nonexistent/model.gguf"), "{}", last_error());
        assert!(raw.is_null());

        let not_gguf = c_path(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
        assert_eq!(mamba_model_load_file(not_gguf.as_ptr(), &mut raw), MambaStatus::InvalidModel);
        assert!(last_error().contains("Cargo.toml"), "{}", last_error());

        assert_eq!(mamba_model_load_file(ptr::null(), &mut raw), MambaStatus::NullPointer);
        assert_eq!(mamba_model_load_file(missing.as_ptr(), ptr::null_mut()), MambaStatus::NullPointer);
    }
}

#[test]
fn buffers_loaded() {
    let bytes = std::fs::read(tiny_path()).unwrap();
    // Put the file at an odd address: the copying loader must align it.
    let mut shifted = vec![0u8; bytes.len() + 1];
    shifted[1..].copy_from_slice(&bytes);
    let odd = &shifted[1..];
    let mut raw = ptr::null_mut();
    // SAFETY: `odd.len()` readable bytes and a writable output.
    let status = unsafe { mamba_model_load_buffer(odd.as_ptr(), odd.len(), &mut raw) };
    assert_eq!(status, MambaStatus::Ok, "{}", last_error());
    drop(shifted);
    let copied = Model(raw);
    assert_eq!(copied.info(), Model::load(&tiny_path()).info());

    // SAFETY: as above; the borrowing loader must reject the odd address.
    let status = unsafe { mamba_model_load_buffer_borrowed(odd_ptr(&bytes), bytes.len() - 1, &mut raw) };
    assert_eq!(status, MambaStatus::InvalidArgument);
    assert!(last_error().contains("not 4-byte aligned"), "{}", last_error());

    // An aligned buffer that outlives the model and its session.
    let words = aligned_copy(&bytes);
    let aligned = &words_as_bytes(&words)[..bytes.len()];
    // SAFETY: `aligned` is readable, 4-byte aligned and outlives the model.
    let status = unsafe { mamba_model_load_buffer_borrowed(aligned.as_ptr(), aligned.len(), &mut raw) };
    assert_eq!(status, MambaStatus::Ok, "{}", last_error());
    let borrowed = Model(raw);
    let session = borrowed.session();
    assert_eq!(session.eval(&[1, 2, 3]), MambaStatus::Ok);
    drop(session);
    drop(borrowed);

    // SAFETY: an empty buffer and a NULL buffer must be rejected.
    unsafe {
        assert_eq!(mamba_model_load_buffer(bytes.as_ptr(), 0, &mut raw), MambaStatus::InvalidArgument);
        assert_eq!(mamba_model_load_buffer(ptr::null(), 10, &mut raw), MambaStatus::NullPointer);
        assert_eq!(mamba_model_load_buffer(b"GGUF".as_ptr(), 4, &mut raw), MambaStatus::InvalidModel);
    }
}

fn odd_ptr(bytes: &[u8]) -> *const u8 {
    let base = bytes.as_ptr();
    if (base as usize).is_multiple_of(2) { base.wrapping_add(1) } else { base }
}

/// Copies `bytes` into 4-byte aligned storage, padded with zeros to whole words.
fn aligned_copy(bytes: &[u8]) -> Vec<u32> {
    let mut words = vec![0u32; bytes.len().div_ceil(4)];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks(4)) {
        let mut le = [0u8; 4];
        le[..chunk.len()].copy_from_slice(chunk);
        *word = u32::from_ne_bytes(le);
    }
    words
}

fn words_as_bytes(words: &[u32]) -> &[u8] {
    // SAFETY: u32 has no padding, so all of its bytes are initialised.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast(), std::mem::size_of_val(words)) }
}

#[test]
fn info_matches_fixture() {
    let info = Model::load(&tiny_path()).info();
    assert_eq!(info.n_vocab, 312);
    assert_eq!(info.d_model, 64);
    assert_eq!(info.n_layer, 2);
    assert_eq!(info.d_inner, 128);
    assert_eq!(info.d_state, 16);
    assert_eq!(info.dt_rank, 4);
    assert_eq!(info.d_conv, 4);
    assert!((info.rms_eps - 1e-5).abs() < 1e-9);
    assert!(info.has_tokenizer);
    assert!(info.weight_bytes > 0);
    assert!(info.eos_token_id >= -1, "{}", info.eos_token_id);
    assert!(info.eos_token_id < 312, "{}", info.eos_token_id);
}

#[test]
fn tokenize_round_trip() {
    let model = Model::load(&tiny_path());
    let text = "def fibonacci(n): héllo wörld";
    let tokens = model.tokenize(text);
    assert!(!tokens.is_empty());
    assert_eq!(model.detokenize(&tokens), text);
}

#[test]
fn tokenize_small_buffer() {
    let model = Model::load(&tiny_path());
    let text = "hello world hello";
    let expected = model.tokenize(text);
    let mut n = 0;
    let mut tokens = [0u32; 1];
    // SAFETY: a live handle, readable text and outputs of the stated sizes.
    unsafe {
        let status = mamba_model_tokenize(model.0, text.as_ptr().cast(), text.len(), false, ptr::null_mut(), 0, &mut n);
        assert_eq!(status, MambaStatus::BufferTooSmall);
        assert_eq!(n, expected.len());
        let status = mamba_model_tokenize(model.0, text.as_ptr().cast(), text.len(), false, tokens.as_mut_ptr(), 1, &mut n);
        assert_eq!(status, MambaStatus::BufferTooSmall);
        assert_eq!(tokens[0], 0, "nothing written on failure");
        assert!(last_error().contains("call again with a larger buffer"), "{}", last_error());
    }
}

#[test]
fn tokenize_rejects_bad_utf8() {
    let model = Model::load(&tiny_path());
    let bytes = [b'a', 0xff, b'b'];
    let mut n = 0;
    let mut tokens = [0u32; 8];
    // SAFETY: a live handle, readable bytes and outputs of the stated sizes.
    let status = unsafe { mamba_model_tokenize(model.0, bytes.as_ptr().cast(), 3, false, tokens.as_mut_ptr(), 8, &mut n) };
    assert_eq!(status, MambaStatus::InvalidArgument);
    assert!(last_error().contains("not valid UTF-8"), "{}", last_error());
}

#[test]
fn detokenize_small_buffer() {
    let model = Model::load(&tiny_path());
    let tokens = model.tokenize("hello world");
    let mut text = [0x55u8; 4];
    let mut len = 0;
    // SAFETY: a live handle, readable ids and outputs of the stated sizes.
    let status = unsafe {
        mamba_model_detokenize(model.0, tokens.as_ptr(), tokens.len(), false, text.as_mut_ptr().cast(), text.len(), &mut len)
    };
    assert_eq!(status, MambaStatus::BufferTooSmall);
    assert_eq!(len, "hello world".len());
    assert_eq!(text, [0x55; 4], "nothing written on failure");
}

#[test]
fn bad_tokens_rejected() {
    let model = Model::load(&tiny_path());
    let session = model.session();
    assert_eq!(session.eval(&[1, 312, 2]), MambaStatus::TokenOutOfRange);
    assert!(last_error().contains("token id 312"), "{}", last_error());
    assert_eq!(session.n_past(), 0, "a failed eval leaves the session unchanged");
    assert_eq!(session.eval(&[]), MambaStatus::InvalidArgument);
    // SAFETY: a live handle, a NULL token pointer with a non-zero count must be rejected.
    assert_eq!(unsafe { mamba_session_eval(session.0, ptr::null(), 3) }, MambaStatus::NullPointer);

    let mut text = [0u8; 16];
    let mut len = 0;
    // SAFETY: a live handle and outputs of the stated sizes.
    unsafe {
        let status = mamba_model_detokenize(model.0, &u32::MAX, 1, false, text.as_mut_ptr().cast(), 16, &mut len);
        assert_eq!(status, MambaStatus::TokenOutOfRange);
        let status = mamba_session_decode_token(session.0, 400, text.as_mut_ptr().cast(), 16, &mut len);
        assert_eq!(status, MambaStatus::TokenOutOfRange);
    }
}

#[test]
fn logits_match_engine() {
    let tokens = [285, 66, 65, 286, 77, 80, 266, 84];
    let model = Model::load(&tiny_path());
    let session = model.session();
    assert_eq!(session.logits(), Err(MambaStatus::NoLogits));
    assert_eq!(session.sample(&greedy()), Err(MambaStatus::NoLogits));
    assert_eq!(session.eval(&tokens), MambaStatus::Ok);
    let logits = session.logits().unwrap();
    assert_eq!(session.n_past(), tokens.len() as u64);

    let bytes = std::fs::read(tiny_path()).unwrap();
    let words = aligned_copy(&bytes);
    let engine_model = mamba_core::Model::from_bytes(&words_as_bytes(&words)[..bytes.len()]).unwrap();
    let mut engine = mamba_core::Session::new(&engine_model);
    assert_eq!(engine.prefill(&tokens).unwrap(), logits.as_slice());

    let best = logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 as u32;
    assert_eq!(session.sample(&greedy()), Ok(best));
}

#[test]
fn sampler_params_checked() {
    let model = Model::load(&tiny_path());
    let session = model.session();
    assert_eq!(session.eval(&[1, 2]), MambaStatus::Ok);
    let bad = MambaSamplerParams { top_p: 2.0, ..mamba_sampler_default_params() };
    assert_eq!(session.sample(&bad), Err(MambaStatus::InvalidArgument));
    assert!(last_error().contains("top_p = 2"), "{}", last_error());
    let mut token = 0;
    // SAFETY: a live handle and a NULL params pointer, which must be rejected.
    assert_eq!(unsafe { mamba_session_sample(session.0, ptr::null(), &mut token) }, MambaStatus::NullPointer);
}

#[test]
fn seeded_sampling_repeats() {
    let model = Model::load(&tiny_path());
    let params = MambaSamplerParams { seed: 7, ..mamba_sampler_default_params() };
    let run = || {
        let session = model.session();
        assert_eq!(session.eval(&[1, 2, 3]), MambaStatus::Ok);
        let (status, collected, _) = session.generate(&params, 20, usize::MAX);
        assert_eq!(status, MambaStatus::Ok, "{}", last_error());
        collected.tokens
    };
    assert_eq!(run(), run());
}

#[test]
fn generate_streams_text() {
    let model = Model::load(&tiny_path());
    let session = model.session();
    let prompt = model.tokenize("def fibonacci(n):");
    assert_eq!(session.eval(&prompt), MambaStatus::Ok);
    let (status, collected, n) = session.generate(&greedy(), 24, usize::MAX);
    assert_eq!(status, MambaStatus::Ok, "{}", last_error());
    assert_eq!(n, collected.tokens.len());
    assert_eq!(session.n_past(), (prompt.len() + n) as u64, "every emitted token is evaluated");
    let text = String::from_utf8(collected.text).expect("pieces are complete UTF-8");
    let whole = model.detokenize(&collected.tokens);
    assert!(whole.starts_with(&text), "streamed {text:?} is a prefix of {whole:?}");
}

#[test]
fn callback_stops_generation() {
    let model = Model::load(&tiny_path());
    let session = model.session();
    assert_eq!(session.eval(&[1, 2, 3]), MambaStatus::Ok);
    let params = MambaSamplerParams { seed: 3, temperature: 1.0, ..mamba_sampler_default_params() };
    let (status, collected, n) = session.generate(&params, 100, 3);
    assert_eq!(status, MambaStatus::Ok);
    assert_eq!(n, 3);
    assert_eq!(collected.tokens.len(), 3);
    assert_eq!(session.n_past(), 6);
}

#[test]
fn generate_without_logits() {
    let model = Model::load(&tiny_path());
    let session = model.session();
    let (status, collected, n) = session.generate(&greedy(), 5, usize::MAX);
    assert_eq!(status, MambaStatus::NoLogits);
    assert_eq!(n, 0);
    assert!(collected.tokens.is_empty());
}

#[test]
fn reentrant_call_is_busy() {
    let model = Model::load(&tiny_path());
    let session = model.session();
    assert_eq!(session.eval(&[1, 2, 3]), MambaStatus::Ok);
    let mut collected = Collected { stop_after: 1, session: Some(session.0), ..Collected::default() };
    // SAFETY: as in Session::generate.
    let status = unsafe {
        mamba_session_generate(session.0, &greedy(), 5, Some(collect), (&raw mut collected).cast(), ptr::null_mut())
    };
    assert_eq!(status, MambaStatus::Ok);
    assert_eq!(collected.reentrant, Some((MambaStatus::Busy, MambaStatus::Busy)));
    assert_eq!(session.n_past(), 4, "the session survived the free attempt");
}

#[test]
fn decode_stream_holds_partial_utf8() {
    let model = Model::load(&tiny_path());
    // The tiny vocabulary has no multi-byte characters, so each one spans several tokens.
    let text = "añb 日本 🎉!";
    let tokens = model.tokenize(text);
    let session = model.session();
    let pieces: Vec<String> = tokens.iter().map(|&t| session.decode(t)).collect();
    assert_eq!(pieces.concat(), text);
    assert!(pieces.iter().any(String::is_empty), "some token ends inside a character: {pieces:?}");
}

#[test]
fn decode_small_buffer_keeps_stream() {
    let model = Model::load(&tiny_path());
    let tokens = model.tokenize("hello");
    let session = model.session();
    let mut len = 0;
    // SAFETY: a live handle, a NULL buffer of capacity 0 and a writable length.
    let status = unsafe { mamba_session_decode_token(session.0, tokens[0], ptr::null_mut(), 0, &mut len) };
    assert_eq!(status, MambaStatus::BufferTooSmall);
    let pieces: Vec<String> = tokens.iter().map(|&t| session.decode(t)).collect();
    assert_eq!(pieces[0].len(), len);
    assert_eq!(pieces.concat(), "hello");
}

#[test]
fn decode_flush_releases_partial() {
    let model = Model::load(&tiny_path());
    let tokens = model.tokenize("é");
    assert!(tokens.len() >= 2, "é is split into bytes: {tokens:?}");
    let session = model.session();
    assert_eq!(session.decode(tokens[0]), "");
    let mut text = [0u8; 16];
    let mut len = 0;
    // SAFETY: a live handle and outputs of the stated sizes.
    let status = unsafe { mamba_session_decode_flush(session.0, text.as_mut_ptr().cast(), 16, &mut len) };
    assert_eq!(status, MambaStatus::Ok);
    assert_eq!(std::str::from_utf8(&text[..len]).unwrap(), "\u{fffd}");
}

#[test]
fn state_round_trip() {
    let model = Model::load(&tiny_path());
    let first = model.session();
    let prompt = model.tokenize("The state after a prompt");
    assert_eq!(first.eval(&prompt), MambaStatus::Ok);
    let saved = first.save();

    let second = model.session();
    assert_eq!(second.load(&saved), MambaStatus::Ok, "{}", last_error());
    assert_eq!(second.n_past(), prompt.len() as u64);
    assert_eq!(second.logits(), first.logits());

    let (_, a, _) = first.generate(&greedy(), 16, usize::MAX);
    let (_, b, _) = second.generate(&greedy(), 16, usize::MAX);
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(a.text, b.text);
}

#[test]
fn state_small_buffer() {
    let model = Model::load(&tiny_path());
    let session = model.session();
    let mut size = 0;
    let mut written = 0;
    let mut small = [0u8; 16];
    // SAFETY: a live handle and outputs of the stated sizes.
    unsafe {
        assert_eq!(mamba_session_state_size(session.0, &mut size), MambaStatus::Ok);
        let status = mamba_session_save_state(session.0, small.as_mut_ptr(), small.len(), &mut written);
        assert_eq!(status, MambaStatus::BufferTooSmall);
        assert_eq!(written, size);
        let status = mamba_session_save_state(session.0, ptr::null_mut(), 0, &mut written);
        assert_eq!(status, MambaStatus::BufferTooSmall);
    }
    assert_eq!(small, [0; 16]);
}

#[test]
fn damaged_state_rejected() {
    let model = Model::load(&tiny_path());
    let session = model.session();
    assert_eq!(session.eval(&[5, 6, 7]), MambaStatus::Ok);
    let saved = session.save();
    let target = model.session();

    let mut flipped = saved.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert_eq!(target.load(&flipped), MambaStatus::StateInvalid);
    assert!(last_error().contains("checksum"), "{}", last_error());
    assert_eq!(target.load(&saved[..saved.len() - 4]), MambaStatus::StateInvalid);
    assert_eq!(target.load(b"not a state at all, but long enough to have a header of 64 bytes."), MambaStatus::StateInvalid);
    assert_eq!(target.n_past(), 0, "a failed load leaves the session unchanged");

    let other = Model::load(&odd_path());
    let other_session = other.session();
    assert_eq!(other_session.load(&saved), MambaStatus::StateMismatch);
    assert!(last_error().contains("use the same model file"), "{}", last_error());
}

#[test]
fn reset_clears_session() {
    let model = Model::load(&tiny_path());
    let session = model.session();
    assert_eq!(session.eval(&[1, 2, 3]), MambaStatus::Ok);
    // SAFETY: a live handle.
    assert_eq!(unsafe { mamba_session_reset(session.0) }, MambaStatus::Ok);
    assert_eq!(session.n_past(), 0);
    assert_eq!(session.logits(), Err(MambaStatus::NoLogits));
}

#[test]
fn session_params_stored() {
    let model = Model::load(&tiny_path());
    let params = MambaSessionParams { n_threads: 3, max_batch: 2, ..mamba_session_default_params() };
    let session = Session::new(model.0, &params);
    let mut stored = mamba_session_default_params();
    // SAFETY: a live handle and a writable output.
    assert_eq!(unsafe { mamba_session_get_params(session.0, &mut stored) }, MambaStatus::Ok);
    assert_eq!(stored, params);
    // Prompts longer than max_batch run in several chunks with the same result.
    let whole = model.session();
    let tokens = [10, 20, 30, 40, 50];
    assert_eq!(session.eval(&tokens), MambaStatus::Ok);
    assert_eq!(whole.eval(&tokens), MambaStatus::Ok);
    let (a, b) = (session.logits().unwrap(), whole.logits().unwrap());
    let max_diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(max_diff < 1e-4, "chunked prefill differs by {max_diff}");

    let too_big = MambaSessionParams { n_threads: 1, max_batch: 5000, ..mamba_session_default_params() };
    let mut raw = ptr::null_mut();
    // SAFETY: a live model handle, readable params and a writable output.
    let status = unsafe { mamba_session_new(model.0, &too_big, &mut raw) };
    assert_eq!(status, MambaStatus::InvalidArgument);
    assert!(last_error().contains("max_batch = 5000"), "{}", last_error());

    let too_many = MambaSessionParams { n_threads: 5000, max_batch: 0, ..mamba_session_default_params() };
    // SAFETY: a live model handle, readable params and a writable output.
    let status = unsafe { mamba_session_new(model.0, &too_many, &mut raw) };
    assert_eq!(status, MambaStatus::InvalidArgument);
    assert!(last_error().contains("n_threads = 5000"), "{}", last_error());

    let unknown_backend = MambaSessionParams { backend: 7, ..mamba_session_default_params() };
    // SAFETY: a live model handle, readable params and a writable output.
    let status = unsafe { mamba_session_new(model.0, &unknown_backend, &mut raw) };
    assert_eq!(status, MambaStatus::InvalidArgument);
    assert!(last_error().contains("backend = 7"), "{}", last_error());
}

/// A library without the `vulkan` feature rejects the Vulkan backend with its own status.
#[cfg(not(feature = "vulkan"))]
#[test]
fn vulkan_backend_absent_without_feature() {
    let model = Model::load(&tiny_path());
    let params = MambaSessionParams { backend: MAMBA_BACKEND_VULKAN, ..mamba_session_default_params() };
    let mut raw = ptr::null_mut();
    // SAFETY: a live model handle, readable params and a writable output.
    let status = unsafe { mamba_session_new(model.0, &params, &mut raw) };
    assert_eq!(status, MambaStatus::Backend);
    assert!(raw.is_null());
    assert!(last_error().contains("--features vulkan"), "{}", last_error());
}

/// A Vulkan session gives the CPU's logits, and its saved state continues on the CPU.
#[cfg(feature = "vulkan")]
#[test]
fn vulkan_session_matches_cpu() {
    let model = Model::load(&tiny_path());
    let params = MambaSessionParams { backend: MAMBA_BACKEND_VULKAN, ..mamba_session_default_params() };
    let gpu = Session::new(model.0, &params);
    let cpu = model.session();
    let tokens = [10, 20, 30, 40, 50];
    assert_eq!(gpu.eval(&tokens), MambaStatus::Ok);
    assert_eq!(cpu.eval(&tokens), MambaStatus::Ok);
    let (a, b) = (gpu.logits().unwrap(), cpu.logits().unwrap());
    let max_diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(max_diff < 1e-4, "GPU logits differ from the CPU's by {max_diff}");

    let mut size = 0usize;
    // SAFETY: a live handle and a writable output.
    assert_eq!(unsafe { mamba_session_state_size(gpu.0, &mut size) }, MambaStatus::Ok);
    let mut saved = vec![0u8; size];
    let mut written = 0usize;
    // SAFETY: a live handle, a buffer of `size` bytes and a writable output.
    assert_eq!(unsafe { mamba_session_save_state(gpu.0, saved.as_mut_ptr(), saved.len(), &mut written) }, MambaStatus::Ok);
    let restored = model.session();
    // SAFETY: a live handle and `written` readable bytes.
    assert_eq!(unsafe { mamba_session_load_state(restored.0, saved.as_ptr(), written) }, MambaStatus::Ok);
    assert_eq!(restored.n_past(), 5);
    assert_eq!(restored.logits().unwrap(), a, "logits restored on the CPU");
}

#[test]
fn session_outlives_model() {
    let model = Model::load(&tiny_path());
    let session = model.session();
    drop(model);
    assert_eq!(session.eval(&[1, 2, 3]), MambaStatus::Ok);
    let (status, _, n) = session.generate(&greedy(), 4, usize::MAX);
    assert_eq!(status, MambaStatus::Ok);
    assert_eq!(session.n_past(), 3 + n as u64);
}

#[test]
fn model_shared_across_threads() {
    let model = Model::load(&tiny_path());
    let model_ptr = model.0 as usize;
    let prompt = model.tokenize("shared model");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let prompt = prompt.clone();
            std::thread::spawn(move || {
                let session = Session::new(model_ptr as *const MambaModel, ptr::null());
                assert_eq!(session.eval(&prompt), MambaStatus::Ok);
                let (status, collected, _) = session.generate(&greedy(), 12, usize::MAX);
                assert_eq!(status, MambaStatus::Ok);
                collected.tokens
            })
        })
        .collect();
    let results: Vec<Vec<u32>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:?}");
}

#[test]
fn last_error_is_per_thread() {
    let model = Model::load(&tiny_path());
    let session = model.session();
    assert_eq!(session.eval(&[999]), MambaStatus::TokenOutOfRange);
    let other = std::thread::spawn(last_error).join().unwrap();
    assert_eq!(other, "");
    assert!(last_error().contains("999"));
}

#[test]
fn status_names() {
    let name = |status: i32| {
        // SAFETY: mamba_status_name returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(mamba_status_name(status)) }.to_str().unwrap().to_string()
    };
    assert_eq!(name(MambaStatus::Ok as i32), "MAMBA_STATUS_OK");
    assert_eq!(name(MambaStatus::StateMismatch as i32), "MAMBA_STATUS_STATE_MISMATCH");
    assert_eq!(name(-1), "MAMBA_STATUS_UNKNOWN");
    assert_eq!(name(1000), "MAMBA_STATUS_UNKNOWN");
    assert_eq!(mamba_api_version(), MAMBA_API_VERSION);
    // SAFETY: mamba_version returns a static NUL-terminated string.
    assert_eq!(unsafe { CStr::from_ptr(mamba_version()) }.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn hf_json_tokenizer_matches() {
    let ggml = Model::load(&tiny_path());
    let hf = Model::load(&tiny_hf_tokenizer_path());
    assert!(hf.info().has_tokenizer);
    assert_eq!(hf.info().eos_token_id, ggml.info().eos_token_id);

    let text = "def fibonacci(n): héllo 日本 🎉";
    let tokens = hf.tokenize(text);
    assert_eq!(tokens, ggml.tokenize(text));
    assert_eq!(hf.detokenize(&tokens), text);
    let session = hf.session();
    let pieces: Vec<String> = tokens.iter().map(|&t| session.decode(t)).collect();
    assert_eq!(pieces.concat(), text);
}
