//! The kernels with 8-bit inputs (`kernels::int8`): input rounding, the scalar specification
//! against exact integer arithmetic, and every SIMD tier against the scalar specification.
//!
//! As in `kernels_simd.rs`, a tier the CPU lacks fails its tests with a message naming the
//! missing features, unless `MAMBA_SKIP_MISSING_SIMD=1` is set.

use mamba_core::kernels::int8::{self, BLOCK, InputBlock, MAX_COLS, quantize_input};
use mamba_core::kernels::{self, Inputs};
use mamba_core::quant::{BlockQ4_0, BlockQ8_0, f16_to_f32, quantize_row};
use mamba_core::{GgmlType, Matrix};

/// Unit roundoff of f32.
const UNIT_ROUNDOFF: f64 = f32::EPSILON as f64 / 2.0;
/// Half the spacing of f32 subnormals: the most one operation on a subnormal result adds.
const SUBNORMAL_ERROR: f64 = f32::from_bits(1) as f64 / 2.0;

/// Row lengths: no blocks, one, odd counts, past the 256-column blocks, and the limit.
const COLUMN_COUNTS: [usize; 9] = [0, 32, 64, 96, 160, 288, 544, 1568, MAX_COLS];
/// Matrix row counts around the row groups of every tier.
const ROW_COUNTS: [usize; 7] = [1, 2, 3, 5, 7, 9, 17];
/// Input rows per matmul: around the tiles of 2 and 4 tokens, and more than one pass of
/// the matmul's input buffer for the longer rows.
const BATCH_SIZES: [usize; 8] = [1, 2, 3, 4, 5, 9, 17, 70];
/// Scales of weights and inputs: (largest weight, largest input). The tiny case makes many
/// products subnormal.
const MAGNITUDES: [(&str, f32, f32); 3] = [("unit", 1.0, 1.0), ("large", 6.0e4, 1.0e25), ("tiny", 1.0e-3, 1.0e-36)];

type Kernel = fn(&Matrix<'_>, &[f32], &mut [f32]);

/// One SIMD tier of the 8-bit input kernels.
struct Tier {
    name: &'static str,
    features: &'static str,
    is_available: fn() -> bool,
    matvec: Kernel,
    matmul: Kernel,
}

#[cfg(target_arch = "x86_64")]
const TIERS: [Tier; 2] = {
    use mamba_core::kernels::x86_64::int8::{avx2, vnni};
    [
        Tier {
            name: "avx512-vnni",
            features: "AVX-512F, AVX-512VL, AVX-512 VNNI, AVX2, FMA and F16C",
            is_available: vnni::is_available,
            matvec: vnni::matvec,
            matmul: vnni::matmul,
        },
        Tier { name: "avx2", features: "AVX2, FMA and F16C", is_available: avx2::is_available, matvec: avx2::matvec, matmul: avx2::matmul },
    ]
};
#[cfg(all(target_arch = "aarch64", target_endian = "little"))]
const TIERS: [Tier; 2] = {
    use mamba_core::kernels::aarch64::int8::{dotprod, neon};
    [
        Tier {
            name: "neon-dotprod",
            features: "NEON and the dotprod extension",
            is_available: dotprod::is_available,
            matvec: dotprod::matvec,
            matmul: dotprod::matmul,
        },
        Tier { name: "neon", features: "NEON", is_available: neon::is_available, matvec: neon::matvec, matmul: neon::matmul },
    ]
};
#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_endian = "little")
)))]
const TIERS: [Tier; 0] = [];

/// Returns whether `tier` can run here; panics without `MAMBA_SKIP_MISSING_SIMD=1`.
fn runnable(tier: &Tier) -> bool {
    if (tier.is_available)() {
        return true;
    }
    let message = format!("this CPU lacks {}, so the {} kernels cannot run", tier.features, tier.name);
    if std::env::var("MAMBA_SKIP_MISSING_SIMD").as_deref() == Ok("1") {
        eprintln!("SKIPPED: {message}");
        return false;
    }
    panic!("{message}; set MAMBA_SKIP_MISSING_SIMD=1 to skip these tests");
}

/// xorshift64* generator for reproducible data.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Returns a uniform value in [-1, 1).
    fn uniform(&mut self) -> f32 {
        let bits = (self.next_u64() >> 40) as i32;
        (bits - (1 << 23)) as f32 / (1 << 23) as f32
    }
}

