"""Write a random-init checkpoint with the exact config of state-spaces/mamba-130m-hf
(Mamba-1, the default) or state-spaces/mamba2-130m (Mamba-2, with --arch mamba2).

Speed does not depend on the weight values, so a random model measures what a trained
130M model would, with no download. The checkpoint is saved with transformers'
save_pretrained (safetensors), plus the `tiny` fixture's tokenizer.json so mamba-quantize
accepts the directory; token ids beyond that tokenizer's vocabulary have no text, which the
benchmark does not need.

Usage: python make_mamba_130m.py OUT_DIR [--arch mamba1|mamba2]
"""

import argparse
import shutil
from pathlib import Path

import torch
from transformers import Mamba2Config, Mamba2ForCausalLM, MambaConfig, MambaForCausalLM

REPO = Path(__file__).resolve().parents[2]


def mamba1_model() -> MambaForCausalLM:
    """Return a random-init model with the config of state-spaces/mamba-130m-hf."""
    # The config of state-spaces/mamba-130m-hf: 24 layers, d_model 768, d_inner 1536,
    # d_state 16, d_conv 4, dt_rank 48, vocabulary 50280, tied embeddings.
    config = MambaConfig(
        vocab_size=50280,
        hidden_size=768,
        state_size=16,
        num_hidden_layers=24,
        expand=2,
        conv_kernel=4,
        time_step_rank="auto",
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=True,
        pad_vocab_size_multiple=8,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    return MambaForCausalLM(config)


def mamba2_model() -> Mamba2ForCausalLM:
    """Return a random-init model with the config of state-spaces/mamba2-130m."""
    # state-spaces/mamba2-130m: 24 layers, d_model 768, d_inner 1536 (expand 2), d_state 128,
    # head_dim 64 (24 heads), one group, d_conv 4, chunk size 256, RMSNorm, tied embeddings,
    # vocabulary 50277 padded to a multiple of 16, 50288.
    config = Mamba2Config(
        vocab_size=50288,
        hidden_size=768,
        state_size=128,
        num_hidden_layers=24,
        expand=2,
        head_dim=64,
        num_heads=24,
        n_groups=1,
        conv_kernel=4,
        chunk_size=256,
        use_bias=False,
        use_conv_bias=True,
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    return Mamba2ForCausalLM(config)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a random-init 130M Mamba checkpoint.")
    parser.add_argument("out", type=Path, help="output directory")
    parser.add_argument("--arch", choices=["mamba1", "mamba2"], default="mamba1", help="model architecture")
    args = parser.parse_args()
    out = args.out

    torch.manual_seed(0)
    model = mamba1_model() if args.arch == "mamba1" else mamba2_model()
    model.save_pretrained(out, safe_serialization=True)
    shutil.copy(REPO / "tests/fixtures/tiny/hf/tokenizer.json", out / "tokenizer.json")
    print(f"wrote {out}: {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
