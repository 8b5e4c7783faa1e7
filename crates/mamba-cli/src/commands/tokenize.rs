//! `mamba-edge tokenize`: token ids of a text, as the model's Hugging Face tokenizer gives them.

use std::path::PathBuf;

use crate::error::CliError;
use crate::model_file::ModelFile;
use crate::tokenizer::ModelTokenizer;

/// Arguments of `tokenize`.
#[derive(clap::Args)]
pub struct Args {
    /// GGUF model file.
    #[arg(short, long)]
    pub model: PathBuf,
    /// Also print each token's text piece.
    #[arg(long)]
    pub pieces: bool,
    /// Text to tokenize.
    pub text: String,
}

/// Prints the ids on one line, comma-separated, or one `id<TAB>piece` line per token.
pub fn run(args: &Args) -> Result<(), CliError> {
    let file = ModelFile::open(&args.model)?;
    let gguf = mamba_core::gguf::Gguf::parse(file.bytes())
        .map_err(|e| CliError::model(&args.model, e))?;
    let tokenizer = ModelTokenizer::from_gguf(&gguf, file.path())?;
    let ids = tokenizer.encode(&args.text)?;

    if args.pieces {
        for &id in &ids {
            let piece = tokenizer.inner.id_to_token(id).unwrap_or_default();
            println!("{id}\t{piece:?}");
        }
    } else {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        println!("{}", list.join(","));
    }
    Ok(())
}
