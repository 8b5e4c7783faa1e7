//! The SIMD kernels (x86-64 AVX2 and AVX-512, aarch64 NEON) against the scalar reference
//! kernels.
//!
//! Every tier's matvec and matmul run on random matrices in every format, over row lengths
//! that reach each tail path, with unaligned weight data and with large and tiny magnitudes.
//! A tier the CPU lacks fails its tests with a message that names the missing feature, unless
//! `MAMBA_SKIP_MISSING_SIMD=1` is set, in which case those tests print that they were
//! skipped and pass.
#![cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_endian = "little")
))]

#[cfg(target_arch = "aarch64")]
use mamba_core::kernels::aarch64::neon;
#[cfg(target_arch = "x86_64")]
use mamba_core::kernels::x86_64::{avx2, avx512};
use mamba_core::kernels::{self, scalar};
use mamba_core::quant::{dequantize_row, quantize_row};
use mamba_core::{GgmlType, Matrix};

/// Unit roundoff of f32: the largest relative error of one rounded operation.
const UNIT_ROUNDOFF: f64 = f32::EPSILON as f64 / 2.0;

/// Largest absolute error one f32 operation can add when its result is subnormal, where
/// the relative bound does not hold: half the spacing of subnormals, 2^-150.
const SUBNORMAL_ERROR: f64 = f32::from_bits(1) as f64 / 2.0;

/// Row lengths for the block formats: whole blocks, up to a model-sized row. 288 spans two
/// of the matmul's 256-column blocks.
const BLOCK_COLUMN_COUNTS: [usize; 8] = [0, 32, 64, 96, 160, 288, 544, 4096];
/// Row lengths for the float formats beyond 1..=70: around 4 and 8 vectors of every tier
/// and around the matmul's 256-column blocks.
const FLOAT_EXTRA_COLUMN_COUNTS: [usize; 7] = [0, 127, 129, 255, 257, 545, 4096];
/// Matrix row counts: below, at and past the 4-row groups, with every remainder.
const ROW_COUNTS: [usize; 8] = [1, 2, 3, 5, 7, 8, 9, 17];
/// Input rows per matmul: single rows, partial and whole tiles of 3 and 4, and more than
/// one 48-row token block.
const BATCH_SIZES: [usize; 10] = [1, 2, 3, 4, 5, 8, 17, 33, 49, 100];

/// Scales of weights and inputs: (largest weight, largest input).
///
/// The large case puts weights near the f16 maximum and products near 1e29, so a 4096-term
/// sum stays finite. The tiny case makes most products f32 subnormals.
const MAGNITUDES: [(&str, f32, f32); 3] = [
    ("unit", 1.0, 1.0),
    ("large", 6.0e4, 1.0e25),
    ("tiny", 1.0e-3, 1.0e-38),
];

