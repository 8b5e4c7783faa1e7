//! `mamba-edge perplexity`: perplexity and bits per byte of a model over a text file, and
//! optionally its KL divergence from a reference model on the same tokens.
//!
//! The file is read and tokenized in chunks of about 64 KiB cut at line ends, and the tokens
//! run through the model in batches, so memory stays constant however long the file is.
//! Each chunk is tokenized on its own. A BPE merge across a chunk boundary is therefore
//! missed, which changes at most a few tokens per 64 KiB.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::time::Instant;

use mamba_core::pool::ThreadPool;
use mamba_core::{Model, Session};

use crate::error::CliError;
use crate::model_file::ModelFile;
use crate::tokenizer::ModelTokenizer;

/// Bytes of text tokenized at a time; a chunk ends at the first line end after this.
const CHUNK_BYTES: usize = 64 * 1024;
/// Maximum chunk length: a line longer than this is cut at a character boundary.
const MAX_CHUNK_BYTES: usize = 1024 * 1024;
/// Tokens evaluated per forward batch.
const BATCH: usize = 64;

/// Arguments of `perplexity`.
#[derive(clap::Args)]
pub struct Args {
    /// GGUF model file; the built-in default model when omitted.
    #[arg(short, long)]
    pub model: Option<PathBuf>,
    /// Text file to evaluate (UTF-8).
    #[arg(short, long)]
    pub file: PathBuf,
    /// Reset the state every N tokens, as a context window would; 0 runs the whole file as
    /// one sequence. The first token after each reset is not scored.
    #[arg(long, default_value_t = 0)]
    pub ctx: usize,
    /// Reference model (for example the F32 file) to compare against: adds the mean KL
    /// divergence KL(reference || model) and the top-1 agreement. Both models must share the
    /// tokenizer and vocabulary.
    #[arg(long)]
    pub kl_base: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Threads for the forward pass, the calling thread included. Default: the number of
    /// physical cores.
    #[arg(short, long, default_value_t = super::default_threads())]
    pub threads: usize,
}

/// Totals accumulated over the file.
#[derive(Default)]
struct Totals {
    /// Tokens scored (every token but the first of each window).
    tokens: u64,
    /// Tokens in the file.
    all_tokens: u64,
    /// UTF-8 bytes in the file.
    bytes: u64,
    nll: f64,
    base_nll: f64,
    kl: f64,
    kl_max: f64,
    top1_agree: u64,
}

/// Evaluates the model (and the reference) over the file and prints the scores.
pub fn run(args: &Args) -> Result<(), CliError> {
    let file = ModelFile::open_or_default(args.model.as_deref())?;
    let model = file.model()?;
    let tokenizer = ModelTokenizer::from_gguf(&model.gguf, file.path())?;
    let base_file = args.kl_base.as_deref().map(ModelFile::open).transpose()?;
    let base_model = base_file.as_ref().map(ModelFile::model).transpose()?;
    if let Some(base) = base_model.as_ref().filter(|base| base.config.n_vocab != model.config.n_vocab) {
        return Err(CliError::Usage(format!(
            "--kl-base has {} tokens in its vocabulary but the model has {}; compare files made from the same checkpoint",
            base.config.n_vocab, model.config.n_vocab
        )));
    }

    let text = File::open(&args.file).map_err(|source| CliError::Open { path: args.file.clone(), source })?;
    let total_bytes = text.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = BufReader::new(text);
    if args.threads == 0 {
        return Err(CliError::Usage("--threads 0 is invalid: it must be at least 1".into()));
    }
    // One pool serves both sessions, which run one after the other.
    let pool = ThreadPool::new(args.threads);
    let mut eval = Evaluator::new(&model, base_model.as_ref(), args.ctx, &pool);
    let progress = Progress::new(total_bytes);
    let start = Instant::now();

    // Tokenize chunk by chunk and feed the tokens in batches.
    let mut chunk = String::new();
    let mut read = 0u64;
    loop {
        chunk.clear();
        let n = read_chunk(&mut reader, &mut chunk)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", args.file.display())))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        let encoding = tokenizer
            .inner
            .encode(chunk.as_str(), false)
            .map_err(|e| CliError::Usage(format!("cannot tokenize {}: {e}", args.file.display())))?;
        let ids = encoding.get_ids();
        eval.totals.all_tokens += ids.len() as u64;
        eval.totals.bytes += chunk.len() as u64;
        for batch in ids.chunks(BATCH) {
            eval.feed(batch)?;
        }
        progress.update(read);
    }
    progress.finish();

    let t = &eval.totals;
    if t.tokens == 0 {
        return Err(CliError::Usage(format!(
            "{} gave fewer than two tokens per window: nothing to score; use a longer file or a larger --ctx",
            args.file.display()
        )));
    }
    report(args, t, start.elapsed().as_secs_f64())
}

