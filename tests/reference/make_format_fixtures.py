#!/usr/bin/env python3
"""Write transformers logits for the weights that mamba-quantize stores at each format.

For each fixture and each format (f16, bf16, q8_0, q4_0) this converts the
fixture's hf/ checkpoint with mamba-quantize and reads the GGUF file back with
the `gguf` package. It dequantizes every tensor with gguf.quants.dequantize,
loads the values into a float64 transformers model and writes

  tests/fixtures/<name>/logits_<i>.<format>.npy   float32 [n_tokens, n_vocab]

for every token sequence i of the fixture. The logits are computed as in
make_fixtures.py: a float64 model with residual_in_fp32 off and lm_head applied
in float64. They differ from logits_<i>.npy only by the rounding of the
weights, so an engine that reads the same file should match them to within its
own float32 arithmetic error.

Reading the written file, rather than re-implementing the tensor type plan in
Python, makes the reference follow whatever the quantizer stores: the tensors
that stay F32, the F16 fallback of rows that are not a whole number of blocks,
and ssm_a = -exp(A_log) rounded to float32. transformers computes
A = -exp(A_log.float()) in float32, so the script sets A_log = log(-ssm_a) in
float64. That reproduces ssm_a to within about one float32 ulp.

The script also runs the f32 format through the same path and checks that it
reproduces logits_<i>.npy, which tests the name mapping. It writes a summary of
each reference's distance from logits_<i>.npy to
tests/fixtures/format_references.json.

Usage: /work/pyenv/venv/bin/python tests/reference/make_format_fixtures.py [--only NAME ...]
It needs cargo, because it builds and runs mamba-quantize. It takes about 30 s.
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import json
import pathlib
import platform
import subprocess
import sys
import tempfile

import gguf
import numpy as np
import torch
import transformers
from gguf import quants
from transformers import MambaForCausalLM

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_fixtures import logits_hf_float64, max_relative_l2, top2_gaps  # noqa: E402

REPO_ROOT = HERE.parents[1]
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"
SUMMARY = FIXTURES_DIR / "format_references.json"
FIXTURE_NAMES = ["tiny", "odd", "quant", "eps"]
FORMATS = ["f16", "bf16", "q8_0", "q4_0"]

# The f32 path must reproduce logits_<i>.npy this closely. The only difference
# is how A = -exp(A_log) is rounded to float32 (see the module docstring).
F32_SELF_CHECK = 1e-6

# GGUF tensor name (after "blk.N.") to the parameter name under backbone.layers.N.
LAYER_TENSORS = {
    "attn_norm.weight": "norm.weight",
    "ssm_in.weight": "mixer.in_proj.weight",
    "ssm_conv1d.weight": "mixer.conv1d.weight",
    "ssm_conv1d.bias": "mixer.conv1d.bias",
    "ssm_x.weight": "mixer.x_proj.weight",
    "ssm_dt.weight": "mixer.dt_proj.weight",
    "ssm_dt.bias": "mixer.dt_proj.bias",
    "ssm_a": "mixer.A_log",
    "ssm_d": "mixer.D",
    "ssm_out.weight": "mixer.out_proj.weight",
}
GLOBAL_TENSORS = {
    "token_embd.weight": "backbone.embeddings.weight",
    "output_norm.weight": "backbone.norm_f.weight",
    "output.weight": "lm_head.weight",
}


def quantize(hf_dir: pathlib.Path, out: pathlib.Path, fmt: str) -> None:
    """Convert hf_dir to GGUF at fmt with this repository's mamba-quantize."""
    command = ["cargo", "run", "--quiet", "--release", "-p", "mamba-quantize", "--", "--type", fmt, str(hf_dir), str(out)]
    subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True, text=True)


def hf_parameter_name(gguf_name: str) -> str:
    if gguf_name in GLOBAL_TENSORS:
        return GLOBAL_TENSORS[gguf_name]
    prefix, layer, rest = gguf_name.split(".", 2)
    if prefix != "blk" or rest not in LAYER_TENSORS:
        raise ValueError(f"unexpected tensor {gguf_name} in a Mamba-1 GGUF file")
    return f"backbone.layers.{int(layer)}.{LAYER_TENSORS[rest]}"


