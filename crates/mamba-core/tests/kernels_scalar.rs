//! Scalar matvec and matmul kernels against an f64 dot product over the dequantized weights.

use mamba_core::kernels::{self, dequantize_matrix_row, scalar};
use mamba_core::quant::{dequantize_row, quantize_row};
use mamba_core::{GgmlType, Matrix};

/// Unit roundoff of f32: the largest relative error of one rounded operation.
const UNIT_ROUNDOFF: f64 = f32::EPSILON as f64 / 2.0;

/// Row lengths for every format: one, two and three blocks, and a model-sized row.
const BLOCK_COLUMN_COUNTS: [usize; 4] = [32, 64, 96, 4096];
/// Extra row lengths for the float formats, which have no blocks: partial last tiles.
const FLOAT_ONLY_COLUMN_COUNTS: [usize; 4] = [1, 3, 31, 33];
/// Matrix row counts, all odd so no kernel can assume pairs of rows.
const ROW_COUNTS: [usize; 4] = [1, 3, 7, 33];
/// Input rows per matmul.
const BATCH_SIZES: [usize; 4] = [1, 2, 5, 17];

type Kernel = fn(&Matrix<'_>, &[f32], &mut [f32]);

/// Returns the error bound for an f32 dot product of `n` terms added in order. The computed
/// sum is within `gamma(n) * sum |w * x|` of the exact one, where `gamma(n) = n u / (1 - n u)`
/// and `u` is the unit roundoff, because each term passes through at most n roundings: its
/// product and the n - 1 additions.
fn dot_error_bound(n: usize, sum_of_magnitudes: f64) -> f64 {
    let nu = n as f64 * UNIT_ROUNDOFF;
    nu / (1.0 - nu) * sum_of_magnitudes
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

fn matvec_kernel(dtype: GgmlType) -> Kernel {
    match dtype {
        GgmlType::F32 => scalar::matvec_f32,
        GgmlType::F16 => scalar::matvec_f16,
        GgmlType::BF16 => scalar::matvec_bf16,
        GgmlType::Q8_0 => scalar::matvec_q8_0,
        GgmlType::Q4_0 => scalar::matvec_q4_0,
    }
}

fn matmul_kernel(dtype: GgmlType) -> Kernel {
    match dtype {
        GgmlType::F32 => scalar::matmul_f32,
        GgmlType::F16 => scalar::matmul_f16,
        GgmlType::BF16 => scalar::matmul_bf16,
        GgmlType::Q8_0 => scalar::matmul_q8_0,
        GgmlType::Q4_0 => scalar::matmul_q4_0,
    }
}

fn column_counts(dtype: GgmlType) -> Vec<usize> {
    let mut counts = BLOCK_COLUMN_COUNTS.to_vec();
    if dtype.block_size() == 1 {
        counts.extend(FLOAT_ONLY_COLUMN_COUNTS);
    }
    counts
}

/// A random matrix in `dtype` and its weights dequantized to f32 (`[rows, cols]`).
struct TestMatrix {
    data: Vec<u8>,
    weights: Vec<f32>,
}

/// Quantizes random rows whose magnitudes range over four orders, from 0.01 to 100.
fn random_matrix(dtype: GgmlType, rows: usize, cols: usize, rng: &mut XorShift) -> TestMatrix {
    let row_bytes = dtype.row_bytes(cols).unwrap();
    let mut data = vec![0u8; rows * row_bytes];
    let mut weights = vec![0.0f32; rows * cols];
    let mut source = vec![0.0f32; cols];

    for (bytes, dequantized) in data
        .chunks_exact_mut(row_bytes)
        .zip(weights.chunks_exact_mut(cols))
    {
        let scale = 10.0f32.powf(2.0 * rng.uniform());
        source.iter_mut().for_each(|v| *v = scale * rng.uniform());
        quantize_row(dtype, &source, bytes).unwrap();
        dequantize_row(dtype, bytes, dequantized).unwrap();
    }
    TestMatrix { data, weights }
}

fn random_vector(len: usize, rng: &mut XorShift) -> Vec<f32> {
    (0..len).map(|_| rng.uniform()).collect()
}

/// Checks every output of `y = W x` against the f64 dot product of the same f32 values.
fn check_against_f64(context: &str, weights: &[f32], cols: usize, x: &[f32], y: &[f32]) {
    for (r, (&actual, row)) in y.iter().zip(weights.chunks_exact(cols.max(1))).enumerate() {
        let exact: f64 = row
            .iter()
            .zip(x)
            .map(|(&w, &v)| f64::from(w) * f64::from(v))
            .sum();
        let magnitudes: f64 = row
            .iter()
            .zip(x)
            .map(|(&w, &v)| (f64::from(w) * f64::from(v)).abs())
            .sum();
        let bound = dot_error_bound(cols, magnitudes);

        assert!(actual.is_finite(), "{context}: y[{r}] is {actual}");
        let error = (f64::from(actual) - exact).abs();
        assert!(
            error <= bound,
            "{context}: y[{r}] is {actual:e}, exact {exact:e}, error {error:e} > {bound:e}"
        );
    }
}

fn check_matvec(dtype: GgmlType, seed: u64) {
    let mut rng = XorShift::new(seed);
    for cols in column_counts(dtype) {
        for rows in ROW_COUNTS {
            let matrix = random_matrix(dtype, rows, cols, &mut rng);
            let w = Matrix::new(dtype, rows, cols, &matrix.data).unwrap();

            for trial in 0..3 {
                let x = random_vector(cols, &mut rng);
                let context = format!("{dtype} matvec, {rows}x{cols}, trial {trial}");

                let mut y = vec![f32::NAN; rows];
                matvec_kernel(dtype)(&w, &x, &mut y);
                check_against_f64(&context, &matrix.weights, cols, &x, &y);

                // The dispatched kernel may be a SIMD one that adds in another order, so it
                // meets the same bound rather than matching bit for bit.
                let mut dispatched = vec![f32::NAN; rows];
                kernels::matvec(&w, &x, &mut dispatched);
                check_against_f64(
                    &format!("{context}, kernels::matvec"),
                    &matrix.weights,
                    cols,
                    &x,
                    &dispatched,
                );
            }
        }
    }
}

fn check_matmul(dtype: GgmlType, seed: u64) {
    let mut rng = XorShift::new(seed);
    for cols in column_counts(dtype) {
        for rows in ROW_COUNTS {
            let matrix = random_matrix(dtype, rows, cols, &mut rng);
            let w = Matrix::new(dtype, rows, cols, &matrix.data).unwrap();

            for m in BATCH_SIZES {
                let x = random_vector(m * cols, &mut rng);
                let context = format!("{dtype} matmul, {rows}x{cols}, m = {m}");

                let mut y = vec![f32::NAN; m * rows];
                matmul_kernel(dtype)(&w, &x, &mut y);

                let mut dispatched = vec![f32::NAN; m * rows];
                kernels::matmul(&w, &x, &mut dispatched);
                for (t, (x_row, y_row)) in x
                    .chunks_exact(cols)
                    .zip(dispatched.chunks_exact(rows))
                    .enumerate()
                {
                    check_against_f64(
                        &format!("{context}, kernels::matmul row {t}"),
                        &matrix.weights,
                        cols,
                        x_row,
                        y_row,
                    );
                }

                // The scalar matmul adds the products in the same order as matvec, so each
                // output row is bit-identical, not just close.
                for (t, (x_row, y_row)) in
                    x.chunks_exact(cols).zip(y.chunks_exact(rows)).enumerate()
                {
                    let mut expected = vec![f32::NAN; rows];
                    matvec_kernel(dtype)(&w, x_row, &mut expected);
                    assert_eq!(
                        bits(y_row),
                        bits(&expected),
                        "{context}: row {t} differs from matvec"
                    );
                    check_against_f64(
                        &format!("{context}, row {t}"),
                        &matrix.weights,
                        cols,
                        x_row,
                        y_row,
                    );
                }
            }
        }
    }
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn f32_matvec_matches_f64_dot() {
    check_matvec(GgmlType::F32, 1);
}

#[test]
fn f16_matvec_matches_f64_dot() {
    check_matvec(GgmlType::F16, 2);
}

#[test]
fn bf16_matvec_matches_f64_dot() {
    check_matvec(GgmlType::BF16, 3);
}

#[test]
fn q8_0_matvec_matches_f64_dot() {
    check_matvec(GgmlType::Q8_0, 4);
}

#[test]
fn q4_0_matvec_matches_f64_dot() {
    check_matvec(GgmlType::Q4_0, 5);
}

#[test]
fn f32_matmul_matches_matvec() {
    check_matmul(GgmlType::F32, 11);
}

#[test]
fn f16_matmul_matches_matvec() {
    check_matmul(GgmlType::F16, 12);
}

#[test]
fn bf16_matmul_matches_matvec() {
    check_matmul(GgmlType::BF16, 13);
}

#[test]
fn q8_0_matmul_matches_matvec() {
    check_matmul(GgmlType::Q8_0, 14);
}

#[test]
fn q4_0_matmul_matches_matvec() {
    check_matmul(GgmlType::Q4_0, 15);
}

#[test]
fn f32_matvec_small_exact() {
    // W = [[1, 2, 3], [-4, 0.5, 8]], x = [1, -1, 2]: every product and sum is exact.
    let values = [1.0f32, 2.0, 3.0, -4.0, 0.5, 8.0];
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let w = Matrix::new(GgmlType::F32, 2, 3, &data).unwrap();

    let mut y = [0.0f32; 2];
    kernels::matvec(&w, &[1.0, -1.0, 2.0], &mut y);
    assert_eq!(y, [5.0, 11.5]);
}

#[test]
fn q4_0_matvec_small_exact() {
    // One block: weight 0 is the max -8 (scale 1), weight 16 is 4, the rest are 0.
    let mut values = [0.0f32; 32];
    values[0] = -8.0;
    values[16] = 4.0;
    let mut data = [0u8; 18];
    quantize_row(GgmlType::Q4_0, &values, &mut data).unwrap();
    let w = Matrix::new(GgmlType::Q4_0, 1, 32, &data).unwrap();

    let mut x = [1.0f32; 32];
    x[16] = 0.5;
    let mut y = [0.0f32; 1];
    kernels::matvec(&w, &x, &mut y);
    assert_eq!(y, [-6.0]);
}

#[test]
fn kernels_read_unaligned_data() {
    let mut rng = XorShift::new(21);
    for dtype in GgmlType::ALL {
        let (rows, cols, m) = (5, 64, 3);
        let matrix = random_matrix(dtype, rows, cols, &mut rng);
        let x = random_vector(m * cols, &mut rng);

        // Start the weights one byte into a buffer so no multi-byte value is aligned.
        let mut shifted = vec![0u8; matrix.data.len() + 1];
        shifted[1..].copy_from_slice(&matrix.data);
        let aligned = Matrix::new(dtype, rows, cols, &matrix.data).unwrap();
        let unaligned = Matrix::new(dtype, rows, cols, &shifted[1..]).unwrap();

        let mut expected = vec![0.0f32; m * rows];
        let mut actual = vec![0.0f32; m * rows];
        kernels::matmul(&aligned, &x, &mut expected);
        kernels::matmul(&unaligned, &x, &mut actual);
        assert_eq!(bits(&actual), bits(&expected), "{dtype}");
    }
}

#[test]
fn dequantize_matrix_row_matches_dequantize_row() {
    let mut rng = XorShift::new(22);
    for dtype in GgmlType::ALL {
        let (rows, cols) = (7, 96);
        let matrix = random_matrix(dtype, rows, cols, &mut rng);
        let w = Matrix::new(dtype, rows, cols, &matrix.data).unwrap();

        for i in 0..rows {
            let mut row = vec![f32::NAN; cols];
            dequantize_matrix_row(&w, i, &mut row);
            assert_eq!(
                bits(&row),
                bits(&matrix.weights[i * cols..][..cols]),
                "{dtype} row {i}"
            );
        }
    }
}

#[test]
fn zero_columns_give_zero_outputs() {
    let w = Matrix::new(GgmlType::Q8_0, 3, 0, &[]).unwrap();
    let mut y = [f32::NAN; 3];
    kernels::matvec(&w, &[], &mut y);
    assert_eq!(y, [0.0; 3]);

    // With no columns, m comes from y: two input rows here.
    let mut y = [f32::NAN; 6];
    kernels::matmul(&w, &[], &mut y);
    assert_eq!(y, [0.0; 6]);
}

#[test]
fn matmul_accepts_empty_batch() {
    let data = [0u8; 34];
    let w = Matrix::new(GgmlType::Q8_0, 1, 32, &data).unwrap();
    kernels::matmul(&w, &[], &mut []);
}

#[test]
#[should_panic(expected = "matvec: x has 31 elements, but w has 32 columns")]
fn matvec_rejects_short_input() {
    let data = [0u8; 34];
    let w = Matrix::new(GgmlType::Q8_0, 1, 32, &data).unwrap();
    kernels::matvec(&w, &[0.0; 31], &mut [0.0; 1]);
}

#[test]
#[should_panic(expected = "matvec: y has 2 elements, but w has 1 rows")]
fn matvec_rejects_long_output() {
    let data = [0u8; 34];
    let w = Matrix::new(GgmlType::Q8_0, 1, 32, &data).unwrap();
    kernels::matvec(&w, &[0.0; 32], &mut [0.0; 2]);
}

#[test]
#[should_panic(expected = "matmul: x has 40 elements, which is not a multiple of w's 32 columns")]
fn matmul_rejects_partial_input_row() {
    let data = [0u8; 36];
    let w = Matrix::new(GgmlType::Q4_0, 2, 32, &data).unwrap();
    kernels::matmul(&w, &[0.0; 40], &mut [0.0; 2]);
}

#[test]
#[should_panic(expected = "matmul: y has 5 elements, but 2 input rows times w's 2 rows need 4")]
fn matmul_rejects_wrong_output_length() {
    let data = [0u8; 36];
    let w = Matrix::new(GgmlType::Q4_0, 2, 32, &data).unwrap();
    kernels::matmul(&w, &[0.0; 64], &mut [0.0; 5]);
}

#[test]
#[should_panic(expected = "the q8_0 kernel was given q4_0 weights")]
fn scalar_kernel_rejects_other_format() {
    let data = [0u8; 18];
    let w = Matrix::new(GgmlType::Q4_0, 1, 32, &data).unwrap();
    scalar::matvec_q8_0(&w, &[0.0; 32], &mut [0.0; 1]);
}

#[test]
#[should_panic(expected = "w has 12 data bytes, which does not match 2 rows of 2 f32 columns")]
fn kernels_reject_inconsistent_matrix() {
    let data = [0u8; 12];
    let w = Matrix {
        dtype: GgmlType::F32,
        rows: 2,
        cols: 2,
        data: &data,
    };
    kernels::matvec(&w, &[0.0; 2], &mut [0.0; 2]);
}

#[test]
#[should_panic(expected = "row 3 is out of range for a matrix of 3 rows")]
fn dequantize_matrix_row_rejects_bad_index() {
    let data = [0u8; 12];
    let w = Matrix::new(GgmlType::F32, 3, 1, &data).unwrap();
    dequantize_matrix_row(&w, 3, &mut [0.0; 1]);
}
