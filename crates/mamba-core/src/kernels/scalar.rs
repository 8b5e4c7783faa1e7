//! Scalar reference kernels, one matvec and one matmul per weight format.
//!
//! These are the specification that faster kernels are tested against. Each kernel decodes
//! the weights to exactly the f32 values [`dequantize_row`](crate::quant::dequantize_row)
//! returns, multiplies them by the inputs in f32, and adds the products in column order to
//! one f32 accumulator that starts at 0. The matmul kernels add in the same order, so row
//! `t` of a matmul equals the matvec of input row `t` bit for bit.
//!
//! Weights are decoded one tile of [`TILE`] columns at a time into a stack buffer. A tile is
//! one Q8_0 or Q4_0 block. For the float formats the last tile of a row may be shorter.

use crate::quant::{BlockQ4_0, BlockQ8_0, QK4_0, QK8_0, bf16_to_f32, f16_to_f32};
use crate::tensor::{GgmlType, Matrix};

/// Columns decoded at once: one Q8_0 or Q4_0 block.
pub const TILE: usize = 32;

const _: () = assert!(TILE == QK8_0 && TILE == QK4_0);

/// Decodes `out.len()` weights from the start of `bytes`. For the block formats
/// `out.len()` is a multiple of the block size.
type Decode = fn(bytes: &[u8], out: &mut [f32]);

/// Computes `y[r] = sum_c W[r, c] * x[c]` for F32 weights.
///
/// # Panics
/// Panics when `w` is not F32, when `w.data` does not match its shape, or when
/// `x.len() != w.cols` or `y.len() != w.rows`.
pub fn matvec_f32(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    matvec_with(GgmlType::F32, decode_f32, w, x, y);
}

/// Computes `y[r] = sum_c W[r, c] * x[c]` for F16 weights.
///
/// # Panics
/// As [`matvec_f32`], for F16.
pub fn matvec_f16(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    matvec_with(GgmlType::F16, decode_f16, w, x, y);
}

/// Computes `y[r] = sum_c W[r, c] * x[c]` for BF16 weights.
///
/// # Panics
/// As [`matvec_f32`], for BF16.
pub fn matvec_bf16(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    matvec_with(GgmlType::BF16, decode_bf16, w, x, y);
}

/// Computes `y[r] = sum_c W[r, c] * x[c]` for Q8_0 weights.
///
/// # Panics
/// As [`matvec_f32`], for Q8_0.
pub fn matvec_q8_0(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    matvec_with(GgmlType::Q8_0, decode_q8_0, w, x, y);
}

/// Computes `y[r] = sum_c W[r, c] * x[c]` for Q4_0 weights.
///
/// # Panics
/// As [`matvec_f32`], for Q4_0.
pub fn matvec_q4_0(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    matvec_with(GgmlType::Q4_0, decode_q4_0, w, x, y);
}

/// Computes `y[t, r] = sum_c W[r, c] * x[t, c]` for F32 weights, with `x` as `[m, w.cols]`
/// and `y` as `[m, w.rows]`, both row-major.
///
/// # Panics
/// Panics when `w` is not F32, when `w.data` does not match its shape, when `x.len()` is not
/// a multiple of `w.cols`, or when `y.len() != m * w.rows`. With `w.cols == 0`, `m` is
/// `y.len() / w.rows` instead.
pub fn matmul_f32(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    matmul_with(GgmlType::F32, decode_f32, w, x, y);
}

/// Computes `y[t, r] = sum_c W[r, c] * x[t, c]` for F16 weights.
///
/// # Panics
/// As [`matmul_f32`], for F16.
pub fn matmul_f16(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    matmul_with(GgmlType::F16, decode_f16, w, x, y);
}

/// Computes `y[t, r] = sum_c W[r, c] * x[t, c]` for BF16 weights.
///
/// # Panics
/// As [`matmul_f32`], for BF16.
pub fn matmul_bf16(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    matmul_with(GgmlType::BF16, decode_bf16, w, x, y);
}

/// Computes `y[t, r] = sum_c W[r, c] * x[t, c]` for Q8_0 weights.
///
/// # Panics
/// As [`matmul_f32`], for Q8_0.
pub fn matmul_q8_0(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    matmul_with(GgmlType::Q8_0, decode_q8_0, w, x, y);
}

/// Computes `y[t, r] = sum_c W[r, c] * x[t, c]` for Q4_0 weights.
///
/// # Panics
/// As [`matmul_f32`], for Q4_0.
pub fn matmul_q4_0(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    matmul_with(GgmlType::Q4_0, decode_q4_0, w, x, y);
}

fn matvec_with(dtype: GgmlType, decode: Decode, w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    check_matrix(w, dtype);
    check_matvec_lengths(w, x, y);

    let mut weights = [0.0f32; TILE];
    for (r, out) in y.iter_mut().enumerate() {
        let row = w.row(r);
        let mut sum = 0.0f32;
        for (k, xs) in x.chunks(TILE).enumerate() {
            let weights = &mut weights[..xs.len()];
            decode(&row[byte_offset(dtype, k * TILE)..], weights);
            for (&weight, &input) in weights.iter().zip(xs) {
                sum += weight * input;
            }
        }
        *out = sum;
    }
}