/// A random Q8_0 or Q4_0 matrix stored one byte past an aligned start.
struct TestMatrix {
    dtype: GgmlType,
    rows: usize,
    cols: usize,
    buffer: Vec<u8>,
}

impl TestMatrix {
    fn random(dtype: GgmlType, rows: usize, cols: usize, max_weight: f32, rng: &mut XorShift) -> Self {
        let row_bytes = dtype.row_bytes(cols).unwrap();
        let mut buffer = vec![0u8; 1 + rows * row_bytes];
        let mut source = vec![0.0f32; cols];
        for bytes in buffer[1..].chunks_exact_mut(row_bytes.max(1)) {
            let scale = max_weight * 10.0f32.powf(rng.uniform() - 1.0);
            source.iter_mut().for_each(|v| *v = scale * rng.uniform());
            quantize_row(dtype, &source, bytes).unwrap();
        }
        Self { dtype, rows, cols, buffer }
    }

    fn matrix(&self) -> Matrix<'_> {
        Matrix::new(self.dtype, self.rows, self.cols, &self.buffer[1..]).unwrap()
    }

    /// Block `b` of row `r`: its scale and its 32 signed quants.
    fn block(&self, r: usize, b: usize) -> (f32, [i32; BLOCK]) {
        let w = self.matrix();
        let row = w.row(r);
        let mut quants = [0i32; BLOCK];
        match self.dtype {
            GgmlType::Q8_0 => {
                let block = BlockQ8_0::from_bytes(row[b * BlockQ8_0::BYTES..][..BlockQ8_0::BYTES].try_into().unwrap());
                for (q, &v) in quants.iter_mut().zip(&block.qs) {
                    *q = i32::from(v);
                }
                (f16_to_f32(block.d), quants)
            }
            GgmlType::Q4_0 => {
                let block = BlockQ4_0::from_bytes(row[b * BlockQ4_0::BYTES..][..BlockQ4_0::BYTES].try_into().unwrap());
                for (j, &byte) in block.qs.iter().enumerate() {
                    quants[j] = i32::from(byte & 0x0f) - 8;
                    quants[j + BLOCK / 2] = i32::from(byte >> 4) - 8;
                }
                (f16_to_f32(block.d), quants)
            }
            other => panic!("not a block format: {other}"),
        }
    }
}

fn random_vector(len: usize, scale: f32, rng: &mut XorShift) -> Vec<f32> {
    (0..len).map(|_| scale * rng.uniform()).collect()
}

/// For row `r` and input `x`: the exact value of the specification's sum (in f64), the
/// sum of magnitudes of its terms, `sum_b |d_w d_x| sum_i |w_i x_i|`, and the sum of the
/// integer magnitudes `sum_b sum_i |w_i x_i|`.
fn exact_row(matrix: &TestMatrix, r: usize, x: &[f32]) -> (f64, f64, f64) {
    let mut blocks = vec![InputBlock::ZERO; x.len() / BLOCK];
    quantize_input(x, &mut blocks);
    let (mut sum, mut magnitude, mut integers) = (0.0f64, 0.0f64, 0.0f64);
    for (b, input) in blocks.iter().enumerate() {
        let (d_w, w) = matrix.block(r, b);
        let dot: i64 = w.iter().zip(&input.qs).map(|(&w, &x)| i64::from(w) * i64::from(x)).sum();
        let abs: i64 = w.iter().zip(&input.qs).map(|(&w, &x)| (i64::from(w) * i64::from(x)).abs()).sum();
        let scale = f64::from(d_w) * f64::from(input.d);
        sum += scale * dot as f64;
        magnitude += scale.abs() * abs as f64;
        integers += abs as f64;
    }
    (sum, magnitude, integers)
}

/// Returns how far two evaluations of the specification's sum over `blocks` blocks may lie
/// apart. Each term passes through at most `blocks + 8` roundings in either (the scale, the
/// product, the lane sums and the final 4-, 8- or 16-lane tree). A subnormal scale `d_w * d_x`
/// is off by up to [`SUBNORMAL_ERROR`], which its integer sum multiplies, and each other
/// subnormal operation adds up to that much.
fn rounding_bound(blocks: usize, magnitude: f64, integers: f64) -> f64 {
    let n = (blocks + 8) as f64 * UNIT_ROUNDOFF;
    2.0 * (n / (1.0 - n) * magnitude + SUBNORMAL_ERROR * integers + 4.0 * (blocks + 8) as f64 * SUBNORMAL_ERROR)
}