/// Runs the model (and the reference) over batches and scores each next-token prediction.
struct Evaluator<'m> {
    session: Session<'m, Vec<f32>>,
    base: Option<Session<'m, Vec<f32>>>,
    ctx: usize,
    n_vocab: usize,
    /// Tokens fed since the last reset.
    in_window: usize,
    /// Logits after the last token fed, predicting the next one (model, then reference).
    pending: Option<(Vec<f32>, Vec<f32>)>,
    logits: Vec<f32>,
    base_logits: Vec<f32>,
    totals: Totals,
}

impl<'m> Evaluator<'m> {
    fn new(model: &'m Model<'m>, base: Option<&'m Model<'m>>, ctx: usize, pool: &'m ThreadPool) -> Self {
        let n_vocab = model.config.n_vocab;
        let session = |model| {
            let mut session = Session::with_max_batch(model, BATCH);
            session.set_parallel(pool);
            session
        };
        Self {
            session: session(model),
            base: base.map(session),
            ctx,
            n_vocab,
            in_window: 0,
            pending: None,
            logits: vec![0.0; BATCH * n_vocab],
            base_logits: vec![0.0; if base.is_some() { BATCH * n_vocab } else { 0 }],
            totals: Totals::default(),
        }
    }

    /// Feeds up to [`BATCH`] tokens.
    fn feed(&mut self, mut ids: &[u32]) -> Result<(), CliError> {
        while !ids.is_empty() {
            // Start a new window when the current one is full.
            if self.ctx > 0 && self.in_window == self.ctx {
                self.session.reset();
                if let Some(base) = &mut self.base {
                    base.reset();
                }
                self.in_window = 0;
                self.pending = None;
            }
            let room = if self.ctx > 0 { self.ctx - self.in_window } else { usize::MAX };
            let take = ids.len().min(room);
            let (batch, rest) = ids.split_at(take);
            self.run_batch(batch)?;
            ids = rest;
        }
        Ok(())
    }

    fn run_batch(&mut self, ids: &[u32]) -> Result<(), CliError> {
        let n_vocab = self.n_vocab;
        let logits = &mut self.logits;
        self.session.prefill_all(ids, |i, row| logits[i * n_vocab..(i + 1) * n_vocab].copy_from_slice(row))?;
        if let Some(base) = &mut self.base {
            let base_logits = &mut self.base_logits;
            base.prefill_all(ids, |i, row| base_logits[i * n_vocab..(i + 1) * n_vocab].copy_from_slice(row))?;
        }

        // The prediction carried from the previous batch scores this batch's first token.
        if let Some((model_row, base_row)) = self.pending.take() {
            let base_row = (!base_row.is_empty()).then_some(base_row.as_slice());
            score(&mut self.totals, &model_row, base_row, ids[0]);
        }
        for (i, &target) in ids.iter().enumerate().skip(1) {
            let model_row = &self.logits[(i - 1) * n_vocab..i * n_vocab];
            let base_row = (!self.base_logits.is_empty()).then(|| &self.base_logits[(i - 1) * n_vocab..i * n_vocab]);
            score(&mut self.totals, model_row, base_row, target);
        }

        // The last row predicts the next batch's first token.
        let last = ids.len() - 1;
        let model_row = self.logits[last * n_vocab..(last + 1) * n_vocab].to_vec();
        let base_row = if self.base_logits.is_empty() {
            Vec::new()
        } else {
            self.base_logits[last * n_vocab..(last + 1) * n_vocab].to_vec()
        };
        self.pending = Some((model_row, base_row));
        self.in_window += ids.len();
        Ok(())
    }
}

/// Adds the negative log-likelihood of `target` (and the divergence from the reference).
fn score(totals: &mut Totals, logits: &[f32], base: Option<&[f32]>, target: u32) {
    let log_probs = log_softmax(logits);
    totals.tokens += 1;
    totals.nll -= log_probs(target as usize);

    if let Some(base) = base {
        let base_log_probs = log_softmax(base);
        totals.base_nll -= base_log_probs(target as usize);
        let mut kl = 0.0f64;
        for i in 0..logits.len() {
            let lp = base_log_probs(i);
            kl += lp.exp() * (lp - log_probs(i));
        }
        let kl = kl.max(0.0);
        totals.kl += kl;
        totals.kl_max = totals.kl_max.max(kl);
        if mamba_core::sampling::argmax(logits) == mamba_core::sampling::argmax(base) {
            totals.top1_agree += 1;
        }
    }
}

/// Returns a function giving `log softmax(logits)[i]`, computed in f64.
fn log_softmax(logits: &[f32]) -> impl Fn(usize) -> f64 + '_ {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&v| (v as f64 - max).exp()).sum();
    let log_norm = max + sum.ln();
    move |i| logits[i] as f64 - log_norm
}

