"""Train one of the shipped mamba-edge models on the CPython standard library.

Usage (from the repository root):
    /work/pyenv/venv/bin/python tools/train/train.py micro
    /work/pyenv/venv/bin/python tools/train/train.py default

Steps: select the corpus (corpus.py), train a byte-level BPE tokenizer on the
training files, tokenize both splits, train MambaForCausalLM weights with the
forward pass in mamba_forward.py, check that transformers' own forward pass
gives the same logits, and write to models/<name>/:
    hf/           config.json, model.safetensors (F16), tokenizer.json, tokenizer_config.json
    loss.csv      training and validation loss, logged every --eval-every steps
    val_loss.png  the validation curve
    training.json the run's settings, sizes, times and final losses
Intermediate files (token caches, the F32 checkpoint) go to tools/train/runs/<name>/.

A run stops after --steps optimizer steps or --minutes of wall-clock time,
whichever comes first. The learning rate follows the larger of the two
progress fractions, so it decays fully either way. Only a run that stops on
--steps is reproducible: with the same --steps, seed, torch build and thread
count it makes the same weights, while a run stopped by the clock depends on
the machine's speed. training.json records which limit stopped the run.
"""

import argparse
import csv
import json
import math
import os
import pathlib
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import MambaConfig, MambaForCausalLM, PreTrainedTokenizerFast

import corpus
from mamba_forward import causal_lm_forward

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNS_DIR = pathlib.Path(__file__).resolve().parent / "runs"
END_OF_TEXT = "<|endoftext|>"
SEED = 0
THREADS = 2

# Architecture and training settings of each shipped model. The time limits
# were sized for a shared 2-core x86-64 machine.
MODELS = {
    "micro": {
        "vocab_size": 512,
        "hidden_size": 128,
        "num_hidden_layers": 3,
        "state_size": 16,
        "conv_kernel": 4,
        "expand": 2,
        "batch_size": 8,
        "seq_len": 256,
        "learning_rate": 4e-3,
        "warmup_steps": 30,
        "steps": 4000,
        "minutes": 8.0,
        "eval_every": 25,
        "eval_windows": 16,
    },
    "default": {
        "vocab_size": 4096,
        "hidden_size": 256,
        "num_hidden_layers": 6,
        "state_size": 16,
        "conv_kernel": 4,
        "expand": 2,
        "batch_size": 8,
        "seq_len": 256,
        "learning_rate": 3e-3,
        "warmup_steps": 30,
        "steps": 380,
        "minutes": 55.0,
        "eval_every": 25,
        "eval_windows": 16,
    },
}


def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    """Train a byte-level BPE. Id 0 is <|endoftext|>, then the 256 byte symbols, then merges."""
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
    tokenizer.train_from_iterator(texts, trainer=trainer)
    if tokenizer.get_vocab_size() != vocab_size:
        raise RuntimeError(f"BPE training produced {tokenizer.get_vocab_size()} tokens, expected {vocab_size}")
    if tokenizer.token_to_id(END_OF_TEXT) != 0:
        raise RuntimeError(f"{END_OF_TEXT} has id {tokenizer.token_to_id(END_OF_TEXT)}, expected 0")
    return tokenizer


def encode_split(tokenizer: Tokenizer, texts: list[str]) -> np.ndarray:
    """Encode documents as one stream: <|endoftext|> doc <|endoftext|> doc ... <|endoftext|>."""
    ids = [0]
    for encoding in tokenizer.encode_batch(texts):
        ids.extend(encoding.ids)
        ids.append(0)
    return np.asarray(ids, dtype=np.int64)


def make_config(settings: dict) -> MambaConfig:
    return MambaConfig(
        vocab_size=settings["vocab_size"],
        hidden_size=settings["hidden_size"],
        state_size=settings["state_size"],
        num_hidden_layers=settings["num_hidden_layers"],
        conv_kernel=settings["conv_kernel"],
        expand=settings["expand"],
        layer_norm_epsilon=1e-5,
        use_bias=False,
        use_conv_bias=True,
        hidden_act="silu",
        residual_in_fp32=True,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )


def learning_rate(settings: dict, step: int, progress: float) -> float:
    """Linear warmup, then cosine decay to a tenth of the peak at progress 1."""
    peak = settings["learning_rate"]
    if step < settings["warmup_steps"]:
        return peak * (step + 1) / settings["warmup_steps"]
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))


def sample_batch(stream: torch.Tensor, generator: torch.Generator, batch_size: int, seq_len: int) -> torch.Tensor:
    starts = torch.randint(0, len(stream) - seq_len - 1, (batch_size,), generator=generator)
    return torch.stack([stream[s : s + seq_len + 1] for s in starts.tolist()])


