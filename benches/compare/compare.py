#!/usr/bin/env python3
"""Compare mamba-edge with llama.cpp's llama-bench on the same 130M-config GGUF files.

Stages, each skippable (--stages), all writing under --work (default target/compare):

  make     random-init checkpoints with the exact state-spaces/mamba-130m-hf config, and with
           --arch mamba1,mamba2 also state-spaces/mamba2-130m, through transformers
           (make_mamba_130m.py)
  build    mamba-edge and mamba-quantize (cargo), llama-bench and llama-quantize with CMake
           from the llama.cpp source that the llama-cpp-python sdist vendors
           (tests/reference/fetch_llamacpp.sh downloads it), and membw.c
  convert  GGUF files per format: llama.cpp's convert_hf_to_gguf.py writes F32 and Q8_0, and
           `llama-quantize --pure` makes Q4_0 from the F32 file (--converter llamacpp, the
           default); or mamba-quantize writes all of them (--converter mamba-quantize)
  bench    pp512 and tg128 of both engines on each file, the same threads, alternating the
           engines in every repetition; peak RSS from /usr/bin/time; memory bandwidth from
           membw, for the decode roofline
  depth    tg after 0..--max-context tokens of context for both engines (llama-bench -d,
           mamba-edge bench -d), with peak RSS
  report   report.md (tables) and context.png (decode tokens/s and peak RSS against context)

An engine or architecture that fails to load a file is skipped with its error message, so a
run still reports what works. Raw results go to results.json; the report stage reads only it.

Usage: /work/pyenv/venv/bin/python benches/compare/compare.py [options]
A quick run: --reps 1 --max-context 2048 --formats q8_0
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
HERE = REPO / "benches" / "compare"
LLAMACPP_VERSION = "0.3.36"
DEFAULT_LLAMACPP_SRC = REPO / "tests" / "reference" / ".llamacpp" / f"llama_cpp_python-{LLAMACPP_VERSION}" / "vendor" / "llama.cpp"
STAGES = ["make", "build", "convert", "bench", "depth", "report"]
FORMATS = ["f32", "q8_0", "q4_0"]
ARCHS = {"mamba1": "mamba-130m", "mamba2": "mamba2-130m"}
ENGINES = ["mamba-edge", "llama.cpp"]


def log(message: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command, echoing it, and return the completed process (text output captured)."""
    shown = ["<inline script>" if "\n" in str(part) else str(part) for part in command]
    log("$ " + " ".join(shown))
    return subprocess.run([str(part) for part in command], text=True, capture_output=True, **kwargs)


def run_checked(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = run(command, **kwargs)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"command failed with exit status {result.returncode}: {' '.join(map(str, command))}")
    return result


class Paths:
    """Files and tools that the stages read and write."""

    def __init__(self, work: pathlib.Path, llamacpp_src: pathlib.Path):
        self.work = work
        self.llamacpp_src = llamacpp_src
        # Outside --work, so that a new work directory reuses the build.
        self.llamacpp_build = REPO / "target" / "llama.cpp" / "build"
        self.llama_bench = self.llamacpp_build / "bin" / "llama-bench"
        self.llama_quantize = self.llamacpp_build / "bin" / "llama-quantize"
        self.membw = work / "membw"
        self.mamba_edge = REPO / "target" / "release" / "mamba-edge"
        self.mamba_quantize = REPO / "target" / "release" / "mamba-quantize"
        self.results = work / "results.json"
        self.report = work / "report.md"
        self.plot = work / "context.png"

    def checkpoint(self, arch: str) -> pathlib.Path:
        return self.work / ARCHS[arch] / "hf"

    def gguf(self, arch: str, fmt: str, converter: str) -> pathlib.Path:
        return self.work / ARCHS[arch] / f"{converter}-{fmt}.gguf"


# ---------------------------------------------------------------------------------------
# make, build, convert


def stage_make(paths: Paths, args) -> None:
    for arch in args.arch:
        checkpoint = paths.checkpoint(arch)
        if (checkpoint / "model.safetensors").is_file():
            log(f"{checkpoint} exists")
            continue
        run_checked([sys.executable, HERE / "make_mamba_130m.py", checkpoint, "--arch", arch])


