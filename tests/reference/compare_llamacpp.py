#!/usr/bin/env python3
"""Compare mamba-edge and llama.cpp on the same GGUF files against the transformers fixtures.

For each fixture and each format (f32, f16, bf16, q8_0, q4_0) this converts the
fixture's hf/ checkpoint with this repository's mamba-quantize, then computes
the logits of every token sequence of the fixture three ways from that one file:

  mamba-edge, prefill   target/release/mamba-edge logits --model FILE --tokens IDS
  mamba-edge, decode    the same with --step (one token per call)
  llama.cpp             llamacpp_logits.py (llama-cpp-python 0.3.36, CPU, 2 threads,
                        the whole sequence in one batch)

Each result is compared with two references: logits_<i>.npy (transformers in
float64 with the float32 checkpoint) and logits_<i>.<format>.npy (the same with
the weights stored in the file, from make_format_fixtures.py; for f32 that is
logits_<i>.npy again). The metric is the max over all positions of all
sequences of ||logits - ref||_2 / ||ref||_2, and the share of positions whose
argmax agrees with the reference's.

It prints a Markdown table for docs/CONFORMANCE.md and writes the numbers to
the --json file when one is given.

Usage: /work/pyenv/venv/bin/python tests/reference/compare_llamacpp.py [--json OUT.json]
It needs cargo and the llama-cpp-python build from build_llamacpp.sh, and takes
about 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"
MAMBA_EDGE = REPO_ROOT / "target" / "release" / "mamba-edge"
FIXTURE_NAMES = ["tiny", "odd", "quant", "eps", "mamba2_g1", "mamba2_g2", "mamba2_limit", "falcon"]
FORMATS = ["f32", "f16", "bf16", "q8_0", "q4_0"]


def run(command: list[str]) -> None:
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {result.returncode}:\n{result.stderr}")


def quantize(hf_dir: pathlib.Path, out: pathlib.Path, fmt: str) -> None:
    run(["cargo", "run", "--quiet", "--release", "-p", "mamba-quantize", "--", "--type", fmt, str(hf_dir), str(out)])


def mamba_edge_logits(gguf: pathlib.Path, tokens: list[int], step: bool, out: pathlib.Path) -> np.ndarray:
    command = [str(MAMBA_EDGE), "logits", "--model", str(gguf), "--tokens", ",".join(map(str, tokens)), "--out", str(out)]
    if step:
        command.append("--step")
    run(command)
    return np.load(out)


def llamacpp_logits(gguf: pathlib.Path, tokens_json: pathlib.Path, index: int, out: pathlib.Path) -> np.ndarray:
    run([sys.executable, str(HERE / "llamacpp_logits.py"), str(gguf), str(tokens_json), str(index), str(out)])
    return np.load(out)


def row_errors(actual: np.ndarray, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return each position's relative L2 error and whether its argmax agrees."""
    if actual.shape != expected.shape:
        raise ValueError(f"logits have shape {actual.shape}, the reference has {expected.shape}")
    actual = actual.astype(np.float64)
    expected = expected.astype(np.float64)
    errors = np.linalg.norm(actual - expected, axis=-1) / np.linalg.norm(expected, axis=-1)
    return errors, actual.argmax(-1) == expected.argmax(-1)


class Tally:
    """Per-position errors and argmax agreement of one engine against one reference."""

    def __init__(self) -> None:
        self.errors: list[np.ndarray] = []
        self.agree: list[np.ndarray] = []

    def add(self, actual: np.ndarray, expected: np.ndarray) -> None:
        errors, agree = row_errors(actual, expected)
        self.errors.append(errors)
        self.agree.append(agree)

    def summary(self) -> dict:
        return {
            "max_rel_l2": float(np.concatenate(self.errors).max()),
            "argmax_agreement": float(np.concatenate(self.agree).mean()),
        }


def compare_file(name: str, fmt: str, scratch: pathlib.Path) -> dict:
    fixture_dir = FIXTURES_DIR / name
    tokens_json = fixture_dir / "tokens.json"
    sequences = json.loads(tokens_json.read_text())["sequences"]
    gguf = scratch / f"{name}-{fmt}.gguf"
    quantize(fixture_dir / "hf", gguf, fmt)

    tallies = {(engine, ref): Tally() for engine in ("ours", "llamacpp") for ref in ("f32", "matched")}
    out = scratch / "logits.npy"
    for index, tokens in enumerate(sequences):
        f32_ref = np.load(fixture_dir / f"logits_{index}.npy")
        matched_name = f"logits_{index}.npy" if fmt == "f32" else f"logits_{index}.{fmt}.npy"
        matched_ref = np.load(fixture_dir / matched_name)
        results = {
            "ours": [mamba_edge_logits(gguf, tokens, step, out) for step in (False, True)],
            "llamacpp": [llamacpp_logits(gguf, tokens_json, index, out)],
        }
        for engine, logits_list in results.items():
            for logits in logits_list:
                tallies[(engine, "f32")].add(logits, f32_ref)
                tallies[(engine, "matched")].add(logits, matched_ref)

    entry = {"fixture": name, "format": fmt, "file_bytes": gguf.stat().st_size}
    for (engine, ref), tally in tallies.items():
        entry[f"{engine}_vs_{ref}"] = tally.summary()
    return entry


def percent(fraction: float) -> str:
    return "100%" if fraction == 1.0 else f"{100 * fraction:.1f}%"


def markdown_table(entries: list[dict]) -> str:
    lines = [
        "| fixture | format | file size | ours vs f32 ref | llama.cpp vs f32 ref | ours vs format ref | "
        "llama.cpp vs format ref | argmax = f32 ref (ours / llama.cpp) | argmax = format ref (ours / llama.cpp) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in entries:
        lines.append(
            f"| `{e['fixture']}` | {e['format']} | {e['file_bytes']:,} B "
            f"| {e['ours_vs_f32']['max_rel_l2']:.2e} | {e['llamacpp_vs_f32']['max_rel_l2']:.2e} "
            f"| {e['ours_vs_matched']['max_rel_l2']:.2e} | {e['llamacpp_vs_matched']['max_rel_l2']:.2e} "
            f"| {percent(e['ours_vs_f32']['argmax_agreement'])} / {percent(e['llamacpp_vs_f32']['argmax_agreement'])} "
            f"| {percent(e['ours_vs_matched']['argmax_agreement'])} / "
            f"{percent(e['llamacpp_vs_matched']['argmax_agreement'])} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=pathlib.Path, help="also write the numbers to this JSON file")
    parser.add_argument("--only", nargs="*", choices=FIXTURE_NAMES, help="fixture names (default: all)")
    args = parser.parse_args()

    run(["cargo", "build", "--quiet", "--release", "-p", "mamba-cli", "-p", "mamba-quantize"])
    entries = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.only or FIXTURE_NAMES:
            for fmt in FORMATS:
                entry = compare_file(name, fmt, pathlib.Path(scratch))
                print(json.dumps(entry), file=sys.stderr)
                entries.append(entry)

    if args.json:
        args.json.write_text(json.dumps({"llama_cpp_python": "0.3.36", "results": entries}, indent=1) + "\n")
    print(markdown_table(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
