#!/usr/bin/env python3
"""Quantize a GGUF file with llama.cpp's llama_model_quantize().

Usage: quantize_with_llamacpp.py IN.gguf OUT.gguf TYPE

TYPE is q4_0 or q8_0. The quantization is "pure": every tensor that llama.cpp
quantizes at all gets TYPE, including token_embd and output, which llama.cpp
would otherwise give other types (for example Q6_K for output at Q4_0).
Tensors that llama.cpp never quantizes (1-D tensors, ssm_a, ssm_d,
ssm_conv1d) stay as they are, and a matrix whose row length is not a
multiple of the block size (32) falls back to another type chosen by
llama.cpp.

If llama_cpp is not importable from the current interpreter, the script
re-runs itself with tests/reference/.llamacpp/venv/bin/python (build it with
build_llamacpp.sh).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
BUILD_VENV = HERE / ".llamacpp" / "venv"
BUILD_VENV_PYTHON = BUILD_VENV / "bin" / "python"

try:
    import llama_cpp
except ImportError:
    # Compare prefixes, not interpreter paths: venv interpreters are symlinks
    # that may resolve to the same base Python.
    if BUILD_VENV_PYTHON.is_file() and pathlib.Path(sys.prefix).resolve() != BUILD_VENV.resolve():
        os.execv(str(BUILD_VENV_PYTHON), [str(BUILD_VENV_PYTHON), __file__, *sys.argv[1:]])
    sys.exit(f"llama_cpp is not installed and {BUILD_VENV_PYTHON} does not exist; run tests/reference/build_llamacpp.sh")

FILE_TYPES = {
    "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
    "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", type=pathlib.Path, help="F32 or F16 GGUF file")
    parser.add_argument("output", type=pathlib.Path, help="quantized GGUF file to write")
    parser.add_argument("type", choices=sorted(FILE_TYPES), help="quantization type")
    args = parser.parse_args()

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FILE_TYPES[args.type]
    params.pure = True
    params.nthread = 2
    status = llama_cpp.llama_model_quantize(str(args.input).encode(), str(args.output).encode(), params)
    if status != 0:
        sys.exit(f"llama_model_quantize failed with status {status} for {args.input} -> {args.output}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
