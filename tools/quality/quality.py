#!/usr/bin/env python3
"""Measure the quality of the shipped models at each GGUF weight format, in mamba-edge and llama.cpp.

For each model in models/ that has an hf/ checkpoint, this script:

1. converts the checkpoint with mamba-quantize to F32, F16, BF16, Q8_0 and Q4_0
   GGUF files under target/quality/NAME/;
2. builds the evaluation text (see held_out_text) and tokenizes it in one pass
   with the checkpoint's tokenizer.json (the `tokenizers` package, no special
   tokens added), then cuts the tokens into consecutive windows of --ctx tokens;
3. runs every window through every file in both engines, each window from an
   empty state: mamba-edge with `mamba-edge logits` (prefill path), llama.cpp
   with llamacpp_worker.py under tests/reference/.llamacpp/venv;
4. scores every next-token prediction inside a window (the first token of a
   window is context only) and compares each file's distributions with the F32
   file's distributions from the same engine;
5. runs `mamba-edge perplexity --ctx N --kl-base F32 --json` on the same text
   file, as a cross-check of the window figures.

It writes target/quality/results.json and prints Markdown tables for
docs/QUALITY.md on stdout. Progress goes to stderr.

It builds mamba-edge and mamba-quantize with cargo first. Usage (after
tests/reference/build_llamacpp.sh):

    /work/pyenv/venv/bin/python tools/quality/quality.py [--models micro default]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import tokenizers
from tokenizers import Tokenizer

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(REPO_ROOT / "tools" / "train"))
import corpus  # noqa: E402  (tools/train is not a package)

MAMBA_EDGE = REPO_ROOT / "target" / "release" / "mamba-edge"
MAMBA_QUANTIZE = REPO_ROOT / "target" / "release" / "mamba-quantize"
LLAMACPP_PYTHON = REPO_ROOT / "tests" / "reference" / ".llamacpp" / "venv" / "bin" / "python"
WORKER = HERE / "llamacpp_worker.py"
WORK_DIR = REPO_ROOT / "target" / "quality"
MODELS = ["micro", "default"]
FORMATS = ["f32", "f16", "bf16", "q8_0", "q4_0"]
ENGINES = ["ours", "llamacpp"]
DEFAULT_CTX = 1024
# mamba-edge perplexity tokenizes a file in chunks of at least 64 KiB, so a text of at most
# 64 KiB is one chunk and gets exactly the tokens that this script uses.
DEFAULT_MAX_BYTES = 64 * 1024
FILE_SEPARATOR = "\n"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(command: list[str]) -> str:
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {result.returncode}:\n{result.stderr}")
    return result.stdout


def held_out_text(max_bytes: int) -> tuple[str, list[str]]:
    """Return the evaluation text and the held-out files that it covers.

    The held-out files of tools/train/corpus.py, in its order (paths sorted by
    their UTF-8 bytes), read with corpus.read_text and joined with one "\\n".
    The result is cut to its first max_bytes UTF-8 bytes and then back to the
    end of the last complete line.
    """
    _, held_out = corpus.split_files()
    data = FILE_SEPARATOR.join(corpus.read_text(path) for path in held_out).encode("utf-8")
    if len(data) > max_bytes:
        data = data[: data.rindex(b"\n", 0, max_bytes) + 1]
    text = data.decode("utf-8")

    # List the files that the cut text covers, at least partly.
    covered, offset = [], 0
    for path in held_out:
        if offset >= len(data):
            break
        covered.append(path)
        offset += len(corpus.read_text(path).encode("utf-8")) + len(FILE_SEPARATOR)
    return text, covered


def environment(skip_llamacpp: bool) -> dict:
    """Return the commit, date, CPU and versions that the figures depend on."""
    cpu = next(
        (line.split(":", 1)[1].strip() for line in run(["lscpu"]).splitlines() if line.startswith("Model name:")),
        "unknown",
    )
    llamacpp_version = "not used"
    if not skip_llamacpp:
        llamacpp_version = run([str(LLAMACPP_PYTHON), "-c", "import llama_cpp; print(llama_cpp.__version__)"]).strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": run(["git", "rev-parse", "HEAD"]).strip(),
        "worktree_clean": run(["git", "status", "--porcelain", "--untracked-files=no"]).strip() == "",
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "mamba_edge": run([str(MAMBA_EDGE), "--version"]).strip(),
        "llama_cpp_python": llamacpp_version,
        "tokenizers": tokenizers.__version__,
        "numpy": np.__version__,
    }


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Return log softmax over the last axis, in float64."""
    values = logits.astype(np.float64)
    values -= values.max(axis=-1, keepdims=True)
    return values - np.log(np.exp(values).sum(axis=-1, keepdims=True))


