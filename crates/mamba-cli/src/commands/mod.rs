//! One module per `mamba-edge` subcommand.

pub mod bench;
pub mod generate;
pub mod info;
pub mod logits;
pub mod perplexity;
pub mod tokenize;
