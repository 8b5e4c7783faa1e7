#!/usr/bin/env python3
"""Generate conformance fixtures for Mamba-2 and Falcon-Mamba from transformers.

For each fixture in FIXTURES this writes tests/fixtures/<name>/:

  hf/                     Mamba2ForCausalLM or FalconMambaForCausalLM
                          save_pretrained output (float32 safetensors) plus the
                          tokenizer files
  tokens.json             {"sequences": [[id, ...], ...]}
  logits_<i>.npy          float32 [n_tokens, n_vocab] logits of sequence i from
                          a float64 copy of the model (full forward, no cache)
  logits_<i>.<fmt>.npy    the same for the weights that mamba-quantize stores at
                          fmt (f16, bf16, q8_0, q4_0), as make_format_fixtures.py
                          computes them for the Mamba-1 fixtures
  greedy.json             a prompt (the first 6 tokens of sequence 0) and the 32
                          tokens that greedy generate() returns on the float32
                          checkpoint, as make_fixtures.py writes for Mamba-1
  meta.json               the config summary, the seed and checks of the logits

The models are random-init with small dimensions. Each reference is also
checked against an independent float64 forward written from the equations, so
a wrong reading of transformers' code shows up here and not in the engine.

transformers' Mamba-2 torch path runs its chunked scan in float32 even for a
float64 model (mamba2_chunk_scan calls .float()), so the Mamba-2 references
carry float32 rounding of the scan, about 1e-6 relative (meta.json records the
distance to the independent float64 forward).

Usage: /work/pyenv/venv/bin/python tests/reference/make_variant_fixtures.py [--only NAME ...]
It needs cargo for the format references (it runs mamba-quantize) and takes
about a minute. With --greedy-only it loads each saved hf/ checkpoint and writes
only greedy.json (and its entry in meta.json), leaving the other files as they
are.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import pathlib
import platform
import shutil
import sys
import tempfile

import numpy as np
import tokenizers
import torch
import torch.nn.functional as F
import transformers
from transformers import FalconMambaConfig, FalconMambaForCausalLM, Mamba2Config, Mamba2ForCausalLM

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_fixtures import (  # noqa: E402
    GREEDY_NEW_TOKENS,
    MIN_TOP2_GAP,
    load_corpus,
    max_relative_l2,
    top2_gaps,
    train_tokenizer,
    write_tokenizer,
)
from make_format_fixtures import FORMATS, quantize, read_weights  # noqa: E402

REPO_ROOT = HERE.parents[1]
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"

# The independent float64 forward must agree with the reference this closely.
# Mamba-2's reference has a float32 scan (see the module docstring).
INDEPENDENT_TOLERANCE = {"mamba2": 2e-5, "falcon_mamba": 1e-5}
# The f32 file read back must reproduce logits_<i>.npy this closely.
F32_SELF_CHECK = 1e-6


@dataclasses.dataclass(frozen=True)
class VariantSpec:
    """One random-init checkpoint and the token sequences tested on it."""

    name: str
    family: str  # "mamba2" or "falcon_mamba"
    seed: int
    hidden_size: int
    num_hidden_layers: int
    state_size: int
    vocab_size: int
    tie_word_embeddings: bool
    text_lengths: tuple[int, ...]
    conv_kernel: int = 4
    use_conv_bias: bool = True
    layer_norm_epsilon: float = 1e-5
    # Mamba-2 only.
    head_dim: int = 64
    n_groups: int = 1
    chunk_size: int = 8
    time_step_limit: tuple[float, float] = (0.0, float("inf"))
    # Falcon-Mamba only: the epsilon of the dt, B and C normalisation.
    mixer_rms_eps: float = 1e-6


FIXTURES = [
    # 4 heads of 16 channels, one group, d_state 16, two layers. Chunks of 8
    # tokens: 13 and 37 tokens end in a partial chunk.
    VariantSpec(
        name="mamba2_g1",
        family="mamba2",
        seed=5005,
        hidden_size=32,
        num_hidden_layers=2,
        state_size=16,
        vocab_size=264,
        tie_word_embeddings=True,
        text_lengths=(13, 37),
        head_dim=16,
    ),
    # 2 heads of 64 channels in 2 groups (each head its own B and C),
    # d_state 128, untied LM head. Chunks of 16: 21 and 50 tokens.
    VariantSpec(
        name="mamba2_g2",
        family="mamba2",
        seed=6006,
        hidden_size=64,
        num_hidden_layers=1,
        state_size=128,
        vocab_size=264,
        tie_word_embeddings=False,
        text_lengths=(21, 50),
        head_dim=64,
        n_groups=2,
        chunk_size=16,
    ),
    # A dt upper bound of 0.02 that clamps most heads' dt (drawn in 1e-3..1e-1),
    # no conv bias, d_conv 3, 8 heads of 8 channels in 4 groups.
    VariantSpec(
        name="mamba2_limit",
        family="mamba2",
        seed=7007,
        hidden_size=32,
        num_hidden_layers=1,
        state_size=8,
        vocab_size=264,
        tie_word_embeddings=True,
        text_lengths=(19,),
        conv_kernel=3,
        use_conv_bias=False,
        head_dim=8,
        n_groups=4,
        time_step_limit=(0.0, 0.02),
    ),
    # Falcon-Mamba: mixer_rms_eps 1e-3, far from the layer epsilon 1e-5, so an
    # engine that uses the wrong one fails.
    VariantSpec(
        name="falcon",
        family="falcon_mamba",
        seed=8008,
        hidden_size=64,
        num_hidden_layers=2,
        state_size=16,
        vocab_size=264,
        tie_word_embeddings=False,
        text_lengths=(8, 60),
        mixer_rms_eps=1e-3,
    ),
]


def make_config(spec: VariantSpec):
    common = dict(
        vocab_size=spec.vocab_size,
        hidden_size=spec.hidden_size,
        state_size=spec.state_size,
        num_hidden_layers=spec.num_hidden_layers,
        layer_norm_epsilon=spec.layer_norm_epsilon,
        expand=2,
        conv_kernel=spec.conv_kernel,
        use_conv_bias=spec.use_conv_bias,
        use_bias=False,
        hidden_act="silu",
        residual_in_fp32=True,
        tie_word_embeddings=spec.tie_word_embeddings,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    if spec.family == "mamba2":
        d_inner = 2 * spec.hidden_size
        return Mamba2Config(
            **common,
            head_dim=spec.head_dim,
            num_heads=d_inner // spec.head_dim,
            n_groups=spec.n_groups,
            chunk_size=spec.chunk_size,
            time_step_limit=spec.time_step_limit,
        )
    return FalconMambaConfig(**common, time_step_rank="auto", mixer_rms_eps=spec.mixer_rms_eps)


@torch.no_grad()
def init_weights(model, spec: VariantSpec, generator: torch.Generator) -> None:
    """Overwrite every parameter with seeded random values that give informative logits.

    As in make_fixtures.py: projections of about unit output scale, a larger
    out_proj and lm_head, and per-channel parameters that vary between channels
    and heads.
    """
    config = model.config
    d_model = config.hidden_size
    d_inner = 2 * d_model

    def normal(shape, std):
        return torch.randn(shape, generator=generator, dtype=torch.float32) * std

    def uniform(shape, low, high):
        return torch.rand(shape, generator=generator, dtype=torch.float32) * (high - low) + low

    def inverse_softplus_of_dt(n):
        dt = torch.exp(uniform((n,), math.log(1e-3), math.log(1e-1)))
        return dt + torch.log(-torch.expm1(-dt))

    backbone = model.backbone
    backbone.embeddings.weight.copy_(normal(backbone.embeddings.weight.shape, 0.2))
    for layer in backbone.layers:
        layer.norm.weight.copy_(uniform((d_model,), 0.7, 1.3))
        mixer = layer.mixer
        mixer.in_proj.weight.copy_(normal(mixer.in_proj.weight.shape, 1.0 / math.sqrt(d_model)))
        mixer.conv1d.weight.copy_(normal(mixer.conv1d.weight.shape, 1.0 / math.sqrt(config.conv_kernel)))
        if mixer.conv1d.bias is not None:
            mixer.conv1d.bias.copy_(normal(mixer.conv1d.bias.shape, 0.2))
        mixer.out_proj.weight.copy_(normal((d_model, d_inner), 2.0 / math.sqrt(d_inner)))
        if spec.family == "mamba2":
            n_head = config.num_heads
            mixer.dt_bias.copy_(inverse_softplus_of_dt(n_head))
            # A = -(1..16) spread over the heads, jittered.
            mixer.A_log.copy_(torch.log(uniform((n_head,), 1.0, 16.0)))
            mixer.D.copy_(uniform((n_head,), 0.5, 1.5))
            mixer.norm.weight.copy_(uniform((d_inner,), 0.7, 1.3))
        else:
            d_state = config.state_size
            dt_rank = config.time_step_rank
            mixer.x_proj.weight.copy_(normal((dt_rank + 2 * d_state, d_inner), 1.0 / math.sqrt(d_inner)))
            mixer.dt_proj.weight.copy_(normal((d_inner, dt_rank), 0.5 / math.sqrt(dt_rank)))
            mixer.dt_proj.bias.copy_(inverse_softplus_of_dt(d_inner))
            a = torch.arange(1, d_state + 1, dtype=torch.float32).expand(d_inner, d_state)
            mixer.A_log.copy_(torch.log(a) + normal((d_inner, d_state), 0.1))
            mixer.D.copy_(uniform((d_inner,), 0.5, 1.5))
    backbone.norm_f.weight.copy_(uniform((d_model,), 0.7, 1.3))
    if not spec.tie_word_embeddings:
        model.lm_head.weight.copy_(normal(model.lm_head.weight.shape, 6.0 / math.sqrt(d_model)))


def float64_copy(model):
    """Return a float64 copy whose residual stream is not rounded to float32 per layer."""
    model64 = copy.deepcopy(model).to(torch.float64)
    for layer in model64.backbone.layers:
        layer.residual_in_fp32 = False
    return model64


@torch.no_grad()
def logits_hf_float64(model64, ids: list[int]) -> np.ndarray:
    """Run the float64 backbone and apply lm_head in float64 (forward casts logits to float32)."""
    output = model64.backbone(torch.tensor([ids]), use_cache=False)
    hidden = output.last_hidden_state[0]
    return (hidden @ model64.lm_head.weight.T).numpy()


def weight(tensor):
    return tensor.detach().to(torch.float64)


def rms_norm(x, w, eps):
    normed = x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)
    return normed if w is None else normed * weight(w)


def causal_conv_silu(x, conv, d_conv):
    """Causal depthwise conv with the checkpoint's kernel [channels, 1, d_conv], then SiLU."""
    n_tokens, channels = x.shape
    kernel = weight(conv.weight)[:, 0, :]
    padded = torch.cat([torch.zeros(d_conv - 1, channels, dtype=torch.float64), x], dim=0)
    out = torch.zeros(n_tokens, channels, dtype=torch.float64)
    if conv.bias is not None:
        out = out + weight(conv.bias)
    for tap in range(d_conv):
        out = out + padded[tap : tap + n_tokens] * kernel[:, tap]
    return F.silu(out)


