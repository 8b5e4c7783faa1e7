//! Fast f32 versions of `exp`, softplus and SiLU for the scan and the activations.
//!
//! Each function is branch-free per value, so a loop over a slice or over the lanes of a
//! fixed-size array vectorises. Each uses only f32 add, multiply and divide and integer bit
//! operations, so a value gets the same bits at every vector width and in scalar code: Rust
//! never fuses a multiply and an add into an FMA unless the source asks for it. The
//! references in [`super::activation`] call `libm`.
//!
//! The error bounds are relative to the exact value and are checked against `libm`'s f64
//! functions over dense sweeps of the input range in `tests/ops_fast_math.rs`.

#[cfg(target_arch = "x86_64")]
use super::ssm_scan::ScanKernel;

/// Maximum relative error of [`exp`] for inputs in `EXP_NORMAL_MIN..=EXP_MAX_FINITE`.
/// Measured max is 9.4e-8, below one f32 unit in the last place (1.2e-7).
pub const EXP_MAX_REL_ERROR: f32 = 1.5e-7;

/// An input above which the exponential is a normal f32 (ln of `f32::MIN_POSITIVE` is
/// -87.3365). Further down [`exp`] returns a subnormal value or 0, with an absolute error
/// under `f32::MIN_POSITIVE`.
pub const EXP_NORMAL_MIN: f32 = -87.33;

/// Largest input whose exponential is finite in f32. Above it [`exp`] returns infinity.
pub const EXP_MAX_FINITE: f32 = 88.72;

/// Maximum relative error of [`softplus`] for inputs from `EXP_NORMAL_MIN` up. Measured max
/// is 2.6e-7.
pub const SOFTPLUS_MAX_REL_ERROR: f32 = 4.0e-7;

/// Maximum relative error of [`silu`] and [`sigmoid`] for inputs whose result is a normal f32.
/// Measured max is 1.7e-7.
pub const SILU_MAX_REL_ERROR: f32 = 3.0e-7;

const LOG2_E: f32 = core::f32::consts::LOG2_E;
/// ln 2 split in two: `LN2_HI` has 9 significant bits, so `n * LN2_HI` is exact for every
/// exponent `n` used here, and `LN2_HI + LN2_LO` is ln 2 to about 2^-33.
const LN2_HI: f32 = 355.0 / 512.0;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 * 2^23: adding it rounds a value below 2^22 in magnitude to an integer, which then
/// sits in the low bits of the sum's mantissa.
const ROUND_MAGIC: f32 = 12_582_912.0;
const ROUND_MAGIC_BITS: i32 = 0x4B40_0000;

/// `e^x` with a relative error of at most [`EXP_MAX_REL_ERROR`].
///
/// Range reduction `x = n ln 2 + r` with `|r| <= ln 2 / 2`, a degree-7 Taylor polynomial for
/// `e^r` (truncation error 5e-9), and `2^n` applied as two exact powers of two, so results
/// down to the subnormal range and up to overflow need no special case. Inputs are clamped
/// to `-104..=89`, where the result is 0 or infinity anyway. NaN gives NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = if x < -104.0 { -104.0 } else { x };
    let x = if x > 89.0 { 89.0 } else { x };

    // n = round(x / ln 2) and r = x - n ln 2.
    let k = x * LOG2_E + ROUND_MAGIC;
    let n = k - ROUND_MAGIC;
    let r = (x - n * LN2_HI) - n * LN2_LO;

    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));

    // 2^n as 2^(n/2) * 2^(n - n/2): each factor is a normal float for n in -150..=129.
    let n_int = (k.to_bits() as i32).wrapping_sub(ROUND_MAGIC_BITS);
    let half = n_int >> 1;
    let scale_a = f32::from_bits(((half + 127) as u32) << 23);
    let scale_b = f32::from_bits(((n_int - half + 127) as u32) << 23);
    p * scale_a * scale_b
}

/// `ln(1 + u)` for `u` in `0..=1`, accurate to a few units in the last place also for tiny
/// `u`.
#[inline(always)]
fn ln_1p_unit(u: f32) -> f32 {
    // w - 1 is exact for w in 1..=2, and ln(w) * u / (w - 1) cancels the rounding of 1 + u.
    let w = 1.0 + u;
    let ln_w = ln_1_to_2(w);
    let corrected = ln_w * (u / (w - 1.0));
    if w == 1.0 { u } else { corrected }
}

