//! `mamba-edge generate`: stream a continuation of a prompt.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use mamba_core::{Sampler, SamplerParams};

use crate::backend::{AnySession, BackendArgs, BackendModel};
use crate::error::CliError;
use crate::model_file::ModelFile;
use crate::stream::TextStream;
use crate::tokenizer::ModelTokenizer;

/// Arguments of `generate`.
#[derive(clap::Args)]
pub struct Args {
    /// Prompt text. May be omitted with --state-in, to continue from the saved state.
    pub prompt: Option<String>,
    /// GGUF model file; the built-in default model when omitted.
    #[arg(short, long)]
    pub model: Option<PathBuf>,
    /// Maximum number of tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 128)]
    pub n_predict: usize,
    /// Sampling temperature; 0 picks the most likely token every step (greedy).
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    pub temp: f32,
    /// Sample from the K most likely tokens only; 0 disables the cut.
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Sample from the smallest set of tokens whose probabilities sum to P; 1.0 disables it.
    #[arg(long, default_value_t = 0.95, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Drop tokens less likely than P times the most likely one; 0 disables it.
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true)]
    pub min_p: f32,
    /// Penalty for tokens among the last 64 seen; 1.0 disables it.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub repeat_penalty: f32,
    /// RNG seed for sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Threads for the forward pass, the calling thread included. Default: the number of
    /// physical cores.
    #[arg(short, long, default_value_t = super::default_threads())]
    pub threads: usize,
    /// Keep generating after the end-of-sequence token.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Restore the session from this state file (written by --state-out) before the prompt.
    #[arg(long)]
    pub state_in: Option<PathBuf>,
    /// Save the session state here after the prompt and every generated token are processed.
    #[arg(long)]
    pub state_out: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// Runs the prompt, then samples and prints tokens until EOS or `-n`.
pub fn run(args: &Args) -> Result<(), CliError> {
    check_args(args)?;
    let file = ModelFile::open_or_default(args.model.as_deref())?;
    let model = file.model()?;
    let tokenizer = ModelTokenizer::from_gguf(&model.gguf, file.path())?;
    let backend = BackendModel::new(&model, &args.backend)?;
    let mut session = AnySession::new(&model, &backend, args.threads)?;

    // Restore a saved state first: the prompt then continues it.
    if let Some(path) = &args.state_in {
        let bytes = std::fs::read(path).map_err(|source| CliError::Open { path: path.clone(), source })?;
        session.load_state(&bytes).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    }

    // Prompt.
    let prompt = args.prompt.as_deref().unwrap_or("");
    let prompt_tokens = if prompt.is_empty() { Vec::new() } else { tokenizer.encode(prompt)? };
    if prompt_tokens.is_empty() && session.logits().is_none() {
        return Err(CliError::Usage(format!(
            "the prompt {prompt:?} gives no tokens: pass a non-empty prompt, or --state-in with a saved state to continue from"
        )));
    }
    let mut stdout = std::io::stdout().lock();
    write_flush(&mut stdout, prompt)?;
    let prompt_start = Instant::now();
    if !prompt_tokens.is_empty() {
        session.prefill(&prompt_tokens)?;
    }
    let prompt_seconds = prompt_start.elapsed().as_secs_f64();

    // Generation: sample, print, feed back.
    let params = SamplerParams {
        temperature: args.temp,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        repetition_penalty: args.repeat_penalty,
        repeat_last_n: 64,
        seed: args.seed,
    };
    let mut sampler = Sampler::new(params);
    let mut history = prompt_tokens.clone();
    let mut text = TextStream::new(&tokenizer.inner);
    let gen_start = Instant::now();
    let mut generated = 0usize;
    let mut pending: Option<u32> = None;
    while generated < args.n_predict {
        let logits = match pending.take() {
            Some(token) => session.step(token)?,
            None => session.logits().ok_or(mamba_core::Error::EmptyInput)?,
        };
        let token = sampler.sample(logits, &history);
        if !args.ignore_eos && Some(token) == tokenizer.eos {
            break;
        }
        generated += 1;
        history.push(token);
        if let Some(piece) = text.push(token)? {
            write_flush(&mut stdout, &piece)?;
        }
        pending = Some(token);
    }
    // The last sampled token is fed too, so a saved state continues after it.
    if let Some(token) = pending.filter(|_| args.state_out.is_some()) {
        session.step(token)?;
    }
    let gen_seconds = gen_start.elapsed().as_secs_f64();
    // Bytes of an incomplete UTF-8 character at the end come out as replacement characters.
    let rest = text.finish()?.unwrap_or_default();
    write_flush(&mut stdout, &format!("{rest}\n"))?;

    if let Some(path) = &args.state_out {
        write_state(path, &session.save_state_to_vec()?)?;
    }

    eprintln!(
        "prompt: {} tokens in {:.3} s ({:.1} tokens/s); generation: {} tokens in {:.3} s ({:.1} tokens/s)",
        prompt_tokens.len(),
        prompt_seconds,
        rate(prompt_tokens.len(), prompt_seconds),
        generated,
        gen_seconds,
        rate(generated, gen_seconds),
    );
    Ok(())
}

fn check_args(args: &Args) -> Result<(), CliError> {
    // Check where the state goes before any work, so a bad path does not cost a whole run.
    if let Some(path) = &args.state_out {
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        if path.is_dir() {
            return Err(CliError::Usage(format!("--state-out {} is a folder: give a file path, for example {}", path.display(), path.join("session.state").display())));
        }
        if !folder.is_dir() {
            return Err(CliError::Usage(format!("--state-out {}: the folder {} does not exist; create it or choose another path", path.display(), folder.display())));
        }
    }
    if !(args.temp.is_finite() && args.temp >= 0.0) {
        return Err(CliError::Usage(format!(
            "--temp {} is invalid: use 0 for greedy sampling or a positive number",
            args.temp
        )));
    }
    if !(0.0..=1.0).contains(&args.top_p) {
        return Err(CliError::Usage(format!("--top-p {} is invalid: it must be between 0 and 1", args.top_p)));
    }
    if !(0.0..=1.0).contains(&args.min_p) {
        return Err(CliError::Usage(format!("--min-p {} is invalid: it must be between 0 and 1", args.min_p)));
    }
    if !(args.repeat_penalty > 0.0 && args.repeat_penalty.is_finite()) {
        return Err(CliError::Usage(format!(
            "--repeat-penalty {} is invalid: it must be a positive number",
            args.repeat_penalty
        )));
    }
    if args.threads == 0 {
        return Err(CliError::Usage("--threads 0 is invalid: it must be at least 1".into()));
    }
    Ok(())
}

/// Writes `text` and flushes it, so each piece appears as soon as it is generated.
fn write_flush(out: &mut impl Write, text: &str) -> Result<(), CliError> {
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(CliError::Stdout)
}

fn rate(tokens: usize, seconds: f64) -> f64 {
    if seconds > 0.0 { tokens as f64 / seconds } else { 0.0 }
}

/// Writes through a temporary file so a failure never leaves a partial state file.
fn write_state(path: &PathBuf, bytes: &[u8]) -> Result<(), CliError> {
    let tmp = crate::partial_path(path);
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    result.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        CliError::Write { path: path.clone(), source }
    })
}