@torch.no_grad()
def logits_independent_float64(model, spec: VariantSpec, ids: list[int]) -> np.ndarray:
    """Compute the logits with a plain float64 forward written from the equations.

    Mamba-2: in_proj -> z, xBC, dt; conv + SiLU over xBC; per head h with group
    g = h / (heads / groups): s = exp(dt A_h) s + dt x B_g, y = C_g s + D_h x;
    y = rmsnorm_groups(y * silu(z)) * w; out_proj. dt = clamp(softplus(dt +
    dt_bias), time_step_limit). Falcon-Mamba: Mamba-1 with weightless RMS norms
    (mixer_rms_eps) of dt, B and C after x_proj.
    """
    config = model.config
    eps = config.layer_norm_epsilon
    d_model = config.hidden_size
    d_inner = 2 * d_model
    d_state = config.state_size
    backbone = model.backbone
    hidden = weight(backbone.embeddings.weight)[torch.tensor(ids)]
    n_tokens = hidden.shape[0]

    for layer in backbone.layers:
        mixer = layer.mixer
        projected = rms_norm(hidden, layer.norm.weight, eps) @ weight(mixer.in_proj.weight).T
        if spec.family == "mamba2":
            n_head, head_dim, n_group = config.num_heads, config.head_dim, config.n_groups
            conv_dim = d_inner + 2 * n_group * d_state
            z = projected[:, :d_inner]
            xbc = causal_conv_silu(projected[:, d_inner : d_inner + conv_dim], mixer.conv1d, config.conv_kernel)
            dt = F.softplus(projected[:, d_inner + conv_dim :] + weight(mixer.dt_bias))
            dt = dt.clamp(spec.time_step_limit[0], spec.time_step_limit[1])
            x = xbc[:, :d_inner].reshape(n_tokens, n_head, head_dim)
            b = xbc[:, d_inner : d_inner + n_group * d_state].reshape(n_tokens, n_group, d_state)
            c = xbc[:, d_inner + n_group * d_state :].reshape(n_tokens, n_group, d_state)
            a = -torch.exp(weight(mixer.A_log))
            d = weight(mixer.D)
            heads_per_group = n_head // n_group
            state = torch.zeros(n_head, head_dim, d_state, dtype=torch.float64)
            y = torch.empty(n_tokens, n_head, head_dim, dtype=torch.float64)
            for t in range(n_tokens):
                for h in range(n_head):
                    g = h // heads_per_group
                    state[h] = torch.exp(dt[t, h] * a[h]) * state[h] + dt[t, h] * x[t, h][:, None] * b[t, g][None, :]
                    y[t, h] = state[h] @ c[t, g] + d[h] * x[t, h]
            y = y.reshape(n_tokens, d_inner) * F.silu(z)
            group = d_inner // n_group
            y = y.reshape(n_tokens, n_group, group)
            y = (y / torch.sqrt((y * y).mean(-1, keepdim=True) + eps)).reshape(n_tokens, d_inner)
            y = y * weight(mixer.norm.weight)
        else:
            dt_rank = config.time_step_rank
            mixer_eps = config.mixer_rms_eps
            x, z = projected[:, :d_inner], projected[:, d_inner:]
            u = causal_conv_silu(x, mixer.conv1d, config.conv_kernel)
            x_db = u @ weight(mixer.x_proj.weight).T
            dt_low = rms_norm(x_db[:, :dt_rank], None, mixer_eps)
            b = rms_norm(x_db[:, dt_rank : dt_rank + d_state], None, mixer_eps)
            c = rms_norm(x_db[:, dt_rank + d_state :], None, mixer_eps)
            dt = F.softplus(dt_low @ weight(mixer.dt_proj.weight).T + weight(mixer.dt_proj.bias))
            a = -torch.exp(weight(mixer.A_log))
            state = torch.zeros(d_inner, d_state, dtype=torch.float64)
            y = torch.empty(n_tokens, d_inner, dtype=torch.float64)
            for t in range(n_tokens):
                state = torch.exp(dt[t, :, None] * a) * state + (dt[t] * u[t])[:, None] * b[t][None, :]
                y[t] = state @ c[t]
            y = (y + u * weight(mixer.D)) * F.silu(z)
        hidden = hidden + y @ weight(mixer.out_proj.weight).T

    hidden = rms_norm(hidden, backbone.norm_f.weight, eps)
    return (hidden @ weight(model.lm_head.weight).T).numpy()


