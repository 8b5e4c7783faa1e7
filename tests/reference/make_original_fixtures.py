#!/usr/bin/env python3
"""Save Hugging Face fixtures again in the original mamba_ssm checkpoint format.

For each entry of ORIGINALS this reads tests/fixtures/<name>/hf/ (written by
make_fixtures.py or make_variant_fixtures.py) and writes
tests/fixtures/<name>/original/:

  config.json        the fields of mamba_ssm's MambaConfig (d_model, n_layer,
                     vocab_size, ssm_cfg, pad_vocab_size_multiple, ...)
  pytorch_model.bin  torch.save of a state dict with mamba_ssm's tensor names

MambaForCausalLM fixtures become a Mamba1 layer and Mamba2ForCausalLM fixtures
a Mamba2 layer (ssm_cfg.layer "Mamba2", with headdim, ngroups, chunk_size and
dt_limit from the Hugging Face config). Both layers have the tensor names of
transformers apart from the embedding.

The weights are the Hugging Face fixture's, so the logits of the Hugging Face
fixture are the reference for both. No tokenizer is written, because
state-spaces checkpoints ship without one: tests pass hf/tokenizer.json.

mamba_ssm's MambaLMHeadModel pads vocab_size up to a multiple of
pad_vocab_size_multiple before it creates the embedding. The `tiny` copy
declares vocab_size 305 with multiple 8, so the converter must compute the 312
embedding rows that the weights have, and the `mamba2_g1` copy declares 257
with multiple 8 for its 264 rows. As in mamba_ssm's save_pretrained, a tied
lm_head.weight is saved as a second view of the embedding's storage. Each
layer's D and dt_proj.bias (Mamba-2: D and dt_bias) are saved as views of one
shared storage, so the second one starts at a non-zero storage offset.

mamba_ssm itself is not needed.
Usage: /work/pyenv/venv/bin/python tests/reference/make_original_fixtures.py
"""

from __future__ import annotations

import json
import pathlib
import sys

import torch
from safetensors.torch import load_file

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures"

# name: (declared vocab_size, pad_vocab_size_multiple)
ORIGINALS = {
    "tiny": (305, 8),
    "odd": (333, 1),
    "mamba2_g1": (257, 8),
}


def original_name(hf_name: str) -> str:
    """Map a transformers MambaForCausalLM tensor name to mamba_ssm's name."""
    if hf_name == "backbone.embeddings.weight":
        return "backbone.embedding.weight"
    return hf_name


def mamba1_ssm_cfg(hf_config: dict) -> dict:
    """Return the ssm_cfg of mamba_ssm's Mamba layer for a MambaForCausalLM config."""
    auto_rank = -(-hf_config["hidden_size"] // 16)
    return {
        "d_state": hf_config["state_size"],
        "d_conv": hf_config["conv_kernel"],
        "expand": hf_config["expand"],
        "dt_rank": "auto" if hf_config["time_step_rank"] == auto_rank else hf_config["time_step_rank"],
        "conv_bias": hf_config["use_conv_bias"],
        "bias": hf_config["use_bias"],
    }


def mamba2_ssm_cfg(hf_config: dict) -> dict:
    """Return the ssm_cfg of mamba_ssm's Mamba2 layer for a Mamba2ForCausalLM config.

    Mamba2 fixes the gated RMSNorm's epsilon at 1e-5, and transformers uses
    layer_norm_epsilon there, so the fixture must use 1e-5.
    """
    d_inner = hf_config["expand"] * hf_config["hidden_size"]
    if hf_config["num_heads"] * hf_config["head_dim"] != d_inner:
        raise RuntimeError("num_heads * head_dim is not expand * hidden_size")
    limit = hf_config["time_step_limit"]
    if isinstance(limit[1], dict):
        # transformers 5 writes infinity as {"__float__": "Infinity"}.
        limit = [limit[0], float(limit[1]["__float__"])]
    # json.dumps writes float("inf") as the bare token Infinity, which is not
    # JSON, so the converter must accept it.
    return {
        "layer": "Mamba2",
        "d_state": hf_config["state_size"],
        "d_conv": hf_config["conv_kernel"],
        "expand": hf_config["expand"],
        "headdim": hf_config["head_dim"],
        "ngroups": hf_config["n_groups"],
        "chunk_size": hf_config["chunk_size"],
        "dt_limit": limit,
        "rmsnorm": True,
        "norm_before_gate": False,
        "conv_bias": hf_config["use_conv_bias"],
        "bias": hf_config["use_bias"],
    }


def make_original(name: str, vocab_size: int, pad_multiple: int) -> None:
    hf_dir = FIXTURES / name / "hf"
    out_dir = FIXTURES / name / "original"
    out_dir.mkdir(exist_ok=True)
    hf_config = json.loads((hf_dir / "config.json").read_text())
    weights = load_file(hf_dir / "model.safetensors")

    padded = vocab_size + (-vocab_size) % pad_multiple
    if padded != hf_config["vocab_size"]:
        raise RuntimeError(
            f"{name}: vocab_size {vocab_size} padded to a multiple of {pad_multiple} is {padded}, "
            f"but the embedding has {hf_config['vocab_size']} rows"
        )
    d_model = hf_config["hidden_size"]
    mamba2 = hf_config["model_type"] == "mamba2"
    if not mamba2 and hf_config["intermediate_size"] != hf_config["expand"] * d_model:
        raise RuntimeError(f"{name}: intermediate_size is not expand * hidden_size")
    tied = hf_config["tie_word_embeddings"]
    # The per-layer tensor that shares D's storage.
    dt_bias_name = "dt_bias" if mamba2 else "dt_proj.bias"

    state_dict = {original_name(key): value for key, value in weights.items()}
    if tied:
        state_dict["lm_head.weight"] = state_dict["backbone.embedding.weight"]
    for layer in range(hf_config["num_hidden_layers"]):
        prefix = f"backbone.layers.{layer}.mixer."
        d, bias = state_dict[prefix + "D"], state_dict[prefix + dt_bias_name]
        shared = torch.cat([d, bias])
        state_dict[prefix + "D"] = shared[: d.numel()]
        state_dict[prefix + dt_bias_name] = shared[d.numel() :]

    # Key order as in mamba_ssm's state_dict(): the backbone, then lm_head.
    ordered = dict(sorted(state_dict.items(), key=lambda item: item[0].startswith("lm_head")))
    torch.save(ordered, out_dir / "pytorch_model.bin")

    ssm_cfg = mamba2_ssm_cfg(hf_config) if mamba2 else mamba1_ssm_cfg(hf_config)
    config = {
        "d_model": d_model,
        "n_layer": hf_config["num_hidden_layers"],
        "vocab_size": vocab_size,
        "ssm_cfg": ssm_cfg,
        "rms_norm": True,
        "residual_in_fp32": True,
        "fused_add_norm": True,
        "pad_vocab_size_multiple": pad_multiple,
        "tie_embeddings": tied,
    }
    if hf_config["layer_norm_epsilon"] != 1e-5:
        raise RuntimeError(f"{name}: mamba_ssm always uses RMSNorm epsilon 1e-5")
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"{name}: {len(ordered)} tensors, vocab {vocab_size} padded to {padded}, tied {tied}")


def main() -> int:
    torch.manual_seed(0)
    for name, (vocab_size, pad_multiple) in ORIGINALS.items():
        make_original(name, vocab_size, pad_multiple)
    return 0


if __name__ == "__main__":
    sys.exit(main())