type Kernel = fn(&Matrix<'_>, &[f32], &mut [f32]);

/// One tier's kernels, looked up by format.
struct Tier {
    name: &'static str,
    features: &'static str,
    is_available: fn() -> bool,
    matvec: fn(GgmlType) -> Kernel,
    matmul: fn(GgmlType) -> Kernel,
}

#[cfg(target_arch = "x86_64")]
const AVX2: Tier = Tier {
    name: "avx2",
    features: "AVX2, FMA and F16C",
    is_available: avx2::is_available,
    matvec: |dtype| match dtype {
        GgmlType::F32 => avx2::matvec_f32,
        GgmlType::F16 => avx2::matvec_f16,
        GgmlType::BF16 => avx2::matvec_bf16,
        GgmlType::Q8_0 => avx2::matvec_q8_0,
        GgmlType::Q4_0 => avx2::matvec_q4_0,
    },
    matmul: |dtype| match dtype {
        GgmlType::F32 => avx2::matmul_f32,
        GgmlType::F16 => avx2::matmul_f16,
        GgmlType::BF16 => avx2::matmul_bf16,
        GgmlType::Q8_0 => avx2::matmul_q8_0,
        GgmlType::Q4_0 => avx2::matmul_q4_0,
    },
};

#[cfg(target_arch = "x86_64")]
const AVX512: Tier = Tier {
    name: "avx512",
    features: "AVX-512F, AVX2, FMA and F16C",
    is_available: avx512::is_available,
    matvec: |dtype| match dtype {
        GgmlType::F32 => avx512::matvec_f32,
        GgmlType::F16 => avx512::matvec_f16,
        GgmlType::BF16 => avx512::matvec_bf16,
        GgmlType::Q8_0 => avx512::matvec_q8_0,
        GgmlType::Q4_0 => avx512::matvec_q4_0,
    },
    matmul: |dtype| match dtype {
        GgmlType::F32 => avx512::matmul_f32,
        GgmlType::F16 => avx512::matmul_f16,
        GgmlType::BF16 => avx512::matmul_bf16,
        GgmlType::Q8_0 => avx512::matmul_q8_0,
        GgmlType::Q4_0 => avx512::matmul_q4_0,
    },
};

#[cfg(target_arch = "aarch64")]
const NEON: Tier = Tier {
    name: "neon",
    features: "NEON",
    is_available: neon::is_available,
    matvec: |dtype| match dtype {
        GgmlType::F32 => neon::matvec_f32,
        GgmlType::F16 => neon::matvec_f16,
        GgmlType::BF16 => neon::matvec_bf16,
        GgmlType::Q8_0 => neon::matvec_q8_0,
        GgmlType::Q4_0 => neon::matvec_q4_0,
    },
    matmul: |dtype| match dtype {
        GgmlType::F32 => neon::matmul_f32,
        GgmlType::F16 => neon::matmul_f16,
        GgmlType::BF16 => neon::matmul_bf16,
        GgmlType::Q8_0 => neon::matmul_q8_0,
        GgmlType::Q4_0 => neon::matmul_q4_0,
    },
};

/// Every tier of this architecture, from the widest to the narrowest.
#[cfg(target_arch = "x86_64")]
const TIERS: [&Tier; 2] = [&AVX512, &AVX2];
#[cfg(target_arch = "aarch64")]
const TIERS: [&Tier; 1] = [&NEON];

/// Returns whether `tier` can run here. Without it, panics unless
/// `MAMBA_SKIP_MISSING_SIMD=1` allows a skip, which is printed.
fn runnable(tier: &Tier) -> bool {
    if (tier.is_available)() {
        return true;
    }
    let message = format!(
        "this CPU lacks {}, so the {} kernels cannot run",
        tier.features, tier.name
    );
    if std::env::var("MAMBA_SKIP_MISSING_SIMD").as_deref() == Ok("1") {
        eprintln!("SKIPPED: {message}");
        return false;
    }
    panic!("{message}; set MAMBA_SKIP_MISSING_SIMD=1 to skip these tests");
}

fn scalar_matvec(dtype: GgmlType) -> Kernel {
    match dtype {
        GgmlType::F32 => scalar::matvec_f32,
        GgmlType::F16 => scalar::matvec_f16,
        GgmlType::BF16 => scalar::matvec_bf16,
        GgmlType::Q8_0 => scalar::matvec_q8_0,
        GgmlType::Q4_0 => scalar::matvec_q4_0,
    }
}

fn scalar_matmul(dtype: GgmlType) -> Kernel {
    match dtype {
        GgmlType::F32 => scalar::matmul_f32,
        GgmlType::F16 => scalar::matmul_f16,
        GgmlType::BF16 => scalar::matmul_bf16,
        GgmlType::Q8_0 => scalar::matmul_q8_0,
        GgmlType::Q4_0 => scalar::matmul_q4_0,
    }
}

fn column_counts(dtype: GgmlType) -> Vec<usize> {
    if dtype.block_size() == 1 {
        (1..=70).chain(FLOAT_EXTRA_COLUMN_COUNTS).collect()
    } else {
        BLOCK_COLUMN_COUNTS.to_vec()
    }
}

/// Returns the largest difference allowed between two f32 dot products of the same `n`
/// products added in different orders, where `sum_of_magnitudes` is `sum |w * x|`.
///
/// Each is within `gamma(n) * sum |w * x|` of the exact value whatever the order, because
/// each term passes through at most n roundings, so the two differ by at most twice that.
/// `gamma(n) = n u / (1 - n u)`. Each of the at most 2n operations on a subnormal result
/// may add [`SUBNORMAL_ERROR`] on top.
fn order_error_bound(n: usize, sum_of_magnitudes: f64) -> f64 {
    let nu = n as f64 * UNIT_ROUNDOFF;
    2.0 * (nu / (1.0 - nu) * sum_of_magnitudes + 2.0 * n as f64 * SUBNORMAL_ERROR)
}

/// xorshift64* generator, enough for reproducible test data.
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
        // The top 24 bits give every multiple of 2^-23 in [-1, 1) exactly.
        let bits = (self.next_u64() >> 40) as i32;
        (bits - (1 << 23)) as f32 / (1 << 23) as f32
    }
}