fn matmul_with(dtype: GgmlType, decode: Decode, w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    check_matrix(w, dtype);
    let m = batch_size(w, x, y);

    // Decode each tile of weights once and apply it to all m input rows. Each y[t, r]
    // receives the products in the same order as the matvec sum.
    y.fill(0.0);
    let mut weights = [0.0f32; TILE];
    for r in 0..w.rows {
        let row = w.row(r);
        for start in (0..w.cols).step_by(TILE) {
            let weights = &mut weights[..TILE.min(w.cols - start)];
            decode(&row[byte_offset(dtype, start)..], weights);

            for t in 0..m {
                let xs = &x[t * w.cols + start..][..weights.len()];
                let sum = &mut y[t * w.rows + r];
                for (&weight, &input) in weights.iter().zip(xs) {
                    *sum += weight * input;
                }
            }
        }
    }
}

/// Checks that `x` has `w.cols` elements and `y` has `w.rows`.
pub(super) fn check_matvec_lengths(w: &Matrix<'_>, x: &[f32], y: &[f32]) {
    assert_eq!(
        x.len(),
        w.cols,
        "matvec: x has {} elements, but w has {} columns",
        x.len(),
        w.cols
    );
    assert_eq!(
        y.len(),
        w.rows,
        "matvec: y has {} elements, but w has {} rows",
        y.len(),
        w.rows
    );
}

/// Returns the number of input rows `m` of a matmul, after checking the shapes of `x`
/// (`[m, w.cols]`) and `y` (`[m, w.rows]`).
pub(super) fn batch_size(w: &Matrix<'_>, x: &[f32], y: &[f32]) -> usize {
    // With no columns, x is empty for every m, so y's length decides it.
    let m = x
        .len()
        .checked_div(w.cols)
        .or_else(|| y.len().checked_div(w.rows))
        .unwrap_or(0);
    assert_eq!(
        x.len(),
        m * w.cols,
        "matmul: x has {} elements, which is not a multiple of w's {} columns",
        x.len(),
        w.cols
    );
    assert_eq!(
        y.len(),
        m * w.rows,
        "matmul: y has {} elements, but {m} input rows times w's {} rows need {}",
        y.len(),
        w.rows,
        m * w.rows
    );
    m
}

/// Checks that `w` has the format the kernel reads and that its data fills its shape.
/// `Matrix::new` ensures the second, but the fields are public.
pub(super) fn check_matrix(w: &Matrix<'_>, dtype: GgmlType) {
    assert_eq!(
        w.dtype, dtype,
        "the {dtype} kernel was given {} weights",
        w.dtype
    );
    let expected = w
        .dtype
        .row_bytes(w.cols)
        .and_then(|bytes| bytes.checked_mul(w.rows));
    if expected != Some(w.data.len()) {
        panic!(
            "w has {} data bytes, which does not match {} rows of {} {dtype} columns",
            w.data.len(),
            w.rows,
            w.cols
        );
    }
}

/// Returns the byte offset of element `elements` in a row. `elements` is a multiple of
/// the block size.
fn byte_offset(dtype: GgmlType, elements: usize) -> usize {
    elements / dtype.block_size() * dtype.block_bytes()
}

fn decode_f32(bytes: &[u8], out: &mut [f32]) {
    for (value, bytes) in out.iter_mut().zip(bytes.as_chunks::<4>().0) {
        *value = f32::from_le_bytes(*bytes);
    }
}

fn decode_f16(bytes: &[u8], out: &mut [f32]) {
    for (value, bytes) in out.iter_mut().zip(bytes.as_chunks::<2>().0) {
        *value = f16_to_f32(u16::from_le_bytes(*bytes));
    }
}

fn decode_bf16(bytes: &[u8], out: &mut [f32]) {
    for (value, bytes) in out.iter_mut().zip(bytes.as_chunks::<2>().0) {
        *value = bf16_to_f32(u16::from_le_bytes(*bytes));
    }
}

fn decode_q8_0(bytes: &[u8], out: &mut [f32]) {
    let blocks = bytes.as_chunks::<{ BlockQ8_0::BYTES }>().0;
    for (values, block) in out.as_chunks_mut::<QK8_0>().0.iter_mut().zip(blocks) {
        BlockQ8_0::from_bytes(block).dequantize(values);
    }
}

fn decode_q4_0(bytes: &[u8], out: &mut [f32]) {
    let blocks = bytes.as_chunks::<{ BlockQ4_0::BYTES }>().0;
    for (values, block) in out.as_chunks_mut::<QK4_0>().0.iter_mut().zip(blocks) {
        BlockQ4_0::from_bytes(block).dequantize(values);
    }
}