def build_sequences(spec: VariantSpec, tokenizer, corpus: str) -> list[list[int]]:
    corpus_ids = tokenizer.encode(corpus).ids
    sequences = []
    for index, length in enumerate(spec.text_lengths):
        start = 2000 + 3000 * index + spec.seed % 1000
        sequences.append(corpus_ids[start : start + length])
    return sequences


# GGUF tensor name (after "blk.N.") to the parameter name under backbone.layers.N.
LAYER_TENSORS = {
    "mamba2": {
        "attn_norm.weight": "norm.weight",
        "ssm_in.weight": "mixer.in_proj.weight",
        "ssm_conv1d.weight": "mixer.conv1d.weight",
        "ssm_conv1d.bias": "mixer.conv1d.bias",
        "ssm_dt.bias": "mixer.dt_bias",
        "ssm_a": "mixer.A_log",
        "ssm_d": "mixer.D",
        "ssm_norm.weight": "mixer.norm.weight",
        "ssm_out.weight": "mixer.out_proj.weight",
    },
    "falcon_mamba": {
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
    },
}
GLOBAL_TENSORS = {
    "token_embd.weight": "backbone.embeddings.weight",
    "output_norm.weight": "backbone.norm_f.weight",
    "output.weight": "lm_head.weight",
}