def stage_build(paths: Paths, args) -> None:
    run_checked(["cargo", "build", "--release", "-p", "mamba-cli", "-p", "mamba-quantize"], cwd=REPO)
    paths.work.mkdir(parents=True, exist_ok=True)
    run_checked(["gcc", "-O2", "-pthread", HERE / "membw.c", "-o", paths.membw])

    if not (paths.llamacpp_src / "CMakeLists.txt").is_file():
        if paths.llamacpp_src != DEFAULT_LLAMACPP_SRC:
            raise SystemExit(f"{paths.llamacpp_src} has no CMakeLists.txt; pass the vendor/llama.cpp directory of the sdist")
        run_checked(["bash", REPO / "tests" / "reference" / "fetch_llamacpp.sh"])
    if shutil.which("cmake") is None:
        log("cmake not found; installing it with apt-get")
        run_checked(["apt-get", "install", "-y", "--no-install-recommends", "cmake"])
    # Native CPU flags, as a user building llama.cpp for their machine gets by default.
    run_checked(
        [
            "cmake", "-S", paths.llamacpp_src, "-B", paths.llamacpp_build, "-DCMAKE_BUILD_TYPE=Release",
            "-DGGML_NATIVE=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
            "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_TOOLS=ON",
        ]
    )
    jobs = str(os.cpu_count() or 2)
    run_checked(["cmake", "--build", paths.llamacpp_build, "--target", "llama-bench", "llama-quantize", "-j", jobs])
    log(f"llama.cpp: {llamacpp_version(paths)}")


def llamacpp_version(paths: Paths) -> str:
    """Describe the llama.cpp source: the llama-cpp-python release and the vendored commit."""
    sdist = paths.llamacpp_src.parent.parent
    head = sdist / ".git" / "modules" / "vendor" / "llama.cpp" / "HEAD"
    commit = head.read_text().strip() if head.is_file() else "unknown (no .git/modules in the sdist)"
    return f"llama.cpp {commit[:9]} as vendored by {sdist.name}"


def stage_convert(paths: Paths, args) -> None:
    for arch in args.arch:
        checkpoint = paths.checkpoint(arch)
        for fmt in args.formats:
            out = paths.gguf(arch, fmt, args.converter)
            if out.is_file():
                log(f"{out} exists")
                continue
            if args.converter == "mamba-quantize":
                result = run([paths.mamba_quantize, checkpoint, out, "--type", fmt])
            elif fmt == "q4_0":
                # The converter writes no Q4_0. --pure gives every matrix Q4_0, where plain
                # Q4_0 would store the tied embedding as Q6_K.
                source = paths.gguf(arch, "f32", args.converter)
                if not source.is_file():
                    convert_with_llamacpp(paths, checkpoint, source, "f32")
                result = run([paths.llama_quantize, "--pure", source, out, "q4_0"])
            else:
                result = convert_with_llamacpp(paths, checkpoint, out, fmt)
            if result.returncode != 0:
                log(f"SKIPPED {arch} {fmt}: conversion failed: {(result.stderr or result.stdout).strip()[-600:]}")


def convert_with_llamacpp(paths: Paths, checkpoint: pathlib.Path, out: pathlib.Path, fmt: str):
    """Run the vendored convert_hf_to_gguf.py through tests/reference/convert_with_llamacpp.py's
    adjustments (the test tokenizer's unknown pre-tokenizer hash is accepted as GPT-2)."""
    code = (
        "import pathlib, sys\n"
        f"sys.path.insert(0, {str(REPO / 'tests' / 'reference')!r})\n"
        "import convert_with_llamacpp as c\n"
        f"c.VENDORED = pathlib.Path({str(paths.llamacpp_src)!r})\n"
        "converter, gguf, text_model, mamba_model = c.import_converter()\n"
        "c.accept_gpt2_byte_level_tokenizers(text_model)\n"
        f"c.run_converter(converter, pathlib.Path({str(checkpoint)!r}), pathlib.Path({str(out)!r}), {fmt!r})\n"
    )
    return run([sys.executable, "-c", code])


# ---------------------------------------------------------------------------------------
# measurements