def evaluation_windows(stream: torch.Tensor, count: int, seq_len: int) -> torch.Tensor:
    """Return `count` windows of seq_len + 1 tokens spread evenly over the held-out stream."""
    span = seq_len + 1
    stride = (len(stream) - span) // max(count - 1, 1)
    return torch.stack([stream[i * stride : i * stride + span] for i in range(count)])


@torch.no_grad()
def mean_loss(model, windows: torch.Tensor, batch_size: int) -> float:
    total = 0.0
    for batch in windows.split(batch_size):
        logits = causal_lm_forward(model, batch[:, :-1])
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="sum").item()
    return total / (windows.shape[0] * (windows.shape[1] - 1))


def bits_per_byte(nats_per_token: float, tokens_per_byte: float) -> float:
    return nats_per_token * tokens_per_byte / math.log(2)


def check_against_transformers(model, config: MambaConfig, windows: torch.Tensor) -> float:
    """Load the weights into a fresh MambaForCausalLM and compare logits; return the relative L2 error."""
    reference = MambaForCausalLM(config)
    reference.load_state_dict(model.state_dict())
    reference.eval()
    batch = windows[:2, :-1]
    with torch.no_grad():
        ours = causal_lm_forward(model, batch)
        theirs = reference(batch, use_cache=False).logits
    error = ((ours - theirs).norm() / theirs.norm()).item()
    if not error <= 1e-4:
        raise RuntimeError(f"training forward and MambaForCausalLM disagree: relative L2 error {error:.3e} > 1e-4")
    return error


def save_checkpoint(model, tokenizer: Tokenizer, hf_dir: pathlib.Path) -> None:
    """Save the weights as F16 safetensors, with the tokenizer files."""
    hf_dir.mkdir(parents=True, exist_ok=True)
    for stale in hf_dir.iterdir():
        stale.unlink()
    half = MambaForCausalLM(model.config)
    half.load_state_dict(model.state_dict())
    half.to(torch.float16).save_pretrained(hf_dir, safe_serialization=True)
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        unk_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        add_bos_token=False,
        add_eos_token=False,
        model_max_length=2048,
    ).save_pretrained(hf_dir)
    for extra in ("generation_config.json", "special_tokens_map.json"):
        if (hf_dir / extra).exists():
            (hf_dir / extra).unlink()


def plot_validation(rows: list[dict], path: pathlib.Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.6), dpi=100)
    axes.plot([r["tokens_seen"] / 1e6 for r in rows], [r["train_bpb"] for r in rows], label="training (running mean)", color="0.6")
    axes.plot([r["tokens_seen"] / 1e6 for r in rows], [r["val_bpb"] for r in rows], label="validation", color="C0")
    axes.set_xlabel("training tokens (millions)")
    axes.set_ylabel("bits per byte")
    axes.set_title(f"mamba-edge {name}: loss on Python 3.11.7 stdlib")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)


