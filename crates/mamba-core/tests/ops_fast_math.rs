//! The fast `exp`, softplus, sigmoid and SiLU against `libm`'s f64 functions over dense
//! sweeps of their input ranges.

use mamba_core::ops::{activation, fast_math};

/// Every `STRIDE`-th f32 bit pattern between two floats of the same sign is tested, about
/// a million inputs per sign and function.
const STRIDE: u32 = 1021;

/// Calls `check` on every `STRIDE`-th f32 in `lo..=hi` (stepping through bit patterns, so
/// small magnitudes are as densely covered as large ones) and on both ends.
fn sweep(lo: f32, hi: f32, mut check: impl FnMut(f32)) {
    assert!(lo <= hi);
    // Negative part, from -0 down to lo, then the non-negative part up to hi.
    if lo < 0.0 {
        let end = (-lo).to_bits();
        let start = if hi < 0.0 { (-hi).to_bits() } else { 0 };
        for bits in (start..=end).step_by(STRIDE as usize) {
            check(-f32::from_bits(bits));
        }
    }
    if hi >= 0.0 {
        let start = if lo > 0.0 { lo.to_bits() } else { 0 };
        for bits in (start..=hi.to_bits()).step_by(STRIDE as usize) {
            check(f32::from_bits(bits));
        }
    }
    check(lo);
    check(hi);
}

/// Relative error of `got` against the exact `expected`.
fn rel_error(got: f32, expected: f64) -> f64 {
    if expected == 0.0 { got.abs() as f64 } else { ((got as f64 - expected) / expected).abs() }
}

#[test]
fn exp_relative_error_in_normal_range() {
    let mut max = 0.0f64;
    sweep(fast_math::EXP_NORMAL_MIN, fast_math::EXP_MAX_FINITE, |x| {
        let err = rel_error(fast_math::exp(x), libm::exp(x as f64));
        assert!(err <= fast_math::EXP_MAX_REL_ERROR as f64, "exp({x:e}): relative error {err:.3e}");
        max = max.max(err);
    });
    eprintln!("exp: max relative error {max:.3e}");
}

#[test]
fn exp_underflow_is_small_and_finite() {
    // dt * A reaches far below the normal range when dt is large.
    sweep(-1.0e4, fast_math::EXP_NORMAL_MIN, |x| {
        let got = fast_math::exp(x);
        assert!(got.is_finite() && got >= 0.0, "exp({x:e}) = {got:e}");
        let err = (got as f64 - libm::exp(x as f64)).abs();
        assert!(err < f32::MIN_POSITIVE as f64, "exp({x:e}): absolute error {err:e}");
    });
    assert_eq!(fast_math::exp(-1.0e30), 0.0);
    assert_eq!(fast_math::exp(f32::NEG_INFINITY), 0.0);
}

#[test]
fn exp_overflow_is_infinite() {
    for x in [88.73f32, 89.0, 100.0, 1.0e30, f32::INFINITY] {
        assert_eq!(fast_math::exp(x), f32::INFINITY, "exp({x:e})");
    }
    assert!(fast_math::exp(f32::NAN).is_nan());
}

#[test]
fn softplus_relative_error() {
    let mut max = 0.0f64;
    sweep(fast_math::EXP_NORMAL_MIN, 40.0, |x| {
        let expected = if x > 20.0 { x as f64 } else { libm::log1p(libm::exp(x as f64)) };
        let err = rel_error(fast_math::softplus(x), expected);
        assert!(err <= fast_math::SOFTPLUS_MAX_REL_ERROR as f64, "softplus({x:e}): relative error {err:.3e}");
        max = max.max(err);
    });
    eprintln!("softplus: max relative error {max:.3e}");
}

#[test]
fn softplus_extremes_are_finite() {
    // ln(f32::MIN_POSITIVE) is -87.3365.
    sweep(-1.0e4, -87.34, |x| {
        let got = fast_math::softplus(x);
        assert!(got.is_finite() && (0.0..f32::MIN_POSITIVE).contains(&got), "softplus({x:e}) = {got:e}");
    });
    assert_eq!(fast_math::softplus(20.5), 20.5);
    assert_eq!(fast_math::softplus(1.0e30), 1.0e30);
    assert_eq!(fast_math::softplus(f32::NEG_INFINITY), 0.0);
}

