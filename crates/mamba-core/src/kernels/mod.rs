//! Matrix-vector and matrix-matrix products over every weight format.
//!
//! The entry points here pick a kernel by the matrix's [`GgmlType`]. Only the [`scalar`]
//! kernels exist so far. They need no allocation: weights are decoded block by block into
//! stack buffers, never into a dequantized copy of the matrix.

pub mod scalar;

use crate::quant::dequantize_row;
use crate::tensor::{GgmlType, Matrix};

/// Computes `y[r] = sum_c W[r, c] * x[c]`, with `x` of length `w.cols` and `y` of length
/// `w.rows`.
///
/// # Panics
/// Panics when `x.len() != w.cols`, `y.len() != w.rows`, or `w.data` does not match the
/// shape. Callers check shapes once when the model loads, so a mismatch here is a bug.
pub fn matvec(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    match w.dtype {
        GgmlType::F32 => scalar::matvec_f32(w, x, y),
        GgmlType::F16 => scalar::matvec_f16(w, x, y),
        GgmlType::BF16 => scalar::matvec_bf16(w, x, y),
        GgmlType::Q8_0 => scalar::matvec_q8_0(w, x, y),
        GgmlType::Q4_0 => scalar::matvec_q4_0(w, x, y),
    }
}

/// Computes `y[t, r] = sum_c W[r, c] * x[t, c]` for `m` input rows at once, with `x` as
/// `[m, w.cols]` and `y` as `[m, w.rows]`, both row-major, and `m = x.len() / w.cols`.
///
/// Each weight is decoded once per call and applied to all `m` rows. Row `t` of
/// `y` equals `matvec` on row `t` of `x`.
///
/// # Panics
/// Panics when `x.len()` is not a multiple of `w.cols`, `y.len() != m * w.rows`, or
/// `w.data` does not match the shape. With `w.cols == 0`, `m` is `y.len() / w.rows`.
pub fn matmul(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    match w.dtype {
        GgmlType::F32 => scalar::matmul_f32(w, x, y),
        GgmlType::F16 => scalar::matmul_f16(w, x, y),
        GgmlType::BF16 => scalar::matmul_bf16(w, x, y),
        GgmlType::Q8_0 => scalar::matmul_q8_0(w, x, y),
        GgmlType::Q4_0 => scalar::matmul_q4_0(w, x, y),
    }
}

/// Dequantizes row `i` of `w` into `dst`, for example to look up a token embedding.
///
/// # Panics
/// Panics when `i >= w.rows`, `dst.len() != w.cols`, or `w.data` does not match the shape.
pub fn dequantize_matrix_row(w: &Matrix<'_>, i: usize, dst: &mut [f32]) {
    assert!(
        i < w.rows,
        "row {i} is out of range for a matrix of {} rows",
        w.rows
    );
    assert_eq!(
        dst.len(),
        w.cols,
        "dst has {} elements, but w has {} columns",
        dst.len(),
        w.cols
    );

    if let Err(err) = dequantize_row(w.dtype, w.row(i), dst) {
        panic!(
            "row {i} of the {} matrix does not match its shape: {err}",
            w.dtype
        );
    }
}
