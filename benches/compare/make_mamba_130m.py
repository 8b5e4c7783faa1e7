"""Write a random-init Mamba-1 checkpoint with the exact state-spaces/mamba-130m-hf config.

Speed does not depend on the weight values, so a random model measures what a trained
130M model would, with no download. The checkpoint is saved with transformers'
save_pretrained (safetensors), plus the `tiny` fixture's tokenizer.json so mamba-quantize
accepts the directory; token ids beyond that tokenizer's vocabulary have no text, which the
benchmark does not need.

Usage: python make_mamba_130m.py OUT_DIR
"""

import shutil
import sys
from pathlib import Path

import torch
from transformers import MambaConfig, MambaForCausalLM

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    out = Path(sys.argv[1])
    torch.manual_seed(0)
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
    model = MambaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    shutil.copy(REPO / "tests/fixtures/tiny/hf/tokenizer.json", out / "tokenizer.json")
    print(f"wrote {out}: {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
