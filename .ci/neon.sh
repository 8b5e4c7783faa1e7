#!/usr/bin/env bash
# Kernel checks on both architectures: the mamba-core tests cross-built for
# aarch64-unknown-linux-gnu and run under qemu-aarch64 (the NEON kernels against the scalar
# ones, and every other mamba-core test), the no_std aarch64 build, and the x86-64 kernel
# tests on this machine.
#
# Installs what it needs with apt-get (Debian 12). Safe to rerun: builds are incremental.
# The aarch64 build uses Debian's rustc-web, which ships the aarch64 standard library, with
# rustup's cargo, in its own target directory.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
step() {
    echo "== $* ($((SECONDS - started)) s)"
}

step "system packages: Debian rustc with the arm64 standard library, aarch64 gcc, qemu-user"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $sudo dpkg --add-architecture arm64
fi
packages=(rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
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

# The runner is plain qemu-aarch64. With `-L /usr/aarch64-linux-gnu` the host's and the
# sysroot's glibc get mixed, and the test harness's threads spin forever.
export RUSTC=/usr/bin/rustc
export RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
aarch64_target_dir=target/neon-aarch64

step "mamba-core tests for aarch64-unknown-linux-gnu under qemu-aarch64 (NEON tier)"
CARGO_TARGET_DIR=$aarch64_target_dir \
    cargo test --release --quiet -p mamba-core --target aarch64-unknown-linux-gnu

# qemu-aarch64's default CPU model (QEMU 7.2) has the dotprod extension, so the run above
# checks both 8-bit input tiers against the scalar specification. Cortex-A72 lacks dotprod,
# so there the dispatcher must select the baseline NEON tier, and the dotprod tier's tests
# are skipped.
step "8-bit input kernels on a CPU without dotprod (QEMU_CPU=cortex-a72)"
QEMU_CPU=cortex-a72 MAMBA_SKIP_MISSING_SIMD=1 CARGO_TARGET_DIR=$aarch64_target_dir \
    cargo test --release --quiet -p mamba-core --target aarch64-unknown-linux-gnu --test kernels_int8

step "mamba-core for aarch64 without std (kernels chosen at compile time)"
CARGO_TARGET_DIR=$aarch64_target_dir \
    cargo build --release --quiet -p mamba-core --no-default-features --target aarch64-unknown-linux-gnu

unset RUSTC RUSTDOC

# A CPU without AVX-512 fails these unless MAMBA_SKIP_MISSING_SIMD=1 is set.
step "x86-64 kernel tests (AVX2 and AVX-512 against scalar)"
cargo test --release --quiet -p mamba-core --test kernels_simd --test kernels_scalar

step "kernel checks passed"