/// Appends the next chunk of text to `out`: at least [`CHUNK_BYTES`] unless the file ends,
/// cut at a line end or, for a very long line, at [`MAX_CHUNK_BYTES`]. Returns the bytes read.
fn read_chunk(reader: &mut impl BufRead, out: &mut String) -> std::io::Result<usize> {
    let mut raw = Vec::new();
    while raw.len() < CHUNK_BYTES {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            break;
        }
        let limit = (MAX_CHUNK_BYTES - raw.len()).min(available.len());
        // The first line end at or past the CHUNK_BYTES mark ends the chunk.
        let search_from = CHUNK_BYTES.saturating_sub(raw.len() + 1).min(limit);
        let cut = match available[search_from..limit].iter().position(|&b| b == b'\n') {
            Some(pos) => search_from + pos + 1,
            None => limit,
        };
        raw.extend_from_slice(&available[..cut]);
        reader.consume(cut);
        if raw.len() >= MAX_CHUNK_BYTES {
            break;
        }
    }

    // Keep an incomplete UTF-8 character at the end for the next chunk.
    let valid = match std::str::from_utf8(&raw) {
        Ok(_) => raw.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(e) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the text is not valid UTF-8 (byte offset {} of a chunk): {e}", e.valid_up_to()),
            ));
        }
    };
    let tail = raw.split_off(valid);
    out.push_str(std::str::from_utf8(&raw).unwrap_or_default());
    if !tail.is_empty() {
        // Read the rest of the character so the next chunk starts on a boundary.
        let mut rest = tail;
        while std::str::from_utf8(&rest).is_err() && rest.len() < 4 {
            let mut byte = [0u8; 1];
            if reader.read(&mut byte)? == 0 {
                break;
            }
            rest.push(byte[0]);
        }
        let text = std::str::from_utf8(&rest).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        out.push_str(text);
        return Ok(raw.len() + rest.len());
    }
    Ok(raw.len())
}

/// A progress bar on stderr, shown only when stderr is a terminal.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(total_bytes: u64) -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total_bytes);
            if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}") {
                bar.set_style(style);
            }
            bar
        });
        Self { bar }
    }

    fn update(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Bits per byte from a mean negative log-likelihood per scored token (nats): bits per token
/// times the file's tokens per byte, so unscored window-start tokens do not bias it.
fn bits_per_byte(t: &Totals, nll_per_token: f64) -> f64 {
    nll_per_token / std::f64::consts::LN_2 * t.all_tokens as f64 / t.bytes.max(1) as f64
}

fn report(args: &Args, t: &Totals, seconds: f64) -> Result<(), CliError> {
    let n = t.tokens as f64;
    let ppl = (t.nll / n).exp();
    let bpb = bits_per_byte(t, t.nll / n);
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        let mut report = serde_json::json!({
            "file": args.file.display().to_string(),
            "tokens": t.all_tokens,
            "scored_tokens": t.tokens,
            "bytes": t.bytes,
            "ctx": args.ctx,
            "perplexity": ppl,
            "bits_per_byte": bpb,
            "nll_per_token": t.nll / n,
            "seconds": seconds,
        });
        if args.kl_base.is_some() {
            report["base_perplexity"] = (t.base_nll / n).exp().into();
            report["base_bits_per_byte"] = bits_per_byte(t, t.base_nll / n).into();
            report["mean_kl"] = (t.kl / n).into();
            report["max_kl"] = t.kl_max.into();
            report["top1_agreement"] = (t.top1_agree as f64 / n).into();
        }
        writeln!(out, "{report}")
    } else {
        (|| {
            writeln!(out, "scored {} of {} tokens ({} bytes) in {:.1} s", t.tokens, t.all_tokens, t.bytes, seconds)?;
            writeln!(out, "perplexity: {ppl:.4}")?;
            writeln!(out, "bits per byte: {bpb:.4}")?;
            if args.kl_base.is_some() {
                writeln!(out, "reference perplexity: {:.4}", (t.base_nll / n).exp())?;
                writeln!(out, "mean KL divergence: {:.6} (max {:.6})", t.kl / n, t.kl_max)?;
                writeln!(out, "top-1 agreement: {:.2}%", 100.0 * t.top1_agree as f64 / n)?;
            }
            Ok(())
        })()
    };
    written.map_err(CliError::Stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `text` into chunks with a small read buffer, as a file read would.
    fn chunks(text: &str) -> Vec<String> {
        let mut reader = BufReader::with_capacity(1000, text.as_bytes());
        let mut out = Vec::new();
        loop {
            let mut chunk = String::new();
            if read_chunk(&mut reader, &mut chunk).unwrap() == 0 {
                return out;
            }
            out.push(chunk);
        }
    }

    #[test]
    fn chunks_end_at_line_ends() {
        let line = "x = 1  # a line of about forty bytes....\n";
        let text = line.repeat(5000);
        let parts = chunks(&text);
        assert!(parts.len() > 1, "a {} byte text needs several chunks", text.len());
        for part in &parts {
            assert!(part.ends_with('\n'), "chunk of {} bytes ends mid-line", part.len());
            assert!(part.len() >= CHUNK_BYTES || std::ptr::eq(part, parts.last().unwrap()));
            assert!(part.len() < CHUNK_BYTES + line.len() + 1, "chunk of {} bytes", part.len());
        }
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn long_line_is_cut_at_a_character_boundary() {
        let text = "é".repeat(MAX_CHUNK_BYTES);
        let parts = chunks(&text);
        assert!(parts.iter().all(|p| p.len() <= MAX_CHUNK_BYTES + 3));
        assert_eq!(parts.concat(), text);
    }
}