def kl_rows(reference: np.ndarray, model: np.ndarray) -> np.ndarray:
    """Return KL(reference || model) per row from log-probabilities, clamped at 0 as mamba-edge does."""
    return np.maximum((np.exp(reference) * (reference - model)).sum(axis=-1), 0.0)


class Tally:
    """Scores of one file in one engine, summed over the scored positions."""

    def __init__(self) -> None:
        self.scored = 0
        # Positions compared with the F32 file, which are all or none of the scored ones.
        self.compared = 0
        self.nll = 0.0
        self.kl = 0.0
        self.kl_max = 0.0
        self.top1 = 0

    def add(self, log_probs: np.ndarray, targets: np.ndarray, reference: np.ndarray | None) -> None:
        """Score log-probability rows against their next tokens, and against the F32 file's rows unless reference is None."""
        self.scored += len(targets)
        self.nll -= float(log_probs[np.arange(len(targets)), targets].sum())
        if reference is not None:
            self.compared += len(targets)
            kl = kl_rows(reference, log_probs)
            self.kl += float(kl.sum())
            self.kl_max = max(self.kl_max, float(kl.max()))
            self.top1 += int((log_probs.argmax(-1) == reference.argmax(-1)).sum())

    def summary(self, tokens: int, n_bytes: int) -> dict:
        """Return the scores; the comparison with F32 is None when the F32 file could not run in this engine."""
        nll = self.nll / self.scored
        compared = self.compared == self.scored
        return {
            "scored_tokens": self.scored,
            "nll_per_token": nll,
            "perplexity": math.exp(nll),
            "bits_per_byte": nll / math.log(2) * tokens / n_bytes,
            "mean_kl": self.kl / self.scored if compared else None,
            "max_kl": self.kl_max if compared else None,
            "top1_agreement": self.top1 / self.scored if compared else None,
        }


