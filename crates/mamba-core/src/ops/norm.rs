//! RMS normalisation.

/// Writes `weight * x / sqrt(mean(x^2) + eps)` for one row of `x` into `out`.
///
/// # Panics
/// Panics when the three slices differ in length.
pub fn rmsnorm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    assert_eq!(x.len(), weight.len(), "rmsnorm: x and weight lengths differ");
    assert_eq!(x.len(), out.len(), "rmsnorm: x and out lengths differ");
    if x.is_empty() {
        return;
    }

    let sum_sq: f32 = x.iter().map(|v| v * v).sum();
    let scale = 1.0 / libm::sqrtf(sum_sq / x.len() as f32 + eps);

    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = w * (v * scale);
    }
}

/// Applies [`rmsnorm`] to every row of `x` (`[n_rows, weight.len()]`).
///
/// # Panics
/// Panics when `x` and `out` differ in length or are not whole rows.
pub fn rmsnorm_rows(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let d = weight.len();
    assert_eq!(x.len(), out.len(), "rmsnorm_rows: x and out lengths differ");
    assert!(d > 0, "rmsnorm_rows: empty weight");
    assert!(x.len().is_multiple_of(d), "rmsnorm_rows: x is not whole rows of {d}");
    for (row, out_row) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        rmsnorm(row, weight, eps, out_row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmsnorm_unit_weight_gives_unit_rms() {
        let x = [1.0f32, -2.0, 3.0, -4.0, 5.0];
        let w = [1.0f32; 5];
        let mut out = [0.0f32; 5];
        rmsnorm(&x, &w, 0.0, &mut out);
        let rms = (out.iter().map(|v| v * v).sum::<f32>() / 5.0).sqrt();
        assert!((rms - 1.0).abs() < 1e-6, "rms = {rms}");
    }

    #[test]
    fn rmsnorm_zero_row_stays_zero() {
        let mut out = [9.0f32; 3];
        rmsnorm(&[0.0; 3], &[2.0; 3], 1e-5, &mut out);
        assert_eq!(out, [0.0; 3]);
    }
}
