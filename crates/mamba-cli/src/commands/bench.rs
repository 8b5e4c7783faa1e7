//! `mamba-edge bench`: prompt-processing and generation speed, and peak memory.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use mamba_core::sampling::argmax;

use crate::backend::{AnySession, BackendArgs, BackendModel};
use crate::error::CliError;
use crate::model_file::ModelFile;

/// Arguments of `bench`.
#[derive(clap::Args)]
pub struct Args {
    /// GGUF model file; the built-in default model when omitted.
    #[arg(short, long)]
    pub model: Option<PathBuf>,
    /// Prompt length in tokens.
    #[arg(short = 'p', long, default_value_t = 512)]
    pub n_prompt: usize,
    /// Number of tokens to generate.
    #[arg(short = 'n', long, default_value_t = 128)]
    pub n_gen: usize,
    /// Context tokens processed before the timed prompt and generation, untimed, to
    /// measure speed and memory after a long context (as llama-bench's `-d`).
    #[arg(short = 'd', long, default_value_t = 0)]
    pub depth: usize,
    /// Threads for the forward pass, the calling thread included. Default: the number of
    /// physical cores.
    #[arg(short, long, default_value_t = super::default_threads())]
    pub threads: usize,
    /// Prompt tokens per forward chunk.
    #[arg(long, default_value_t = mamba_core::session::DEFAULT_MAX_BATCH)]
    pub batch: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// Processes `depth` context tokens, then times a prefill of `n_prompt` tokens and `n_gen`
/// greedy decode steps.
pub fn run(args: &Args) -> Result<(), CliError> {
    for (option, value) in [("--n-prompt", args.n_prompt), ("--batch", args.batch), ("--threads", args.threads)] {
        if value == 0 {
            return Err(CliError::Usage(format!("{option} {value} is invalid: it must be at least 1")));
        }
    }
    let file = ModelFile::open_or_default(args.model.as_deref())?;
    let model = file.model()?;
    let n_vocab = model.config.n_vocab as u32;
    // The scratch buffers grow with the chunk size, and chunks longer than the prompt are
    // never filled, so a huge --batch must not size them.
    let backend = BackendModel::new(&model, &args.backend)?;
    let max_batch = args.batch.min(args.n_prompt.max(args.depth));
    let mut session = AnySession::with_max_batch(&model, &backend, args.threads, max_batch)?;

    // Fixed pseudo-random tokens: speed does not depend on the ids.
    let tokens = |offset: usize, count: usize| -> Vec<u32> {
        (offset..offset + count).map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 7) % n_vocab).collect()
    };
    if args.depth > 0 {
        session.prefill(&tokens(args.n_prompt, args.depth))?;
    }

    let prompt = tokens(0, args.n_prompt);
    let start = Instant::now();
    let mut next = argmax(session.prefill(&prompt)?);
    let prompt_seconds = start.elapsed().as_secs_f64();

    let start = Instant::now();
    for _ in 0..args.n_gen {
        next = argmax(session.step(next)?);
    }
    let gen_seconds = start.elapsed().as_secs_f64();

    let pp = rate(args.n_prompt, prompt_seconds);
    let tg = rate(args.n_gen, gen_seconds);
    let rss = peak_rss_bytes();
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        let report = serde_json::json!({
            "model": file.path().display().to_string(),
            "n_prompt": args.n_prompt,
            "n_gen": args.n_gen,
            "depth": args.depth,
            "threads": args.threads,
            "backend": args.backend.backend.name(),
            "kernels": kernels(args),
            "prompt_tokens_per_second": pp,
            "generation_tokens_per_second": tg,
            "peak_rss_bytes": rss,
        });
        writeln!(out, "{report}")
    } else {
        print_text(&mut out, file.path(), args, pp, tg, rss)
    };
    written.map_err(CliError::Stdout)
}

fn print_text(out: &mut impl Write, model: &std::path::Path, args: &Args, pp: f64, tg: f64, rss: Option<u64>) -> std::io::Result<()> {
    writeln!(out, "model: {}", model.display())?;
    writeln!(out, "backend: {}", args.backend.backend.name())?;
    writeln!(out, "kernels: {}", kernels(args))?;
    if args.depth > 0 {
        writeln!(out, "context:    {:>6} tokens before the prompt (untimed)", args.depth)?;
    }
    writeln!(out, "prompt:     {:>6} tokens  {:>10.2} tokens/s", args.n_prompt, pp)?;
    writeln!(out, "generation: {:>6} tokens  {:>10.2} tokens/s", args.n_gen, tg)?;
    match rss {
        Some(bytes) => writeln!(out, "peak RSS:   {:.1} MiB", bytes as f64 / (1024.0 * 1024.0)),
        None => writeln!(out, "peak RSS:   unavailable on this platform"),
    }
}

/// Names the CPU kernel tiers this run uses, for example `avx512, 8-bit inputs avx512-vnni`.
fn kernels(args: &Args) -> String {
    let tier = mamba_core::kernels::selected_tier();
    match (args.backend.inputs(), mamba_core::kernels::selected_int8_tier()) {
        (mamba_core::Inputs::Int8, Some(int8)) => format!("{tier}, 8-bit inputs {int8}"),
        (mamba_core::Inputs::Int8, None) => format!("{tier}, f32 inputs (no 8-bit tier on this CPU)"),
        (mamba_core::Inputs::Exact, _) => format!("{tier}, f32 inputs (--exact-inputs)"),
    }
}

/// Tokens per second, or 0 when nothing was timed, because JSON cannot represent the
/// infinity of a zero duration.
fn rate(tokens: usize, seconds: f64) -> f64 {
    if tokens > 0 && seconds > 0.0 { tokens as f64 / seconds } else { 0.0 }
}

/// Peak resident set size from `/proc/self/status` (`VmHWM`), where the OS provides it.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
