//! Every shader against the CPU reference on random inputs, at sizes that leave partial
//! weight tiles, partial workgroups and partial token tiles.
//!
//! Tolerances: the GPU adds in another order than the CPU and may fuse multiply-adds, and
//! its `exp` and `log` differ from libm by a few units in the last place. A dot product of
//! `n` terms computed either way is within `gamma(n) * sum |w x|` of the exact value, with
//! `gamma(n) ~ n * f32::EPSILON / 2`, so two of them differ by at most `n * EPSILON * sum |w x|`.

mod support;

use mamba_core::kernels::scalar;
use mamba_core::ops::conv1d::{ConvShape, causal_conv1d};
use mamba_core::ops::norm::rmsnorm_rows;
use mamba_core::ops::ssm_scan::{ScanInputs, selective_scan};
use mamba_core::quant::{dequantize_row, quantize_row};
use mamba_core::{GgmlType, Matrix};
use mamba_vulkan::{Epilogue, ops};
use support::{Rng, assert_finite, gpu};

/// Relative error allowed for elementwise results after `exp`, `log` or `sqrt`: the GPU's
/// transcendental functions are accurate to a few f32 units in the last place.
const ELEMENTWISE_TOLERANCE: f32 = 1e-5;

/// Weight formats the shaders read.
const FORMATS: [GgmlType; 5] = [GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0];

/// Returns a random `rows × cols` matrix stored at `dtype`, with its decoded f32 values.
fn random_matrix(rng: &mut Rng, dtype: GgmlType, rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>) {
    let row_bytes = dtype.row_bytes(cols).expect("cols fits the format");
    let mut bytes = vec![0u8; rows * row_bytes];
    let mut decoded = vec![0.0f32; rows * cols];
    for r in 0..rows {
        let values = rng.vec(cols, -1.0, 1.0);
        let row = &mut bytes[r * row_bytes..(r + 1) * row_bytes];
        quantize_row(dtype, &values, row).expect("finite values quantize");
        dequantize_row(dtype, row, &mut decoded[r * cols..(r + 1) * cols]).expect("row decodes");
    }
    (bytes, decoded)
}

fn cpu_matmul(w: &Matrix<'_>, x: &[f32]) -> Vec<f32> {
    let m = x.len() / w.cols;
    let mut y = vec![0.0; m * w.rows];
    match w.dtype {
        GgmlType::F32 => scalar::matmul_f32(w, x, &mut y),
        GgmlType::F16 => scalar::matmul_f16(w, x, &mut y),
        GgmlType::BF16 => scalar::matmul_bf16(w, x, &mut y),
        GgmlType::Q8_0 => scalar::matmul_q8_0(w, x, &mut y),
        GgmlType::Q4_0 => scalar::matmul_q4_0(w, x, &mut y),
    }
    y
}

/// Row lengths allowed for a format: any for the float formats, whole blocks of 32 for the
/// block formats.
fn col_sizes(dtype: GgmlType) -> &'static [usize] {
    if dtype.block_size() == 1 { &[1, 7, 31, 33, 100, 2050] } else { &[32, 96, 160, 2080] }
}

