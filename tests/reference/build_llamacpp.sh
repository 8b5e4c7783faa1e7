#!/usr/bin/env bash
# Build llama-cpp-python (and with it the vendored llama.cpp) from the sdist
# that fetch_llamacpp.sh extracted, into its own venv at
# tests/reference/.llamacpp/venv. The build is CPU-only and skips llama.cpp's
# tests, tools, examples, server and the multimodal (mtmd) library, which the
# logits dump does not need. Expect 15-30 minutes on 2 cores.
#
# Usage: tests/reference/build_llamacpp.sh
# Environment: PYTHON3 (default python3) creates the venv; JOBS (default
# nproc) sets the number of parallel compile jobs.
set -euo pipefail

VERSION=0.3.36
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$HERE/.llamacpp"
SRC="$WORK/llama_cpp_python-$VERSION"
VENV="$WORK/venv"

if [[ ! -d "$SRC" ]]; then
    "$HERE/fetch_llamacpp.sh"
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    "${PYTHON3:-python3}" -m venv "$VENV"
fi

if "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
    echo "llama_cpp already installed in $VENV"
    exit 0
fi

export CMAKE_BUILD_PARALLEL_LEVEL="${JOBS:-$(nproc)}"
export CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_BLAS=OFF \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
-DLLAMA_BUILD_APP=OFF -DCMAKE_BUILD_TYPE=Release"
"$VENV/bin/python" -m pip install --no-cache-dir --verbose "$SRC" 2>&1 | tee "$WORK/build.log" | grep -E '^\s*(\[[0-9]+/[0-9]+\]|Successfully|ERROR|error)' | cut -c1-100 || true
"$VENV/bin/python" -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__)"
