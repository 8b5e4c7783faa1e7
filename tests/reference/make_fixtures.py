#!/usr/bin/env python3
"""Generate mamba-edge conformance fixtures from the Hugging Face transformers Mamba reference.

For each fixture in FIXTURES this writes tests/fixtures/<name>/:

  hf/             MambaForCausalLM.save_pretrained output (config.json,
                  model.safetensors in float32) plus the tokenizer files
  tokens.json     {"sequences": [[id, ...], ...]}, the token sequences tested
  logits_<i>.npy  float32 [n_tokens, n_vocab] logits for sequence i, computed
                  by a float64 copy of the model (full forward, no cache) and
                  cast to float32
  greedy.json     a prompt and the 32 tokens that greedy generate() returns
  meta.json       the config summary, the seed and checks of the logits

Everything runs on the CPU with fixed seeds and takes well under a minute.
Usage: /work/pyenv/venv/bin/python tests/reference/make_fixtures.py [--out DIR] [--only NAME ...]
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

import numpy as np
import tokenizers
import torch
import torch.nn.functional as F
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import MambaConfig, MambaForCausalLM, PreTrainedTokenizerFast

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures"

END_OF_TEXT = "<|endoftext|>"
GREEDY_NEW_TOKENS = 32

# Smallest accepted gap between the largest and second-largest logit at any
# position. It keeps argmax comparisons clear of float32 rounding: llama.cpp
# at F32 differs from these logits by at most about 1e-5 absolute.
MIN_TOP2_GAP = 1e-3


@dataclasses.dataclass(frozen=True)
class FixtureSpec:
    """One random-init Mamba checkpoint and the token sequences tested on it."""

    name: str
    seed: int
    hidden_size: int
    num_hidden_layers: int
    state_size: int
    conv_kernel: int
    vocab_size: int
    tie_word_embeddings: bool
    # "auto" means ceil(hidden_size / 16), as MambaConfig computes it.
    time_step_rank: int | str = "auto"
    expand: int = 2
    layer_norm_epsilon: float = 1e-5
    # Lengths of the text sequences; each is a slice of the tokenized corpus.
    text_lengths: tuple[int, ...] = (8,)
    # Length of an extra sequence of uniformly random ids that starts and ends
    # with the last vocab id and contains id 0, or 0 for none.
    random_length: int = 0
    # Also test a sequence of one token (the end-of-text id).
    single_token: bool = False
    greedy_prompt_length: int = 6


FIXTURES = [
    # Vocab 312 is a multiple of 8 but not of 32: llama.cpp's converter pads
    # the token list of a Mamba model to a multiple of 8, so a vocab that is
    # already one keeps the tensors loadable by llama.cpp.
    FixtureSpec(
        name="tiny",
        seed=1001,
        hidden_size=64,
        num_hidden_layers=2,
        state_size=16,
        conv_kernel=4,
        vocab_size=312,
        tie_word_embeddings=True,
        text_lengths=(8, 300),
        random_length=24,
        single_token=True,
    ),
    # Odd sizes everywhere: d_inner 100 is not a multiple of 8, d_state 1,
    # d_conv 2, dt_rank 1, vocab 333 not a multiple of 8, untied lm_head.
    FixtureSpec(
        name="odd",
        seed=2002,
        hidden_size=50,
        num_hidden_layers=3,
        state_size=1,
        conv_kernel=2,
        vocab_size=333,
        tie_word_embeddings=False,
        time_step_rank=1,
        text_lengths=(7, 100),
        random_length=20,
    ),
    # Every matrix row length that the config controls is a multiple of 32
    # (64, 128, vocab 512), so Q8_0 and Q4_0 blocks cover whole rows. dt_rank
    # (4) and 2 * d_state + dt_rank (36) cannot be.
    FixtureSpec(
        name="quant",
        seed=3003,
        hidden_size=64,
        num_hidden_layers=2,
        state_size=16,
        conv_kernel=4,
        vocab_size=512,
        tie_word_embeddings=False,
        text_lengths=(64,),
    ),
    # A large RMS norm epsilon (1e-2 instead of 1e-5) so that an engine which
    # ignores the config value fails clearly, an explicit dt_rank (3, not the
    # auto value 2) and a single layer.
    FixtureSpec(
        name="eps",
        seed=4004,
        hidden_size=32,
        num_hidden_layers=1,
        state_size=8,
        conv_kernel=3,
        vocab_size=264,
        tie_word_embeddings=True,
        time_step_rank=3,
        layer_norm_epsilon=1e-2,
        text_lengths=(40,),
    ),
]


def load_corpus() -> str:
    """Return the tokenizer training text: the pinned transformers package's Mamba sources.

    The files come from the installed transformers version that requirements.txt
    pins, so the text, and with it the trained tokenizer, is the same on every
    machine that installs those requirements.
    """
    models_dir = pathlib.Path(transformers.__file__).parent / "models"
    paths = []
    for package in ("falcon_mamba", "mamba", "mamba2"):
        paths.extend(sorted((models_dir / package).glob("*.py")))
    if not paths:
        raise FileNotFoundError(f"no Mamba sources found under {models_dir}")
    return "\n".join(path.read_text(encoding="utf-8") for path in paths)


def train_tokenizer(vocab_size: int, corpus: str) -> Tokenizer:
    """Train a byte-level BPE with exactly vocab_size tokens.

    Id 0 is <|endoftext|> (bos, eos, unk and pad, as in GPT-NeoX), ids 1-256
    are the 256 byte symbols and the rest are merges. The pre-tokenizer is
    GPT-2's byte-level regex split.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    chunks = corpus.split("\n\n")
    tokenizer.train_from_iterator(chunks, trainer=trainer)

    if tokenizer.get_vocab_size() != vocab_size:
        raise RuntimeError(
            f"BPE training produced {tokenizer.get_vocab_size()} tokens, expected {vocab_size}; "
            "the corpus has too few distinct pairs for this vocab size"
        )
    if tokenizer.token_to_id(END_OF_TEXT) != 0:
        raise RuntimeError(f"{END_OF_TEXT} has id {tokenizer.token_to_id(END_OF_TEXT)}, expected 0")
    return tokenizer


