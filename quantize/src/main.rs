//! Command-line front end of the converter.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use mamba_core::GgmlType;
use mamba_quantize::{Options, Progress, convert};

/// Convert a Mamba-1, Mamba-2 or Falcon-Mamba checkpoint (Hugging Face format, or the original
/// mamba_ssm format for Mamba-1 and Mamba-2), or requantize a GGUF file, to GGUF.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Checkpoint directory or a .gguf file to requantize. A Hugging Face directory has
    /// config.json, model.safetensors (or a sharded index) and tokenizer.json; an original
    /// mamba_ssm directory has config.json and pytorch_model.bin.
    input: PathBuf,
    /// GGUF file to write. It is created only when the conversion succeeds.
    output: PathBuf,
    /// Type of the weight matrices: f32, f16, bf16, q8_0 or q4_0. Norms, conv kernels,
    /// A, D and biases stay f32.
    #[arg(long = "type", value_parser = parse_type)]
    target: GgmlType,
    /// tokenizer.json to embed, for checkpoints that ship without one (original mamba_ssm
    /// checkpoints use EleutherAI/gpt-neox-20b's). Default: tokenizer.json in the input
    /// directory.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
}

fn parse_type(name: &str) -> Result<GgmlType, String> {
    GgmlType::from_name(name)
        .ok_or_else(|| format!("unknown type {name:?}; use f32, f16, bf16, q8_0 or q4_0"))
}

/// Progress bar over tensors, hidden when stderr is not a terminal. Notes are printed
/// above the bar.
struct Bar {
    bar: ProgressBar,
}

impl Progress for Bar {
    fn start(&mut self, n_tensors: usize) {
        self.bar.set_length(n_tensors as u64);
    }

    fn tensor_done(&mut self, name: &str) {
        self.bar.set_message(name.to_owned());
        self.bar.inc(1);
    }

    fn note(&mut self, message: &str) {
        self.bar.suspend(|| eprintln!("note: {message}"));
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template("{bar:40} {pos}/{len} tensors {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut progress = Bar { bar };
    let options = Options {
        input: args.input,
        output: args.output,
        target: args.target,
        tokenizer: args.tokenizer,
    };

    let started = Instant::now();
    let result = convert(&options, &mut progress);
    progress.bar.finish_and_clear();
    match result {
        Ok(summary) => {
            println!(
                "wrote {} tensors to {} ({}): {} bytes in, {} bytes out, {:.1} s",
                summary.tensors_written,
                options.output.display(),
                options.target,
                summary.bytes_in,
                summary.bytes_out,
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
