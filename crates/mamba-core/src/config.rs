//! Model hyperparameters and the GGUF names that carry them.
//!
//! Keys and tensor names follow llama.cpp (`gguf-py/gguf/constants.py`, architectures
//! `mamba` and `mamba2`), so files move between the two engines unchanged.

/// Metadata keys. `{arch}` keys are formatted with [`arch_key`].
pub mod keys {
    /// Architecture name, for example `mamba`.
    pub const ARCHITECTURE: &str = "general.architecture";
    /// Human-readable model name.
    pub const NAME: &str = "general.name";
    /// llama.cpp `LLAMA_FTYPE` of the file's main tensors.
    pub const FILE_TYPE: &str = "general.file_type";
    /// Version of the quantized block layouts (2 for the current Q4_0/Q8_0).
    pub const QUANTIZATION_VERSION: &str = "general.quantization_version";
    /// Alignment of the tensor data section and of every tensor in it.
    pub const ALIGNMENT: &str = "general.alignment";

    /// Training context length (informational for a recurrent model).
    pub const CONTEXT_LENGTH: &str = "context_length";
    /// `d_model`.
    pub const EMBEDDING_LENGTH: &str = "embedding_length";
    /// Number of layers.
    pub const BLOCK_COUNT: &str = "block_count";
    /// Always 0 for Mamba; llama.cpp requires the key.
    pub const FEED_FORWARD_LENGTH: &str = "feed_forward_length";
    /// Always 0 for Mamba; llama.cpp requires the key.
    pub const HEAD_COUNT: &str = "attention.head_count";
    /// Epsilon of every RMSNorm.
    pub const LAYER_NORM_RMS_EPSILON: &str = "attention.layer_norm_rms_epsilon";
    /// `d_conv`.
    pub const SSM_CONV_KERNEL: &str = "ssm.conv_kernel";
    /// `d_inner`.
    pub const SSM_INNER_SIZE: &str = "ssm.inner_size";
    /// `d_state`.
    pub const SSM_STATE_SIZE: &str = "ssm.state_size";
    /// `dt_rank` for Mamba-1; the number of heads for Mamba-2.
    pub const SSM_TIME_STEP_RANK: &str = "ssm.time_step_rank";
    /// Mamba-2: `n_groups`, the number of B and C groups that the heads share.
    pub const SSM_GROUP_COUNT: &str = "ssm.group_count";
    /// Falcon-Mamba: RMS-normalise dt, B and C before the scan.
    pub const SSM_DT_B_C_RMS: &str = "ssm.dt_b_c_rms";
    /// Epsilon of the dt, B and C normalisation (`mixer_rms_eps` in `transformers`). Not a
    /// llama.cpp key: llama.cpp uses the layer epsilon, which is the default when it is absent.
    pub const SSM_DT_B_C_RMS_EPSILON: &str = "ssm.dt_b_c_rms_epsilon";
    /// Mamba-2: lower bound of dt after softplus (`time_step_limit[0]`). Not a llama.cpp key,
    /// and llama.cpp applies no bound. Absent means 0.
    pub const SSM_TIME_STEP_LIMIT_MIN: &str = "ssm.time_step_limit_min";
    /// Mamba-2: upper bound of dt after softplus (`time_step_limit[1]`). Not a llama.cpp key.
    /// Absent means no bound.
    pub const SSM_TIME_STEP_LIMIT_MAX: &str = "ssm.time_step_limit_max";

    /// Tokenizer family (`gpt2` for byte-level BPE).
    pub const TOKENIZER_MODEL: &str = "tokenizer.ggml.model";
    /// Pre-tokenizer name llama.cpp uses to pick its split regex.
    pub const TOKENIZER_PRE: &str = "tokenizer.ggml.pre";
    /// Array of token strings, indexed by id.
    pub const TOKENIZER_TOKENS: &str = "tokenizer.ggml.tokens";
    /// Array of token types (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    pub const TOKENIZER_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
    /// Array of BPE merges, `"left right"`.
    pub const TOKENIZER_MERGES: &str = "tokenizer.ggml.merges";
    /// Beginning-of-sequence token id.
    pub const TOKENIZER_BOS_ID: &str = "tokenizer.ggml.bos_token_id";
    /// End-of-sequence token id.
    pub const TOKENIZER_EOS_ID: &str = "tokenizer.ggml.eos_token_id";
    /// Unknown token id.
    pub const TOKENIZER_UNK_ID: &str = "tokenizer.ggml.unknown_token_id";
    /// Padding token id.
    pub const TOKENIZER_PAD_ID: &str = "tokenizer.ggml.padding_token_id";
    /// Whether llama.cpp prepends BOS when tokenizing.
    pub const TOKENIZER_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
    /// The whole Hugging Face `tokenizer.json`, as one string.
    pub const TOKENIZER_HF_JSON: &str = "tokenizer.huggingface.json";
}