def make_config(spec: FixtureSpec) -> MambaConfig:
    return MambaConfig(
        vocab_size=spec.vocab_size,
        hidden_size=spec.hidden_size,
        state_size=spec.state_size,
        num_hidden_layers=spec.num_hidden_layers,
        layer_norm_epsilon=spec.layer_norm_epsilon,
        expand=spec.expand,
        conv_kernel=spec.conv_kernel,
        time_step_rank=spec.time_step_rank,
        tie_word_embeddings=spec.tie_word_embeddings,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
        # The defaults, written out because they are part of what is tested:
        # no bias in in_proj/out_proj, a bias in conv1d, SiLU.
        use_bias=False,
        use_conv_bias=True,
        hidden_act="silu",
        residual_in_fp32=True,
    )


@torch.no_grad()
def init_weights(model: MambaForCausalLM, spec: FixtureSpec, generator: torch.Generator) -> None:
    """Overwrite every parameter with seeded random values that give informative logits.

    The default init produces logits with a small spread, so the argmax barely
    changes between positions and ties are common. Here projections get about
    unit output scale, out_proj and lm_head a larger one, and every per-channel
    parameter (norm weights, A, D, dt bias, conv bias) varies between channels
    so that an engine mixing up channels or layers fails.
    """
    config = model.config
    d_model = config.hidden_size
    d_inner = config.intermediate_size
    d_state = config.state_size
    dt_rank = config.time_step_rank

    def normal(shape, std):
        return torch.randn(shape, generator=generator, dtype=torch.float32) * std

    def uniform(shape, low, high):
        return torch.rand(shape, generator=generator, dtype=torch.float32) * (high - low) + low

    backbone = model.backbone
    # A small embedding scale and a large out_proj gain keep the mixers'
    # output larger than the token's own embedding in the residual stream.
    # Otherwise a tied model predicts its input token at almost every position.
    backbone.embeddings.weight.copy_(normal(backbone.embeddings.weight.shape, 0.2))

    for layer in backbone.layers:
        layer.norm.weight.copy_(uniform((d_model,), 0.7, 1.3))
        mixer = layer.mixer
        mixer.in_proj.weight.copy_(normal((2 * d_inner, d_model), 1.0 / math.sqrt(d_model)))
        mixer.conv1d.weight.copy_(normal(mixer.conv1d.weight.shape, 1.0 / math.sqrt(config.conv_kernel)))
        mixer.conv1d.bias.copy_(normal((d_inner,), 0.2))
        mixer.x_proj.weight.copy_(normal((dt_rank + 2 * d_state, d_inner), 1.0 / math.sqrt(d_inner)))
        mixer.dt_proj.weight.copy_(normal((d_inner, dt_rank), 0.5 / math.sqrt(dt_rank)))

        # The bias is softplus^-1 of a dt drawn log-uniform in [1e-3, 1e-1],
        # the range Mamba's own init uses, so dt is in that range where
        # dt_proj's input is 0.
        dt = torch.exp(uniform((d_inner,), math.log(1e-3), math.log(1e-1)))
        mixer.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

        # S4D-real init A = -(1..d_state), each channel jittered, so the decay
        # rates differ per channel and exp(A_log) stays positive.
        a = torch.arange(1, d_state + 1, dtype=torch.float32).expand(d_inner, d_state)
        mixer.A_log.copy_(torch.log(a) + normal((d_inner, d_state), 0.1))
        mixer.D.copy_(uniform((d_inner,), 0.5, 1.5))
        mixer.out_proj.weight.copy_(normal((d_model, d_inner), 2.0 / math.sqrt(d_inner)))

    backbone.norm_f.weight.copy_(uniform((d_model,), 0.7, 1.3))
    if not spec.tie_word_embeddings:
        # This gives a logit std of about 6 (meta.json records it per sequence).
        model.lm_head.weight.copy_(normal(model.lm_head.weight.shape, 6.0 / math.sqrt(d_model)))


