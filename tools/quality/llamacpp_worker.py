#!/usr/bin/env python3
"""Serve llama.cpp logits for token windows of one GGUF file, one request per line.

Usage: llamacpp_worker.py GGUF --ctx N [--threads T]

quality.py starts one worker per GGUF file with the interpreter of
tests/reference/.llamacpp/venv (llama-cpp-python 0.3.36). The worker loads the
file once and then reads requests from stdin, one JSON object per line:

    {"tokens": [id, ...], "out": "PATH.npy"}

For each it clears the recurrent state, evaluates the tokens as one batch with
logits for every position, saves a float32 [len(tokens), n_vocab] array to
PATH.npy and prints "ok" on stdout. It prints "ready N_VOCAB" once the model has
loaded. It exits at the end of stdin, and with status 1 (and the reason on
stderr) when the model fails to load or a window fails to evaluate.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import llama_cpp
import numpy as np


def load(gguf: pathlib.Path, ctx: int, threads: int) -> llama_cpp.Llama:
    return llama_cpp.Llama(
        model_path=str(gguf),
        n_ctx=ctx,
        n_batch=ctx,
        n_ubatch=ctx,
        n_threads=threads,
        n_threads_batch=threads,
        logits_all=True,
        n_gpu_layers=0,
        verbose=False,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("gguf", type=pathlib.Path, help="GGUF model file")
    parser.add_argument("--ctx", type=int, required=True, help="maximum tokens per window")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp CPU threads")
    args = parser.parse_args()

    try:
        model = load(args.gguf, args.ctx, args.threads)
    except (ValueError, RuntimeError) as error:
        print(f"llama.cpp failed to load {args.gguf}: {error}", file=sys.stderr)
        return 1
    print(f"ready {model.n_vocab()}", flush=True)

    try:
        for line in sys.stdin:
            request = json.loads(line)
            tokens = request["tokens"]
            if not 0 < len(tokens) <= args.ctx:
                print(f"invalid window of {len(tokens)} tokens: expected 1 to {args.ctx}", file=sys.stderr)
                return 1
            # reset() clears the recurrent state of a Mamba model, so each window starts empty.
            model.reset()
            model.eval(tokens)
            np.save(request["out"], np.array(model.scores[: len(tokens)], dtype=np.float32))
            print("ok", flush=True)
    finally:
        model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
