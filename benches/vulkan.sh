#!/usr/bin/env bash
# Prompt (prefill) and generation (decode) speed of the Vulkan backend on whatever Vulkan
# device is present, next to the CPU backend on the same machine.
#
#   benches/vulkan.sh [MODEL.gguf]
#
# Environment: DEVICE (a `mamba-edge devices` index; default: the preferred device),
# PROMPT_TOKENS (about this many prompt tokens, default 512), GEN_TOKENS (default 128),
# RUNS (default 3; the best run counts), THREADS (CPU threads, default: physical cores).
# The model defaults to the built-in one. Each run is a fresh process, so the first
# command buffer recordings of every chunk length are part of the prompt time.
#
# NOTE: on lavapipe (Mesa's software driver) these are CPU speeds through an emulated GPU,
# far below both the CPU backend and any real GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

model=${1:-}
prompt_tokens=${PROMPT_TOKENS:-512}
gen_tokens=${GEN_TOKENS:-128}
runs=${RUNS:-3}

cargo build --release --quiet -p mamba-cli --features vulkan
bin=target/release/mamba-edge
"$bin" devices

# The prompt repeats a line of Python; the default model's tokenizer gives about 27 tokens
# per repetition, other tokenizers more or fewer.
prompt=""
for _ in $(seq 1 $((prompt_tokens / 27 + 1))); do
    prompt+="def fibonacci(n): return n if n < 2 else fibonacci(n - 1)"$'\n'
done

model_args=()
if [ -n "$model" ]; then
    model_args=(--model "$model")
fi
device_args=()
if [ -n "${DEVICE:-}" ]; then
    device_args=(--device "$DEVICE")
fi
thread_args=()
if [ -n "${THREADS:-}" ]; then
    thread_args=(--threads "$THREADS")
fi

# Prints "prompt_tokens prompt_rate gen_tokens gen_rate" of the best of $runs runs.
measure() {
    local best_prompt=0 best_gen=0 line n_prompt n_gen
    for _ in $(seq 1 "$runs"); do
        line=$("$bin" generate "$prompt" -n "$gen_tokens" --temp 0 --ignore-eos "${model_args[@]}" "$@" 2>&1 >/dev/null | grep '^prompt:')
        # "prompt: N tokens in S s (R tokens/s); generation: N tokens in S s (R tokens/s)"
        n_prompt=$(echo "$line" | sed -E 's/^prompt: ([0-9]+) tokens.*/\1/')
        n_gen=$(echo "$line" | sed -E 's/.*generation: ([0-9]+) tokens.*/\1/')
        local prompt_rate gen_rate
        prompt_rate=$(echo "$line" | sed -E 's/^prompt:[^(]*\(([0-9.]+) tokens\/s\).*/\1/')
        gen_rate=$(echo "$line" | sed -E 's/.*generation:[^(]*\(([0-9.]+) tokens\/s\).*/\1/')
        best_prompt=$(awk -v a="$best_prompt" -v b="$prompt_rate" 'BEGIN { print (b > a) ? b : a }')
        best_gen=$(awk -v a="$best_gen" -v b="$gen_rate" 'BEGIN { print (b > a) ? b : a }')
    done
    echo "$n_prompt $best_prompt $n_gen $best_gen"
}

echo "backend  prompt tokens  prefill tokens/s  generated  decode tokens/s  (best of $runs)"
read -r n_prompt prompt_rate n_gen gen_rate < <(measure --backend vulkan "${device_args[@]}")
printf '%-8s %14s %17s %10s %16s\n' vulkan "$n_prompt" "$prompt_rate" "$n_gen" "$gen_rate"
read -r n_prompt prompt_rate n_gen gen_rate < <(measure --backend cpu "${thread_args[@]}")
printf '%-8s %14s %17s %10s %16s\n' cpu "$n_prompt" "$prompt_rate" "$n_gen" "$gen_rate"
