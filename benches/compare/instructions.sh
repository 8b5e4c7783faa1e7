#!/usr/bin/env bash
# Count the instructions mamba-edge executes per token, on x86-64 under valgrind's callgrind
# and on aarch64 under qemu-aarch64 with the insn_count.c TCG plugin, one thread each.
#
# Per-token figures are differences between two runs that differ only in token count, so
# model loading and setup cancel out:
#   decode:  `bench -p 1 -n N` for N = DECODE_SHORT and DECODE_LONG
#   prefill: `bench -p P -n 0` for P = PREFILL_SHORT and PREFILL_LONG
# valgrind does not emulate AVX-512, so on x86-64 the kernels run their AVX2 tier there.
#
# Usage: benches/compare/instructions.sh GGUF...
# Environment: DECODE_SHORT (default 2), DECODE_LONG (6), PREFILL_SHORT (32),
# PREFILL_LONG (96), ARCHES (default "x86_64 aarch64"), BENCH_ARGS (more arguments for every
# `mamba-edge bench` run, for example `--exact-inputs`).
# Installs valgrind, qemu-user and the aarch64 toolchain with apt-get when missing (Debian 12).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ $# -eq 0 ]; then
    echo "usage: $0 GGUF..." >&2
    exit 2
fi
decode_short=${DECODE_SHORT:-2}
decode_long=${DECODE_LONG:-6}
prefill_short=${PREFILL_SHORT:-32}
prefill_long=${PREFILL_LONG:-96}
arches=${ARCHES:-"x86_64 aarch64"}
read -r -a bench_args <<<"${BENCH_ARGS:-}"
work=target/instructions
mkdir -p "$work"

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $sudo dpkg --add-architecture arm64
fi
packages=(gcc valgrind rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
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

x86_binary=target/release/mamba-edge
aarch64_binary=target/aarch64-unknown-linux-gnu/release/mamba-edge
plugin=$work/libinsn_count.so
for arch in $arches; do
    case $arch in
    x86_64)
        cargo build --release --quiet -p mamba-cli
        ;;
    aarch64)
        RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
            CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
            cargo build --release --quiet -p mamba-cli --target aarch64-unknown-linux-gnu
        gcc -shared -fPIC -O2 benches/compare/insn_count.c -o "$plugin"
        ;;
    *)
        echo "unknown architecture $arch in ARCHES; use x86_64 and/or aarch64" >&2
        exit 2
        ;;
    esac
done

# Prints the instructions that one `mamba-edge bench` run executes on $1 (x86_64 or aarch64).
count() {
    local arch=$1
    shift
    local log=$work/count-$arch.log
    case $arch in
    x86_64)
        valgrind --tool=callgrind --callgrind-out-file=/dev/null "$x86_binary" bench --threads 1 "${bench_args[@]}" "$@" >/dev/null 2>"$log"
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$log"
        ;;
    aarch64)
        # No -L: the sysroot's glibc mixed with the host's makes threaded programs spin.
        qemu-aarch64 -plugin "$plugin" "$aarch64_binary" bench --threads 1 "${bench_args[@]}" "$@" >/dev/null 2>"$log"
        sed -n 's/^guest instructions: \([0-9]*\)$/\1/p' "$log"
        ;;
    esac
}

echo "| file | architecture | decode (instructions/token) | prefill (instructions/token) |"
echo "|---|---|---|---|"
for gguf in "$@"; do
    for arch in $arches; do
        d1=$(count "$arch" --model "$gguf" -p 1 -n "$decode_short")
        d2=$(count "$arch" --model "$gguf" -p 1 -n "$decode_long")
        p1=$(count "$arch" --model "$gguf" -p "$prefill_short" -n 0)
        p2=$(count "$arch" --model "$gguf" -p "$prefill_long" -n 0)
        decode=$(((d2 - d1) / (decode_long - decode_short)))
        prefill=$(((p2 - p1) / (prefill_long - prefill_short)))
        printf '| %s | %s | %s | %s |\n' "$(basename "$gguf")" "$arch" \
            "$(printf "%'d" "$decode" 2>/dev/null || echo "$decode")" \
            "$(printf "%'d" "$prefill" 2>/dev/null || echo "$prefill")"
    done
done