def cpu_name() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(MODELS), help="which model to train")
    parser.add_argument("--steps", type=int, help="maximum optimizer steps (overrides the model's setting)")
    parser.add_argument("--minutes", type=float, help="wall-clock limit of the training loop in minutes")
    args = parser.parse_args()

    settings = dict(MODELS[args.name])
    if args.steps is not None:
        settings["steps"] = args.steps
    if args.minutes is not None:
        settings["minutes"] = args.minutes

    torch.manual_seed(SEED)
    torch.set_num_threads(THREADS)
    run_dir = RUNS_DIR / args.name
    run_dir.mkdir(parents=True, exist_ok=True)
    model_dir = REPO_ROOT / "models" / args.name
    model_dir.mkdir(parents=True, exist_ok=True)

    train_files, held_out_files = corpus.split_files()
    train_texts = [corpus.read_text(p) for p in train_files]
    held_out_texts = [corpus.read_text(p) for p in held_out_files]
    train_bytes = sum(len(t.encode("utf-8")) for t in train_texts)
    held_out_bytes = sum(len(t.encode("utf-8")) for t in held_out_texts)

    started = time.time()
    tokenizer = train_tokenizer(train_texts, settings["vocab_size"])
    tokenizer.save(str(run_dir / "tokenizer.json"))
    train_stream = torch.from_numpy(encode_split(tokenizer, train_texts))
    held_out_stream = torch.from_numpy(encode_split(tokenizer, held_out_texts))
    train_tokens_per_byte = len(train_stream) / train_bytes
    held_out_tokens_per_byte = len(held_out_stream) / held_out_bytes
    print(
        f"tokenizer: {time.time() - started:.0f} s; training stream {len(train_stream)} tokens "
        f"({train_tokens_per_byte:.4f}/byte), held-out {len(held_out_stream)} tokens",
        flush=True,
    )

    config = make_config(settings)
    model = MambaForCausalLM(config)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{args.name}: {n_params} parameters, config {config.to_diff_dict()}", flush=True)

    decay_params = [p for n, p in model.named_parameters() if p.ndim >= 2 and "A_log" not in n]
    other_params = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "A_log" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay_params, "weight_decay": 0.1}, {"params": other_params, "weight_decay": 0.0}],
        lr=settings["learning_rate"],
        betas=(0.9, 0.95),
    )
    generator = torch.Generator().manual_seed(SEED)
    val_windows = evaluation_windows(held_out_stream, settings["eval_windows"], settings["seq_len"])

    rows = []
    csv_path = model_dir / "loss.csv"
    fields = ["step", "elapsed_s", "tokens_seen", "learning_rate", "train_loss", "train_bpb", "val_loss", "val_bpb"]
    tokens_per_step = settings["batch_size"] * settings["seq_len"]
    limit_s = settings["minutes"] * 60.0
    loop_started = time.time()
    running_loss, running_count = 0.0, 0
    step = 0
    stopped_by = "steps"
    with open(csv_path, "w", newline="") as csv_file:
        writer = csv.DictWriter(csv_file, fieldnames=fields)
        writer.writeheader()
        while True:
            elapsed = time.time() - loop_started
            progress = max(step / settings["steps"], elapsed / limit_s)
            done = progress >= 1.0
            if step > 0 and (step % settings["eval_every"] == 0 or done):
                model.eval()
                val_loss = mean_loss(model, val_windows, settings["batch_size"])
                model.train()
                train_loss = running_loss / running_count
                row = {
                    "step": step,
                    "elapsed_s": round(elapsed, 1),
                    "tokens_seen": step * tokens_per_step,
                    "learning_rate": f"{optimizer.param_groups[0]['lr']:.6g}",
                    "train_loss": round(train_loss, 5),
                    "train_bpb": round(bits_per_byte(train_loss, train_tokens_per_byte), 5),
                    "val_loss": round(val_loss, 5),
                    "val_bpb": round(bits_per_byte(val_loss, held_out_tokens_per_byte), 5),
                }
                rows.append(row)
                writer.writerow(row)
                csv_file.flush()
                print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
                running_loss, running_count = 0.0, 0
            if done:
                stopped_by = "steps" if step >= settings["steps"] else "minutes"
                break

            lr = learning_rate(settings, step, progress)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = sample_batch(train_stream, generator, settings["batch_size"], settings["seq_len"])
            logits = causal_lm_forward(model, batch[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            running_loss += loss.item()
            running_count += 1
            step += 1
    train_seconds = time.time() - loop_started

    model.eval()
    torch.save(model.state_dict(), run_dir / "model_f32.pt")
    error = check_against_transformers(model, config, val_windows)
    print(f"transformers check: relative L2 error {error:.3e}", flush=True)
    save_checkpoint(model, tokenizer, model_dir / "hf")
    plot_validation(rows, model_dir / "val_loss.png", args.name)

    d_inner = config.intermediate_size
    summary = {
        "model": args.name,
        "settings": settings,
        "parameters": n_params,
        "d_inner": d_inner,
        "dt_rank": config.time_step_rank,
        "state_bytes": 4 * config.num_hidden_layers * d_inner * (config.conv_kernel - 1 + config.state_size),
        "corpus": {
            "stdlib": str(corpus.stdlib_root()),
            "python": platform.python_version(),
            "train_files": len(train_files),
            "held_out_files": len(held_out_files),
            "train_bytes": train_bytes,
            "held_out_bytes": held_out_bytes,
            "train_tokens": len(train_stream),
            "held_out_tokens": len(held_out_stream),
        },
        "steps": step,
        "tokens_seen": step * tokens_per_step,
        "stopped_by": stopped_by,
        "train_seconds": round(train_seconds, 1),
        "final": rows[-1],
        "transformers_relative_l2_error": error,
        "torch": torch.__version__,
        "threads": THREADS,
        "machine": f"{platform.machine()}, {cpu_name()}, {os.cpu_count()} logical CPUs, torch threads {THREADS}",
    }
    (model_dir / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2), flush=True)


if __name__ == "__main__":
    sys.exit(main())
