//! Quantization against the `gguf` Python package's outputs.
//!
//! The files under `tests/data/quant` come from `tests/reference/make_quant_fixtures.py`,
//! which documents their layout. Each case contains an f32 input row, the bytes
//! `gguf.quants.quantize` made from it, and the f32 values `gguf.quants.dequantize` read
//! back from those bytes.

use mamba_core::GgmlType;
use mamba_core::quant::{
    BlockQ4_0, BlockQ8_0, QK4_0, QK8_0, QuantError, dequantize_row, quantize_row,
};

const MAGIC: &[u8; 4] = b"MQFX";
const VERSION: u32 = 1;

/// One row of a fixture file.
struct Case {
    name: String,
    input: Vec<f32>,
    quantized: Vec<u8>,
    dequantized: Vec<f32>,
}

/// Reads fixture bytes front to back, panicking on a truncated or malformed file.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        assert!(
            n <= self.bytes.len(),
            "fixture truncated: need {n} bytes, {} left",
            self.bytes.len()
        );
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        head
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }

    fn f32s(&mut self, n: usize) -> Vec<f32> {
        self.take(n * 4)
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }
}

fn load_cases(bytes: &[u8], dtype: GgmlType) -> Vec<Case> {
    let mut reader = Reader { bytes };
    assert_eq!(reader.take(4), MAGIC, "fixture magic");
    assert_eq!(reader.u32(), VERSION, "fixture version");
    assert_eq!(reader.u32(), dtype as u32, "fixture ggml type");

    let count = reader.u32() as usize;
    let mut cases = Vec::with_capacity(count);
    for _ in 0..count {
        let name_len = reader.u32() as usize;
        let name = String::from_utf8(reader.take(name_len).to_vec()).unwrap();
        let n = reader.u32() as usize;
        let input = reader.f32s(n);
        let byte_count = reader.u32() as usize;
        let quantized = reader.take(byte_count).to_vec();
        let dequantized = reader.f32s(n);
        cases.push(Case {
            name,
            input,
            quantized,
            dequantized,
        });
    }
    assert!(
        reader.bytes.is_empty(),
        "{} trailing bytes in the {dtype} fixture",
        reader.bytes.len()
    );
    assert!(!cases.is_empty());
    cases
}

fn fixture(dtype: GgmlType) -> Vec<Case> {
    let bytes: &[u8] = match dtype {
        GgmlType::Q8_0 => include_bytes!("data/quant/q8_0.bin"),
        GgmlType::Q4_0 => include_bytes!("data/quant/q4_0.bin"),
        GgmlType::F16 => include_bytes!("data/quant/f16.bin"),
        GgmlType::BF16 => include_bytes!("data/quant/bf16.bin"),
        GgmlType::F32 => panic!("no f32 fixture: f32 rows are stored as they are"),
    };
    load_cases(bytes, dtype)
}

/// Returns where two byte strings first differ, with the byte on each side.
fn first_byte_difference(ours: &[u8], theirs: &[u8]) -> Option<(usize, u8, u8)> {
    ours.iter()
        .zip(theirs)
        .enumerate()
        .find(|(_, (a, b))| a != b)
        .map(|(i, (&a, &b))| (i, a, b))
}

fn check_quantize_matches(dtype: GgmlType) {
    for case in fixture(dtype) {
        let mut ours = vec![0u8; dtype.row_bytes(case.input.len()).unwrap()];
        quantize_row(dtype, &case.input, &mut ours)
            .unwrap_or_else(|e| panic!("{dtype} case {}: {e}", case.name));

        assert_eq!(
            ours.len(),
            case.quantized.len(),
            "{dtype} case {}: byte count",
            case.name
        );
        if let Some((i, a, b)) = first_byte_difference(&ours, &case.quantized) {
            let block = i / dtype.block_bytes();
            panic!(
                "{dtype} case {}: byte {i} (block {block}) is {a:#04x}, gguf wrote {b:#04x}",
                case.name
            );
        }
    }
}

fn check_dequantize_matches(dtype: GgmlType) {
    for case in fixture(dtype) {
        let mut ours = vec![f32::NAN; case.dequantized.len()];
        dequantize_row(dtype, &case.quantized, &mut ours)
            .unwrap_or_else(|e| panic!("{dtype} case {}: {e}", case.name));

        for (i, (a, b)) in ours.iter().zip(&case.dequantized).enumerate() {
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "{dtype} case {}: element {i} is {a:e}, gguf read {b:e}",
                case.name
            );
        }
    }
}

#[test]
fn q8_0_quantize_matches_gguf() {
    check_quantize_matches(GgmlType::Q8_0);
}

#[test]
fn q4_0_quantize_matches_gguf() {
    check_quantize_matches(GgmlType::Q4_0);
}

#[test]
fn f16_quantize_matches_gguf() {
    check_quantize_matches(GgmlType::F16);
}

#[test]
fn bf16_quantize_matches_gguf() {
    check_quantize_matches(GgmlType::BF16);
}