/// A random matrix in `dtype`, stored at an odd byte offset, and its dequantized weights.
struct TestMatrix {
    dtype: GgmlType,
    rows: usize,
    cols: usize,
    /// One padding byte, then the matrix: no multi-byte value is aligned.
    buffer: Vec<u8>,
    /// `[rows, cols]` f32 weights, as `dequantize_row` returns them.
    weights: Vec<f32>,
}

impl TestMatrix {
    /// Quantizes random rows, each scaled by `max_weight` times a factor from 0.01 to 1.
    fn random(
        dtype: GgmlType,
        rows: usize,
        cols: usize,
        max_weight: f32,
        rng: &mut XorShift,
    ) -> Self {
        let row_bytes = dtype.row_bytes(cols).unwrap();
        let mut buffer = vec![0u8; 1 + rows * row_bytes];
        let mut weights = vec![0.0f32; rows * cols];
        let mut source = vec![0.0f32; cols];

        for (bytes, dequantized) in buffer[1..]
            .chunks_exact_mut(row_bytes.max(1))
            .zip(weights.chunks_exact_mut(cols.max(1)))
        {
            let scale = max_weight * 10.0f32.powf(rng.uniform() - 1.0);
            source.iter_mut().for_each(|v| *v = scale * rng.uniform());
            quantize_row(dtype, &source, bytes).unwrap();
            dequantize_row(dtype, bytes, dequantized).unwrap();
        }
        Self {
            dtype,
            rows,
            cols,
            buffer,
            weights,
        }
    }

    fn matrix(&self) -> Matrix<'_> {
        Matrix::new(self.dtype, self.rows, self.cols, &self.buffer[1..]).unwrap()
    }
}

