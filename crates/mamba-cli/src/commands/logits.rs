//! `mamba-edge logits`: the logits after each token of a token list, as a `.npy` file.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use mamba_core::{Inputs, Session};

use crate::error::CliError;
use crate::model_file::ModelFile;
use crate::npy;

/// Arguments of `logits`.
#[derive(clap::Args)]
pub struct Args {
    /// GGUF model file; the built-in default model when omitted.
    #[arg(short, long)]
    pub model: Option<PathBuf>,
    /// Comma-separated token ids, for example `1,2,3`.
    #[arg(long, value_delimiter = ',', required = true)]
    pub tokens: Vec<u32>,
    /// Feed the tokens one at a time (decode path) instead of as one prompt (prefill path).
    #[arg(long)]
    pub step: bool,
    /// Prompt tokens per forward chunk on the prefill path.
    #[arg(long, default_value_t = mamba_core::session::DEFAULT_MAX_BATCH)]
    pub batch: usize,
    /// Output file: float32 array of shape [n_tokens, n_vocab].
    #[arg(long)]
    pub out: PathBuf,
    /// Threads for the forward pass, the calling thread included. Default: the number of
    /// physical cores.
    #[arg(short, long, default_value_t = super::default_threads())]
    pub threads: usize,
    /// With --step, keep the inputs of Q8_0 and Q4_0 matrix products in f32 instead of
    /// rounding them to 8 bits (the prefill path always keeps them in f32).
    #[arg(long)]
    pub exact_inputs: bool,
}

/// Runs the model over the tokens and writes every position's logits.
pub fn run(args: &Args) -> Result<(), CliError> {
    let file = ModelFile::open_or_default(args.model.as_deref())?;
    let model = file.model()?;
    let n_vocab = model.config.n_vocab;
    if args.batch == 0 {
        return Err(CliError::Usage("--batch 0 is invalid: it must be at least 1".into()));
    }
    if args.threads == 0 {
        return Err(CliError::Usage("--threads 0 is invalid: it must be at least 1".into()));
    }

    // The scratch buffers grow with the chunk size, and chunks longer than the token list are
    // never filled, so a huge --batch must not size them.
    let mut session = Session::with_max_batch(&model, args.batch.min(args.tokens.len().max(1)));
    session.set_threads(args.threads);
    session.set_inputs(if args.exact_inputs { Inputs::Exact } else { Inputs::Int8 });
    let mut all = vec![0.0f32; args.tokens.len() * n_vocab];
    if args.step {
        for (i, &token) in args.tokens.iter().enumerate() {
            let logits = session.step(token)?;
            all[i * n_vocab..(i + 1) * n_vocab].copy_from_slice(logits);
        }
    } else {
        session.prefill_all(&args.tokens, |i, logits| {
            all[i * n_vocab..(i + 1) * n_vocab].copy_from_slice(logits);
        })?;
    }

    // Write to a temporary file and rename, so a failed run leaves no partial output.
    let tmp = crate::partial_path(&args.out);
    let write = |path: &PathBuf| -> std::io::Result<()> {
        let mut out = BufWriter::new(File::create(path)?);
        npy::write_f32_2d(&mut out, args.tokens.len(), n_vocab, &all)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    };
    if let Err(source) = write(&tmp).and_then(|()| std::fs::rename(&tmp, &args.out)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(CliError::Write { path: args.out.clone(), source });
    }
    Ok(())
}
