//! The error type of every conversion step.

use std::path::PathBuf;

/// A conversion failure. Each message names the file, the tensor or key, the value found and
/// what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    // ---- input and output paths ----
    /// Reading, mapping or inspecting a file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system error.
        source: std::io::Error,
    },

    /// The input is neither a directory nor a `.gguf` file.
    #[error(
        "{path} is not a Hugging Face checkpoint directory or a .gguf file; pass the directory \
         that contains config.json and model.safetensors, or a GGUF file to requantize"
    )]
    UnknownInput {
        /// The input path.
        path: PathBuf,
    },

    /// The output path names the input file.
    #[error("output {path} is the input file; write the converted model to a different path")]
    OutputIsInput {
        /// The output path.
        path: PathBuf,
    },

    /// The output path is a directory.
    #[error("output {path} is a directory; give a file name such as {path}/model.gguf")]
    OutputIsDirectory {
        /// The output path.
        path: PathBuf,
    },

    /// The output directory does not exist.
    #[error("output directory {path} does not exist; create it first")]
    MissingOutputDir {
        /// The directory part of the output path.
        path: PathBuf,
    },

    // ---- config.json ----
    /// `config.json` is missing from the checkpoint directory.
    #[error(
        "{path} not found; a Hugging Face Mamba checkpoint directory needs config.json next to \
         model.safetensors"
    )]
    MissingConfig {
        /// The expected path of config.json.
        path: PathBuf,
    },

    /// A JSON file is not valid JSON.
    #[error("{path} is not valid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser error, with line and column.
        source: serde_json::Error,
    },

    /// A required key is missing.
    #[error("{path}: missing key {key}; {hint}")]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The key, or the alternatives that were tried.
        key: String,
        /// The key's meaning and how to fix the file.
        hint: &'static str,
    },

    /// A key has a value of the wrong type or out of range.
    #[error("{path}: key {key} is {value}, expected {expected}")]
    InvalidValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The value found, as JSON or GGUF text.
        value: String,
        /// The type or range that is accepted.
        expected: String,
    },

    /// The checkpoint's architecture is not one the converter supports.
    #[error(
        "{path}: architecture {found} is not supported yet; mamba-quantize converts \
         MambaForCausalLM, FalconMambaForCausalLM and Mamba2ForCausalLM checkpoints"
    )]
    UnsupportedArchitecture {
        /// The file that names the architecture.
        path: PathBuf,
        /// The architecture names found.
        found: String,
    },

    /// A config option selects a layer variant that the engine does not compute.
    #[error("{path}: {key} is {value}, which mamba-edge does not support: {reason}")]
    UnsupportedOption {
        /// The config file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The value found, as JSON.
        value: String,
        /// The reason, with the value that does convert.
        reason: &'static str,
    },

    /// `use_bias` is true, which llama.cpp's Mamba graph cannot represent.
    #[error(
        "{path}: use_bias is true, but GGUF Mamba models have no in_proj/out_proj bias tensors \
         and llama.cpp would ignore them; only checkpoints with use_bias = false can be converted"
    )]
    ProjectionBias {
        /// The config file.
        path: PathBuf,
    },

    // ---- safetensors ----
    /// None of `model.safetensors`, `model.safetensors.index.json` and `pytorch_model.bin`
    /// exists.
    #[error(
        "{path} contains no weights: expected model.safetensors or model.safetensors.index.json \
         (Hugging Face format), or pytorch_model.bin (original mamba_ssm format); sharded .bin \
         checkpoints are not read, so re-save such a model with safe_serialization=True"
    )]
    MissingWeights {
        /// The checkpoint directory.
        path: PathBuf,
    },

    /// A safetensors file could not be parsed.
    #[error("{path} is not a valid safetensors file: {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },

    /// A safetensors shard index names a tensor its shard lacks, or repeats a tensor.
    #[error("{path}: {message}")]
    ShardIndex {
        /// The index file.
        path: PathBuf,
        /// Description of the inconsistency.
        message: String,
    },

    /// A source tensor has an element type that cannot be converted.
    #[error(
        "{path}: tensor {tensor} has dtype {dtype}; only F32, F16 and BF16 source tensors can be \
         converted, so re-save the checkpoint in one of those"
    )]
    UnsupportedDtype {
        /// The file holding the tensor.
        path: PathBuf,
        /// The tensor name as stored in the file.
        tensor: String,
        /// The element type found.
        dtype: String,
    },

    /// A tensor that every Mamba-1 checkpoint has is missing.
    #[error("{path}: tensor {tensor} is missing; {hint}")]
    MissingTensor {
        /// The file or directory searched.
        path: PathBuf,
        /// The expected tensor name.
        tensor: String,
        /// The reason it is needed or how to provide it.
        hint: String,
    },

    /// A tensor that has no place in a Mamba-1 GGUF file.
    #[error("{path}: unexpected tensor {tensor}; {reason}")]
    UnexpectedTensor {
        /// The file holding the tensor.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The reason it does not fit.
        reason: String,
    },

    /// A tensor's shape does not match the model dimensions.
    #[error(
        "{path}: tensor {tensor} has shape {found:?}, expected {expected:?} from {from}; check \
         that the config matches the weights"
    )]
    ShapeMismatch {
        /// The file holding the tensor.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The shape in the file.
        found: Vec<u64>,
        /// The shape the model dimensions require.
        expected: Vec<u64>,
        /// The dimensions that determine the expected shape.
        from: String,
    },

    // ---- pytorch_model.bin ----
    /// The ZIP container of a `torch.save` file could not be read.
    #[error("{path}: {source}")]
    Zip {
        /// The checkpoint file.
        path: PathBuf,
        /// The archive's defect.
        source: crate::zip_archive::ZipError,
    },

    /// The pickled state dict of a `torch.save` file was rejected.
    #[error("{path}: {entry}: {source}")]
    Pickle {
        /// The checkpoint file.
        path: PathBuf,
        /// The pickle's entry in the archive.
        entry: String,
        /// The reader's reason for the rejection.
        source: crate::pickle::PickleError,
    },

    /// A `torch.save` file is not laid out as the converter expects.
    #[error("{path}: {message}")]
    TorchFormat {
        /// The checkpoint file.
        path: PathBuf,
        /// The problem and what to do.
        message: String,
    },

    // ---- tokenizer ----
    /// A checkpoint without `tokenizer.json` was converted without `--tokenizer`.
    #[error(
        "{dir} has no tokenizer.json; original mamba_ssm checkpoints ship without one, so pass \
         the tokenizer file with --tokenizer (state-spaces Mamba models use the GPT-NeoX-20B \
         tokenizer, EleutherAI/gpt-neox-20b tokenizer.json)"
    )]
    TokenizerNotGiven {
        /// The checkpoint directory.
        dir: PathBuf,
    },

    /// `tokenizer.json` is missing from the checkpoint directory, or the file passed with
    /// `--tokenizer` does not exist.
    #[error(
        "{path} not found; copy the model's tokenizer.json into the checkpoint directory or \
         pass it with --tokenizer (state-spaces Mamba checkpoints use the GPT-NeoX-20B tokenizer, \
         EleutherAI/gpt-neox-20b tokenizer.json)"
    )]
    MissingTokenizer {
        /// The expected path of tokenizer.json.
        path: PathBuf,
    },

    /// `tokenizer.json` has a shape that cannot be turned into llama.cpp's arrays.
    #[error("{path}: {key}: {problem}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// The JSON path of the bad entry, for example `model.merges[3]`.
        key: String,
        /// The problem and how to fix it.
        problem: String,
    },

    // ---- tensor data ----
    /// Encoding or decoding a row failed, for example on a NaN or infinite weight.
    #[error("{path}: tensor {tensor} (GGUF {gguf_name}), row {row}: {message}")]
    TensorData {
        /// The file holding the source tensor.
        path: PathBuf,
        /// The source tensor name.
        tensor: String,
        /// The output tensor name.
        gguf_name: String,
        /// Row index in the output tensor (rows have `dims[0]` elements).
        row: u64,
        /// The failure, naming the element within the row.
        message: String,
    },

    // ---- GGUF ----
    /// The input GGUF file could not be parsed.
    #[error("{path}: {message}")]
    GgufRead {
        /// The GGUF file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },

    /// Writing the output GGUF file failed. The writer removes its temporary file, so no
    /// partial output remains.
    #[error("writing {path} failed: {message}")]
    GgufWrite {
        /// The output path.
        path: PathBuf,
        /// The writer's message.
        message: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = ConvertError> = std::result::Result<T, E>;