@torch.no_grad()
def logits_hf_float32(model: MambaForCausalLM, ids: list[int]) -> np.ndarray:
    output = model(torch.tensor([ids]), use_cache=False)
    return output.logits[0].to(torch.float64).numpy()


@torch.no_grad()
def logits_hf_float64(model64: MambaForCausalLM, ids: list[int]) -> np.ndarray:
    """Run the float64 model copy and apply lm_head in float64.

    MambaForCausalLM.forward casts the logits to float32, so this calls the
    backbone and lm_head directly. Inside the backbone transformers still
    rounds a few activations to float32 (the RMS norm input, B and u in the
    scan) and computes A = -exp(A_log) in float32.
    """
    output = model64.backbone(torch.tensor([ids]), use_cache=False)
    hidden = output.last_hidden_state[0]
    return (hidden @ model64.lm_head.weight.T).numpy()


@torch.no_grad()
def logits_independent_float64(model: MambaForCausalLM, ids: list[int]) -> np.ndarray:
    """Compute the logits with a plain float64 Mamba-1 forward written from the equations.

    It cross-checks the facts in README.md: pre-norm residual blocks, causal
    depthwise conv with bias then SiLU, dt = softplus(dt_proj(x_proj_dt) + b),
    A = -exp(A_log), h = exp(dt*A) h + dt*B*u, y = C.h + D*u, y *= silu(z).
    """
    config = model.config
    eps = config.layer_norm_epsilon
    d_inner = config.intermediate_size
    d_state = config.state_size
    dt_rank = config.time_step_rank
    d_conv = config.conv_kernel

    def weight(tensor):
        return tensor.detach().to(torch.float64)

    def rms_norm(x, w):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * weight(w)

    backbone = model.backbone
    hidden = weight(backbone.embeddings.weight)[torch.tensor(ids)]
    n_tokens = hidden.shape[0]
    for layer in backbone.layers:
        mixer = layer.mixer
        xz = rms_norm(hidden, layer.norm.weight) @ weight(mixer.in_proj.weight).T
        x, z = xz[:, :d_inner], xz[:, d_inner:]

        # conv1d.weight is [d_inner, 1, d_conv]; tap d_conv - 1 multiplies the
        # current token and tap 0 the token d_conv - 1 steps back.
        conv_weight = weight(mixer.conv1d.weight)[:, 0, :]
        padded = torch.cat([torch.zeros(d_conv - 1, d_inner, dtype=torch.float64), x], dim=0)
        u = weight(mixer.conv1d.bias).expand(n_tokens, d_inner).clone()
        for tap in range(d_conv):
            u = u + padded[tap : tap + n_tokens] * conv_weight[:, tap]
        u = F.silu(u)

        x_db = u @ weight(mixer.x_proj.weight).T
        dt_low = x_db[:, :dt_rank]
        b = x_db[:, dt_rank : dt_rank + d_state]
        c = x_db[:, dt_rank + d_state :]
        dt = F.softplus(dt_low @ weight(mixer.dt_proj.weight).T + weight(mixer.dt_proj.bias))
        a = -torch.exp(weight(mixer.A_log))

        state = torch.zeros(d_inner, d_state, dtype=torch.float64)
        y = torch.empty(n_tokens, d_inner, dtype=torch.float64)
        for t in range(n_tokens):
            state = torch.exp(dt[t, :, None] * a) * state + (dt[t] * u[t])[:, None] * b[t][None, :]
            y[t] = state @ c[t]
        y = (y + u * weight(mixer.D)) * F.silu(z)
        hidden = hidden + y @ weight(mixer.out_proj.weight).T

    hidden = rms_norm(hidden, backbone.norm_f.weight)
    return (hidden @ weight(model.lm_head.weight).T).numpy()


