#!/usr/bin/env bash
# C API checks: the Rust tests of mamba-ffi (the committed header included), the C example
# linked against the static and the shared library, a memcheck run of the shared build, and
# the same example cross-built for aarch64 and run under qemu-user.
#
# Installs what it needs with apt-get (Debian 12). Safe to rerun: builds are incremental.
# MAMBA_FFI_MODEL overrides the model the example runs; the default is the shipped
# models/default/model.gguf, or the tiny test model while that file does not exist.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
step() {
    echo "== $* ($((SECONDS - started)) s)"
}

step "system packages: gcc, valgrind, aarch64 toolchain, qemu-user"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $sudo dpkg --add-architecture arm64
fi
packages=(gcc make valgrind rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
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

model=${MAMBA_FFI_MODEL:-models/default/model.gguf}
if [ ! -f "$model" ] && [ -z "${MAMBA_FFI_MODEL:-}" ]; then
    echo "note: $model does not exist yet; using the tiny test model"
    model=tests/fixtures/tiny/llamacpp-q8_0.gguf
fi
echo "model: $model"

# Runs the example and checks that it reports matching sessions. Its stderr (model summary,
# state size, the comparison) is shown after its stdout (the streamed text).
run_example() {
    local log=target/c-example-run.log
    local status=0
    mkdir -p target
    "$@" 2>"$log" || status=$?
    cat "$log" >&2
    if [ "$status" -ne 0 ]; then
        echo "FAILED (exit status $status): $*" >&2
        return 1
    fi
    if ! grep -q "restored session continued identically" "$log"; then
        echo "FAILED: $* did not report matching sessions" >&2
        return 1
    fi
}

# --all-targets builds the libraries with the same dependency features as the tests (the
# dev-dependencies add some). A plain build would resolve them differently and relink
# libmamba_edge.{a,so}, whose file names carry no hash, on every run.
step "build libmamba_edge.a and libmamba_edge.so (release, x86_64) and the mamba-ffi tests"
cargo build --release --quiet -p mamba-ffi --all-targets

step "mamba-ffi tests (API from Rust; include/mamba_edge.h matches a fresh cbindgen run)"
cargo test --release --quiet -p mamba-ffi

step "build examples/c against the static and the shared library with gcc"
make --no-print-directory -C examples/c CC=gcc

step "run the statically linked example"
run_example target/c-example/generate-static "$model"

step "run the dynamically linked example"
run_example target/c-example/generate-shared "$model"

step "memcheck the dynamically linked example (valgrind, 8 tokens)"
valgrind --quiet --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
    --suppressions=examples/c/valgrind.supp \
    target/c-example/generate-shared "$model" "def fibonacci(n):" 8 >/dev/null
echo "memcheck: no errors, no definite, indirect or possible leaks outside the suppressed tokenizers caches"

step "cross-build libmamba_edge for aarch64-unknown-linux-gnu (Debian rustc)"
aarch64_target=target/ffi-aarch64
RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CARGO_TARGET_DIR=$aarch64_target \
    cargo build --release --quiet -p mamba-ffi --target aarch64-unknown-linux-gnu

step "build examples/c for aarch64 with aarch64-linux-gnu-gcc"
make --no-print-directory -C examples/c CC=aarch64-linux-gnu-gcc \
    LIB_DIR="$PWD/$aarch64_target/aarch64-unknown-linux-gnu/release" OUT_DIR="$PWD/target/c-example-aarch64"

step "run the aarch64 examples under qemu-aarch64"
run_example qemu-aarch64 -L /usr/aarch64-linux-gnu target/c-example-aarch64/generate-static "$model" "def fibonacci(n):" 16
run_example qemu-aarch64 -L /usr/aarch64-linux-gnu target/c-example-aarch64/generate-shared "$model" "def fibonacci(n):" 16

step "C API checks passed"
