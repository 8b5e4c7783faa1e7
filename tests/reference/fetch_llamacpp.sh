#!/usr/bin/env bash
# Download the llama-cpp-python sdist from PyPI and extract it into the ignored
# directory tests/reference/.llamacpp/. The sdist vendors a full llama.cpp
# checkout (vendor/llama.cpp), which provides convert_hf_to_gguf.py, gguf-py
# and the C++ sources that build_llamacpp.sh compiles.
#
# Usage: tests/reference/fetch_llamacpp.sh
# Environment: PYTHON (default /work/pyenv/venv/bin/python) runs pip.
set -euo pipefail

VERSION=0.3.36
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$HERE/.llamacpp"
PYTHON="${PYTHON:-/work/pyenv/venv/bin/python}"
SRC="$WORK/llama_cpp_python-$VERSION"

mkdir -p "$WORK/dl"
SDIST="$WORK/dl/llama_cpp_python-$VERSION.tar.gz"
if [[ ! -f "$SDIST" ]]; then
    # --no-binary :all: would also force pip to build the sdist's build
    # dependencies (cmake, ninja) from source just to read its metadata, which
    # takes far longer than the download, so only this package is restricted.
    "$PYTHON" -m pip download --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$VERSION" -d "$WORK/dl"
fi

if [[ ! -d "$SRC" ]]; then
    tar -xzf "$SDIST" -C "$WORK"
fi

# The sdist keeps the submodule's git metadata: HEAD there is the vendored
# llama.cpp commit, and CHANGELOG.md names the same commit for each release.
echo "llama-cpp-python: $VERSION"
echo "source: $SRC"
HEAD_FILE="$SRC/.git/modules/vendor/llama.cpp/HEAD"
if [[ -f "$HEAD_FILE" ]]; then
    echo "vendored llama.cpp commit: $(cat "$HEAD_FILE")"
else
    echo "vendored llama.cpp commit: not recorded in the sdist ($HEAD_FILE missing)"
fi
grep -m1 -o 'llama.cpp@[0-9a-f]*' "$SRC/CHANGELOG.md" | sed 's/^/CHANGELOG entry for this release: /' || true