/// Architecture name of Mamba-1 models (and Falcon-Mamba) in GGUF.
pub const ARCH_MAMBA: &str = "mamba";
/// Architecture name of Mamba-2 models in GGUF.
pub const ARCH_MAMBA2: &str = "mamba2";

/// Tensor names (without the `blk.N.` prefix for per-layer tensors).
pub mod tensors {
    /// Token embedding, GGUF shape `[d_model, n_vocab]`.
    pub const TOKEN_EMBD: &str = "token_embd.weight";
    /// Final RMSNorm weight, `[d_model]`.
    pub const OUTPUT_NORM: &str = "output_norm.weight";
    /// LM head, `[d_model, n_vocab]`; absent when tied to the embedding.
    pub const OUTPUT: &str = "output.weight";
    /// Pre-mixer RMSNorm weight, `[d_model]`.
    pub const ATTN_NORM: &str = "attn_norm.weight";
    /// in_proj. Mamba-1: `[d_model, 2 * d_inner]`, rows `0..d_inner` give x, the rest z.
    /// Mamba-2: `[d_model, 2 * d_inner + 2 * n_group * d_state + n_head]`, rows give z, then
    /// x, B, C (the conv input), then dt.
    pub const SSM_IN: &str = "ssm_in.weight";
    /// Depthwise conv kernel, `[d_conv, conv_dim]`; `conv_dim` is `d_inner` for Mamba-1 and
    /// `d_inner + 2 * n_group * d_state` for Mamba-2.
    pub const SSM_CONV1D_WEIGHT: &str = "ssm_conv1d.weight";
    /// Conv bias, `[conv_dim]`.
    pub const SSM_CONV1D_BIAS: &str = "ssm_conv1d.bias";
    /// x_proj, `[d_inner, dt_rank + 2 * d_state]`: rows give dt, B, C in that order.
    pub const SSM_X: &str = "ssm_x.weight";
    /// dt_proj weight, `[dt_rank, d_inner]`.
    pub const SSM_DT_WEIGHT: &str = "ssm_dt.weight";
    /// dt_proj bias, `[d_inner]`; Mamba-2's `dt_bias`, `[n_head]`.
    pub const SSM_DT_BIAS: &str = "ssm_dt.bias";
    /// A = -exp(A_log), `[d_state, d_inner]`; Mamba-2: `[1, n_head]`. No `.weight` suffix.
    pub const SSM_A: &str = "ssm_a";
    /// Skip connection D, `[d_inner]`; Mamba-2: `[1, n_head]`. No `.weight` suffix.
    pub const SSM_D: &str = "ssm_d";
    /// Mamba-2 gated RMSNorm weight, `[d_inner / n_group, n_group]`.
    pub const SSM_NORM: &str = "ssm_norm.weight";
    /// out_proj, `[d_inner, d_model]`.
    pub const SSM_OUT: &str = "ssm_out.weight";
}

/// Formats `{arch}.{key}` into `buf` and returns it, or `None` when `buf` is too small.
pub fn arch_key<'b>(buf: &'b mut [u8], arch: &str, key: &str) -> Option<&'b str> {
    join_into(buf, &[arch, ".", key])
}

/// Formats `blk.{layer}.{name}` into `buf` and returns it, or `None` when `buf` is too small.
pub fn layer_tensor_name<'b>(buf: &'b mut [u8], layer: usize, name: &str) -> Option<&'b str> {
    let mut digits = [0u8; 20];
    let layer = format_usize(&mut digits, layer);
    join_into(buf, &["blk.", layer, ".", name])
}

fn format_usize(buf: &mut [u8; 20], mut value: usize) -> &str {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    core::str::from_utf8(&buf[start..]).unwrap_or("0")
}

fn join_into<'b>(buf: &'b mut [u8], parts: &[&str]) -> Option<&'b str> {
    let mut len = 0;
    for part in parts {
        let end = len + part.len();
        buf.get_mut(len..end)?.copy_from_slice(part.as_bytes());
        len = end;
    }
    core::str::from_utf8(&buf[..len]).ok()
}
