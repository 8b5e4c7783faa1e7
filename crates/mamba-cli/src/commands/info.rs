//! `mamba-edge info`: what a model file contains.

use std::io::Write;
use std::path::Path;

use mamba_core::Model;

use crate::error::CliError;
use crate::model_file::ModelFile;
use crate::tokenizer::ModelTokenizer;

/// Prints the architecture, hyperparameters, tensor table and tokenizer summary.
pub fn run(path: Option<&Path>) -> Result<(), CliError> {
    let file = ModelFile::open_or_default(path)?;
    let path = file.path();
    let model = file.model()?;
    let tokenizer = ModelTokenizer::from_gguf(&model.gguf, path);
    print_info(&mut std::io::stdout().lock(), &file, &model, &tokenizer).map_err(CliError::Stdout)
}

fn print_info(
    out: &mut impl Write,
    file: &ModelFile,
    model: &Model<'_>,
    tokenizer: &Result<ModelTokenizer, CliError>,
) -> std::io::Result<()> {
    let c = &model.config;
    let gguf = &model.gguf;

    writeln!(
        out,
        "file: {} ({} bytes, GGUF v{}, alignment {})",
        file.path().display(),
        file.bytes().len(),
        gguf.version(),
        gguf.alignment()
    )?;
    if let Some(name) = gguf.get(mamba_core::config::keys::NAME).and_then(|v| v.as_str()) {
        writeln!(out, "name: {name}")?;
    }
    writeln!(out, "architecture: {}", c.arch.name())?;
    writeln!(
        out,
        "d_model {}  n_layer {}  d_inner {}  d_state {}  dt_rank {}  d_conv {}  n_vocab {}  rms_eps {:e}",
        c.d_model, c.n_layer, c.d_inner, c.d_state, c.dt_rank, c.d_conv, c.n_vocab, c.rms_eps
    )?;
    match c.arch {
        mamba_core::Arch::Mamba2 => {
            let limit = if c.dt_max.is_finite() || c.dt_min > 0.0 {
                format!("  dt clamped to {}..={}", c.dt_min, c.dt_max)
            } else {
                String::new()
            };
            writeln!(out, "heads {} of {} channels  groups {}{limit}", c.n_head, c.head_dim, c.n_group)?;
        }
        mamba_core::Arch::Mamba if c.dt_b_c_rms => {
            writeln!(out, "Falcon-Mamba: dt, B and C RMS-normalised with eps {:e}", c.dt_b_c_rms_eps)?;
        }
        mamba_core::Arch::Mamba => {}
    }
    writeln!(
        out,
        "lm head: {}; state per session: {} bytes; weights: {} bytes",
        if model.tied_output { "tied to the token embedding" } else { "separate" },
        4 * c.state_len(),
        model.weight_bytes()
    )?;
    let int8 = mamba_core::kernels::selected_int8_tier().unwrap_or("none, so decode keeps f32 inputs");
    writeln!(out, "CPU kernels: {}; 8-bit decode inputs: {int8}", mamba_core::kernels::selected_tier())?;

    writeln!(out)?;
    writeln!(out, "{:<32} {:>6} {:>24} {:>12}", "tensor", "type", "shape (GGUF order)", "bytes")?;
    for t in gguf.tensors() {
        let shape: Vec<String> = t.shape().iter().map(u64::to_string).collect();
        writeln!(out, "{:<32} {:>6} {:>24} {:>12}", t.name, t.dtype.name(), shape.join(" x "), t.data.len())?;
    }

    writeln!(out)?;
    match tokenizer {
        Ok(tok) => writeln!(
            out,
            "tokenizer: {} tokens from {}; bos {:?}, eos {:?}",
            tok.vocab_size(),
            tok.source,
            tok.bos,
            tok.eos
        ),
        Err(e) => writeln!(out, "tokenizer: unavailable ({e})"),
    }
}
