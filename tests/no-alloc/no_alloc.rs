//! Runs the micro model through mamba-core built without `alloc`, under a global allocator
//! that fails every allocation while armed, and checks that greedy generation gives the
//! tokens and text that the std engine gave (`engine_q8_0` in models/micro/expected.json).
//!
//! A hidden allocation makes the process abort with "memory allocation of N bytes failed".
//! The harness is off (`harness = false`) because the libtest harness allocates on its own
//! threads while the allocator is armed.
// mamba-core's errors carry names inline because it has no heap, which makes them large.
#![allow(clippy::result_large_err)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use mamba_core::buffers::BufferSizes;
use mamba_core::detokenize::{Utf8Stream, Vocab};
use mamba_core::{Config, Error, Model, Sampler, SamplerParams, Session};

/// Passes allocations to the system allocator, and fails them while [`ARMED`] is set.
struct FailingAllocator;

static ARMED: AtomicBool = AtomicBool::new(false);

// SAFETY: every call is forwarded unchanged to `System`, or returns null, which `GlobalAlloc`
// allows for a failed allocation.
unsafe impl GlobalAlloc for FailingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::SeqCst) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller upholds `alloc`'s contract, which `System.alloc` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: FailingAllocator = FailingAllocator;

/// Bytes aligned as the GGUF loader needs: 32 bytes covers f32 tensors and GGUF's default
/// data alignment.
#[repr(C, align(32))]
struct Aligned<T: ?Sized>(T);

static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!("../../models/micro/model.gguf"));
const EXPECTED: &str = include_str!("../../models/micro/expected.json");

/// Hyperparameters of models/micro, for sizing the buffers at compile time.
const MICRO: Config = Config::mamba1(128, 3, 256, 16, 8, 4, 512);
/// Prompt tokens per chunk in the two runs: one token at a time as firmware runs, and
/// chunks that split the 11-token prompt unevenly.
const BATCHES: [usize; 2] = [1, 4];
const MAX_SIZES: BufferSizes = BufferSizes::new(&MICRO, 4);
/// Tokens the test generates, as many as expected.json records.
const N_PREDICT: usize = 48;

/// What one run produced, in fixed storage.
struct Run {
    tokens: heapless::Vec<u32, N_PREDICT>,
    text: heapless::String<1024>,
}

fn main() -> ExitCode {
    let expected_prompt = json_u32_array(EXPECTED, "\"prompt_token_ids\"");
    let expected_tokens = json_u32_array(EXPECTED.split("\"engine_q8_0\"").nth(1).unwrap_or(""), "\"generated_token_ids\"");
    let expected_text = json_string(EXPECTED.split("\"engine_q8_0\"").nth(1).unwrap_or(""), "\"generated_text\"");
    let mut failures = 0;
    if expected_tokens.len() != N_PREDICT || expected_prompt.is_empty() || expected_text.is_empty() {
        println!("FAIL expected.json: could not read the prompt ids and the {N_PREDICT} engine_q8_0 token ids and text");
        return ExitCode::FAILURE;
    }

    for max_batch in BATCHES {
        ARMED.store(true, Ordering::SeqCst);
        let result = generate(&expected_prompt, max_batch);
        ARMED.store(false, Ordering::SeqCst);
        match result {
            Ok(run) if run.tokens[..] == expected_tokens[..] && run.text.as_str() == expected_text => {
                println!("ok greedy run, max_batch {max_batch}: {} tokens as the std engine", run.tokens.len());
            }
            Ok(run) => {
                failures += 1;
                println!("FAIL greedy run, max_batch {max_batch}: tokens {:?}, text {:?}", run.tokens, run.text.as_str());
                println!("     expected tokens {expected_tokens:?}, text {expected_text:?}");
            }
            Err(e) => {
                failures += 1;
                println!("FAIL greedy run, max_batch {max_batch}: {e}");
            }
        }
    }

    let scratch_bytes = MAX_SIZES.scratch_bytes();
    let cases = [
        ("state", 100, MAX_SIZES.scratch_len, String::from("state buffer is too small: 58368 bytes needed, 400 bytes given; pass a buffer of at least 58368 bytes")),
        ("scratch", MAX_SIZES.state_len, 100, format!("scratch buffer is too small: {scratch_bytes} bytes needed, 400 bytes given; pass a buffer of at least {scratch_bytes} bytes")),
    ];
    for (buffer, state_len, scratch_len, expected_message) in cases {
        ARMED.store(true, Ordering::SeqCst);
        let message = too_small_message(state_len, scratch_len);
        ARMED.store(false, Ordering::SeqCst);
        if message == expected_message.as_str() {
            println!("ok small {buffer} buffer: {message}");
        } else {
            failures += 1;
            println!("FAIL small {buffer} buffer: got {:?}, expected {expected_message:?}", message.as_str());
        }
    }

    ARMED.store(true, Ordering::SeqCst);
    let sampled = sample_top_k(&expected_prompt);
    ARMED.store(false, Ordering::SeqCst);
    match sampled {
        Ok(tokens) => println!("ok top-k sampling: {} tokens without allocating", tokens.len()),
        Err(e) => {
            failures += 1;
            println!("FAIL top-k sampling: {e}");
        }
    }

    if failures == 0 {
        println!("no-alloc: all checks passed");
        ExitCode::SUCCESS
    } else {
        println!("no-alloc: {failures} checks failed");
        ExitCode::FAILURE
    }
}