fn check_rows(context: &str, matrix: &TestMatrix, x: &[f32], actual: &[f32]) {
    for (r, &a) in actual.iter().enumerate() {
        let (exact, magnitude, integers) = exact_row(matrix, r, x);
        let bound = rounding_bound(x.len() / BLOCK, magnitude, integers);
        assert!(a.is_finite(), "{context}: y[{r}] is {a}");
        let error = (f64::from(a) - exact).abs();
        assert!(error <= bound, "{context}: y[{r}] is {a:e}, exact {exact:e}, difference {error:e} > {bound:e}");
    }
}

#[test]
fn quantize_rounds_within_half_a_step() {
    let mut rng = XorShift::new(1);
    for scale in [1.0f32, 3.0e-30, 2.0e30] {
        for _ in 0..200 {
            let x: [f32; BLOCK] = core::array::from_fn(|_| scale * rng.uniform());
            let block = InputBlock::quantize(&x);
            let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert_eq!(block.d, amax / 127.0);
            assert!(block.qs.iter().any(|q| q.unsigned_abs() == 127), "the largest input maps to ±127");
            for (&v, &q) in x.iter().zip(&block.qs) {
                assert!(q != i8::MIN, "quants stay in -127..=127");
                let error = (f64::from(v) - f64::from(block.d) * f64::from(q)).abs();
                assert!(error <= f64::from(block.d) * (0.5 + 1e-6), "{v} rounded to {q} * {}", block.d);
            }
        }
    }
}

#[test]
fn quantize_zero_and_non_finite_blocks() {
    let zero = InputBlock::quantize(&[0.0; BLOCK]);
    assert_eq!(zero, InputBlock::ZERO);

    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut x = [0.5f32; BLOCK];
        x[7] = bad;
        let block = InputBlock::quantize(&x);
        assert!(block.d.is_nan(), "a block with {bad} gets a NaN scale, not {}", block.d);
    }
}

#[test]
#[should_panic(expected = "do not fill")]
fn quantize_input_rejects_partial_block() {
    let mut out = [InputBlock::ZERO; 1];
    quantize_input(&[1.0; 31], &mut out);
}

#[test]
fn scalar_specification_matches_exact_sums() {
    let mut rng = XorShift::new(2);
    for dtype in [GgmlType::Q8_0, GgmlType::Q4_0] {
        for (magnitude, max_weight, max_input) in MAGNITUDES {
            for cols in COLUMN_COUNTS {
                let matrix = TestMatrix::random(dtype, 3, cols, max_weight, &mut rng);
                let x = random_vector(cols, max_input, &mut rng);
                let mut y = vec![f32::NAN; 3];
                match dtype {
                    GgmlType::Q8_0 => int8::matvec_q8_0(&matrix.matrix(), &x, &mut y),
                    _ => int8::matvec_q4_0(&matrix.matrix(), &x, &mut y),
                }
                check_rows(&format!("scalar {dtype} 3x{cols} {magnitude}"), &matrix, &x, &y);
            }
        }
    }
}

#[test]
fn scalar_matmul_rows_equal_matvec() {
    let mut rng = XorShift::new(3);
    for dtype in [GgmlType::Q8_0, GgmlType::Q4_0] {
        let matrix = TestMatrix::random(dtype, 5, 96, 1.0, &mut rng);
        let w = matrix.matrix();
        let x = random_vector(7 * 96, 1.0, &mut rng);
        let mut y = vec![f32::NAN; 7 * 5];
        let (matvec, matmul): (Kernel, Kernel) = match dtype {
            GgmlType::Q8_0 => (int8::matvec_q8_0, int8::matmul_q8_0),
            _ => (int8::matvec_q4_0, int8::matmul_q4_0),
        };
        matmul(&w, &x, &mut y);
        for t in 0..7 {
            let mut row = vec![f32::NAN; 5];
            matvec(&w, &x[t * 96..][..96], &mut row);
            assert_eq!(bits(&row), bits(&y[t * 5..][..5]), "{dtype} input row {t}");
        }
    }
}

