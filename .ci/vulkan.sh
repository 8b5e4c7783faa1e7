#!/usr/bin/env bash
# Vulkan backend checks on Mesa's software driver (lavapipe): clippy with the Vulkan
# features, every shader against the CPU reference (shaders built by glslc, then by naga),
# whole-model runs against the CPU and transformers, the CLI and C API backend tests, and
# one CLI generation on the default model compared with the CPU's.
#
# Installs what it needs with apt-get (Debian 12). The Vulkan tests fail, not skip, when no
# device is found. VK_DRIVER_FILES pins lavapipe unless the caller sets it, so a machine
# with a real GPU still tests the driver CI uses.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
step() {
    echo "== $* ($((SECONDS - started)) s)"
}

step "system packages: lavapipe, Vulkan loader, vulkaninfo, glslc"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
fi
packages=(mesa-vulkan-drivers libvulkan1 libvulkan-dev vulkan-tools glslc)
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

icd=/usr/share/vulkan/icd.d/lvp_icd.$(uname -m).json
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-$icd}
if [ ! -f "$VK_DRIVER_FILES" ]; then
    echo "error: the Vulkan driver manifest $VK_DRIVER_FILES does not exist; install mesa-vulkan-drivers or set VK_DRIVER_FILES" >&2
    exit 1
fi
vulkaninfo --summary 2>/dev/null | grep -E "deviceName|driverInfo|apiVersion" || true

features=mamba-vulkan/gpu-tests,mamba-cli/vulkan,mamba-ffi/vulkan

step "clippy with the Vulkan features"
cargo clippy -p mamba-vulkan -p mamba-cli -p mamba-ffi --all-targets --features "$features" -- -D warnings

step "shaders and whole-model tests (glslc)"
MAMBA_VULKAN_SHADER_COMPILER=glslc cargo test --release -p mamba-vulkan --features gpu-tests -- --nocapture --test-threads 1

step "CLI and C API backend tests"
cargo test --release -p mamba-cli --features vulkan --test cli -- vulkan_ device_needs
cargo test --release -p mamba-ffi --features vulkan --test api -- vulkan_

step "one generation on the default model, Vulkan against CPU"
cargo build --release -p mamba-cli --features vulkan
bin=target/release/mamba-edge
"$bin" devices
gpu_text=$("$bin" generate "def fibonacci(n):" -n 64 --temp 0 --backend vulkan)
# The GPU multiplies f32 inputs, so the CPU keeps its decode inputs exact too.
cpu_text=$("$bin" generate "def fibonacci(n):" -n 64 --temp 0 --backend cpu --exact-inputs)
printf '%s\n' "$gpu_text"
if [ "$gpu_text" != "$cpu_text" ]; then
    echo "error: the Vulkan backend generated other text than the CPU:" >&2
    printf '%s\n' "$cpu_text" >&2
    exit 1
fi

step "shaders built by naga, the compiler of builds without glslc"
MAMBA_VULKAN_SHADER_COMPILER=naga cargo test --release -p mamba-vulkan --features gpu-tests --test shaders

step "done"
