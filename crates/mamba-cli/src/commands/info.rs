//! `mamba-edge info`: what a model file contains.

use std::path::Path;

use crate::error::CliError;
use crate::model_file::ModelFile;
use crate::tokenizer::ModelTokenizer;

/// Prints the architecture, hyperparameters, tensor table and tokenizer summary.
pub fn run(path: &Path) -> Result<(), CliError> {
    let file = ModelFile::open(path)?;
    let model = file.model()?;
    let c = &model.config;
    let gguf = &model.gguf;

    println!("file: {} ({} bytes, GGUF v{}, alignment {})", path.display(), file.bytes().len(), gguf.version(), gguf.alignment());
    if let Some(name) = gguf.get(mamba_core::config::keys::NAME).and_then(|v| v.as_str()) {
        println!("name: {name}");
    }
    println!("architecture: {}", c.arch.name());
    println!(
        "d_model {}  n_layer {}  d_inner {}  d_state {}  dt_rank {}  d_conv {}  n_vocab {}  rms_eps {:e}",
        c.d_model, c.n_layer, c.d_inner, c.d_state, c.dt_rank, c.d_conv, c.n_vocab, c.rms_eps
    );
    println!(
        "lm head: {}; state per session: {} bytes; weights: {} bytes",
        if model.tied_output { "tied to the token embedding" } else { "separate" },
        4 * c.state_len(),
        model.weight_bytes()
    );

    println!();
    println!("{:<32} {:>6} {:>24} {:>12}", "tensor", "type", "shape (GGUF order)", "bytes");
    for t in gguf.tensors() {
        let shape: Vec<String> = t.shape().iter().map(u64::to_string).collect();
        println!("{:<32} {:>6} {:>24} {:>12}", t.name, t.dtype.name(), shape.join(" x "), t.data.len());
    }

    println!();
    match ModelTokenizer::from_gguf(gguf, path) {
        Ok(tok) => println!(
            "tokenizer: {} tokens from {}; bos {:?}, eos {:?}",
            tok.vocab_size(),
            tok.source,
            tok.bos,
            tok.eos
        ),
        Err(e) => println!("tokenizer: unavailable ({e})"),
    }
    Ok(())
}
