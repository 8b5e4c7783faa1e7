#!/usr/bin/env bash
# No-alloc and firmware checks. Builds mamba-core for thumbv7em-none-eabihf without std or
# alloc and runs the failing-allocator host test. Then runs the Cortex-M4F firmware in QEMU
# (mps2-an386) and compares its output with the host CLI's for the same model, prompt, seed
# and greedy sampling.
#
# Installs what it needs with apt-get (Debian 12). Debian's rustc-web provides the compiler
# and the library sources that -Z build-std compiles core from, because rustup cannot add
# the thumbv7em target offline; RUSTC_BOOTSTRAP=1 enables -Z build-std on a stable cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
step() {
    echo "== $* ($((SECONDS - started)) s)"
}

step "system packages: Debian's rustc and library sources, lld, qemu-system-arm, llvm-size"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
fi
packages=(rustc-web rust-web-src lld-22 llvm-22 qemu-system-arm)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
cross_env=(env RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1)

step "mamba-core for thumbv7em-none-eabihf without std or alloc"
"${cross_env[@]}" cargo build --release -p mamba-core --no-default-features \
    --target thumbv7em-none-eabihf -Z build-std=core --target-dir target/thumbv7em-core

step "no-alloc host test under a failing allocator"
cargo clippy --release --manifest-path tests/no-alloc/Cargo.toml --all-targets -- -D warnings
cargo test --release --manifest-path tests/no-alloc/Cargo.toml

step "firmware build"
(cd firmware && "${cross_env[@]}" cargo build --release)
elf=firmware/target/thumbv7em-none-eabihf/release/mamba-firmware
llvm-size-22 -A "$elf" | grep -E '^(section|\.vector_table|\.text|\.rodata|\.data|\.bss|\.uninit) '

step "prompt tokens: firmware/src/prompt.rs against mamba-edge tokenize"
cargo build --release -p mamba-cli
cli=target/release/mamba-edge
model=models/micro/model.gguf
prompt="def fibonacci(n):"
expected_prompt=$("$cli" tokenize "$prompt" --model "$model")
committed_prompt=$(sed -n 's/.*PROMPT_TOKENS: \[u32; [0-9]*\] = \[\(.*\)\];/\1/p' firmware/src/prompt.rs | tr -d ' ')
if [ "$committed_prompt" != "$expected_prompt" ]; then
    echo "firmware/src/prompt.rs has prompt tokens [$committed_prompt], but mamba-edge tokenize gives [$expected_prompt]; update the file" >&2
    exit 1
fi

step "firmware run in qemu-system-arm -M mps2-an386"
out=target/firmware-ci
mkdir -p "$out"
status=0
timeout 300 qemu-system-arm -M mps2-an386 -cpu cortex-m4 -nographic \
    -semihosting-config enable=on,target=native -kernel "$elf" >"$out/firmware.txt" || status=$?
cat "$out/firmware.txt"
if [ "$status" -ne 0 ]; then
    echo "the firmware exited with status $status (124: it timed out after 300 s)" >&2
    exit 1
fi

step "firmware output against the host CLI (greedy, seed 0, 48 tokens, one thread)"
"$cli" generate "$prompt" --model "$model" --temp 0 --seed 0 -n 48 -t 1 >"$out/cli.txt" 2>/dev/null
grep -v '^\[firmware\] ' "$out/firmware.txt" >"$out/firmware-text.txt" || true
if ! cmp -s "$out/cli.txt" "$out/firmware-text.txt"; then
    echo "the firmware's text differs from mamba-edge generate:" >&2
    diff <(od -c "$out/cli.txt") <(od -c "$out/firmware-text.txt") >&2 || true
    exit 1
fi
# The CLI prints text only; its engine's token ids for this run are recorded in
# models/micro/expected.json (engine_q8_0), which tests/shipped_models.rs keeps current.
expected_ids=$(sed -n '/"engine_q8_0"/,$p' models/micro/expected.json | grep -m1 '"generated_token_ids"' |
    sed 's/.*\[\(.*\)\].*/\1/' | tr -d ' ')
firmware_ids=$(sed -n 's/^\[firmware\] tokens: //p' "$out/firmware.txt")
if [ -z "$expected_ids" ] || [ "$firmware_ids" != "$expected_ids" ]; then
    echo "the firmware generated tokens [$firmware_ids], but the host engine generated [$expected_ids]" >&2
    exit 1
fi
echo "firmware text and $(echo "$firmware_ids" | tr ',' '\n' | wc -l) tokens match the host"
step "done"