def max_relative_l2(actual: np.ndarray, expected: np.ndarray) -> float:
    """Return the max over positions of ||actual - expected||_2 / ||expected||_2."""
    errors = np.linalg.norm(actual - expected, axis=-1) / np.linalg.norm(expected, axis=-1)
    return float(errors.max())


def top2_gaps(logits: np.ndarray) -> np.ndarray:
    top2 = np.sort(logits, axis=-1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def build_sequences(spec: FixtureSpec, tokenizer: Tokenizer, corpus: str) -> list[list[int]]:
    corpus_ids = tokenizer.encode(corpus).ids
    sequences = []
    # Each text sequence starts at its own offset into the corpus so that the
    # sequences differ.
    for index, length in enumerate(spec.text_lengths):
        start = 1000 + 3000 * index
        sequences.append(corpus_ids[start : start + length])

    if spec.random_length:
        generator = torch.Generator().manual_seed(spec.seed + 7)
        last = spec.vocab_size - 1
        middle = torch.randint(0, spec.vocab_size, (spec.random_length - 3,), generator=generator).tolist()
        sequences.append([last, 0, *middle, last])

    if spec.single_token:
        sequences.append([0])

    for ids in sequences:
        if max(ids) >= spec.vocab_size:
            raise RuntimeError(f"token id {max(ids)} is out of range for vocab {spec.vocab_size}")
    return sequences


@torch.no_grad()
def run_greedy(model: MambaForCausalLM, model64: MambaForCausalLM, prompt: list[int]) -> dict:
    """Generate GREEDY_NEW_TOKENS tokens greedily and check them against full forwards.

    generate() uses the recurrent cache path (one token per step after the
    prompt). eos stopping is off, so all 32 tokens are always generated even
    if the end-of-text id appears.
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

    # The float64 full forward over prompt + generated must pick the same
    # tokens; otherwise a near-tie makes the fixture ambiguous.
    full = prompt + generated
    logits = logits_hf_float64(model64, full)
    step_logits = logits[len(prompt) - 1 : len(full) - 1]
    expected = step_logits.argmax(-1).tolist()
    if expected != generated:
        raise RuntimeError(f"greedy tokens {generated} differ from the float64 argmax {expected}")

    return {
        "prompt": prompt,
        "generated": generated,
        "max_new_tokens": GREEDY_NEW_TOKENS,
        "note": "model.generate(do_sample=False, eos_token_id=None): float32, with the recurrent cache; "
        "no stop at end-of-text",
        "min_top2_gap": float(top2_gaps(step_logits).min()),
    }


def write_tokenizer(tokenizer: Tokenizer, hf_dir: pathlib.Path) -> None:
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        unk_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        add_bos_token=False,
        add_eos_token=False,
        model_max_length=2048,
    )
    wrapped.save_pretrained(hf_dir)


def make_fixture(spec: FixtureSpec, corpus: str, out_root: pathlib.Path) -> dict:
    out_dir = out_root / spec.name
    hf_dir = out_dir / "hf"
    if hf_dir.exists():
        shutil.rmtree(hf_dir)
    for stale in out_dir.glob("logits_*.npy"):
        stale.unlink()
    hf_dir.mkdir(parents=True)

    tokenizer = train_tokenizer(spec.vocab_size, corpus)

    torch.manual_seed(spec.seed)
    model = MambaForCausalLM(make_config(spec)).eval()
    init_weights(model, spec, torch.Generator().manual_seed(spec.seed))
    if spec.tie_word_embeddings and model.lm_head.weight.data_ptr() != model.backbone.embeddings.weight.data_ptr():
        raise RuntimeError("lm_head is not tied to the embeddings")

    model.save_pretrained(hf_dir, safe_serialization=True)
    write_tokenizer(tokenizer, hf_dir)

    # transformers casts the residual to float32 when residual_in_fp32 is set,
    # which would round the float64 copy's residual stream every layer. For a
    # float32 model the flag changes nothing.
    model64 = copy.deepcopy(model).to(torch.float64)
    for layer in model64.backbone.layers:
        layer.residual_in_fp32 = False

    sequences = build_sequences(spec, tokenizer, corpus)
    sequence_checks = []
    for index, ids in enumerate(sequences):
        reference = logits_hf_float64(model64, ids)
        hf32 = logits_hf_float32(model, ids)
        independent = logits_independent_float64(model, ids)
        if not np.isfinite(reference).all():
            raise RuntimeError(f"{spec.name} sequence {index}: non-finite logits")

        gaps = top2_gaps(reference)
        check = {
            "index": index,
            "n_tokens": len(ids),
            "distinct_argmax": int(len(set(reference.argmax(-1).tolist()))),
            # With tied embeddings a large embedding scale makes every position
            # predict its own input token; this fraction shows how far the
            # mixers move the prediction away from that.
            "argmax_is_input_fraction": float(np.mean(reference.argmax(-1) == np.array(ids))),
            "min_top2_gap": float(gaps.min()),
            "positions_top2_gap_below_0.05": int((gaps < 0.05).sum()),
            "logit_std": float(reference.std()),
            "max_rel_l2_hf_float32_vs_reference": max_relative_l2(hf32, reference),
            "max_rel_l2_independent_float64_vs_reference": max_relative_l2(independent, reference),
        }
        if check["min_top2_gap"] < MIN_TOP2_GAP:
            raise RuntimeError(f"{spec.name} sequence {index}: top-2 near-tie, {check}")
        if check["max_rel_l2_independent_float64_vs_reference"] > 1e-5:
            raise RuntimeError(f"{spec.name} sequence {index}: independent forward disagrees, {check}")
        sequence_checks.append(check)
        np.save(out_dir / f"logits_{index}.npy", reference.astype(np.float32))

    (out_dir / "tokens.json").write_text(json.dumps({"sequences": sequences}) + "\n")

    prompt = sequences[0][: spec.greedy_prompt_length]
    greedy = run_greedy(model, model64, prompt)
    (out_dir / "greedy.json").write_text(json.dumps(greedy, indent=1) + "\n")

    config = model.config
    meta = {
        "name": spec.name,
        "seed": spec.seed,
        "d_model": config.hidden_size,
        "d_inner": config.intermediate_size,
        "d_state": config.state_size,
        "d_conv": config.conv_kernel,
        "dt_rank": config.time_step_rank,
        "n_layer": config.num_hidden_layers,
        "vocab_size": config.vocab_size,
        "tie_word_embeddings": config.tie_word_embeddings,
        "layer_norm_epsilon": config.layer_norm_epsilon,
        "logits_reference": "transformers MambaForCausalLM in float64 (residual_in_fp32 off), cast to float32",
        "sequences": sequence_checks,
        "greedy_min_top2_gap": greedy["min_top2_gap"],
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "numpy": np.__version__,
        },
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help="fixtures root directory")
    parser.add_argument("--only", nargs="*", help="fixture names to generate (default: all)")
    args = parser.parse_args()

    torch.use_deterministic_algorithms(True)
    # One thread fixes the summation order of the float32 matmuls.
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()

    corpus = load_corpus()
    specs = [spec for spec in FIXTURES if not args.only or spec.name in args.only]
    unknown = set(args.only or []) - {spec.name for spec in FIXTURES}
    if unknown:
        parser.error(f"unknown fixture name(s) {sorted(unknown)}; known: {[spec.name for spec in FIXTURES]}")

    for spec in specs:
        meta = make_fixture(spec, corpus, args.out)
        for check in meta["sequences"]:
            print(
                f"{spec.name} seq {check['index']}: {check['n_tokens']} tokens, "
                f"{check['distinct_argmax']} distinct argmax, "
                f"{check['argmax_is_input_fraction']:.2f} argmax=input, min top-2 gap {check['min_top2_gap']:.4f}, "
                f"hf f32 rel err {check['max_rel_l2_hf_float32_vs_reference']:.2e}, "
                f"independent f64 rel err {check['max_rel_l2_independent_float64_vs_reference']:.2e}"
            )
        print(f"{spec.name} greedy: min top-2 gap {meta['greedy_min_top2_gap']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