def timed(command: list, work: pathlib.Path) -> tuple[subprocess.CompletedProcess, int | None]:
    """Run a command under /usr/bin/time -v and return it with its peak RSS in bytes."""
    stats = work / "time-v.txt"
    stats.unlink(missing_ok=True)
    result = run(["/usr/bin/time", "-v", "-o", stats, *command])
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stats.read_text() if stats.is_file() else "")
    return result, int(match.group(1)) * 1024 if match else None


def failure(result: subprocess.CompletedProcess) -> list[str]:
    """Return the last lines of a failed command's error output."""
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    return lines[-3:] or [f"exit status {result.returncode}"]


def mamba_edge_run(paths: Paths, gguf: pathlib.Path, threads: int, n_prompt: int, n_gen: int, depth: int) -> dict:
    command = [paths.mamba_edge, "bench", "--model", gguf, "-p", n_prompt, "-n", n_gen, "-d", depth, "--threads", threads, "--json"]
    if not paths.mamba_edge.is_file():
        return {"error": [f"{paths.mamba_edge} not found; run the build stage"]}
    result, rss = timed(command, paths.work)
    if result.returncode != 0:
        return {"error": failure(result)}
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "pp": report["prompt_tokens_per_second"] if n_prompt > 1 else None,
        "tg": report["generation_tokens_per_second"],
        "rss": rss,
    }


def llama_bench_run(paths: Paths, gguf: pathlib.Path, threads: int, n_prompt: int, n_gen: int, depth: int) -> dict:
    command = [paths.llama_bench, "-m", gguf, "-t", threads, "-p", n_prompt, "-n", n_gen, "-d", depth, "-r", 1, "-o", "json"]
    if not paths.llama_bench.is_file():
        return {"error": [f"{paths.llama_bench} not found; run the build stage"]}
    result, rss = timed(command, paths.work)
    if result.returncode != 0:
        return {"error": failure(result)}
    tests = json.loads(result.stdout)
    out = {"pp": None, "tg": None, "rss": rss}
    for test in tests:
        key = "pp" if test["n_gen"] == 0 else "tg"
        out[key] = test["avg_ts"]
        out["build"] = f"{test.get('build_commit', '?')} (build {test.get('build_number', '?')})"
    return out


def engine_run(engine: str, *run_args) -> dict:
    return mamba_edge_run(*run_args) if engine == "mamba-edge" else llama_bench_run(*run_args)


def gguf_weight_bytes(path: pathlib.Path) -> int:
    """Bytes of tensor data a decode step reads: every tensor, except that an untied
    token_embd is read one row at a time (a tied one is the output matrix too)."""
    import gguf  # noqa: PLC0415 (only the measurement stages need it)

    reader = gguf.GGUFReader(path)
    sizes = {tensor.name: int(tensor.n_bytes) for tensor in reader.tensors}
    total = sum(sizes.values())
    if "output.weight" in sizes and "token_embd.weight" in sizes:
        total -= sizes["token_embd.weight"]
    return total


def load_results(paths: Paths) -> dict:
    return json.loads(paths.results.read_text()) if paths.results.is_file() else {}


def save_results(paths: Paths, results: dict) -> None:
    paths.results.write_text(json.dumps(results, indent=1))


def describe_machine(paths: Paths) -> dict:
    cpu = "unknown CPU"
    lscpu = subprocess.run(["lscpu"], text=True, capture_output=True).stdout
    match = re.search(r"Model name:\s*(.+)", lscpu)
    if match:
        cpu = match.group(1).strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True, capture_output=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, text=True, capture_output=True).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit + ("+uncommitted changes" if dirty else ""),
        "load_average": os.getloadavg()[0],
        "llamacpp": llamacpp_version(paths),
    }