@torch.no_grad()
def load_gguf_into(model64, family: str, weights: dict[str, np.ndarray]) -> None:
    """Overwrite every parameter of the float64 model with the file's values.

    A no-bias conv gets zeros in the file (llama.cpp requires the tensor), which the
    model has no parameter for; they must be zero.
    """
    params = dict(model64.named_parameters(remove_duplicate=False))
    assigned = set()
    for gguf_name, value in weights.items():
        if gguf_name in GLOBAL_TENSORS:
            hf_name = GLOBAL_TENSORS[gguf_name]
        else:
            _, layer, rest = gguf_name.split(".", 2)
            hf_name = f"backbone.layers.{int(layer)}.{LAYER_TENSORS[family][rest]}"
        data = torch.from_numpy(value.astype(np.float64))
        if hf_name not in params and hf_name.endswith("conv1d.bias"):
            if (data != 0).any():
                raise ValueError(f"{gguf_name} is not zero but the model has no conv bias")
            continue
        if gguf_name.endswith("ssm_a"):
            data = torch.log(-data)
        param = params[hf_name]
        param.copy_(data.reshape(param.shape))
        assigned.add(hf_name)
    if "lm_head.weight" not in assigned:
        assigned.add("lm_head.weight")
    missing = set(params) - assigned
    if missing:
        raise ValueError(f"the GGUF file sets no value for {sorted(missing)}")