#[test]
fn matmul_matches_scalar_for_every_format() {
    let gpu = gpu();
    let mut rng = Rng::new(1);
    for dtype in FORMATS {
        for &cols in col_sizes(dtype) {
            for (rows, n_tokens) in [(1, 1), (3, 1), (65, 5), (130, 9)] {
                let (bytes, decoded) = random_matrix(&mut rng, dtype, rows, cols);
                let w = Matrix::new(dtype, rows, cols, &bytes).unwrap();
                let x = rng.vec(n_tokens * cols, -2.0, 2.0);
                let expected = cpu_matmul(&w, &x);
                let found = ops::matmul(&gpu, &w, &x, &vec![0.0; expected.len()], Epilogue::Store, &[]).unwrap();
                assert_finite("matmul", &found);

                for t in 0..n_tokens {
                    for r in 0..rows {
                        let row = &decoded[r * cols..(r + 1) * cols];
                        let abs_sum: f32 = row.iter().zip(&x[t * cols..(t + 1) * cols]).map(|(w, x)| (w * x).abs()).sum();
                        let bound = cols as f32 * f32::EPSILON * abs_sum + f32::MIN_POSITIVE;
                        let (e, f) = (expected[t * rows + r], found[t * rows + r]);
                        assert!(
                            (e - f).abs() <= bound,
                            "{dtype} {rows}x{cols}, token {t} of {n_tokens}, row {r}: GPU {f}, CPU {e}, bound {bound}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn matmul_epilogues_add_and_softplus() {
    let gpu = gpu();
    let mut rng = Rng::new(2);
    let (rows, cols, n_tokens) = (37, 45, 6);
    let (bytes, _) = random_matrix(&mut rng, GgmlType::F32, rows, cols);
    let w = Matrix::new(GgmlType::F32, rows, cols, &bytes).unwrap();
    // Large inputs push some sums above softplus's threshold of 20 and some far below 0.
    let x = rng.vec(n_tokens * cols, -3.0, 3.0);
    let y0 = rng.vec(n_tokens * rows, -1.0, 1.0);
    let bias = rng.vec(rows, -10.0, 10.0);
    let sums = cpu_matmul(&w, &x);

    let added = ops::matmul(&gpu, &w, &x, &y0, Epilogue::Add, &[]).unwrap();
    let softplus = ops::matmul(&gpu, &w, &x, &y0, Epilogue::SoftplusBias, &bias).unwrap();
    assert_finite("add epilogue", &added);
    assert_finite("softplus epilogue", &softplus);

    for i in 0..sums.len() {
        let expected_add = y0[i] + sums[i];
        assert!((added[i] - expected_add).abs() <= 1e-4 * (1.0 + expected_add.abs()), "add {i}: GPU {}, CPU {expected_add}", added[i]);
        let expected_softplus = mamba_core::ops::activation::softplus(sums[i] + bias[i % rows]);
        let error = (softplus[i] - expected_softplus).abs();
        assert!(error <= 1e-4 * (1.0 + expected_softplus.abs()), "softplus {i}: GPU {}, CPU {expected_softplus}", softplus[i]);
    }
}

#[test]
fn embed_matches_dequantized_rows() {
    let gpu = gpu();
    let mut rng = Rng::new(3);
    for dtype in FORMATS {
        for &cols in col_sizes(dtype) {
            let rows = 11;
            let (bytes, decoded) = random_matrix(&mut rng, dtype, rows, cols);
            let w = Matrix::new(dtype, rows, cols, &bytes).unwrap();
            let tokens = [10u32, 0, 3, 3, 7];
            let found = ops::embed(&gpu, &w, &tokens).unwrap();
            for (t, &token) in tokens.iter().enumerate() {
                let expected = &decoded[token as usize * cols..(token as usize + 1) * cols];
                // Decoding is exact, so the bits must match.
                assert_eq!(&found[t * cols..(t + 1) * cols], expected, "{dtype} cols {cols}, token {token}");
            }
        }
    }
}

#[test]
fn rmsnorm_matches_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(4);
    for (d, n_rows) in [(1, 1), (5, 3), (63, 2), (64, 1), (129, 4), (1000, 2)] {
        let x = rng.vec(d * n_rows, -4.0, 4.0);
        let weight = rng.vec(d, -2.0, 2.0);
        let mut expected = vec![0.0; x.len()];
        rmsnorm_rows(&x, &weight, 1e-5, &mut expected);
        let found = ops::rmsnorm(&gpu, &x, &weight, 1e-5).unwrap();
        assert_finite("rmsnorm", &found);
        for i in 0..x.len() {
            let bound = ELEMENTWISE_TOLERANCE * (expected[i].abs() + 1e-3);
            assert!((found[i] - expected[i]).abs() <= bound, "d {d}, value {i}: GPU {}, CPU {}", found[i], expected[i]);
        }
    }
    // An all-zero row stays zero instead of dividing by zero.
    let zeros = ops::rmsnorm(&gpu, &[0.0; 7], &[1.5; 7], 1e-5).unwrap();
    assert_eq!(zeros, vec![0.0; 7]);
}

#[test]
fn conv_step_and_prefill_match_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(5);
    for (d_inner, d_conv, n_tokens) in [(1, 1, 1), (3, 4, 1), (65, 4, 1), (65, 4, 7), (130, 2, 3), (7, 5, 2)] {
        let x_stride = 2 * d_inner;
        let history = d_conv - 1;
        let state0 = rng.vec(d_inner * history, -1.0, 1.0);
        let x = rng.vec(n_tokens * x_stride, -3.0, 3.0);
        let weight = rng.vec(d_inner * d_conv, -1.0, 1.0);
        let bias = rng.vec(d_inner, -0.5, 0.5);
        let shape = ConvShape { d_inner, d_conv, x_stride };

        for with_bias in [true, false] {
            let bias = with_bias.then_some(&bias[..]);
            let mut expected_state = state0.clone();
            let mut expected = vec![0.0; n_tokens * d_inner];
            causal_conv1d(shape, &mut expected_state, &x, &weight, bias, &mut expected);
            for v in &mut expected {
                *v = mamba_core::ops::activation::silu(*v);
            }

            let (found, found_state) = ops::conv(&gpu, shape, &state0, &x, &weight, bias, n_tokens).unwrap();
            assert_finite("conv", &found);
            // The state is a copy of inputs, so it must match exactly.
            assert_eq!(found_state, expected_state, "state, d_inner {d_inner} d_conv {d_conv} n {n_tokens}");
            for i in 0..found.len() {
                let bound = 1e-5 * (1.0 + expected[i].abs());
                assert!((found[i] - expected[i]).abs() <= bound, "d_inner {d_inner} d_conv {d_conv} n {n_tokens} value {i}: GPU {}, CPU {}", found[i], expected[i]);
            }
        }
    }
}

#[test]
fn scan_step_and_prefill_match_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(6);
    for (d_inner, d_state, n_tokens) in [(1, 1, 1), (3, 16, 1), (65, 16, 1), (65, 16, 9), (130, 5, 4), (17, 64, 33)] {
        let dt_rank = 3;
        let bc_stride = dt_rank + 2 * d_state;
        let z_stride = 2 * d_inner;
        let x = rng.vec(n_tokens * d_inner, -2.0, 2.0);
        let dt = rng.vec(n_tokens * d_inner, 0.001, 0.5);
        let a: Vec<f32> = rng.vec(d_inner * d_state, 0.1, 16.0).iter().map(|v| -v).collect();
        let bc = rng.vec(n_tokens * bc_stride, -1.0, 1.0);
        let d = rng.vec(d_inner, -1.0, 1.0);
        // z is read at z_stride, as the second half of xz rows.
        let z = rng.vec(n_tokens * z_stride, -20.0, 20.0);
        let state0 = rng.vec(d_inner * d_state, -1.0, 1.0);
        let inputs = ScanInputs {
            d_inner,
            d_state,
            x: &x,
            dt: &dt,
            a: &a,
            bc: &bc,
            bc_stride,
            b_offset: dt_rank,
            c_offset: dt_rank + d_state,
            d: &d,
            z: &z,
            z_stride,
        };
        let mut expected_state = state0.clone();
        let mut expected = vec![0.0; n_tokens * d_inner];
        selective_scan(&inputs, &mut expected_state, &mut expected);

        let (found, found_state) = ops::scan(&gpu, &inputs, n_tokens, &state0).unwrap();
        assert_finite("scan y", &found);
        assert_finite("scan state", &found_state);
        // Errors compound over the sequence, relative to the magnitude of the state.
        let scale = |values: &[f32]| values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let y_bound = 1e-5 * scale(&expected).max(1.0) * (n_tokens as f32).sqrt();
        let state_bound = 1e-5 * scale(&expected_state).max(1.0) * (n_tokens as f32).sqrt();
        for i in 0..found.len() {
            assert!((found[i] - expected[i]).abs() <= y_bound, "y, d_inner {d_inner} d_state {d_state} n {n_tokens} value {i}: GPU {}, CPU {}", found[i], expected[i]);
        }
        for i in 0..found_state.len() {
            let error = (found_state[i] - expected_state[i]).abs();
            assert!(error <= state_bound, "state, d_inner {d_inner} d_state {d_state} n {n_tokens} value {i}: GPU {}, CPU {}", found_state[i], expected_state[i]);
        }
    }
}