#[test]
fn q8_0_dequantize_matches_gguf() {
    check_dequantize_matches(GgmlType::Q8_0);
}

#[test]
fn q4_0_dequantize_matches_gguf() {
    check_dequantize_matches(GgmlType::Q4_0);
}

#[test]
fn f16_dequantize_matches_gguf() {
    check_dequantize_matches(GgmlType::F16);
}

#[test]
fn bf16_dequantize_matches_gguf() {
    check_dequantize_matches(GgmlType::BF16);
}

#[test]
fn fixtures_cover_edge_cases() {
    // A regenerated fixture that dropped these would leave the rounding rules untested.
    let names = |dtype| {
        fixture(dtype)
            .into_iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
    };
    for dtype in [
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::F16,
        GgmlType::BF16,
    ] {
        let names = names(dtype);
        for expected in [
            "zeros",
            "negative_zeros",
            "ties_round_to_even",
            "ties_scale_1",
        ] {
            let wanted = match (dtype, expected) {
                (GgmlType::Q8_0 | GgmlType::Q4_0, "ties_round_to_even") => continue,
                (GgmlType::F16 | GgmlType::BF16, "ties_scale_1") => continue,
                _ => expected,
            };
            assert!(
                names.iter().any(|n| n == wanted),
                "{dtype} fixture lacks case {wanted}"
            );
        }
    }
    assert!(
        names(GgmlType::Q4_0)
            .iter()
            .any(|n| n == "max_abs_negative")
    );
    assert!(names(GgmlType::F16).iter().any(|n| n == "near_f16_max"));
}

#[test]
fn f32_round_trips_exactly() {
    let input = [0.0f32, -0.0, 1.5, -3.25e-42, f32::MAX, f32::MIN_POSITIVE];
    let mut bytes = [0u8; 24];
    quantize_row(GgmlType::F32, &input, &mut bytes).unwrap();
    assert_eq!(bytes[8..12], 1.5f32.to_le_bytes());

    let mut output = [f32::NAN; 6];
    dequantize_row(GgmlType::F32, &bytes, &mut output).unwrap();
    for (a, b) in input.iter().zip(&output) {
        assert_eq!(a.to_bits(), b.to_bits());
    }
}

#[test]
fn every_type_rejects_nan_and_infinity() {
    for dtype in GgmlType::ALL {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut src = [0.5f32; 64];
            src[37] = bad;
            let mut dst = vec![0xa5u8; dtype.row_bytes(64).unwrap()];

            let err = quantize_row(dtype, &src, &mut dst).unwrap_err();
            let QuantError::NonFinite { index, value } = err.clone() else {
                panic!("{dtype} with {bad}: expected NonFinite, got {err:?}");
            };
            assert_eq!(index, 37, "{dtype} with {bad}");
            assert_eq!(value.to_bits(), bad.to_bits(), "{dtype} with {bad}");
            assert!(err.to_string().contains("element 37"), "{dtype}: {err}");
            assert!(
                dst.iter().all(|&b| b == 0xa5),
                "{dtype}: dst was written before the error"
            );
        }
    }
}

#[test]
fn non_finite_reports_first_index() {
    let mut src = [1.0f32; 32];
    src[3] = f32::INFINITY;
    src[9] = f32::NAN;
    let mut dst = [0u8; BlockQ8_0::BYTES];
    let err = quantize_row(GgmlType::Q8_0, &src, &mut dst).unwrap_err();
    assert!(
        matches!(err, QuantError::NonFinite { index: 3, .. }),
        "{err:?}"
    );
}

#[test]
fn f16_rejects_values_above_max() {
    let mut src = [1.0f32; 8];
    src[5] = -65504.5;
    let mut dst = [0u8; 16];
    let err = quantize_row(GgmlType::F16, &src, &mut dst).unwrap_err();
    assert_eq!(
        err,
        QuantError::OutOfRange {
            dtype: GgmlType::F16,
            index: 5,
            value: -65504.5
        }
    );

    let message = err.to_string();
    assert!(message.contains("element 5"), "{message}");
    assert!(message.contains("bf16 or f32"), "{message}");
}

#[test]
fn f16_accepts_max() {
    let src = [65504.0f32, -65504.0];
    let mut dst = [0u8; 4];
    quantize_row(GgmlType::F16, &src, &mut dst).unwrap();
    assert_eq!(dst, [0xff, 0x7b, 0xff, 0xfb]);
}

#[test]
fn bf16_rejects_values_that_round_to_infinity() {
    // 0x7f7f8000 is the tie between bf16's largest finite value and infinity.
    let top = f32::from_bits(0x7f7f_8000);
    let mut src = [1.0f32; 4];
    src[2] = top;
    let mut dst = [0u8; 8];
    let err = quantize_row(GgmlType::BF16, &src, &mut dst).unwrap_err();
    assert_eq!(
        err,
        QuantError::OutOfRange {
            dtype: GgmlType::BF16,
            index: 2,
            value: top
        }
    );

    src[2] = f32::from_bits(0x7f7f_7fff);
    quantize_row(GgmlType::BF16, &src, &mut dst).unwrap();
    assert_eq!(dst[4..6], [0x7f, 0x7f]);
}