def stage_bench(paths: Paths, args) -> None:
    results = load_results(paths)
    results["machine"] = describe_machine(paths)
    bandwidth = json.loads(run_checked([paths.membw, args.threads, args.membw_mib]).stdout)
    results["bandwidth"] = bandwidth
    log(f"bandwidth with {args.threads} threads: read {bandwidth['read_gbps']} GB/s, copy {bandwidth['copy_gbps']} GB/s")

    runs = results.setdefault("runs", {})
    for arch in args.arch:
        for fmt in args.formats:
            gguf = paths.gguf(arch, fmt, args.converter)
            if not gguf.is_file():
                log(f"SKIPPED {arch} {fmt}: {gguf} does not exist (see the convert stage)")
                continue
            key = f"{arch}/{fmt}"
            entry = {
                "file": str(gguf),
                "file_bytes": gguf.stat().st_size,
                "weight_bytes": gguf_weight_bytes(gguf),
                "threads": args.threads,
                "engines": {engine: [] for engine in ENGINES},
            }
            failed: dict[str, list] = {}
            for rep in range(args.reps):
                # Alternate which engine goes first, so drift in machine load hits both.
                order = ENGINES if rep % 2 == 0 else ENGINES[::-1]
                for engine in order:
                    if engine in failed:
                        continue
                    measured = engine_run(engine, paths, gguf, args.threads, args.n_prompt, args.n_gen, 0)
                    if "error" in measured:
                        failed[engine] = measured["error"]
                        log(f"SKIPPED {engine} on {key}: {measured['error']}")
                        continue
                    entry["engines"][engine].append(measured)
                    log(f"{key} {engine}: pp{args.n_prompt} {fmt_number(measured['pp'])}, tg{args.n_gen} {fmt_number(measured['tg'])} tokens/s, peak RSS {fmt_number(mib(measured['rss']), 0)} MiB")
            entry["errors"] = failed
            entry["n_prompt"], entry["n_gen"] = args.n_prompt, args.n_gen
            runs[key] = entry
            save_results(paths, results)


def context_lengths(max_context: int) -> list[int]:
    lengths = [0]
    length = 512
    while length <= max_context:
        lengths.append(length)
        length *= 4 if length < 8192 else 2
    if lengths[-1] != max_context and max_context > 0:
        lengths.append(max_context)
    return lengths


def stage_depth(paths: Paths, args) -> None:
    results = load_results(paths)
    results.setdefault("machine", describe_machine(paths))
    depth = results.setdefault("depth", {})
    for arch in args.arch:
        for fmt in args.depth_formats:
            gguf = paths.gguf(arch, fmt, args.converter)
            if not gguf.is_file():
                log(f"SKIPPED depth {arch} {fmt}: {gguf} does not exist")
                continue
            key = f"{arch}/{fmt}"
            series = {engine: [] for engine in ENGINES}
            failed: set[str] = set()
            for length in context_lengths(args.max_context):
                for engine in ENGINES if length % 1024 == 0 else ENGINES[::-1]:
                    if engine in failed:
                        continue
                    # mamba-edge needs a prompt of at least one token; llama-bench's -p 0 skips it.
                    n_prompt = 1 if engine == "mamba-edge" else 0
                    measured = engine_run(engine, paths, gguf, args.threads, n_prompt, args.depth_gen, length)
                    if "error" in measured:
                        failed.add(engine)
                        log(f"SKIPPED depth {engine} on {key}: {measured['error']}")
                        continue
                    series[engine].append({"context": length, "tg": measured["tg"], "rss": measured["rss"]})
                    log(f"{key} {engine} after {length} tokens: tg{args.depth_gen} {fmt_number(measured['tg'])} tokens/s, peak RSS {fmt_number(mib(measured['rss']), 0)} MiB")
            depth[key] = {"n_gen": args.depth_gen, "threads": args.threads, "series": series}
            save_results(paths, results)


# ---------------------------------------------------------------------------------------
# report


