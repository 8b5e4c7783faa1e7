#!/usr/bin/env python3
"""Convert fixture checkpoints to GGUF with llama.cpp's own convert_hf_to_gguf.py.

For each entry of CONVERSIONS (or those whose fixture is named on the command
line) this runs the converter vendored in the llama-cpp-python sdist (see
fetch_llamacpp.sh) on tests/fixtures/<name>/hf and writes

  tests/fixtures/<name>/llamacpp-<outtype><suffix>.gguf  one file per outtype
  tests/fixtures/<name>/llamacpp-<type>.gguf             one file per `quantized` type, made
                                                         from the f32 file by llama.cpp's
                                                         llama_model_quantize()
  tests/fixtures/<name>/llamacpp-tensors.txt             metadata and tensor table of each file

The converter itself writes only f32, f16, bf16, q8_0 and ternary types, so
Q4_0 comes from quantize_with_llamacpp.py, which needs build_llamacpp.sh.

Two converter behaviours are adjusted from outside, without editing its code:

1. The fixture tokenizers are trained for these tests, so their pre-tokenizer
   hash is unknown to get_vocab_base_pre(), which raises NotImplementedError.
   This wrapper catches that one case and returns "gpt-2" when tokenizer.json
   uses exactly the GPT-2 byte-level pre-tokenizer, the regex split that
   llama.cpp implements as the "gpt-2" pre-tokenizer type.
2. The Mamba converter pads the token list to a multiple of the config's
   pad_vocab_size_multiple (8 when absent) but not the embedding and output
   tensors, so llama.cpp rejects the file when vocab_size is not already a
   multiple. A conversion with pad_vocab_multiple set overrides that config
   value before the vocab is written.

Usage: /work/pyenv/venv/bin/python tests/reference/convert_with_llamacpp.py [NAME ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"
LLAMACPP_VERSION = "0.3.36"
VENDORED = HERE / ".llamacpp" / f"llama_cpp_python-{LLAMACPP_VERSION}" / "vendor" / "llama.cpp"

logger = logging.getLogger("convert_with_llamacpp")


@dataclasses.dataclass(frozen=True)
class Conversion:
    """One converter run per outtype on one fixture."""

    name: str
    outtypes: tuple[str, ...]
    # None keeps the converter's behaviour: pad the token list to a multiple of
    # config.json's pad_vocab_size_multiple, or of 8 without it.
    pad_vocab_multiple: int | None = None
    suffix: str = ""
    # Types that quantize_with_llamacpp.py makes from the f32 output.
    quantized: tuple[str, ...] = ()


CONVERSIONS = [
    Conversion("tiny", ("f32", "f16", "q8_0"), quantized=("q4_0",)),
    # vocab 333 is not a multiple of 8. With padding off the files load in
    # llama.cpp; the "-vocab336" file shows the converter's default output,
    # 336 tokens with 333-row tensors, which llama.cpp rejects.
    Conversion("odd", ("f32", "f16", "q8_0"), pad_vocab_multiple=1),
    Conversion("odd", ("f32",), suffix="-vocab336"),
    Conversion("quant", ("f32", "q8_0"), quantized=("q4_0",)),
    Conversion("eps", ("f32",)),
    # The Mamba-2 converter pads the token list to a multiple of 16 (264 is not
    # one) without padding the tensors, so padding is turned off as for odd.
    Conversion("mamba2_g1", ("f32",), pad_vocab_multiple=1),
    Conversion("falcon", ("f32",)),
]


def import_converter():
    """Import the vendored converter and its gguf-py in place of any installed gguf package."""
    if not (VENDORED / "convert_hf_to_gguf.py").is_file():
        raise FileNotFoundError(f"{VENDORED / 'convert_hf_to_gguf.py'} not found; run tests/reference/fetch_llamacpp.sh first")
    sys.path.insert(0, str(VENDORED / "gguf-py"))
    sys.path.insert(0, str(VENDORED))
    import convert_hf_to_gguf  # noqa: PLC0415 (the path is only known at run time)
    import gguf  # noqa: PLC0415
    from conversion.base import TextModel  # noqa: PLC0415
    from conversion.mamba import Mamba2Model, MambaModel  # noqa: PLC0415

    if not pathlib.Path(gguf.__file__).is_relative_to(VENDORED):
        raise RuntimeError(f"imported gguf from {gguf.__file__}, expected the vendored copy under {VENDORED}")
    return convert_hf_to_gguf, gguf, TextModel, (MambaModel, Mamba2Model)


def uses_gpt2_byte_level(model_dir: pathlib.Path) -> bool:
    """Return whether tokenizer.json pre-tokenizes exactly like GPT-2 (byte-level regex split, no normalizer)."""
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        return False
    config = json.loads(path.read_text(encoding="utf-8"))
    pre = config.get("pre_tokenizer") or {}
    return (
        config.get("normalizer") is None
        and pre.get("type") == "ByteLevel"
        and pre.get("use_regex", True)
        and not pre.get("add_prefix_space", False)
    )


def accept_gpt2_byte_level_tokenizers(text_model_class) -> None:
    """Make get_vocab_base_pre() return "gpt-2" for unknown GPT-2 byte-level tokenizers."""
    original = text_model_class.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer):
        try:
            return original(self, tokenizer)
        except NotImplementedError:
            if not uses_gpt2_byte_level(pathlib.Path(self.dir_model)):
                raise
            logger.warning("unknown pre-tokenizer hash for %s; using 'gpt-2' (GPT-2 byte-level regex)", self.dir_model)
            return "gpt-2"

    text_model_class.get_vocab_base_pre = get_vocab_base_pre


def override_vocab_padding(mamba_model_class, setting: dict) -> None:
    """Make set_vocab() of MambaModel or Mamba2Model use setting["pad_vocab_multiple"] when it is not None."""
    original = mamba_model_class.set_vocab

    def set_vocab(self):
        if setting["pad_vocab_multiple"] is not None:
            self.hparams["pad_vocab_size_multiple"] = setting["pad_vocab_multiple"]
        original(self)

    mamba_model_class.set_vocab = set_vocab


def run_converter(converter_module, model_dir: pathlib.Path, outfile: pathlib.Path, outtype: str) -> None:
    saved_argv = sys.argv
    sys.argv = ["convert_hf_to_gguf.py", str(model_dir), "--outfile", str(outfile), "--outtype", outtype]
    try:
        converter_module.main()
    finally:
        sys.argv = saved_argv


def describe_value(field, gguf_module) -> str:
    """Format one metadata field; long arrays are summarized by length, type and first entries."""
    value_type = field.types[0]
    if value_type == gguf_module.GGUFValueType.ARRAY:
        element_type = field.types[1] if len(field.types) > 1 else None
        count = len(field.data)
        items = [field.contents(i) for i in range(min(count, 4))]
        element_name = element_type.name if element_type is not None else "?"
        return f"[{element_name}; {count}] first {items!r}"
    return f"{value_type.name} {field.contents()!r}"


def dump_gguf(path: pathlib.Path, gguf_module) -> str:
    """Return a text table of a GGUF file's metadata and tensors (shapes in GGUF ne order)."""
    import numpy as np  # noqa: PLC0415

    reader = gguf_module.GGUFReader(path)
    lines = [f"# {path.name}", "## metadata"]
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        lines.append(f"{name} = {describe_value(field, gguf_module)}")

    lines.append("## tensors: name, type, ne (GGUF order, fastest dimension first)")
    for tensor in reader.tensors:
        ne = [int(n) for n in tensor.shape]
        lines.append(f"{tensor.name}\t{tensor.tensor_type.name}\t{ne}")

    # The converter stores ssm_a as -exp(A_log); show one row to make that visible.
    for tensor in reader.tensors:
        if tensor.name == "blk.0.ssm_a":
            row = np.asarray(tensor.data).reshape(-1, int(tensor.shape[0]))[0]
            lines.append(f"## blk.0.ssm_a row 0 (d_state values): {np.array2string(row, precision=5)}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    known = sorted({conversion.name for conversion in CONVERSIONS})
    parser.add_argument("names", nargs="*", help=f"fixture names to convert (default: all of {known})")
    args = parser.parse_args()
    unknown = set(args.names) - set(known)
    if unknown:
        parser.error(f"no conversion defined for {sorted(unknown)}; known: {known}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s:%(message)s")

    converter_module, gguf_module, text_model_class, mamba_model_classes = import_converter()
    accept_gpt2_byte_level_tokenizers(text_model_class)
    padding_setting = {"pad_vocab_multiple": None}
    for mamba_model_class in mamba_model_classes:
        override_vocab_padding(mamba_model_class, padding_setting)

    dumps: dict[str, list[str]] = {}
    for conversion in CONVERSIONS:
        if args.names and conversion.name not in args.names:
            continue
        model_dir = FIXTURES / conversion.name / "hf"
        if not (model_dir / "config.json").is_file():
            parser.error(f"{model_dir / 'config.json'} not found; run make_fixtures.py first")
        padding_setting["pad_vocab_multiple"] = conversion.pad_vocab_multiple
        for outtype in conversion.outtypes:
            outfile = FIXTURES / conversion.name / f"llamacpp-{outtype}{conversion.suffix}.gguf"
            run_converter(converter_module, model_dir, outfile, outtype)
            dumps.setdefault(conversion.name, []).append(dump_gguf(outfile, gguf_module))

        for quant_type in conversion.quantized:
            source = FIXTURES / conversion.name / f"llamacpp-f32{conversion.suffix}.gguf"
            outfile = FIXTURES / conversion.name / f"llamacpp-{quant_type}{conversion.suffix}.gguf"
            command = [sys.executable, str(HERE / "quantize_with_llamacpp.py"), str(source), str(outfile), quant_type]
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            dumps.setdefault(conversion.name, []).append(dump_gguf(outfile, gguf_module))

    for name, texts in dumps.items():
        path = FIXTURES / name / "llamacpp-tensors.txt"
        path.write_text("\n".join(texts), encoding="utf-8")
        logger.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