#[test]
fn softplus_matches_reference_threshold() {
    // Both switch to the identity above 20, so they agree there exactly.
    for x in [20.000_002f32, 25.0, 1.0e6] {
        assert_eq!(fast_math::softplus(x), activation::softplus(x), "x = {x}");
    }
}

#[test]
fn silu_and_sigmoid_relative_error() {
    let mut max = 0.0f64;
    // Below -87 the sigmoid leaves the normal range; SiLU's inputs in a model are far
    // smaller in magnitude.
    sweep(-87.0, 1.0e4, |x| {
        let sigmoid = 1.0 / (1.0 + libm::exp(-(x as f64)));
        let err = rel_error(fast_math::sigmoid(x), sigmoid);
        assert!(err <= fast_math::SILU_MAX_REL_ERROR as f64, "sigmoid({x:e}): relative error {err:.3e}");
        // A subnormal result has fewer significant bits than the bound needs.
        let exact_silu = x as f64 * sigmoid;
        if exact_silu.abs() < f32::MIN_POSITIVE as f64 {
            return;
        }
        let err_silu = rel_error(fast_math::silu(x), exact_silu);
        assert!(err_silu <= fast_math::SILU_MAX_REL_ERROR as f64, "silu({x:e}): relative error {err_silu:.3e}");
        max = max.max(err).max(err_silu);
    });
    eprintln!("sigmoid and silu: max relative error {max:.3e}");
}

#[test]
fn silu_extremes_are_finite() {
    for x in [-1.0e30f32, -1.0e4, -200.0, -88.0] {
        let got = fast_math::silu(x);
        assert!(got == 0.0 || (got.is_finite() && got.abs() < 1.0e-30), "silu({x:e}) = {got:e}");
    }
    assert_eq!(fast_math::silu(-200.0), activation::silu(-200.0));
    assert_eq!(fast_math::silu(200.0), 200.0);
    assert_eq!(fast_math::silu(1.0e30), 1.0e30);
}

#[test]
fn silu_slice_equals_elementwise() {
    let mut values: Vec<f32> = (0..37).map(|i| (i as f32 - 18.0) * 0.7).collect();
    let expected: Vec<f32> = values.iter().map(|&v| fast_math::silu(v)).collect();
    fast_math::silu_slice(&mut values);
    assert_eq!(values, expected);
}

/// The slice functions, which run their loop with the CPU's widest vectors, give the bits of
/// the scalar functions at every length around the vector widths, also for extreme and
/// infinite values. A NaN stays NaN, but its sign bit may differ between vector and scalar
/// code.
#[test]
fn slice_activations_equal_scalar_bits() {
    let specials = [0.0f32, -0.0, 1e-30, -88.0, 90.0, -1e4, 1e4, f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
    for len in 0..70 {
        let values: Vec<f32> = (0..len)
            .map(|i| if i % 7 == 3 { specials[i % specials.len()] } else { ((i as f32) * 0.731).sin() * 30.0 })
            .collect();
        let bias: Vec<f32> = (0..len).map(|i| ((i as f32) * 0.37).cos()).collect();

        let mut silu = values.clone();
        fast_math::silu_slice(&mut silu);
        for (i, (&got, &v)) in silu.iter().zip(&values).enumerate() {
            let expected = fast_math::silu(v);
            if expected.is_nan() {
                assert!(got.is_nan(), "silu_slice, length {len}, index {i}: {got} for NaN");
            } else {
                assert_eq!(got.to_bits(), expected.to_bits(), "silu_slice, length {len}, index {i}, input {v}");
            }
        }

        let mut softplus = values.clone();
        fast_math::softplus_bias_slice(&mut softplus, &bias);
        for (i, (&got, (&v, &b))) in softplus.iter().zip(values.iter().zip(&bias)).enumerate() {
            let expected = fast_math::softplus(v + b);
            if expected.is_nan() {
                assert!(got.is_nan(), "softplus_bias_slice, length {len}, index {i}: {got} for NaN");
            } else {
                assert_eq!(got.to_bits(), expected.to_bits(), "softplus_bias_slice, length {len}, index {i}, input {v} + {b}");
            }
        }
    }
}
