//! Elementwise activations with the conventions PyTorch uses.

/// Logistic sigmoid, `1 / (1 + e^-x)`.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

/// SiLU (swish), `x * sigmoid(x)`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// Softplus `ln(1 + e^x)`, returning `x` itself above 20 as `torch.nn.functional.softplus`
/// does with its default threshold.
#[inline]
pub fn softplus(x: f32) -> f32 {
    if x > 20.0 { x } else { libm::log1pf(libm::expf(x)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softplus_matches_definition_and_threshold() {
        for &x in &[-30.0f32, -5.0, -0.5, 0.0, 0.5, 5.0, 19.9] {
            let expected = (1.0f64 + (x as f64).exp()).ln() as f32;
            assert!((softplus(x) - expected).abs() <= 1e-6 * expected.abs().max(1.0), "x = {x}");
        }
        assert_eq!(softplus(25.0), 25.0);
    }

    #[test]
    fn silu_is_finite_for_large_inputs() {
        assert_eq!(silu(-200.0), -0.0);
        assert_eq!(silu(200.0), 200.0);
        assert!((silu(1.0) - 0.731_058_6).abs() < 1e-6);
    }
}