/// The products lie within what rounding the inputs allows of the exact f32 product: each
/// input moves by at most half its block's step, `d_x / 2`.
#[test]
fn rounding_error_is_bounded_by_the_input_step() {
    let mut rng = XorShift::new(4);
    for dtype in [GgmlType::Q8_0, GgmlType::Q4_0] {
        let (rows, cols) = (9, 1568);
        let matrix = TestMatrix::random(dtype, rows, cols, 1.0, &mut rng);
        let x = random_vector(cols, 1.0, &mut rng);
        let mut y = vec![f32::NAN; rows];
        kernels::matvec_with(&matrix.matrix(), &x, &mut y, Inputs::Int8);
        let mut blocks = vec![InputBlock::ZERO; cols / BLOCK];
        quantize_input(&x, &mut blocks);
        for (r, &actual) in y.iter().enumerate() {
            let (mut exact, mut bound) = (0.0f64, 0.0f64);
            for (b, input) in blocks.iter().enumerate() {
                let (d_w, w) = matrix.block(r, b);
                for (i, &q) in w.iter().enumerate() {
                    let weight = f64::from(d_w) * f64::from(q);
                    exact += weight * f64::from(x[b * BLOCK + i]);
                    bound += weight.abs() * f64::from(input.d) / 2.0;
                }
            }
            let error = (f64::from(actual) - exact).abs();
            assert!(error <= bound * 1.001 + 1e-6, "{dtype} row {r}: {actual} vs exact {exact}, error {error} > {bound}");
        }
    }
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn check_tier_matvec(tier: &Tier, seed: u64) {
    if !runnable(tier) {
        return;
    }
    let mut rng = XorShift::new(seed);
    for dtype in [GgmlType::Q8_0, GgmlType::Q4_0] {
        for (magnitude, max_weight, max_input) in MAGNITUDES {
            for cols in COLUMN_COUNTS {
                for rows in ROW_COUNTS {
                    let matrix = TestMatrix::random(dtype, rows, cols, max_weight, &mut rng);
                    let x = random_vector(cols, max_input, &mut rng);
                    let mut y = vec![f32::NAN; rows];
                    (tier.matvec)(&matrix.matrix(), &x, &mut y);
                    check_rows(&format!("{} {dtype} matvec {rows}x{cols} {magnitude}", tier.name), &matrix, &x, &y);
                }
            }
        }
    }
}

fn check_tier_matmul(tier: &Tier, seed: u64) {
    if !runnable(tier) {
        return;
    }
    let mut rng = XorShift::new(seed);
    for dtype in [GgmlType::Q8_0, GgmlType::Q4_0] {
        for cols in COLUMN_COUNTS {
            for rows in [1, 4, 5, 9] {
                let matrix = TestMatrix::random(dtype, rows, cols, 1.0, &mut rng);
                let w = matrix.matrix();
                for m in BATCH_SIZES {
                    let x = random_vector(m * cols, 1.0, &mut rng);
                    let mut y = vec![f32::NAN; m * rows];
                    (tier.matmul)(&w, &x, &mut y);
                    for t in 0..m {
                        let input = &x[t * cols..][..cols];
                        let mut row = vec![f32::NAN; rows];
                        (tier.matvec)(&w, input, &mut row);
                        let context = format!("{} {dtype} matmul {rows}x{cols}, m {m}, input row {t}", tier.name);
                        assert_eq!(bits(&row), bits(&y[t * rows..][..rows]), "{context}: differs from matvec");
                        if t == 0 || t == m - 1 {
                            check_rows(&context, &matrix, input, &row);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn simd_matvec_matches_specification() {
    for (i, tier) in TIERS.iter().enumerate() {
        check_tier_matvec(tier, 10 + i as u64);
    }
}

#[test]
fn simd_matmul_rows_equal_matvec() {
    for (i, tier) in TIERS.iter().enumerate() {
        check_tier_matmul(tier, 20 + i as u64);
    }
}

/// Extreme quants: -128 in Q8_0 weights, which llama.cpp never writes but a file may hold,
/// and every input at ±127 after rounding, the largest products the tiers sum.
#[test]
fn simd_extreme_quants_are_exact() {
    for tier in &TIERS {
        if !runnable(tier) {
            continue;
        }
        let cols = 64;
        let mut bytes = Vec::new();
        for _ in 0..cols / BLOCK {
            let mut block = [0x80u8; BlockQ8_0::BYTES];
            block[..2].copy_from_slice(&0x3c00u16.to_le_bytes());
            bytes.extend_from_slice(&block);
        }
        let w = Matrix::new(GgmlType::Q8_0, 1, cols, &bytes).unwrap();
        for sign in [1.0f32, -1.0] {
            let x = vec![sign; cols];
            let mut y = [f32::NAN];
            (tier.matvec)(&w, &x, &mut y);
            // Each input rounds to ±127 with d = 1/127, and each weight is -128.
            let expected = -128.0 * 127.0 * sign * (1.0 / 127.0) * cols as f32;
            assert!((y[0] - expected).abs() <= expected.abs() * 1e-6, "{}: {} vs {expected}", tier.name, y[0]);
        }
    }
}

#[test]
fn non_finite_inputs_give_non_finite_outputs() {
    let mut rng = XorShift::new(5);
    for dtype in [GgmlType::Q8_0, GgmlType::Q4_0] {
        let matrix = TestMatrix::random(dtype, 5, 96, 1.0, &mut rng);
        for bad in [f32::NAN, f32::INFINITY] {
            let mut x = random_vector(96, 1.0, &mut rng);
            x[40] = bad;
            let mut y = vec![0.0f32; 5];
            kernels::matvec_with(&matrix.matrix(), &x, &mut y, Inputs::Int8);
            assert!(y.iter().all(|v| !v.is_finite()), "{dtype} with {bad}: {y:?}");
            int8::matvec_q8_0(&TestMatrix::random(GgmlType::Q8_0, 2, 96, 1.0, &mut rng).matrix(), &x, &mut y[..2]);
            assert!(y[..2].iter().all(|v| !v.is_finite()), "scalar Q8_0 with {bad}: {y:?}");
        }
    }
}

/// `matvec_with` and `matmul_with` keep exact inputs for other formats, for rows longer
/// than `MAX_COLS`, and with `Inputs::Exact`; otherwise they run the selected tier.
#[test]
fn dispatch_chooses_int8_only_where_it_applies() {
    let mut rng = XorShift::new(6);

    let f16 = {
        let cols = 64;
        let mut bytes = vec![0u8; GgmlType::F16.row_bytes(cols).unwrap() * 3];
        quantize_row(GgmlType::F16, &random_vector(3 * cols, 1.0, &mut rng), &mut bytes).unwrap();
        bytes
    };
    let w = Matrix::new(GgmlType::F16, 3, 64, &f16).unwrap();
    let x = random_vector(64, 1.0, &mut rng);
    let (mut exact, mut int8_inputs) = (vec![0.0f32; 3], vec![0.0f32; 3]);
    kernels::matvec(&w, &x, &mut exact);
    kernels::matvec_with(&w, &x, &mut int8_inputs, Inputs::Int8);
    assert_eq!(bits(&exact), bits(&int8_inputs), "F16 weights keep exact inputs");

    for cols in [96, MAX_COLS + 32] {
        let matrix = TestMatrix::random(GgmlType::Q8_0, 3, cols, 1.0, &mut rng);
        let w = matrix.matrix();
        let x = random_vector(cols, 1.0, &mut rng);
        let mut exact = vec![0.0f32; 3];
        let mut exact_with = vec![0.0f32; 3];
        let mut rounded = vec![0.0f32; 3];
        kernels::matvec(&w, &x, &mut exact);
        kernels::matvec_with(&w, &x, &mut exact_with, Inputs::Exact);
        kernels::matvec_with(&w, &x, &mut rounded, Inputs::Int8);
        assert_eq!(bits(&exact), bits(&exact_with), "Inputs::Exact runs matvec");
        assert_eq!(int8::supports(&w), cols <= MAX_COLS);
        let expect_int8 = cols <= MAX_COLS && kernels::selected_int8_tier().is_some();
        assert_eq!(bits(&exact) != bits(&rounded), expect_int8, "{cols} columns: int8 used {}", !expect_int8);

        let xs = random_vector(3 * cols, 1.0, &mut rng);
        let mut batch = vec![0.0f32; 9];
        kernels::matmul_with(&w, &xs, &mut batch, Inputs::Int8);
        for t in 0..3 {
            let mut row = vec![0.0f32; 3];
            kernels::matvec_with(&w, &xs[t * cols..][..cols], &mut row, Inputs::Int8);
            assert_eq!(bits(&row), bits(&batch[t * 3..][..3]), "{cols} columns, input row {t}");
        }
    }
}

#[test]
fn selected_int8_tier_is_the_best_available() {
    let expected = TIERS.iter().find(|tier| (tier.is_available)()).map(|tier| tier.name);
    assert_eq!(kernels::selected_int8_tier(), expected);
}