#[test]
fn block_formats_reject_scale_overflow() {
    // Q8_0 stores max|x| / 127 as f16, so max|x| near 65520 * 127 overflows.
    let mut src = [1.0f32; 64];
    src[40] = -8.4e6;
    let mut dst = [0u8; 2 * BlockQ8_0::BYTES];
    let err = quantize_row(GgmlType::Q8_0, &src, &mut dst).unwrap_err();
    assert_eq!(
        err,
        QuantError::OutOfRange {
            dtype: GgmlType::Q8_0,
            index: 40,
            value: -8.4e6
        }
    );
    assert!(err.to_string().contains("element 40"), "{err}");

    // Q4_0 stores max / -8, so |max| near 65520 * 8 overflows.
    let mut src = [1.0f32; 64];
    src[33] = 5.3e5;
    let mut dst = [0u8; 2 * BlockQ4_0::BYTES];
    let err = quantize_row(GgmlType::Q4_0, &src, &mut dst).unwrap_err();
    assert_eq!(
        err,
        QuantError::OutOfRange {
            dtype: GgmlType::Q4_0,
            index: 33,
            value: 5.3e5
        }
    );
}

#[test]
fn quantize_rejects_partial_blocks() {
    for dtype in [GgmlType::Q8_0, GgmlType::Q4_0] {
        let src = [0.0f32; 48];
        let mut dst = [0u8; 64];
        let err = quantize_row(dtype, &src, &mut dst).unwrap_err();
        assert_eq!(
            err,
            QuantError::PartialBlock {
                dtype,
                elements: 48
            }
        );
        assert!(err.to_string().contains("multiple of 32"), "{err}");
    }
}

#[test]
fn quantize_rejects_wrong_byte_length() {
    for dtype in GgmlType::ALL {
        let src = [0.0f32; 64];
        let expected = dtype.row_bytes(64).unwrap();
        for actual in [0, expected - 1, expected + 1] {
            let mut dst = vec![0u8; actual];
            let err = quantize_row(dtype, &src, &mut dst).unwrap_err();
            assert_eq!(
                err,
                QuantError::ByteLength {
                    dtype,
                    elements: 64,
                    expected,
                    actual
                }
            );
        }
    }
}

#[test]
fn dequantize_rejects_partial_blocks() {
    let src = [0u8; BlockQ8_0::BYTES];
    let mut dst = [0.0f32; 31];
    let err = dequantize_row(GgmlType::Q8_0, &src, &mut dst).unwrap_err();
    assert_eq!(
        err,
        QuantError::PartialBlock {
            dtype: GgmlType::Q8_0,
            elements: 31
        }
    );
}

#[test]
fn dequantize_rejects_wrong_byte_length() {
    for dtype in GgmlType::ALL {
        let mut dst = [0.0f32; 64];
        let expected = dtype.row_bytes(64).unwrap();
        let src = vec![0u8; expected + 2];
        let err = dequantize_row(dtype, &src, &mut dst).unwrap_err();
        assert_eq!(
            err,
            QuantError::ByteLength {
                dtype,
                elements: 64,
                expected,
                actual: expected + 2
            }
        );
        assert!(
            err.to_string().contains(&format!("take {expected} bytes")),
            "{err}"
        );
    }
}

#[test]
fn empty_rows_are_accepted() {
    for dtype in GgmlType::ALL {
        quantize_row(dtype, &[], &mut []).unwrap();
        dequantize_row(dtype, &[], &mut []).unwrap();
    }
}

#[test]
fn q8_0_round_trip_within_half_step() {
    let x: [f32; QK8_0] = core::array::from_fn(|j| (j as f32 - 15.5) * 0.37);
    let block = BlockQ8_0::quantize(&x);
    let mut y = [0.0f32; QK8_0];
    block.dequantize(&mut y);

    // Half a quantization step, plus the f16 rounding of the scale over 127 steps.
    let step = block.scale();
    let bound = 0.5 * step + 127.0 * step * 2.0f32.powi(-11);
    for (j, (a, b)) in x.iter().zip(&y).enumerate() {
        assert!(
            (a - b).abs() <= bound,
            "element {j}: {a} became {b}, bound {bound}"
        );
    }
}

#[test]
fn q4_0_round_trip_within_one_step() {
    let x: [f32; QK4_0] = core::array::from_fn(|j| (j as f32 - 15.5) * 0.37);
    let block = BlockQ4_0::quantize(&x);
    let mut y = [0.0f32; QK4_0];
    block.dequantize(&mut y);

    // Truncation after adding 8.5 rounds to nearest, but the clip at 15 can cost a whole
    // step on the side opposite the max.
    let step = block.scale().abs();
    for (j, (a, b)) in x.iter().zip(&y).enumerate() {
        assert!(
            (a - b).abs() <= step * 1.01,
            "element {j}: {a} became {b}, step {step}"
        );
    }
}
