"""Write models/<name>/model.gguf and the greedy reference continuation models/<name>/expected.json.

Usage (from the repository root, after `cargo build --release -p mamba-cli -p mamba-quantize`):
    /work/pyenv/venv/bin/python tools/train/expected.py micro

Steps:
1. transformers: load models/<name>/hf exactly as shipped (F16 safetensors) into
   float32 and run MambaForCausalLM.generate(do_sample=False) on PROMPT for
   N_PREDICT tokens, with no end-of-sequence stop. A greedy loop over the
   training forward pass (mamba_forward.py) must give the same ids.
2. mamba-edge on an F32 GGUF made from the same checkpoint: its greedy ids must
   equal transformers' ids, or the script fails.
3. mamba-edge on the shipped Q8_0 GGUF (written here by mamba-quantize): its
   greedy ids are recorded under "engine_q8_0". Q8_0 rounding may change the
   argmax after some steps, so they are not required to match.
The engine's greedy ids come from `mamba-edge logits` (argmax of the last row,
one call per token); `mamba-edge generate --temp 0` must print the same text.
"""

import argparse
import json
import pathlib
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch
from transformers import GenerationConfig, MambaForCausalLM, PreTrainedTokenizerFast

from mamba_forward import causal_lm_forward

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
MAMBA_EDGE = REPO_ROOT / "target" / "release" / "mamba-edge"
MAMBA_QUANTIZE = REPO_ROOT / "target" / "release" / "mamba-quantize"
PROMPT = "def fibonacci(n):"
N_PREDICT = 48


def transformers_greedy(hf_dir: pathlib.Path, prompt_ids: list[int]) -> list[int]:
    model = MambaForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    model.eval()
    input_ids = torch.tensor([prompt_ids])
    # eos_token_id=None: keep going past <|endoftext|>, as `generate --ignore-eos` does.
    generation_config = GenerationConfig(
        do_sample=False, max_new_tokens=N_PREDICT, eos_token_id=None, pad_token_id=0, bos_token_id=0
    )
    with torch.no_grad():
        output = model.generate(input_ids, generation_config=generation_config)
    generated = output[0, len(prompt_ids) :].tolist()
    if len(generated) != N_PREDICT:
        raise RuntimeError(f"generate returned {len(generated)} tokens, expected {N_PREDICT}")

    # The same greedy choice from the training forward pass over the whole sequence,
    # an independent implementation that uses no cache.
    ids = list(prompt_ids)
    with torch.no_grad():
        for _ in range(N_PREDICT):
            logits = causal_lm_forward(model, torch.tensor([ids]))
            ids.append(int(logits[0, -1].argmax()))
    if ids[len(prompt_ids) :] != generated:
        raise RuntimeError("generate() and the greedy loop over mamba_forward.causal_lm_forward disagree")
    return generated


def quantize(hf_dir: pathlib.Path, out: pathlib.Path, type_name: str) -> None:
    subprocess.run([str(MAMBA_QUANTIZE), str(hf_dir), str(out), "--type", type_name], check=True)


def engine_greedy(gguf: pathlib.Path, prompt_ids: list[int], work_dir: pathlib.Path) -> list[int]:
    ids = list(prompt_ids)
    npy = work_dir / "logits.npy"
    for _ in range(N_PREDICT):
        tokens = ",".join(str(i) for i in ids)
        subprocess.run(
            [str(MAMBA_EDGE), "logits", "--model", str(gguf), "--tokens", tokens, "--out", str(npy)],
            check=True,
            capture_output=True,
        )
        ids.append(int(np.load(npy)[-1].argmax()))
    return ids[len(prompt_ids) :]


def engine_generate_text(gguf: pathlib.Path) -> str:
    """Return what `mamba-edge generate --temp 0` prints after the prompt."""
    result = subprocess.run(
        [str(MAMBA_EDGE), "generate", PROMPT, "--model", str(gguf), "--temp", "0", "-n", str(N_PREDICT), "--ignore-eos"],
        check=True,
        capture_output=True,
    )
    text = result.stdout.decode("utf-8")
    if not text.startswith(PROMPT):
        raise RuntimeError(f"generate output does not start with the prompt: {text[:80]!r}")
    return text[len(PROMPT) :].removesuffix("\n")


def first_difference(a: list[int], b: list[int]) -> int | None:
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return index
    return None if len(a) == len(b) else min(len(a), len(b))


def to_json(value: dict) -> str:
    """Format as indented JSON with each list of token ids on one line."""
    text = json.dumps(value, indent=2, ensure_ascii=False)

    def one_line(match: re.Match) -> str:
        return "[" + ", ".join(re.findall(r"\d+", match.group(0))) + "]"

    return re.sub(r"\[[0-9,\s]*\]", one_line, text) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="model directory under models/, for example micro or default")
    args = parser.parse_args()

    torch.set_num_threads(2)
    model_dir = REPO_ROOT / "models" / args.name
    hf_dir = model_dir / "hf"
    tokenizer = PreTrainedTokenizerFast.from_pretrained(hf_dir)
    prompt_ids = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]

    reference_ids = transformers_greedy(hf_dir, prompt_ids)
    reference_text = tokenizer.decode(reference_ids)

    with tempfile.TemporaryDirectory() as work:
        work_dir = pathlib.Path(work)
        f32_gguf = work_dir / "model-f32.gguf"
        quantize(hf_dir, f32_gguf, "f32")
        f32_ids = engine_greedy(f32_gguf, prompt_ids, work_dir)
        f32_text = engine_generate_text(f32_gguf)
        if f32_ids != reference_ids:
            raise RuntimeError(
                f"mamba-edge (F32 GGUF) greedy ids differ from transformers at step "
                f"{first_difference(f32_ids, reference_ids)}: {f32_ids} vs {reference_ids}"
            )
        if f32_text != reference_text:
            raise RuntimeError(f"mamba-edge generate printed {f32_text!r}, expected {reference_text!r}")

        q8_gguf = model_dir / "model.gguf"
        quantize(hf_dir, q8_gguf, "q8_0")
        q8_ids = engine_greedy(q8_gguf, prompt_ids, work_dir)
        q8_text = engine_generate_text(q8_gguf)
        if q8_text != tokenizer.decode(q8_ids):
            raise RuntimeError(f"mamba-edge generate printed {q8_text!r}, but the greedy ids decode to {tokenizer.decode(q8_ids)!r}")

    expected = {
        "prompt": PROMPT,
        "prompt_token_ids": prompt_ids,
        "n_predict": N_PREDICT,
        "reference": (
            "transformers 5.23.0 MambaForCausalLM.generate(do_sample=False, eos_token_id=None) "
            f"on models/{args.name}/hf (F16 weights) loaded in float32"
        ),
        "generated_token_ids": reference_ids,
        "generated_text": reference_text,
        "engine_f32_matches_transformers": True,
        "engine_q8_0": {
            "model": f"models/{args.name}/model.gguf",
            "generated_token_ids": q8_ids,
            "generated_text": q8_text,
            "first_difference_from_reference": first_difference(q8_ids, reference_ids),
        },
    }
    (model_dir / "expected.json").write_text(to_json(expected))
    print(to_json(expected), end="")


if __name__ == "__main__":
    sys.exit(main())
