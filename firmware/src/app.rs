//! Greedy generation with the micro model on fixed buffers, written to the board's serial.
//!
//! The output matches `mamba-edge generate "def fibonacci(n):" --model
//! models/micro/model.gguf --temp 0 -n 48` byte for byte: the prompt, the continuation and a
//! newline. Report lines starting with `[firmware] ` follow it.

use core::sync::atomic::{AtomicBool, Ordering};

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use embedded_io::Write;
use mamba_core::buffers::BufferSizes;
use mamba_core::config::keys;
use mamba_core::detokenize::{Utf8Stream, Vocab};
use mamba_core::{Config, Error, Model, Sampler, SamplerParams, Session};

use crate::board::Board;
use crate::prompt::{N_PREDICT, PROMPT_TOKENS};
use crate::stack;

/// Bytes aligned as the GGUF loader needs: 32 bytes covers the f32 tensors and GGUF's
/// default data alignment.
#[repr(C, align(32))]
struct Aligned<T: ?Sized>(T);

/// The shipped micro model (Q8_0), in flash.
static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!("../../models/micro/model.gguf"));

/// Hyperparameters of the micro model, for sizing the buffers at compile time. A different
/// model that does not fit them is rejected with the bytes it needs.
const MICRO: Config = Config::mamba1(128, 3, 256, 16, 8, 4, 512);
/// Prompt tokens per forward pass. One token at a time needs the least scratch memory and
/// gives the same tokens as larger chunks.
const MAX_BATCH: usize = 1;
const SIZES: BufferSizes = BufferSizes::new(&MICRO, MAX_BATCH);
/// Capacity for top-k candidates, so that non-greedy settings with `top_k` up to 40 (the
/// CLI's default) work too; greedy sampling does not use it.
const TOP_K_CAPACITY: usize = 40;
/// Half period of the start-up blinks of the status pin.
const STARTUP_BLINK_MS: u32 = 50;
/// Prompt and generated tokens, for the repetition penalty.
const HISTORY_CAPACITY: usize = PROMPT_TOKENS.len() + N_PREDICT;

/// The session's state and scratch buffers, in RAM (`.bss`), not on the stack.
struct Buffers {
    state: [f32; SIZES.state_len],
    scratch: [f32; SIZES.scratch_len],
}

static mut BUFFERS: Buffers = Buffers { state: [0.0; SIZES.state_len], scratch: [0.0; SIZES.scratch_len] };
static BUFFERS_TAKEN: AtomicBool = AtomicBool::new(false);

/// Returns the buffers the first time, `None` after that.
fn take_buffers() -> Option<&'static mut Buffers> {
    if BUFFERS_TAKEN.swap(true, Ordering::AcqRel) {
        return None;
    }
    // SAFETY: the flag above lets exactly one caller through, so this is the only reference
    // to BUFFERS for the rest of the program.
    Some(unsafe { &mut *core::ptr::addr_of_mut!(BUFFERS) })
}

/// Timings and counts of one run.
struct Report {
    generated: usize,
    prompt_micros: u32,
    generation_micros: u32,
}

/// Runs the prompt, streams the continuation and writes the report. Returns whether all of
/// it succeeded; an error is written to the serial as a report line.
pub fn run<B: Board>(board: &mut B) -> bool {
    // Two short blinks show that the firmware started, then the pin stays high while the
    // model runs.
    for _ in 0..2 {
        set_status(board, true);
        board.delay().delay_ms(STARTUP_BLINK_MS);
        set_status(board, false);
        board.delay().delay_ms(STARTUP_BLINK_MS);
    }
    set_status(board, true);
    let mut tokens = heapless::Vec::<u32, N_PREDICT>::new();
    let result = generate(board, &mut tokens);
    set_status(board, false);

    let clock_mhz = board.core_clock_hz() / 1_000_000;
    let serial = board.serial();
    let succeeded = result.is_ok();
    let written = match result {
        Ok(report) => write_report(serial, &report, &tokens, clock_mhz),
        Err(RunError::Model(e)) => writeln!(serial, "[firmware] error: {e}").map_err(|_| ()),
        Err(RunError::BuffersTaken) => {
            writeln!(serial, "[firmware] error: the session buffers are already in use; call app::run once").map_err(|_| ())
        }
        Err(RunError::Serial) => Err(()),
    };
    succeeded && written.is_ok()
}

/// Drives the status pin, when the board has one. Pin errors are ignored because the pin
/// only shows progress.
fn set_status<B: Board>(board: &mut B, high: bool) {
    if let Some(status) = board.status() {
        let _ = if high { status.set_high() } else { status.set_low() };
    }
}