def read_weights(path: pathlib.Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Return the dequantized float32 values and the ggml type name of every tensor in path.

    The values have numpy's shape, which is the GGUF ne order reversed, so
    matrices come out as [rows, row length] like the transformers weights.
    """
    reader = gguf.GGUFReader(path)
    values = {}
    types = {}
    for tensor in reader.tensors:
        values[tensor.name] = quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        types[tensor.name] = tensor.tensor_type.name
    return values, types


@torch.no_grad()
def load_into(model64: MambaForCausalLM, weights: dict[str, np.ndarray]) -> None:
    """Overwrite every parameter of the float64 model with the file's values.

    Raises when a parameter is not covered or a shape differs, so a missed
    tensor cannot silently keep its float32 checkpoint value.
    """
    params = dict(model64.named_parameters(remove_duplicate=False))
    assigned = set()
    for gguf_name, value in weights.items():
        hf_name = hf_parameter_name(gguf_name)
        data = torch.from_numpy(value.astype(np.float64))
        if gguf_name.endswith("ssm_a"):
            if not (data < 0).all():
                raise ValueError(f"{gguf_name} has non-negative entries; A = -exp(A_log) must be negative")
            data = torch.log(-data)
        param = params[hf_name]
        data = data.reshape(param.shape)
        param.copy_(data)
        assigned.add(hf_name)

    tied = "lm_head.weight" not in assigned
    if tied:
        if params["lm_head.weight"].data_ptr() != params["backbone.embeddings.weight"].data_ptr():
            raise ValueError("the file has no output.weight but the model's lm_head is not tied")
        assigned.add("lm_head.weight")
    missing = set(params) - assigned
    if missing:
        raise ValueError(f"the GGUF file sets no value for {sorted(missing)}")


def float64_model(hf_dir: pathlib.Path) -> MambaForCausalLM:
    """Load the checkpoint as make_fixtures.py's float64 reference copy."""
    model = MambaForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    model64 = copy.deepcopy(model).to(torch.float64)
    for layer in model64.backbone.layers:
        layer.residual_in_fp32 = False
    return model64


def reference_for(model64: MambaForCausalLM, gguf_path: pathlib.Path, sequences: list[list[int]]):
    weights, types = read_weights(gguf_path)
    load_into(model64, weights)
    return [logits_hf_float64(model64, ids) for ids in sequences], types


def make_fixture(name: str, scratch: pathlib.Path) -> dict:
    fixture_dir = FIXTURES_DIR / name
    hf_dir = fixture_dir / "hf"
    sequences = json.loads((fixture_dir / "tokens.json").read_text())["sequences"]
    f32_refs = [np.load(fixture_dir / f"logits_{i}.npy").astype(np.float64) for i in range(len(sequences))]
    model64 = float64_model(hf_dir)

    summary = {"formats": {}}
    for fmt in ["f32", *FORMATS]:
        path = scratch / f"{name}-{fmt}.gguf"
        quantize(hf_dir, path, fmt)
        logits, types = reference_for(model64, path, sequences)
        entry = {
            "tensor_type_counts": {t: list(types.values()).count(t) for t in sorted(set(types.values()))},
            "sequences": [],
        }
        for i, (ours, f32_ref) in enumerate(zip(logits, f32_refs)):
            # The saved files are float32, so measure what the tests will read.
            saved = ours.astype(np.float32).astype(np.float64)
            entry["sequences"].append(
                {
                    "index": i,
                    "n_tokens": len(sequences[i]),
                    "max_rel_l2_vs_f32_reference": max_relative_l2(saved, f32_ref),
                    "argmax_agreement_with_f32_reference": float(np.mean(saved.argmax(-1) == f32_ref.argmax(-1))),
                    "min_top2_gap": float(top2_gaps(saved).min()),
                }
            )
            if fmt == "f32":
                error = entry["sequences"][-1]["max_rel_l2_vs_f32_reference"]
                if error > F32_SELF_CHECK:
                    raise RuntimeError(f"{name} seq {i}: the f32 file path differs from logits_{i}.npy by {error:.2e}")
            else:
                np.save(fixture_dir / f"logits_{i}.{fmt}.npy", saved.astype(np.float32))
        summary["formats"][fmt] = entry
        worst = max(s["max_rel_l2_vs_f32_reference"] for s in entry["sequences"])
        gap = min(s["min_top2_gap"] for s in entry["sequences"])
        print(f"{name} {fmt}: max rel L2 vs logits_<i>.npy {worst:.3e}, min top-2 gap {gap:.4f}, tensor types {entry['tensor_type_counts']}")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", choices=FIXTURE_NAMES, help="fixture names (default: all)")
    args = parser.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    names = args.only or FIXTURE_NAMES
    summary = json.loads(SUMMARY.read_text()) if SUMMARY.exists() else {"fixtures": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            summary["fixtures"][name] = make_fixture(name, pathlib.Path(scratch))

    summary["reference"] = (
        "transformers float64 (residual_in_fp32 off, lm_head in float64) with the weights that "
        "mamba-quantize stores, dequantized by gguf.quants.dequantize"
    )
    summary["versions"] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "gguf": importlib.metadata.version("gguf"),
        "numpy": np.__version__,
    }
    summary["fixtures"] = dict(sorted(summary["fixtures"].items()))
    SUMMARY.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {SUMMARY}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
