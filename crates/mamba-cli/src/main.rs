//! `mamba-edge`: run Mamba language models from GGUF files on the CPU, or on a Vulkan GPU
//! in a build with the `vulkan` feature.

mod backend;
mod commands;
mod error;
mod model_file;
mod npy;
mod stream;
mod tokenizer;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::CliError;

#[derive(Parser)]
#[command(name = "mamba-edge", version, about = "Run Mamba (selective state space) language models from GGUF files")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a prompt, streaming it to stdout (speeds go to stderr).
    Generate(commands::generate::Args),
    /// Write the logits after each token of a token list to a .npy file.
    Logits(commands::logits::Args),
    /// Print the token ids of a text.
    Tokenize(commands::tokenize::Args),
    /// Print a model's architecture, hyperparameters, tensors and tokenizer.
    Info(InfoArgs),
    /// Measure prompt and generation speed and peak memory.
    Bench(commands::bench::Args),
    /// Compute perplexity and bits per byte over a text file, and optionally the KL
    /// divergence from a reference model.
    Perplexity(commands::perplexity::Args),
    /// List the Vulkan devices that --device selects from (needs a build with --features vulkan).
    Devices,
}

#[derive(clap::Args)]
struct InfoArgs {
    /// GGUF model file; the built-in default model when omitted.
    #[arg(short, long)]
    model: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), CliError> = match cli.command {
        Command::Generate(args) => commands::generate::run(&args),
        Command::Logits(args) => commands::logits::run(&args),
        Command::Tokenize(args) => commands::tokenize::run(&args),
        Command::Info(args) => commands::info::run(args.model.as_deref()),
        Command::Bench(args) => commands::bench::run(&args),
        Command::Perplexity(args) => commands::perplexity::run(&args),
        Command::Devices => commands::devices::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that closed the pipe early (`mamba-edge info ... | head`) wants no more
        // output, so exit quietly instead of reporting an error.
        Err(CliError::Stdout(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The temporary name an output file is written under before it is renamed into place:
/// the full file name plus `.partial`, so no other file's name can collide with it.
fn partial_path(path: &std::path::Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}