def mean(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def spread(values: list[float | None]) -> str:
    values = [v for v in values if v is not None]
    return f" ±{statistics.stdev(values):.1f}" if len(values) > 1 else ""


def fmt_number(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def mib(size: int | None) -> float | None:
    return None if size is None else size / 2**20


def table_text(message: str, limit: int = 100) -> str:
    """Shorten an error message for a table cell: no file paths, backticks or pipes."""
    message = re.sub(r"/\S+\.gguf:?\s*", "", message).replace("`", "").replace("|", "/")
    return message if len(message) <= limit else message[: limit - 1] + "…"


def ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None or b == 0 else f"{a / b:.2f}×"


def stage_report(paths: Paths, args) -> None:
    results = load_results(paths)
    if not results:
        raise SystemExit(f"{paths.results} does not exist; run the bench or depth stage first")
    machine = results.get("machine", {})
    bandwidth = results.get("bandwidth", {})
    lines = [
        "# mamba-edge against llama.cpp",
        "",
        f"Machine: {machine.get('cpu')}, {machine.get('cores')} logical CPUs, Linux {machine.get('kernel')}. "
        f"Date: {machine.get('date')}. mamba-edge commit {machine.get('commit')}. {machine.get('llamacpp')}. "
        f"Load average at the start: {machine.get('load_average', 0):.2f}.",
        "",
    ]
    if bandwidth:
        lines += [
            f"Memory bandwidth (membw.c, {bandwidth['threads']} threads, {bandwidth['buffer_mib']} MiB buffers, best of "
            f"{bandwidth['passes']}): read {bandwidth['read_gbps']} GB/s, copy {bandwidth['copy_gbps']} GB/s (bytes read + written). "
            "The roofline is read bandwidth / weight bytes per token.",
            "",
        ]

    runs = results.get("runs", {})
    if runs:
        first = next(iter(runs.values()))
        n_prompt, n_gen = first["n_prompt"], first["n_gen"]
        lines += [
            f"pp{n_prompt} and tg{n_gen} in tokens/s (mean ± standard deviation over the repetitions, engines alternating), "
            "peak RSS from /usr/bin/time -v.",
            "",
            f"| model | file | engine | pp{n_prompt} | tg{n_gen} | pp ratio | tg ratio | tg / roofline | peak RSS | RSS − file |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for key, entry in runs.items():
            means = {}
            for engine in ENGINES:
                samples = entry["engines"][engine]
                means[engine] = (mean([s["pp"] for s in samples]), mean([s["tg"] for s in samples]), mean([s["rss"] for s in samples]))
            roofline = bandwidth.get("read_gbps", 0) * 1e9 / entry["weight_bytes"] if bandwidth else None
            for engine in ENGINES:
                samples = entry["engines"][engine]
                pp, tg, rss = means[engine]
                if not samples:
                    error = " ".join(map(str, entry["errors"].get(engine, ["not run"])))
                    lines.append(f"| {key} | {entry['file_bytes'] / 1e6:.0f} MB | {engine} | skipped: {table_text(error)} | | | | | | |")
                    continue
                other_pp, other_tg, _ = means["llama.cpp"]
                is_ours = engine == "mamba-edge"
                lines.append(
                    f"| {key} | {entry['file_bytes'] / 1e6:.0f} MB | {engine} "
                    f"| {fmt_number(pp)}{spread([s['pp'] for s in samples])} | {fmt_number(tg)}{spread([s['tg'] for s in samples])} "
                    f"| {ratio(pp, other_pp) if is_ours else ''} | {ratio(tg, other_tg) if is_ours else ''} "
                    f"| {fmt_number(100 * tg / roofline if roofline and tg else None, 0)} % of {fmt_number(roofline)} "
                    f"| {fmt_number(rss / 2**20 if rss else None, 0)} MiB | {fmt_number((rss - entry['file_bytes']) / 2**20 if rss else None, 0)} MiB |"
                )
        lines.append("")

    depth = results.get("depth", {})
    if depth:
        lines += ["Generation after a context of N tokens (tokens/s, then peak RSS in MiB), one run each:", ""]
        for key, entry in depth.items():
            lengths = sorted({point["context"] for series in entry["series"].values() for point in series})
            lines += [f"{key}, tg{entry['n_gen']}, {entry['threads']} threads:", ""]
            lines.append("| engine | " + " | ".join(str(n) for n in lengths) + " |")
            lines.append("|---|" + "---|" * len(lengths))
            for engine, series in entry["series"].items():
                by_length = {point["context"]: point for point in series}
                cells = [
                    f"{fmt_number(by_length[n]['tg'])} / {fmt_number(mib(by_length[n]['rss']), 0)}" if n in by_length else "–" for n in lengths
                ]
                lines.append(f"| {engine} | " + " | ".join(cells) + " |")
            lines.append("")
        plot_depth(paths, depth)
        lines += [f"Plot: {paths.plot.name}", ""]

    paths.report.write_text("\n".join(lines))
    log(f"wrote {paths.report}")
    print("\n".join(lines))


def plot_depth(paths: Paths, depth: dict) -> None:
    import matplotlib  # noqa: PLC0415 (only the report stage needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, (speed_axes, memory_axes) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, entry in depth.items():
        for engine, series in entry["series"].items():
            if not series:
                continue
            contexts = [max(point["context"], 1) for point in series]
            label = f"{engine}, {key}"
            style = "o-" if engine == "mamba-edge" else "s--"
            speed_axes.plot(contexts, [point["tg"] for point in series], style, label=label)
            memory_axes.plot(contexts, [mib(point["rss"]) or float("nan") for point in series], style, label=label)
    for axes, title, unit in [(speed_axes, "Decode speed", "tokens/s"), (memory_axes, "Peak RSS", "MiB")]:
        axes.set_xscale("symlog", base=2, linthresh=512)
        axes.set_xlabel("context before decoding (tokens)")
        axes.set_ylabel(unit)
        axes.set_title(title)
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(paths.plot, dpi=120)
    log(f"wrote {paths.plot}")


# ---------------------------------------------------------------------------------------


def comma_list(choices: list[str]):
    def parse(text: str) -> list[str]:
        values = [value.strip() for value in text.split(",") if value.strip()]
        invalid = [value for value in values if value not in choices]
        if invalid:
            raise argparse.ArgumentTypeError(f"invalid value(s) {invalid}; choose from {choices}")
        return values

    return parse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", type=comma_list(STAGES), default=STAGES, help=f"comma-separated stages to run (default: all of {','.join(STAGES)})")
    parser.add_argument("--work", type=pathlib.Path, default=REPO / "target" / "compare", help="output directory (default: target/compare)")
    parser.add_argument("--arch", type=comma_list(list(ARCHS)), default=["mamba1"], help="architectures: mamba1, mamba2 or both (default: mamba1)")
    parser.add_argument("--formats", type=comma_list(FORMATS), default=FORMATS, help="weight formats for the bench stage (default: f32,q8_0,q4_0)")
    parser.add_argument("--converter", choices=["llamacpp", "mamba-quantize"], default="llamacpp", help="which tool writes the GGUF files (default: llamacpp)")
    parser.add_argument("--llamacpp-src", type=pathlib.Path, default=DEFAULT_LLAMACPP_SRC, help="llama.cpp source tree (default: the sdist's vendor/llama.cpp)")
    parser.add_argument("--threads", type=int, default=2, help="threads for both engines and membw (default: 2)")
    parser.add_argument("--reps", type=int, default=5, help="alternating repetitions per file in the bench stage (default: 5)")
    parser.add_argument("--n-prompt", type=int, default=512, help="prompt tokens (default: 512)")
    parser.add_argument("--n-gen", type=int, default=128, help="generated tokens (default: 128)")
    parser.add_argument("--max-context", type=int, default=32768, help="maximum context of the depth stage, in tokens (default: 32768)")
    parser.add_argument("--depth-formats", type=comma_list(FORMATS), default=["q8_0"], help="formats of the depth stage (default: q8_0)")
    parser.add_argument("--depth-gen", type=int, default=64, help="generated tokens per depth point (default: 64)")
    parser.add_argument("--membw-mib", type=int, default=1024, help="buffer size of the bandwidth test in MiB (default: 1024)")
    args = parser.parse_args()
    for name in ["threads", "reps", "n_prompt", "n_gen", "depth_gen", "membw_mib"]:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)} is invalid: it must be at least 1")

    paths = Paths(args.work.resolve(), args.llamacpp_src.resolve())
    paths.work.mkdir(parents=True, exist_ok=True)
    stages = {"make": stage_make, "build": stage_build, "convert": stage_convert, "bench": stage_bench, "depth": stage_depth, "report": stage_report}
    for stage in STAGES:
        if stage in args.stages:
            log(f"== stage {stage}")
            stages[stage](paths, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
