#!/usr/bin/env python3
"""Measure llama.cpp's logits error against the transformers fixtures.

For each llamacpp-*.gguf file that convert_with_llamacpp.py wrote and each
token sequence of its fixture, this runs llamacpp_logits.py (llama.cpp on the
CPU, 2 threads) and compares the result with logits_<i>.npy. It writes
tests/fixtures/llamacpp_errors.json with, per file and sequence:

  max_rel_l2        max over positions of ||llama - ref||_2 / ||ref||_2
  mean_rel_l2       the mean of the same per-position errors
  argmax_agreement  fraction of positions where both argmaxes are equal

Sequence 0 is also run one token per llama_decode call (batch 1), which
exercises llama.cpp's recurrent state carry instead of one batched scan.
A file that llama.cpp fails to load gets an "error" entry instead.

llama.cpp's own logits for sequence 0 (whole-sequence batch) are saved next
to each file as llamacpp-<format>-logits_0.npy, so an engine that loads the
same GGUF can be compared with llama.cpp directly, quantization error included.

Usage: /work/pyenv/venv/bin/python tests/reference/llamacpp_errors.py
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"
OUTPUT = FIXTURES / "llamacpp_errors.json"
LLAMACPP_VERSION = "0.3.36"


def run_llamacpp(gguf: pathlib.Path, tokens_json: pathlib.Path, index: int, batch: int, out: pathlib.Path) -> str | None:
    """Run llamacpp_logits.py; return None on success or the last line of its error output."""
    command = [sys.executable, str(HERE / "llamacpp_logits.py"), str(gguf), str(tokens_json), str(index), str(out)]
    if batch:
        command += ["--batch", str(batch)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return None
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit code {result.returncode}"


def compare(actual: np.ndarray, expected: np.ndarray) -> dict:
    if actual.shape != expected.shape:
        raise ValueError(f"llama.cpp logits have shape {actual.shape}, reference has {expected.shape}")
    actual = actual.astype(np.float64)
    expected = expected.astype(np.float64)
    errors = np.linalg.norm(actual - expected, axis=-1) / np.linalg.norm(expected, axis=-1)
    return {
        "max_rel_l2": float(errors.max()),
        "mean_rel_l2": float(errors.mean()),
        "argmax_agreement": float(np.mean(actual.argmax(-1) == expected.argmax(-1))),
    }


def format_of(gguf: pathlib.Path) -> str:
    return gguf.stem.removeprefix("llamacpp-")


def main() -> int:
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        out = pathlib.Path(scratch) / "logits.npy"
        for gguf in sorted(FIXTURES.glob("*/llamacpp-*.gguf")):
            fixture_dir = gguf.parent
            tokens_json = fixture_dir / "tokens.json"
            sequences = json.loads(tokens_json.read_text())["sequences"]
            runs = [(index, 0) for index in range(len(sequences))] + [(0, 1)]
            for index, batch in runs:
                entry = {
                    "fixture": fixture_dir.name,
                    "file": gguf.name,
                    "format": format_of(gguf),
                    "sequence": index,
                    "n_tokens": len(sequences[index]),
                    "batch": batch or len(sequences[index]),
                }
                error = run_llamacpp(gguf, tokens_json, index, batch, out)
                if error is None:
                    logits = np.load(out)
                    entry.update(compare(logits, np.load(fixture_dir / f"logits_{index}.npy")))
                    if index == 0 and not batch:
                        np.save(fixture_dir / f"llamacpp-{format_of(gguf)}-logits_0.npy", logits)
                else:
                    entry["error"] = error
                results.append(entry)
                print(json.dumps(entry))
                if error is not None:
                    break

    summary = {
        "llama_cpp_python": LLAMACPP_VERSION,
        "reference": "logits_<i>.npy (transformers, float64 model copy cast to float32)",
        "threads": 2,
        "results": results,
    }
    OUTPUT.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
