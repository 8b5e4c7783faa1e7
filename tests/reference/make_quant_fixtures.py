"""Write reference outputs of the `gguf` Python package for the Rust quantization tests.

Run from the repository root with the interpreter that has `gguf` installed:

    /work/pyenv/venv/bin/python tests/reference/make_quant_fixtures.py

The outputs were made with gguf 0.19.0 and numpy 2.4.6 on x86_64. The script writes one
file per format (q8_0.bin, q4_0.bin, f16.bin, bf16.bin) to
crates/mamba-core/tests/data/quant/. Each file contains a list of cases. All integers are
little-endian u32, and all floats are little-endian IEEE f32:

    magic          4 bytes, b"MQFX"
    version        u32, currently 1
    ggml type      u32 (F16 = 1, Q4_0 = 2, Q8_0 = 8, BF16 = 30)
    case count     u32
    then for each case:
        name length    u32
        name           ASCII bytes
        element count  u32 (n)
        input          n f32 values
        byte count     u32 (b)
        quantized      b bytes: gguf.quants.quantize(input, type)
        dequantized    n f32 values: gguf.quants.dequantize(quantized, type)

The inputs come from numpy's default_rng with a fixed seed plus hand-picked edge cases,
so rerunning the script rewrites identical files.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, quants

MAGIC = b"MQFX"
VERSION = 1
SEED = 20240611
OUT_DIR = Path(__file__).resolve().parents[2] / "crates" / "mamba-core" / "tests" / "data" / "quant"

F16_MAX = 65504.0


def f32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def blocks_of(values: list[float], block: int = 32, fill: float = 0.0) -> np.ndarray:
    """Pad `values` with `fill` to a whole number of blocks."""
    padded = list(values) + [fill] * (-len(values) % block)
    return f32(padded)


def common_cases(rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """Inputs shared by every format: random rows at several scales and simple rows."""
    cases = [
        ("normal_scale_1", f32(rng.standard_normal(1024))),
        ("normal_scale_0.02", f32(rng.standard_normal(1024) * 0.02)),
        ("normal_scale_300", f32(rng.standard_normal(256) * 300.0)),
        ("uniform_unit", f32(rng.uniform(-1.0, 1.0, 512))),
        ("uniform_positive", f32(rng.uniform(0.0, 4.0, 128))),
        ("zeros", np.zeros(64, dtype=np.float32)),
        ("negative_zeros", f32([-0.0] * 32 + [0.0] * 32)),
        ("one_huge_among_small", f32(np.concatenate([rng.standard_normal(63) * 0.01, [1.0e4]]))),
        ("ramp", f32(np.linspace(-1.0, 1.0, 64))),
        ("tiny_1e-4", f32(rng.standard_normal(128) * 1.0e-4)),
        ("tiny_1e-6", f32(rng.standard_normal(128) * 1.0e-6)),
        ("tiny_1e-8", f32(rng.standard_normal(64) * 1.0e-8)),
    ]
    # A one-element block of 1.0 in each position shows where each element lands.
    cases.append(("one_hot", f32(np.eye(32).ravel()[: 32 * 8])))
    return cases


def q8_0_cases(rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    cases = common_cases(rng)
    # With max |x| = 127 the scale is exactly 1, so these values sit at x.5 after scaling.
    # Round half away from zero gives 1, 2, 3, -1, -3, 127; round half to even would not.
    cases.append(("ties_scale_1", blocks_of([127.0, 0.5, 1.5, 2.5, -0.5, -2.5, 126.5, -125.5, 3.5, 4.5])))
    # With max |x| = 254 the scale is 2 and its inverse 0.5, again exact.
    cases.append(("ties_scale_2", blocks_of([254.0, 1.0, 3.0, 5.0, -1.0, -3.0, -5.0, 251.0])))
    cases.append(("negative_max", blocks_of([-7.0, 1.0, 2.0, -3.0, 6.9, 0.1])))
    cases.append(("positive_max", blocks_of([7.0, -1.0, -2.0, 3.0, -6.9, -0.1])))
    # The largest scales that still fit in f16 (max |x| / 127 must stay below 65520).
    cases.append(("near_f16_scale_max", blocks_of([8.3e6, -4.1e6, 1.0, 8.2e6], fill=1.0e6)))
    # max |x| below 127 / f32::MAX makes 1/d overflow to infinity. numpy then casts NaN and
    # infinity to int8 as 0, and the f16 scale is 0, so the block decodes to zeros.
    cases.append(("f32_subnormal_scale", blocks_of([1.0e-40, -3.0e-41, 0.0, 2.0e-45])))
    cases.append(("f32_subnormal_but_finite_inverse", blocks_of([1.0e-37, -5.0e-38, 7.0e-38])))
    return cases


def q4_0_cases(rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    cases = common_cases(rng)
    # max = -8 gives d = 1 and 1/d = 1, so x + 8.5 is an integer for every x.5 value:
    # trunc then rounds the tie up (toward +infinity).
    cases.append(("ties_scale_1", blocks_of([-8.0, 0.5, -0.5, 1.5, -1.5, 6.5, -7.5, 7.5, 2.5, -2.5])))
    # max = 8 gives d = -1, so the signs flip before the same rounding.
    cases.append(("ties_scale_minus_1", blocks_of([8.0, 0.5, -0.5, 1.5, -1.5, 6.5, -7.5, 7.5])))
    # The element with the largest magnitude keeps its sign: negative in one row, positive
    # in the other. The opposite extreme then clips at 15.
    cases.append(("max_abs_negative", blocks_of([1.0, -3.0, 2.9, 0.5, -0.25])))
    cases.append(("max_abs_positive", blocks_of([-1.0, 3.0, -2.9, -0.5, 0.25])))
    # Equal magnitudes: argmax takes the first, so the sign of the scale follows it.
    cases.append(("max_abs_tie_negative_first", blocks_of([-3.0, 3.0, 1.0, -1.0])))
    cases.append(("max_abs_tie_positive_first", blocks_of([3.0, -3.0, 1.0, -1.0])))
    # The largest scale that still fits in f16 (|max| / 8 below 65520).
    cases.append(("near_f16_scale_max", blocks_of([-5.2e5, 2.0e5, 1.0, 5.1e5], fill=1.0e5)))
    cases.append(("f32_subnormal_scale", blocks_of([1.0e-40, -3.0e-41, 0.0, 2.0e-45])))
    cases.append(("f32_subnormal_but_finite_inverse", blocks_of([1.0e-37, -5.0e-38, 7.0e-38])))
    return cases


def f16_cases(rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    cases = common_cases(rng)
    one_ulp = 2.0**-10
    cases.append((
        "ties_round_to_even",
        f32([
            1.0 + one_ulp / 2,  # tie between 1 and 1 + ulp: stays at the even 1
            1.0 + 3 * one_ulp / 2,  # tie: goes up to the even 1 + 2 ulp
            -(1.0 + one_ulp / 2),
            2048.0 + 1.0,  # spacing is 2 at 2048: tie, stays at 2048
            2048.0 + 3.0,  # tie, goes up to 2052
            2.0**-25,  # half the smallest subnormal: rounds to 0
            3 * 2.0**-25,  # tie between 1 and 2 subnormal steps: goes to 2
            2.0**-24,  # smallest subnormal
            2.0**-14,  # smallest normal
            2.0**-14 - 2.0**-25,  # tie just below the smallest normal
        ]),
    ))
    cases.append((
        "near_f16_max",
        f32([F16_MAX, -F16_MAX, 65488.0, 65489.0, 65480.0, 65503.99, -65487.0, 65472.0]),
    ))
    cases.append(("subnormal_range", f32(rng.uniform(-1.0, 1.0, 64) * 2.0**-14)))
    cases.append(("normal_scale_20000", f32(np.clip(rng.standard_normal(64) * 2.0e4, -F16_MAX, F16_MAX))))
    return cases


def bf16_cases(rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    cases = common_cases(rng)
    one_ulp = 2.0**-7
    cases.append((
        "ties_round_to_even",
        f32([
            1.0 + one_ulp / 2,  # tie: stays at 1
            1.0 + 3 * one_ulp / 2,  # tie: goes up to 1 + 2 ulp
            -(1.0 + one_ulp / 2),
            1.0 + one_ulp / 2 + 2.0**-20,  # just above the tie: rounds up, truncation would not
            1.0 + one_ulp / 2 - 2.0**-20,  # just below the tie: rounds down
            3.0e38,  # near the top of the range
            -3.38e38,
            float(np.finfo(np.float32).tiny),  # smallest normal f32
            1.0e-40,  # f32 subnormal
            7.0e-45,
        ]),
    ))
    # Random f32 bit patterns: rounding reads the low 16 bits, so spread them out.
    bits = rng.integers(0, 2**32, 256, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)
    values = values[np.isfinite(values) & (np.abs(values) < 3.3e38)]
    cases.append(("random_bit_patterns", f32(values)))
    cases.append(("wide_range", f32(rng.standard_normal(128) * 10.0 ** rng.uniform(-30, 30, 128))))
    return cases


def write_file(path: Path, qtype: GGMLQuantizationType, cases: list[tuple[str, np.ndarray]]) -> int:
    out = bytearray()
    out += MAGIC
    out += struct.pack("<III", VERSION, qtype.value, len(cases))
    for name, values in cases:
        values = np.ascontiguousarray(values, dtype=np.float32)
        if not np.all(np.isfinite(values)):
            sys.exit(f"case {name}: inputs must be finite")
        quantized = np.ascontiguousarray(quants.quantize(values, qtype)).view(np.uint8)
        dequantized = np.ascontiguousarray(quants.dequantize(quantized, qtype), dtype=np.float32)
        if dequantized.shape != values.shape:
            sys.exit(f"case {name}: dequantized shape {dequantized.shape} != {values.shape}")
        encoded_name = name.encode("ascii")
        out += struct.pack("<I", len(encoded_name)) + encoded_name
        out += struct.pack("<I", values.size) + values.astype("<f4").tobytes()
        out += struct.pack("<I", quantized.size) + quantized.tobytes()
        out += dequantized.astype("<f4").tobytes()
    path.write_bytes(bytes(out))
    return len(out)


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    formats = [
        ("q8_0.bin", GGMLQuantizationType.Q8_0, q8_0_cases),
        ("q4_0.bin", GGMLQuantizationType.Q4_0, q4_0_cases),
        ("f16.bin", GGMLQuantizationType.F16, f16_cases),
        ("bf16.bin", GGMLQuantizationType.BF16, bf16_cases),
    ]
    total = 0
    # numpy warns about the overflowing 1/d and the NaN casts in the subnormal-scale cases,
    # which are the behaviour being recorded.
    with np.errstate(all="ignore"):
        for file_name, qtype, make_cases in formats:
            rng = np.random.default_rng(SEED)
            size = write_file(OUT_DIR / file_name, qtype, make_cases(rng))
            total += size
            print(f"{file_name}: {size} bytes")
    print(f"total: {total} bytes")


if __name__ == "__main__":
    main()