class LlamaCppWorker:
    """A llamacpp_worker.py process serving one GGUF file."""

    def __init__(self, gguf: pathlib.Path, ctx: int, threads: int) -> None:
        self.gguf = gguf
        self.error: str | None = None
        self.process = subprocess.Popen(
            [str(LLAMACPP_PYTHON), str(WORKER), str(gguf), "--ctx", str(ctx), "--threads", str(threads)],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        reply = self.process.stdout.readline().strip()
        if not reply.startswith("ready"):
            self.fail(f"did not load: {reply!r}")

    def fail(self, problem: str) -> None:
        self.process.kill()
        _, stderr = self.process.communicate()
        self.error = f"llama.cpp {problem} (exit code {self.process.returncode}). stderr: {stderr.strip()[-1000:]}"
        log(f"{self.gguf.name}: {self.error}")

    def logits(self, tokens: list[int], out: pathlib.Path) -> np.ndarray | None:
        """Return the window's logits, or None when the worker has failed (see self.error)."""
        if self.error is not None:
            return None
        try:
            self.process.stdin.write(json.dumps({"tokens": tokens, "out": str(out)}) + "\n")
            self.process.stdin.flush()
            reply = self.process.stdout.readline().strip()
        except BrokenPipeError:
            reply = ""
        if reply != "ok":
            self.fail(f"failed on a window of {len(tokens)} tokens: {reply!r}")
            return None
        return np.load(out)

    def close(self) -> None:
        if self.error is None:
            self.process.stdin.close()
            self.process.wait()


def ours_logits(gguf: pathlib.Path, tokens: list[int], out: pathlib.Path) -> np.ndarray:
    run([str(MAMBA_EDGE), "logits", "--model", str(gguf), "--tokens", ",".join(map(str, tokens)), "--out", str(out)])
    return np.load(out)


def evaluate_windows(
    files: dict[str, pathlib.Path], tokens: list[int], n_bytes: int, args: argparse.Namespace, scratch: pathlib.Path
) -> dict:
    """Run every window through every file in both engines and return the scores per format and engine."""
    windows = [tokens[i : i + args.ctx] for i in range(0, len(tokens), args.ctx)]
    windows = [window for window in windows if len(window) > 1]
    tallies = {(fmt, engine): Tally() for fmt in FORMATS for engine in ENGINES}
    # Disagreement of the two engines on the same file.
    cross_kl = {fmt: 0.0 for fmt in FORMATS}
    cross_top1 = {fmt: 0 for fmt in FORMATS}
    workers = {} if args.skip_llamacpp else {fmt: LlamaCppWorker(files[fmt], args.ctx, args.threads) for fmt in FORMATS}

    start = time.monotonic()
    for index, window in enumerate(windows):
        targets = np.asarray(window[1:])
        references: dict[str, np.ndarray] = {}
        for fmt in FORMATS:
            log_probs = {"ours": log_softmax(ours_logits(files[fmt], window, scratch / "ours.npy"))[:-1]}
            if fmt in workers:
                logits = workers[fmt].logits(window, scratch / "llamacpp.npy")
                if logits is not None:
                    log_probs["llamacpp"] = log_softmax(logits)[:-1]
            for engine, rows in log_probs.items():
                if fmt == "f32":
                    references[engine] = rows
                tallies[(fmt, engine)].add(rows, targets, references.get(engine))
            if len(log_probs) == 2:
                cross_kl[fmt] += float(kl_rows(log_probs["ours"], log_probs["llamacpp"]).sum())
                cross_top1[fmt] += int((log_probs["ours"].argmax(-1) == log_probs["llamacpp"].argmax(-1)).sum())
        elapsed = time.monotonic() - start
        log(f"window {index + 1}/{len(windows)} done, {elapsed:.0f} s elapsed")

    results = {}
    for fmt in FORMATS:
        entry = {"ours": tallies[(fmt, "ours")].summary(len(tokens), n_bytes)}
        worker = workers.get(fmt)
        if worker is None:
            entry["llamacpp"] = {"not_run": "--skip-llamacpp was given"}
        elif worker.error is not None:
            entry["llamacpp"] = {"not_run": worker.error}
        else:
            entry["llamacpp"] = tallies[(fmt, "llamacpp")].summary(len(tokens), n_bytes)
            scored = tallies[(fmt, "ours")].scored
            entry["ours_vs_llamacpp"] = {"mean_kl": cross_kl[fmt] / scored, "top1_agreement": cross_top1[fmt] / scored}
        results[fmt] = entry
    for worker in workers.values():
        worker.close()
    results["windows"] = len(windows)
    return results


def perplexity_command(gguf: pathlib.Path, text_file: pathlib.Path, ctx: int, base: pathlib.Path | None) -> dict:
    command = [str(MAMBA_EDGE), "perplexity", "--model", str(gguf), "--file", str(text_file), "--ctx", str(ctx), "--json"]
    if base is not None:
        command += ["--kl-base", str(base)]
    return json.loads(run(command))


def evaluate_model(name: str, text: str, text_file: pathlib.Path, args: argparse.Namespace) -> dict | None:
    hf_dir = REPO_ROOT / "models" / name / "hf"
    if not (hf_dir / "model.safetensors").is_file():
        log(f"{name}: {hf_dir}/model.safetensors not found; skipping this model")
        return None
    work = WORK_DIR / name
    work.mkdir(parents=True, exist_ok=True)

    files = {}
    for fmt in FORMATS:
        files[fmt] = work / f"{name}-{fmt}.gguf"
        run([str(MAMBA_QUANTIZE), str(hf_dir), str(files[fmt]), "--type", fmt])
    tokens = Tokenizer.from_file(str(hf_dir / "tokenizer.json")).encode(text, add_special_tokens=False).ids
    n_bytes = len(text.encode("utf-8"))
    log(f"{name}: {len(tokens)} tokens, {n_bytes} bytes")

    results = evaluate_windows(files, tokens, n_bytes, args, work)
    for fmt in FORMATS:
        results[fmt]["file"] = str(files[fmt].relative_to(REPO_ROOT))
        results[fmt]["file_bytes"] = files[fmt].stat().st_size

    # The perplexity command tokenizes the file itself, in 64 KiB chunks.
    for fmt in FORMATS:
        log(f"{name}: mamba-edge perplexity on {fmt}")
        base = None if fmt == "f32" else files["f32"]
        results[fmt]["perplexity_command"] = perplexity_command(files[fmt], text_file, args.ctx, base)

    config = json.loads((hf_dir / "config.json").read_text())
    return {
        "tokens": len(tokens),
        "bytes": n_bytes,
        "checkpoint_dtype": config.get("dtype") or config.get("torch_dtype"),
        "checkpoint_sha256": hashlib.sha256((hf_dir / "model.safetensors").read_bytes()).hexdigest(),
        "formats": results,
        "cross_check": cross_check(results, len(tokens)),
    }


def cross_check(results: dict, tokens: int) -> dict:
    """Return the largest differences between the perplexity command and the window figures of mamba-edge."""
    perplexity, kl, top1 = 0.0, 0.0, 0.0
    same_tokens = True
    for fmt in FORMATS:
        ours = results[fmt]["ours"]
        command = results[fmt]["perplexity_command"]
        same_tokens &= command["tokens"] == tokens and command["scored_tokens"] == ours["scored_tokens"]
        perplexity = max(perplexity, abs(command["perplexity"] / ours["perplexity"] - 1))
        if fmt != "f32":
            kl = max(kl, abs(command["mean_kl"] - ours["mean_kl"]))
            top1 = max(top1, abs(command["top1_agreement"] - ours["top1_agreement"]))
    return {
        "same_token_counts": same_tokens,
        "max_relative_perplexity_difference": perplexity,
        "max_mean_kl_difference": kl,
        "max_top1_difference": top1,
    }


def format_row(fmt: str, entry: dict, f32_ppl: dict) -> str:
    cells = [fmt.upper(), f"{entry['file_bytes']:,}"]
    for engine in ENGINES:
        scores = entry[engine]
        if "not_run" in scores:
            cells += ["not run"] * 5
            continue
        cells += [f"{scores['bits_per_byte']:.4f}", f"{scores['perplexity']:.4f}"]
        if scores["mean_kl"] is None:
            cells += ["no F32 run"] * 3
        else:
            delta = 100 * (scores["perplexity"] / f32_ppl[engine] - 1)
            cells += [f"{delta:+.3f}%", f"{scores['mean_kl']:.2e}", f"{100 * scores['top1_agreement']:.2f}%"]
    return "| " + " | ".join(cells) + " |"


def print_tables(report: dict) -> None:
    head = ["format", "file size (bytes)"]
    for engine in ("mamba-edge", "llama.cpp"):
        head += [f"{engine} bits/byte", f"{engine} ppl", "Δ ppl vs F32", "mean KL vs F32", "top-1 vs F32"]
    for name, model in report["models"].items():
        formats = model["formats"]
        print(f"\n### {name}\n")
        print(f"{model['tokens']} tokens, {model['bytes']} bytes, {formats['windows']} windows\n")
        print("| " + " | ".join(head) + " |")
        print("|" + " --- |" * len(head))
        f32_ppl = {engine: formats["f32"][engine].get("perplexity") for engine in ENGINES}
        for fmt in FORMATS:
            print(format_row(fmt, formats[fmt], f32_ppl))

        print("\n| format | engines: mean KL(mamba-edge ‖ llama.cpp) | top-1 agreement | perplexity command: ppl | bits/byte | mean KL vs F32 | top-1 vs F32 | tokens |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for fmt in FORMATS:
            entry = formats[fmt]
            cross = entry.get("ours_vs_llamacpp")
            cross_cells = [f"{cross['mean_kl']:.2e}", f"{100 * cross['top1_agreement']:.2f}%"] if cross else ["not run"] * 2
            command = entry["perplexity_command"]
            kl = f"{command['mean_kl']:.2e}" if "mean_kl" in command else "-"
            top1 = f"{100 * command['top1_agreement']:.2f}%" if "top1_agreement" in command else "-"
            cells = [fmt.upper(), *cross_cells, f"{command['perplexity']:.4f}", f"{command['bits_per_byte']:.4f}", kl, top1]
            cells.append(str(command["tokens"]))
            print("| " + " | ".join(cells) + " |")
        check = model["cross_check"]
        print(
            f"\nperplexity command vs windows: same token counts: {check['same_token_counts']}, "
            f"max relative perplexity difference {check['max_relative_perplexity_difference']:.1e}, "
            f"max mean KL difference {check['max_mean_kl_difference']:.1e}, "
            f"max top-1 difference {check['max_top1_difference']:.1e}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS, help="models to evaluate")
    parser.add_argument("--ctx", type=int, default=DEFAULT_CTX, help="tokens per window (default %(default)s)")
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=DEFAULT_MAX_BYTES,
        help="cap on the evaluation text in UTF-8 bytes, cut back to a line end (default %(default)s)",
    )
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp CPU threads (default %(default)s)")
    parser.add_argument("--skip-llamacpp", action="store_true", help="measure mamba-edge only")
    parser.add_argument("--out", type=pathlib.Path, default=WORK_DIR / "results.json", help="JSON results file")
    parser.add_argument("--print", type=pathlib.Path, metavar="RESULTS_JSON", help="print the tables of a results file and exit")
    args = parser.parse_args()
    if args.print is not None:
        print_tables(json.loads(args.print.read_text()))
        return 0
    if args.ctx < 2:
        parser.error(f"--ctx must be at least 2 to score anything; got {args.ctx}")

    # Build the binaries so that they match the commit recorded in the results.
    run(["cargo", "build", "--quiet", "--release", "-p", "mamba-cli", "-p", "mamba-quantize"])
    if not args.skip_llamacpp and not LLAMACPP_PYTHON.is_file():
        sys.exit(f"{LLAMACPP_PYTHON} not found; run tests/reference/build_llamacpp.sh or pass --skip-llamacpp")

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    text, covered = held_out_text(args.max_bytes)
    text_file = WORK_DIR / "held_out.txt"
    text_file.write_bytes(text.encode("utf-8"))
    log(f"evaluation text: {len(text.encode('utf-8'))} bytes from {len(covered)} held-out files")

    report = {
        "environment": environment(args.skip_llamacpp),
        "ctx": args.ctx,
        "max_bytes": args.max_bytes,
        "text_bytes": len(text.encode("utf-8")),
        "text_files": covered,
        "llamacpp_threads": args.threads,
        "models": {},
    }
    for name in args.models:
        model = evaluate_model(name, text, text_file, args)
        if model is not None:
            report["models"][name] = model
            args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_tables(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