# Length of the greedy.json prompt, cut from the start of sequence 0.
GREEDY_PROMPT_LENGTH = 6
# Fixtures that get a greedy.json. For mamba2_limit, transformers' float32
# generate() and the float64 forward pick different tokens at step 15, so its
# greedy tokens would depend on rounding.
GREEDY_FIXTURES = ("mamba2_g1", "mamba2_g2", "falcon")


@torch.no_grad()
def run_greedy(model, model64, prompt: list[int]) -> dict:
    """Generate GREEDY_NEW_TOKENS tokens greedily and check them against a float64 forward.

    generate() runs the float32 model with its recurrent cache, one token per
    step after the prompt, and does not stop at the end-of-text id.
    """
    output = model.generate(
        torch.tensor([prompt]),
        do_sample=False,
        max_new_tokens=GREEDY_NEW_TOKENS,
        min_new_tokens=0,
        eos_token_id=None,
        pad_token_id=0,
        use_cache=True,
    )
    generated = output[0, len(prompt) :].tolist()
    if len(generated) != GREEDY_NEW_TOKENS:
        raise RuntimeError(f"generate() returned {len(generated)} tokens, expected {GREEDY_NEW_TOKENS}")

    # A near-tie would make the expected tokens depend on rounding, so the
    # float64 full forward over prompt + generated must pick the same tokens.
    full = prompt + generated
    step_logits = logits_hf_float64(model64, full)[len(prompt) - 1 : len(full) - 1]
    expected = step_logits.argmax(-1).tolist()
    if expected != generated:
        raise RuntimeError(f"greedy tokens {generated} differ from the float64 argmax {expected}")
    min_gap = float(top2_gaps(step_logits).min())
    if min_gap < MIN_TOP2_GAP:
        raise RuntimeError(f"greedy tokens {generated}: top-2 near-tie, gap {min_gap:.2e}")

    return {
        "prompt": prompt,
        "generated": generated,
        "max_new_tokens": GREEDY_NEW_TOKENS,
        "note": "model.generate(do_sample=False, eos_token_id=None): float32, with the recurrent cache; "
        "no stop at end-of-text",
        "min_top2_gap": min_gap,
    }


def write_greedy(model, model64, sequences: list[list[int]], out_dir: pathlib.Path) -> float:
    """Write greedy.json and return its smallest top-2 logit gap."""
    greedy = run_greedy(model, model64, sequences[0][:GREEDY_PROMPT_LENGTH])
    (out_dir / "greedy.json").write_text(json.dumps(greedy, indent=1) + "\n")
    return greedy["min_top2_gap"]


def remake_greedy(spec: VariantSpec) -> float:
    """Write greedy.json from the saved checkpoint and record its gap in meta.json."""
    out_dir = FIXTURES_DIR / spec.name
    model_class = Mamba2ForCausalLM if spec.family == "mamba2" else FalconMambaForCausalLM
    model = model_class.from_pretrained(out_dir / "hf").eval()
    sequences = json.loads((out_dir / "tokens.json").read_text())["sequences"]
    gap = write_greedy(model, float64_copy(model), sequences, out_dir)
    meta = json.loads((out_dir / "meta.json").read_text())
    meta["greedy_min_top2_gap"] = gap
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return gap