/// Generates `N_PREDICT` tokens greedily after `prompt`, stopping at a control token, on
/// buffers on the stack.
fn generate(prompt: &[u32], max_batch: usize) -> Result<Run, Error> {
    let model = Model::from_bytes(&MODEL.0)?;
    let vocab = Vocab::from_gguf(&model.gguf)?;
    let mut state = [0.0f32; MAX_SIZES.state_len];
    let mut scratch = [0.0f32; MAX_SIZES.scratch_len];
    let mut session = Session::with_buffers(&model, &mut state[..], &mut scratch[..], max_batch)?;
    let mut sampler = Sampler::new(SamplerParams::greedy());
    let mut history = heapless::Vec::<u32, 64>::new();
    history.extend_from_slice(prompt).map_err(|_| Error::BufferTooSmall { buffer: "history", needed: 4 * prompt.len(), found: 4 * 64 })?;

    let mut run = Run { tokens: heapless::Vec::new(), text: heapless::String::new() };
    let mut stream = Utf8Stream::new();
    let mut logits = session.prefill(prompt)?;
    for _ in 0..N_PREDICT {
        let token = sampler.sample_fixed::<1>(logits, &history)?;
        if vocab.is_control(token) {
            break;
        }
        let _ = history.push(token);
        let _ = run.tokens.push(token);
        let text = &mut run.text;
        let mut emit = |piece: &str| {
            let needed = text.len() + piece.len();
            text.push_str(piece).map_err(|_| Error::BufferTooSmall { buffer: "text", needed, found: text.capacity() })
        };
        stream.push_all(vocab.token_bytes(token)?, &mut emit)?;
        logits = session.step(token)?;
    }
    Ok(run)
}

/// Formats the error for buffers of `state_len` and `scratch_len` values (one of them too
/// small for chunks of 4 tokens), without allocating.
fn too_small_message(state_len: usize, scratch_len: usize) -> heapless::String<256> {
    let mut message = heapless::String::new();
    let result = Model::from_bytes(&MODEL.0).and_then(|model| {
        let mut state = [0.0f32; MAX_SIZES.state_len];
        let mut scratch = [0.0f32; MAX_SIZES.scratch_len];
        Session::with_buffers(&model, &mut state[..state_len], &mut scratch[..scratch_len], 4).map(|_| ())
    });
    let _ = match result {
        Ok(()) => write!(message, "no error"),
        Err(e) => write!(message, "{e}"),
    };
    message
}

/// Samples 16 tokens with temperature, top-k, top-p, min-p and a repetition penalty.
fn sample_top_k(prompt: &[u32]) -> Result<heapless::Vec<u32, 16>, Error> {
    let model = Model::from_bytes(&MODEL.0)?;
    let mut state = [0.0f32; MAX_SIZES.state_len];
    let mut scratch = [0.0f32; MAX_SIZES.scratch_len];
    let mut session = Session::with_buffers(&model, &mut state[..], &mut scratch[..], 4)?;
    let params = SamplerParams { temperature: 0.8, top_k: 40, top_p: 0.95, min_p: 0.05, repetition_penalty: 1.1, repeat_last_n: 64, seed: 7 };
    let mut sampler = Sampler::new(params);
    let mut tokens = heapless::Vec::new();
    let mut logits = session.prefill(prompt)?;
    while !tokens.is_full() {
        let token = sampler.sample_fixed::<40>(logits, prompt)?;
        let _ = tokens.push(token);
        logits = session.step(token)?;
    }
    Ok(tokens)
}

/// Reads the array of unsigned integers that follows the first `key` in `json`; returns an
/// empty list when the key is absent. Enough for expected.json, without a JSON crate.
fn json_u32_array(json: &str, key: &str) -> Vec<u32> {
    let Some(after_key) = json.split_once(key).map(|(_, rest)| rest) else {
        return Vec::new();
    };
    let Some(body) = after_key.split_once('[').and_then(|(_, rest)| rest.split_once(']')).map(|(body, _)| body) else {
        return Vec::new();
    };
    body.split(',').filter_map(|item| item.trim().parse().ok()).collect()
}

/// Reads the string that follows the first `key` in `json`, undoing the escapes `\n`, `\t`,
/// `\"` and `\\`. Returns an empty string when the key is absent.
fn json_string(json: &str, key: &str) -> String {
    let Some(after_key) = json.split_once(key).and_then(|(_, rest)| rest.split_once('"')).map(|(_, rest)| rest) else {
        return String::new();
    };
    let mut out = String::new();
    let mut chars = after_key.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => break,
            },
            _ => out.push(ch),
        }
    }
    out
}