/// The reason a run stopped.
enum RunError {
    Model(Error),
    /// `run` was called a second time; the static buffers serve one session.
    BuffersTaken,
    Serial,
}

impl From<Error> for RunError {
    fn from(e: Error) -> Self {
        Self::Model(e)
    }
}

fn generate<B: Board>(board: &mut B, tokens: &mut heapless::Vec<u32, N_PREDICT>) -> Result<Report, RunError> {
    let model = Model::from_bytes(&MODEL.0)?;
    let vocab = Vocab::from_gguf(&model.gguf)?;
    let eos = model.gguf.get(keys::TOKENIZER_EOS_ID).and_then(|v| v.as_u32());
    let buffers = take_buffers().ok_or(RunError::BuffersTaken)?;
    let mut session = Session::with_buffers(&model, &mut buffers.state[..], &mut buffers.scratch[..], MAX_BATCH)?;
    let mut sampler = Sampler::new(SamplerParams { seed: 0, ..SamplerParams::greedy() });
    let mut history = heapless::Vec::<u32, HISTORY_CAPACITY>::new();
    let _ = history.extend_from_slice(&PROMPT_TOKENS);

    // The prompt text, decoded from its tokens, as the CLI echoes the prompt.
    let mut text = Utf8Stream::new();
    for &token in &PROMPT_TOKENS {
        write_token(board.serial(), &mut text, &vocab, token)?;
    }

    let start = board.micros();
    let mut logits = session.prefill(&PROMPT_TOKENS)?;
    let prompt_micros = board.micros().wrapping_sub(start);

    // Sample, print, and feed each token back, stopping at the end-of-sequence token.
    let start = board.micros();
    while !tokens.is_full() {
        let token = sampler.sample_fixed::<TOP_K_CAPACITY>(logits, &history)?;
        if Some(token) == eos {
            break;
        }
        let _ = tokens.push(token);
        let _ = history.push(token);
        write_token(board.serial(), &mut text, &vocab, token)?;
        if !tokens.is_full() {
            logits = session.step(token)?;
        }
    }
    let generation_micros = board.micros().wrapping_sub(start);

    let serial = board.serial();
    text.finish(&mut |piece: &str| serial.write_all(piece.as_bytes()).map_err(|_| RunError::Serial))?;
    serial.write_all(b"\n").map_err(|_| RunError::Serial)?;
    Ok(Report { generated: tokens.len(), prompt_micros, generation_micros })
}

/// Writes the text that `token` completes.
fn write_token<W: Write>(serial: &mut W, text: &mut Utf8Stream, vocab: &Vocab<'_>, token: u32) -> Result<(), RunError> {
    let bytes = vocab.token_bytes(token)?;
    text.push_all(bytes, &mut |piece: &str| serial.write_all(piece.as_bytes()).map_err(|_| RunError::Serial))
}

fn write_report<W: Write>(serial: &mut W, report: &Report, tokens: &[u32], clock_mhz: u32) -> Result<(), ()> {
    let fail = |_| ();
    write!(serial, "[firmware] tokens:").map_err(fail)?;
    for (i, token) in tokens.iter().enumerate() {
        let separator = if i == 0 { " " } else { "," };
        write!(serial, "{separator}{token}").map_err(fail)?;
    }
    writeln!(serial).map_err(fail)?;
    writeln!(
        serial,
        "[firmware] prompt: {} tokens in {} us; generation: {} tokens in {} us ({} tokens/s, core clock {} MHz; under QEMU these times are emulated)",
        PROMPT_TOKENS.len(),
        report.prompt_micros,
        report.generated,
        report.generation_micros,
        tokens_per_second(report.generated, report.generation_micros),
        clock_mhz,
    )
    .map_err(fail)?;
    writeln!(
        serial,
        "[firmware] RAM: state {} bytes, scratch {} bytes; stack high-water mark {} of {} bytes",
        SIZES.state_bytes(),
        SIZES.scratch_bytes(),
        stack::high_water_mark(),
        stack::size(),
    )
    .map_err(fail)
}

/// Formats tokens per second with one decimal, using integer arithmetic only.
fn tokens_per_second(tokens: usize, micros: u32) -> TenthsFormat {
    let tenths = (tokens as u64 * 10_000_000).checked_div(u64::from(micros)).unwrap_or(0);
    TenthsFormat(tenths)
}

/// A number stored in tenths, displayed as `12.3`.
struct TenthsFormat(u64);

impl core::fmt::Display for TenthsFormat {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.0 / 10, self.0 % 10)
    }
}