def make_fixture(spec: VariantSpec, corpus: str, scratch: pathlib.Path) -> dict:
    out_dir = FIXTURES_DIR / spec.name
    if out_dir.exists():
        shutil.rmtree(out_dir)
    hf_dir = out_dir / "hf"
    hf_dir.mkdir(parents=True)

    tokenizer = train_tokenizer(spec.vocab_size, corpus)
    torch.manual_seed(spec.seed)
    model_class = Mamba2ForCausalLM if spec.family == "mamba2" else FalconMambaForCausalLM
    model = model_class(make_config(spec)).eval()
    init_weights(model, spec, torch.Generator().manual_seed(spec.seed))
    model.save_pretrained(hf_dir, safe_serialization=True)
    write_tokenizer(tokenizer, hf_dir)

    model64 = float64_copy(model)
    sequences = build_sequences(spec, tokenizer, corpus)
    checks = []
    references = []
    for index, ids in enumerate(sequences):
        reference = logits_hf_float64(model64, ids)
        independent = logits_independent_float64(model, spec, ids)
        if not np.isfinite(reference).all():
            raise RuntimeError(f"{spec.name} sequence {index}: non-finite logits")
        gaps = top2_gaps(reference)
        check = {
            "index": index,
            "n_tokens": len(ids),
            "distinct_argmax": int(len(set(reference.argmax(-1).tolist()))),
            "min_top2_gap": float(gaps.min()),
            "logit_std": float(reference.std()),
            "max_rel_l2_independent_float64_vs_reference": max_relative_l2(independent, reference),
        }
        if check["min_top2_gap"] < MIN_TOP2_GAP:
            raise RuntimeError(f"{spec.name} sequence {index}: top-2 near-tie, {check}")
        if check["max_rel_l2_independent_float64_vs_reference"] > INDEPENDENT_TOLERANCE[spec.family]:
            raise RuntimeError(f"{spec.name} sequence {index}: independent forward disagrees, {check}")
        checks.append(check)
        references.append(reference)
        np.save(out_dir / f"logits_{index}.npy", reference.astype(np.float32))
    (out_dir / "tokens.json").write_text(json.dumps({"sequences": sequences}) + "\n")
    greedy_gap = write_greedy(model, model64, sequences, out_dir) if spec.name in GREEDY_FIXTURES else None

    # Format references: the weights mamba-quantize stores, read back with gguf-py.
    formats = {}
    for fmt in ["f32", *FORMATS]:
        path = scratch / f"{spec.name}-{fmt}.gguf"
        quantize(hf_dir, path, fmt)
        values, _ = read_weights(path)
        file_model = float64_copy(model)
        load_gguf_into(file_model, spec.family, values)
        errors = []
        for index, ids in enumerate(sequences):
            saved = logits_hf_float64(file_model, ids).astype(np.float32)
            errors.append(max_relative_l2(saved.astype(np.float64), references[index]))
            if fmt == "f32":
                if errors[-1] > F32_SELF_CHECK:
                    raise RuntimeError(f"{spec.name} seq {index}: the f32 file differs from logits_{index}.npy by {errors[-1]:.2e}")
            else:
                np.save(out_dir / f"logits_{index}.{fmt}.npy", saved)
        formats[fmt] = {"max_rel_l2_vs_f32_reference": max(errors)}

    config = model.config
    meta = {
        "name": spec.name,
        "family": spec.family,
        "seed": spec.seed,
        "spec": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(spec).items()},
        "d_model": config.hidden_size,
        "d_inner": 2 * config.hidden_size,
        "d_state": config.state_size,
        "n_layer": config.num_hidden_layers,
        "logits_reference": f"transformers {model_class.__name__} in float64 (residual_in_fp32 off), cast to float32",
        "sequences": checks,
        "format_references": formats,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "numpy": np.__version__,
        },
    }
    if greedy_gap is not None:
        meta["greedy_min_top2_gap"] = greedy_gap
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", choices=[spec.name for spec in FIXTURES], help="fixture names (default: all)")
    parser.add_argument("--greedy-only", action="store_true", help="write only greedy.json from the saved hf/ checkpoints")
    args = parser.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    if args.greedy_only:
        for spec in FIXTURES:
            if spec.name in GREEDY_FIXTURES and (not args.only or spec.name in args.only):
                print(f"{spec.name} greedy: min top-2 gap {remake_greedy(spec):.4f}")
        return 0

    corpus = load_corpus()
    with tempfile.TemporaryDirectory() as scratch:
        for spec in FIXTURES:
            if args.only and spec.name not in args.only:
                continue
            meta = make_fixture(spec, corpus, pathlib.Path(scratch))
            for check in meta["sequences"]:
                print(
                    f"{spec.name} seq {check['index']}: {check['n_tokens']} tokens, "
                    f"{check['distinct_argmax']} distinct argmax, min top-2 gap {check['min_top2_gap']:.4f}, "
                    f"independent f64 rel err {check['max_rel_l2_independent_float64_vs_reference']:.2e}"
                )
            for fmt, entry in meta["format_references"].items():
                print(f"{spec.name} {fmt}: max rel L2 vs logits_<i>.npy {entry['max_rel_l2_vs_f32_reference']:.3e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