/// `ln(w)` for `w` in `1..=2`.
#[inline(always)]
fn ln_1_to_2(w: f32) -> f32 {
    // Bring w into [1/sqrt 2, sqrt 2], then ln m = 2 atanh(s) with s = (m - 1) / (m + 1),
    // |s| <= 0.172; the series stops at s^9, a truncation error of 2e-9.
    let halve = w > core::f32::consts::SQRT_2;
    let m = if halve { w * 0.5 } else { w };
    let offset = if halve { core::f32::consts::LN_2 } else { 0.0 };
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    let tail = z * (1.0 / 3.0 + z * (1.0 / 5.0 + z * (1.0 / 7.0 + z * (1.0 / 9.0))));
    let two_s = s + s;
    offset + (two_s + two_s * tail)
}

/// Softplus `ln(1 + e^x)`, returning `x` above 20 as
/// [`activation::softplus`](super::activation::softplus) does, with a relative error of at
/// most [`SOFTPLUS_MAX_REL_ERROR`].
///
/// Computed as `max(x, 0) + ln(1 + e^-|x|)`, so no intermediate overflows. For `x` below
/// -87.34 the result is under `f32::MIN_POSITIVE` and may be 0.
#[inline(always)]
pub fn softplus(x: f32) -> f32 {
    let neg_abs = f32::from_bits(x.to_bits() | 0x8000_0000);
    let positive_part = if x > 0.0 { x } else { 0.0 };
    let value = positive_part + ln_1p_unit(exp(neg_abs));
    if x > 20.0 { x } else { value }
}

/// Logistic sigmoid `1 / (1 + e^-x)`, with a relative error of at most
/// [`SILU_MAX_REL_ERROR`].
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// SiLU `x * sigmoid(x)`, with a relative error of at most [`SILU_MAX_REL_ERROR`]. Large
/// negative inputs give -0, never NaN.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// Calls the `#[inline(always)]` loop `$f(values, other)` from a function compiled with the
/// target features of [`ScanKernel::best`], so the loop is inlined there and vectorised with
/// them. A direct call is needed: through a closure or `Fn` the loop was not inlined.
macro_rules! dispatch {
    ($f:ident($values:expr, $other:expr)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            /// Runs the loop compiled with AVX-512F.
            ///
            /// # Safety
            /// The CPU supports AVX-512F.
            #[target_feature(enable = "avx512f")]
            unsafe fn avx512(values: &mut [f32], other: &[f32]) {
                $f(values, other);
            }

            /// Runs the loop compiled with AVX2.
            ///
            /// # Safety
            /// The CPU supports AVX2.
            #[target_feature(enable = "avx2")]
            unsafe fn avx2(values: &mut [f32], other: &[f32]) {
                $f(values, other);
            }

            match ScanKernel::best() {
                // SAFETY: best() returns Avx512 only when the CPU has AVX-512F.
                ScanKernel::Avx512 => return unsafe { avx512($values, $other) },
                // SAFETY: best() returns Avx2 only when the CPU has AVX2.
                ScanKernel::Avx2 => return unsafe { avx2($values, $other) },
                ScanKernel::Portable => {}
            }
        }
        $f($values, $other);
    }};
}

/// Applies [`silu`] to every value of `values`.
///
/// Like the fast scan, the loop is compiled for the widest vectors of this CPU
/// ([`ScanKernel::best`]), with the same bits on every build because it uses no fused
/// multiply-add. Only the sign bit of a NaN result may differ.
pub fn silu_slice(values: &mut [f32]) {
    dispatch!(silu_loop(values, &[]));
}

#[inline(always)]
fn silu_loop(values: &mut [f32], _: &[f32]) {
    for v in values {
        *v = silu(*v);
    }
}

/// Sets each value `v` of `values` to [`softplus`]`(v + bias[i])`, vectorised as
/// [`silu_slice`] is.
///
/// # Panics
/// Panics when `bias` is shorter than `values`.
pub fn softplus_bias_slice(values: &mut [f32], bias: &[f32]) {
    assert!(bias.len() >= values.len(), "softplus_bias_slice: {} biases for {} values", bias.len(), values.len());
    dispatch!(softplus_bias_loop(values, bias));
}

#[inline(always)]
fn softplus_bias_loop(values: &mut [f32], bias: &[f32]) {
    for (v, &b) in values.iter_mut().zip(bias) {
        *v = softplus(*v + b);
    }
}
