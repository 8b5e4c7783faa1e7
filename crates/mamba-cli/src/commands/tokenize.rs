//! `mamba-edge tokenize`: token ids of a text, as the model's Hugging Face tokenizer gives them.

use std::io::Write;
use std::path::PathBuf;

use crate::error::CliError;
use crate::model_file::ModelFile;
use crate::tokenizer::ModelTokenizer;

/// Arguments of `tokenize`.
#[derive(clap::Args)]
pub struct Args {
    /// GGUF model file; the built-in default model when omitted.
    #[arg(short, long)]
    pub model: Option<PathBuf>,
    /// Also print each token's text piece.
    #[arg(long)]
    pub pieces: bool,
    /// Text to tokenize.
    pub text: String,
}

/// Prints the ids on one line, comma-separated, or one `id<TAB>piece` line per token.
pub fn run(args: &Args) -> Result<(), CliError> {
    let file = ModelFile::open_or_default(args.model.as_deref())?;
    let gguf = mamba_core::gguf::Gguf::parse(file.bytes())
        .map_err(|e| CliError::model(file.path(), e))?;
    let tokenizer = ModelTokenizer::from_gguf(&gguf, file.path())?;
    let ids = tokenizer.encode(&args.text)?;

    let mut out = std::io::stdout().lock();
    let written = if args.pieces {
        ids.iter().try_for_each(|&id| {
            let piece = tokenizer.inner.id_to_token(id).unwrap_or_default();
            writeln!(out, "{id}\t{piece:?}")
        })
    } else {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        writeln!(out, "{}", list.join(","))
    };
    written.map_err(CliError::Stdout)
}
