#!/usr/bin/env python3
"""Dump llama.cpp's logits for every position of one fixture token sequence.

Usage: llamacpp_logits.py GGUF TOKENS_JSON SEQ_INDEX OUT.npy [--batch N]

It loads GGUF with llama-cpp-python 0.3.36 (build it with build_llamacpp.sh),
evaluates sequence SEQ_INDEX of TOKENS_JSON ({"sequences": [[id, ...], ...]})
from an empty state with logits for all tokens, and saves a float32
[n_tokens, n_vocab] array to OUT.npy. n_vocab is llama.cpp's vocab size, which
is the GGUF token count. llama.cpp runs on the CPU with 2 threads.

If llama_cpp is not importable from the current interpreter, the script
re-runs itself with tests/reference/.llamacpp/venv/bin/python.
"""

from __future__ import annotations

import argparse
import json
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

import numpy as np


def llamacpp_logits(gguf_path: pathlib.Path, tokens: list[int], batch: int) -> np.ndarray:
    """Return llama.cpp's float32 logits [len(tokens), n_vocab] for one sequence."""
    model = llama_cpp.Llama(
        model_path=str(gguf_path),
        n_ctx=max(len(tokens), 16),
        n_batch=batch,
        n_ubatch=batch,
        n_threads=2,
        n_threads_batch=2,
        logits_all=True,
        n_gpu_layers=0,
        verbose=False,
    )
    try:
        model.reset()
        model.eval(tokens)
        return np.array(model.scores[: len(tokens)], dtype=np.float32)
    finally:
        model.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("gguf", type=pathlib.Path, help="GGUF model file")
    parser.add_argument("tokens_json", type=pathlib.Path, help='JSON file with {"sequences": [[id, ...], ...]}')
    parser.add_argument("seq_index", type=int, help="index of the sequence to evaluate")
    parser.add_argument("out", type=pathlib.Path, help="output .npy file")
    parser.add_argument(
        "--batch",
        type=int,
        default=0,
        help="tokens per llama_decode call (default 0: the whole sequence in one batch)",
    )
    args = parser.parse_args()

    sequences = json.loads(args.tokens_json.read_text())["sequences"]
    if not 0 <= args.seq_index < len(sequences):
        parser.error(f"seq_index {args.seq_index} is out of range; {args.tokens_json} has {len(sequences)} sequences")
    tokens = sequences[args.seq_index]
    batch = args.batch or len(tokens)

    logits = llamacpp_logits(args.gguf, tokens, batch)
    np.save(args.out, logits)
    print(f"wrote {args.out}: {logits.shape[0]} tokens x {logits.shape[1]} vocab")
    return 0


if __name__ == "__main__":
    sys.exit(main())