fn random_vector(len: usize, scale: f32, rng: &mut XorShift) -> Vec<f32> {
    (0..len).map(|_| scale * rng.uniform()).collect()
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Checks that `actual = W x` is finite and within [`order_error_bound`] of `expected`.
fn check_close(
    context: &str,
    weights: &[f32],
    cols: usize,
    x: &[f32],
    actual: &[f32],
    expected: &[f32],
) {
    for (r, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let row = &weights[r * cols..][..cols];
        let magnitudes: f64 = row
            .iter()
            .zip(x)
            .map(|(&w, &v)| (f64::from(w) * f64::from(v)).abs())
            .sum();
        let bound = order_error_bound(cols, magnitudes);

        assert!(a.is_finite(), "{context}: y[{r}] is {a}");
        let error = (f64::from(a) - f64::from(e)).abs();
        assert!(
            error <= bound,
            "{context}: y[{r}] is {a:e}, scalar {e:e}, difference {error:e} > {bound:e}"
        );
    }
}

fn check_matvec(tier: &Tier, dtype: GgmlType, seed: u64) {
    if !runnable(tier) {
        return;
    }
    let mut rng = XorShift::new(seed);
    for (magnitude, max_weight, max_input) in MAGNITUDES {
        for cols in column_counts(dtype) {
            for rows in ROW_COUNTS {
                let matrix = TestMatrix::random(dtype, rows, cols, max_weight, &mut rng);
                let w = matrix.matrix();
                let x = random_vector(cols, max_input, &mut rng);
                let context = format!("{} {dtype} matvec, {rows}x{cols}, {magnitude}", tier.name);

                let mut expected = vec![f32::NAN; rows];
                scalar_matvec(dtype)(&w, &x, &mut expected);
                let mut actual = vec![f32::NAN; rows];
                (tier.matvec)(dtype)(&w, &x, &mut actual);
                check_close(&context, &matrix.weights, cols, &x, &actual, &expected);
            }
        }
    }
}

fn check_matmul(tier: &Tier, dtype: GgmlType, seed: u64) {
    if !runnable(tier) {
        return;
    }
    let mut rng = XorShift::new(seed);
    for (magnitude, max_weight, max_input) in MAGNITUDES {
        for cols in column_counts(dtype) {
            for rows in ROW_COUNTS {
                let matrix = TestMatrix::random(dtype, rows, cols, max_weight, &mut rng);
                let w = matrix.matrix();

                // The full batch list on a few shapes, two batch sizes on the rest.
                let batch_sizes: &[usize] = if cols % 32 == 0 || cols == 127 {
                    &BATCH_SIZES
                } else {
                    &BATCH_SIZES[(cols + rows) % 4..][..2]
                };
                for &m in batch_sizes {
                    let x = random_vector(m * cols, max_input, &mut rng);
                    let context = format!(
                        "{} {dtype} matmul, {rows}x{cols}, m = {m}, {magnitude}",
                        tier.name
                    );

                    let mut expected = vec![f32::NAN; m * rows];
                    scalar_matmul(dtype)(&w, &x, &mut expected);
                    let mut actual = vec![f32::NAN; m * rows];
                    (tier.matmul)(dtype)(&w, &x, &mut actual);

                    for t in 0..m {
                        let x_row = &x[t * cols..][..cols];
                        let y_row = &actual[t * rows..][..rows];
                        check_close(
                            &format!("{context}, row {t}"),
                            &matrix.weights,
                            cols,
                            x_row,
                            y_row,
                            &expected[t * rows..][..rows],
                        );

                        // Within a tier, matmul adds in the matvec's order.
                        let mut single = vec![f32::NAN; rows];
                        (tier.matvec)(dtype)(&w, x_row, &mut single);
                        assert_eq!(
                            bits(y_row),
                            bits(&single),
                            "{context}: row {t} differs from the matvec"
                        );
                    }
                }
            }
        }
    }
}

/// Checks that kernels called on a slice of a matrix's rows, as a threading layer would
/// call them, return those rows of the full product bit for bit.
fn check_row_slices(tier: &Tier, seed: u64) {
    if !runnable(tier) {
        return;
    }
    let mut rng = XorShift::new(seed);
    for dtype in GgmlType::ALL {
        let (rows, cols, m) = (11, 96, 6);
        let matrix = TestMatrix::random(dtype, rows, cols, 1.0, &mut rng);
        let w = matrix.matrix();
        let x = random_vector(m * cols, 1.0, &mut rng);
        let mut full = vec![f32::NAN; m * rows];
        (tier.matmul)(dtype)(&w, &x, &mut full);

        let row_bytes = dtype.row_bytes(cols).unwrap();
        for (start, end) in [(0, 4), (3, 10), (5, 6), (10, 11)] {
            let part = Matrix::new(
                dtype,
                end - start,
                cols,
                &w.data[start * row_bytes..end * row_bytes],
            )
            .unwrap();
            let context = format!("{} {dtype}, rows {start}..{end}", tier.name);

            let mut y = vec![f32::NAN; m * part.rows];
            (tier.matmul)(dtype)(&part, &x, &mut y);
            for t in 0..m {
                let expected = &full[t * rows + start..t * rows + end];
                assert_eq!(
                    bits(&y[t * part.rows..][..part.rows]),
                    bits(expected),
                    "{context}: matmul row {t}"
                );
            }

            let mut y = vec![f32::NAN; part.rows];
            (tier.matvec)(dtype)(&part, &x[..cols], &mut y);
            assert_eq!(bits(&y), bits(&full[start..end]), "{context}: matvec");
        }
    }
}

/// Checks empty shapes: no rows, no columns, no input rows.
fn check_empty_shapes(tier: &Tier) {
    if !runnable(tier) {
        return;
    }
    for dtype in GgmlType::ALL {
        let none = Matrix::new(dtype, 0, 32, &[]).unwrap();
        (tier.matvec)(dtype)(&none, &[0.0; 32], &mut []);
        (tier.matmul)(dtype)(&none, &[0.0; 64], &mut []);

        let empty_rows = Matrix::new(dtype, 3, 0, &[]).unwrap();
        let mut y = [f32::NAN; 3];
        (tier.matvec)(dtype)(&empty_rows, &[], &mut y);
        assert_eq!(y, [0.0; 3], "{} {dtype} matvec with no columns", tier.name);
        let mut y = [f32::NAN; 6];
        (tier.matmul)(dtype)(&empty_rows, &[], &mut y);
        assert_eq!(y, [0.0; 6], "{} {dtype} matmul with no columns", tier.name);

        let data = vec![0u8; dtype.row_bytes(32).unwrap()];
        let one = Matrix::new(dtype, 1, 32, &data).unwrap();
        (tier.matmul)(dtype)(&one, &[], &mut []);
    }
}

macro_rules! format_tests {
    ($tier:expr, $seed:literal, $($matvec:ident, $matmul:ident, $dtype:expr;)*) => {
        $(
            #[test]
            fn $matvec() {
                check_matvec(&$tier, $dtype, $seed + $dtype as u64);
            }

            #[test]
            fn $matmul() {
                check_matmul(&$tier, $dtype, $seed + 100 + $dtype as u64);
            }
        )*
    };
}

#[cfg(target_arch = "x86_64")]
format_tests! {
    AVX2, 1000,
    avx2_f32_matvec_matches_scalar, avx2_f32_matmul_matches_scalar, GgmlType::F32;
    avx2_f16_matvec_matches_scalar, avx2_f16_matmul_matches_scalar, GgmlType::F16;
    avx2_bf16_matvec_matches_scalar, avx2_bf16_matmul_matches_scalar, GgmlType::BF16;
    avx2_q8_0_matvec_matches_scalar, avx2_q8_0_matmul_matches_scalar, GgmlType::Q8_0;
    avx2_q4_0_matvec_matches_scalar, avx2_q4_0_matmul_matches_scalar, GgmlType::Q4_0;
}

#[cfg(target_arch = "x86_64")]
format_tests! {
    AVX512, 2000,
    avx512_f32_matvec_matches_scalar, avx512_f32_matmul_matches_scalar, GgmlType::F32;
    avx512_f16_matvec_matches_scalar, avx512_f16_matmul_matches_scalar, GgmlType::F16;
    avx512_bf16_matvec_matches_scalar, avx512_bf16_matmul_matches_scalar, GgmlType::BF16;
    avx512_q8_0_matvec_matches_scalar, avx512_q8_0_matmul_matches_scalar, GgmlType::Q8_0;
    avx512_q4_0_matvec_matches_scalar, avx512_q4_0_matmul_matches_scalar, GgmlType::Q4_0;
}

#[cfg(target_arch = "aarch64")]
format_tests! {
    NEON, 5000,
    neon_f32_matvec_matches_scalar, neon_f32_matmul_matches_scalar, GgmlType::F32;
    neon_f16_matvec_matches_scalar, neon_f16_matmul_matches_scalar, GgmlType::F16;
    neon_bf16_matvec_matches_scalar, neon_bf16_matmul_matches_scalar, GgmlType::BF16;
    neon_q8_0_matvec_matches_scalar, neon_q8_0_matmul_matches_scalar, GgmlType::Q8_0;
    neon_q4_0_matvec_matches_scalar, neon_q4_0_matmul_matches_scalar, GgmlType::Q4_0;
}

#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_row_slices_match_full_matrix() {
    check_row_slices(&AVX2, 3001);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn avx512_row_slices_match_full_matrix() {
    check_row_slices(&AVX512, 3002);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_empty_shapes() {
    check_empty_shapes(&AVX2);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn avx512_empty_shapes() {
    check_empty_shapes(&AVX512);
}

#[cfg(target_arch = "aarch64")]
#[test]
fn neon_row_slices_match_full_matrix() {
    check_row_slices(&NEON, 3003);
}

#[cfg(target_arch = "aarch64")]
#[test]
fn neon_empty_shapes() {
    check_empty_shapes(&NEON);
}

#[test]
fn q4_0_small_exact() {
    // One block: weight 0 is the max -8 (scale 1), weight 16 is 4, the rest are 0.
    let mut values = [0.0f32; 32];
    values[0] = -8.0;
    values[16] = 4.0;
    let mut data = [0u8; 18];
    quantize_row(GgmlType::Q4_0, &values, &mut data).unwrap();
    let w = Matrix::new(GgmlType::Q4_0, 1, 32, &data).unwrap();
    let mut x = [1.0f32; 32];
    x[16] = 0.5;

    for tier in TIERS {
        if runnable(tier) {
            let mut y = [0.0f32; 1];
            (tier.matvec)(GgmlType::Q4_0)(&w, &x, &mut y);
            assert_eq!(y, [-6.0], "{}", tier.name);
        }
    }
}

#[test]
fn dispatch_selects_best_available_tier() {
    let Some(&expected) = TIERS.iter().find(|tier| (tier.is_available)()) else {
        assert_eq!(kernels::selected_tier(), "scalar");
        return;
    };
    assert_eq!(kernels::selected_tier(), expected.name);

    // The entry points give the selected tier's results bit for bit.
    let mut rng = XorShift::new(4000);
    for dtype in GgmlType::ALL {
        let (rows, cols, m) = (9, 160, 5);
        let matrix = TestMatrix::random(dtype, rows, cols, 1.0, &mut rng);
        let w = matrix.matrix();
        let x = random_vector(m * cols, 1.0, &mut rng);

        let mut dispatched = vec![f32::NAN; m * rows];
        let mut direct = vec![f32::NAN; m * rows];
        kernels::matmul(&w, &x, &mut dispatched);
        (expected.matmul)(dtype)(&w, &x, &mut direct);
        assert_eq!(bits(&dispatched), bits(&direct), "{dtype} matmul");

        let mut dispatched = vec![f32::NAN; rows];
        let mut direct = vec![f32::NAN; rows];
        kernels::matvec(&w, &x[..cols], &mut dispatched);
        (expected.matvec)(dtype)(&w, &x[..cols], &mut direct);
        assert_eq!(bits(&dispatched), bits(&direct), "{dtype} matvec");
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
#[should_panic(expected = "matvec: x has 31 elements, but w has 32 columns")]
fn avx2_matvec_rejects_short_input() {
    let data = [0u8; 34];
    let w = Matrix::new(GgmlType::Q8_0, 1, 32, &data).unwrap();
    avx2::matvec_q8_0(&w, &[0.0; 31], &mut [0.0; 1]);
}

#[cfg(target_arch = "x86_64")]
#[test]
#[should_panic(expected = "matmul: y has 5 elements, but 2 input rows times w's 2 rows need 4")]
fn avx512_matmul_rejects_wrong_output_length() {
    let data = [0u8; 36];
    let w = Matrix::new(GgmlType::Q4_0, 2, 32, &data).unwrap();
    avx512::matmul_q4_0(&w, &[0.0; 64], &mut [0.0; 5]);
}

#[cfg(target_arch = "x86_64")]
#[test]
#[should_panic(expected = "the q8_0 kernel was given q4_0 weights")]
fn avx2_kernel_rejects_other_format() {
    let data = [0u8; 18];
    let w = Matrix::new(GgmlType::Q4_0, 1, 32, &data).unwrap();
    avx2::matmul_q8_0(&w, &[0.0; 64], &mut [0.0; 2]);
}

#[cfg(target_arch = "aarch64")]
#[test]
#[should_panic(expected = "matvec: x has 31 elements, but w has 32 columns")]
fn neon_matvec_rejects_short_input() {
    let data = [0u8; 34];
    let w = Matrix::new(GgmlType::Q8_0, 1, 32, &data).unwrap();
    neon::matvec_q8_0(&w, &[0.0; 31], &mut [0.0; 1]);
}

#[cfg(target_arch = "aarch64")]
#[test]
#[should_panic(expected = "matmul: y has 5 elements, but 2 input rows times w's 2 rows need 4")]
fn neon_matmul_rejects_wrong_output_length() {
    let data = [0u8; 36];
    let w = Matrix::new(GgmlType::Q4_0, 2, 32, &data).unwrap();
    neon::matmul_q4_0(&w, &[0.0; 64], &mut [0.0; 5]);
}

#[cfg(target_arch = "aarch64")]
#[test]
#[should_panic(expected = "the q8_0 kernel was given q4_0 weights")]
fn neon_kernel_rejects_other_format() {
    let data = [0u8; 18];
    let w = Matrix::new(GgmlType::Q4_0, 1, 32, &data).unwrap();
    neon::matmul_q8_0(&w, &[0.0; 64], &mut [0.0; 2]);
}
