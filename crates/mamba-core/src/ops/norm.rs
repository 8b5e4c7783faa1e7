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

/// Divides `x` in place by `sqrt(mean(x^2) + eps)`: an RMSNorm without weight, as
/// Falcon-Mamba applies it to dt, B and C.
pub fn rms_normalize(x: &mut [f32], eps: f32) {
    if x.is_empty() {
        return;
    }
    let sum_sq: f32 = x.iter().map(|v| v * v).sum();
    let scale = 1.0 / libm::sqrtf(sum_sq / x.len() as f32 + eps);
    for v in x {
        *v *= scale;
    }
}

/// Mamba-2's gated RMSNorm of one row, in place: `y = y * silu(z)`, then each of `n_group`
/// equal groups of `y` is RMS-normalised and multiplied by its part of `weight`. Without a
/// weight only the gate is applied. This is the `norm_before_gate = False` order of
/// `transformers`' `MambaRMSNormGated`.
///
/// # Panics
/// Panics when `z` or `weight` differ from `y` in length or `n_group` does not divide it.
pub fn gated_rmsnorm(y: &mut [f32], z: &[f32], weight: Option<&[f32]>, n_group: usize, eps: f32) {
    assert_eq!(y.len(), z.len(), "gated_rmsnorm: y and z lengths differ");
    assert!(n_group > 0, "gated_rmsnorm: n_group must be at least 1");
    assert!(y.len().is_multiple_of(n_group), "gated_rmsnorm: n_group must divide the row");
    for (v, &g) in y.iter_mut().zip(z) {
        *v *= super::fast_math::silu(g);
    }
    let Some(weight) = weight else { return };
    assert_eq!(weight.len(), y.len(), "gated_rmsnorm: weight and y lengths differ");
    let group = y.len() / n_group;
    for (values, w) in y.chunks_exact_mut(group).zip(weight.chunks_exact(group)) {
        rms_normalize(values, eps);
        for (v, &w) in values.iter_mut().zip(w) {
            *v *= w;
        }
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
    fn gated_rmsnorm_normalises_each_group() {
        let mut y = [1.0f32, 3.0, -2.0, 2.0];
        // A large gate makes silu(z) = z to f32 precision, and the norm removes the scale.
        let z = [100.0f32; 4];
        gated_rmsnorm(&mut y, &z, Some(&[1.0, 1.0, 0.5, 0.5]), 2, 0.0);
        let first = 1.0 / 5.0f32.sqrt();
        let expected = [first, 3.0 * first, -0.5, 0.5];
        for (v, e) in y.iter().zip(expected) {
            assert!((v - e).abs() < 1e-6, "{y:?} vs {expected:?}");
        }
    }

    #[test]
    fn rmsnorm_zero_row_stays_zero() {
        let mut out = [9.0f32; 3];
        rmsnorm(&[0.0; 3], &[2.0; 3], 1e-5, &mut out);
        assert_eq!(out, [0.0; 3]);
    }
}
