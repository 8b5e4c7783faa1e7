//! Matrix-vector and matrix-matrix products over every weight format.
//!
//! The [`scalar`] kernels are the specification. On x86-64 the entry points here run the
//! widest tier in [`x86_64`] that the CPU supports (AVX-512, then AVX2), and on
//! little-endian aarch64 the NEON tier in [`aarch64`], chosen once and cached:
//!
//! - With the `std` feature the CPU is queried at run time on the first call.
//! - Without it the tier is the best one the crate was compiled for (`-C target-feature`
//!   or `-C target-cpu`), because `no_std` has no CPU query.
//!
//! Other architectures, and CPUs without the features, use the scalar kernels.
//! [`selected_tier`] names the choice. No kernel allocates: weights are decoded block by
//! block into registers or stack buffers, never into a dequantized copy of the matrix.
//!
//! The SIMD kernels decode each weight to the same f32 value as the scalar ones. They
//! differ in the order of the additions and in rounding each product together with its
//! addition (FMA). Each output is then within `gamma(n) * sum |w * x|` of the exact dot
//! product, as the scalar one is, where `n` is the row length and `gamma(n) = n u /
//! (1 - n u)` with `u` the f32 unit roundoff. Subnormal results can add a tiny absolute
//! error on top.
//!
//! [`matvec_with`] and [`matmul_with`] with [`Inputs::Int8`] round the inputs of Q8_0 and
//! Q4_0 matrices to 8 bits instead and multiply them with integer instructions ([`int8`]),
//! where this CPU has such a tier ([`selected_int8_tier`]).

#[cfg(all(target_arch = "aarch64", target_endian = "little"))]
pub mod aarch64;
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_endian = "little")
))]
mod generic;
pub mod int8;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

use crate::quant::dequantize_row;
use crate::tensor::{GgmlType, Matrix};

/// A set of kernels, from the slowest to the fastest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Tier {
    Scalar = 1,
    #[cfg(target_arch = "x86_64")]
    Avx2 = 2,
    #[cfg(target_arch = "x86_64")]
    Avx512 = 3,
    #[cfg(all(target_arch = "aarch64", target_endian = "little"))]
    Neon = 4,
}

impl Tier {
    fn name(self) -> &'static str {
        match self {
            Tier::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512 => "avx512",
            #[cfg(all(target_arch = "aarch64", target_endian = "little"))]
            Tier::Neon => "neon",
        }
    }
}

/// Returns the name of the kernel tier that [`matvec`] and [`matmul`] use on this CPU:
/// `"scalar"`, `"avx2"`, `"avx512"` or `"neon"`.
pub fn selected_tier() -> &'static str {
    selected().name()
}

/// Returns the cached tier, detecting it on the first call.
#[cfg(target_arch = "x86_64")]
fn selected() -> Tier {
    use core::sync::atomic::{AtomicU8, Ordering};

    // 0 until the first call stores a tier. Threads that race on the first call detect the
    // same tier, so either store is right.
    static SELECTED: AtomicU8 = AtomicU8::new(0);
    match SELECTED.load(Ordering::Relaxed) {
        1 => Tier::Scalar,
        2 => Tier::Avx2,
        3 => Tier::Avx512,
        _ => {
            let tier = if x86_64::avx512::is_available() {
                Tier::Avx512
            } else if x86_64::avx2::is_available() {
                Tier::Avx2
            } else {
                Tier::Scalar
            };
            SELECTED.store(tier as u8, Ordering::Relaxed);
            tier
        }
    }
}

/// Returns the cached tier, detecting it on the first call.
#[cfg(all(target_arch = "aarch64", target_endian = "little"))]
fn selected() -> Tier {
    use core::sync::atomic::{AtomicU8, Ordering};

    // 0 until the first call stores a tier, as on x86-64.
    static SELECTED: AtomicU8 = AtomicU8::new(0);
    match SELECTED.load(Ordering::Relaxed) {
        1 => Tier::Scalar,
        4 => Tier::Neon,
        _ => {
            let tier = if aarch64::neon::is_available() {
                Tier::Neon
            } else {
                Tier::Scalar
            };
            SELECTED.store(tier as u8, Ordering::Relaxed);
            tier
        }
    }
}

/// Returns the scalar tier, the only one on this architecture.
#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_endian = "little")
)))]
fn selected() -> Tier {
    Tier::Scalar
}

/// The kernels for Q8_0 and Q4_0 weights with 8-bit inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Int8Tier {
    None = 1,
    #[cfg(target_arch = "x86_64")]
    Avx2 = 2,
    #[cfg(target_arch = "x86_64")]
    Vnni = 3,
    #[cfg(all(target_arch = "aarch64", target_endian = "little"))]
    Neon = 4,
    #[cfg(all(target_arch = "aarch64", target_endian = "little"))]
    NeonDotprod = 5,
}

impl Int8Tier {
    fn name(self) -> Option<&'static str> {
        match self {
            Int8Tier::None => None,
            #[cfg(target_arch = "x86_64")]
            Int8Tier::Avx2 => Some("avx2"),
            #[cfg(target_arch = "x86_64")]
            Int8Tier::Vnni => Some("avx512-vnni"),
            #[cfg(all(target_arch = "aarch64", target_endian = "little"))]
            Int8Tier::Neon => Some("neon"),
            #[cfg(all(target_arch = "aarch64", target_endian = "little"))]
            Int8Tier::NeonDotprod => Some("neon-dotprod"),
        }
    }
}

/// Returns the name of the tier that [`matvec_with`] and [`matmul_with`] use for 8-bit
/// inputs on this CPU (`"avx512-vnni"`, `"avx2"`, `"neon-dotprod"` or `"neon"`), or `None`
/// when it has none and they run the exact kernels.
pub fn selected_int8_tier() -> Option<&'static str> {
    selected_int8().name()
}

/// Returns the cached 8-bit input tier, detecting it on the first call.
#[cfg(target_arch = "x86_64")]
fn selected_int8() -> Int8Tier {
    use core::sync::atomic::{AtomicU8, Ordering};

    // 0 until the first call stores a tier, as for `selected`.
    static SELECTED: AtomicU8 = AtomicU8::new(0);
    match SELECTED.load(Ordering::Relaxed) {
        1 => Int8Tier::None,
        2 => Int8Tier::Avx2,
        3 => Int8Tier::Vnni,
        _ => {
            let tier = if x86_64::int8::vnni::is_available() {
                Int8Tier::Vnni
            } else if x86_64::int8::avx2::is_available() {
                Int8Tier::Avx2
            } else {
                Int8Tier::None
            };
            SELECTED.store(tier as u8, Ordering::Relaxed);
            tier
        }
    }
}

/// Returns the cached 8-bit input tier, detecting it on the first call.
#[cfg(all(target_arch = "aarch64", target_endian = "little"))]
fn selected_int8() -> Int8Tier {
    use core::sync::atomic::{AtomicU8, Ordering};

    // 0 until the first call stores a tier, as for `selected`.
    static SELECTED: AtomicU8 = AtomicU8::new(0);
    match SELECTED.load(Ordering::Relaxed) {
        1 => Int8Tier::None,
        4 => Int8Tier::Neon,
        5 => Int8Tier::NeonDotprod,
        _ => {
            let tier = if aarch64::int8::dotprod::is_available() {
                Int8Tier::NeonDotprod
            } else if aarch64::int8::neon::is_available() {
                Int8Tier::Neon
            } else {
                Int8Tier::None
            };
            SELECTED.store(tier as u8, Ordering::Relaxed);
            tier
        }
    }
}

/// Returns no 8-bit input tier: this architecture has none.
#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_endian = "little")
)))]
fn selected_int8() -> Int8Tier {
    Int8Tier::None
}

/// The treatment of the f32 inputs of [`matvec_with`] and [`matmul_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inputs {
    /// Multiply the f32 inputs as they are, as [`matvec`] and [`matmul`] do.
    Exact,
    /// For Q8_0 and Q4_0 matrices of at most [`int8::MAX_COLS`] columns, round the inputs
    /// to 8 bits in blocks of 32 and use the integer kernels of [`selected_int8_tier`], as
    /// llama.cpp does. Other matrices, and CPUs without such a tier, get exact inputs.
    Int8,
}

/// Runs the 8-bit input kernel for `w` when `inputs` selects it and this CPU has one.
/// Returns false, having done nothing, otherwise.
fn try_int8(w: &Matrix<'_>, x: &[f32], y: &mut [f32], inputs: Inputs, matmul: bool) -> bool {
    if inputs != Inputs::Int8 || !int8::supports(w) {
        return false;
    }
    match selected_int8() {
        Int8Tier::None => false,
        #[cfg(target_arch = "x86_64")]
        Int8Tier::Avx2 => {
            // SAFETY: `selected_int8` returns Avx2 only after its is_available returned true.
            unsafe {
                if matmul {
                    x86_64::int8::avx2::matmul_unchecked(w, x, y)
                } else {
                    x86_64::int8::avx2::matvec_unchecked(w, x, y)
                }
            }
            true
        }
        #[cfg(target_arch = "x86_64")]
        Int8Tier::Vnni => {
            // SAFETY: `selected_int8` returns Vnni only after its is_available returned true.
            unsafe {
                if matmul {
                    x86_64::int8::vnni::matmul_unchecked(w, x, y)
                } else {
                    x86_64::int8::vnni::matvec_unchecked(w, x, y)
                }
            }
            true
        }
        #[cfg(all(target_arch = "aarch64", target_endian = "little"))]
        Int8Tier::Neon => {
            // SAFETY: `selected_int8` returns Neon only after its is_available returned true.
            unsafe {
                if matmul {
                    aarch64::int8::neon::matmul_unchecked(w, x, y)
                } else {
                    aarch64::int8::neon::matvec_unchecked(w, x, y)
                }
            }
            true
        }
        #[cfg(all(target_arch = "aarch64", target_endian = "little"))]
        Int8Tier::NeonDotprod => {
            // SAFETY: `selected_int8` returns NeonDotprod only after its is_available
            // returned true.
            unsafe {
                if matmul {
                    aarch64::int8::dotprod::matmul_unchecked(w, x, y)
                } else {
                    aarch64::int8::dotprod::matvec_unchecked(w, x, y)
                }
            }
            true
        }
    }
}

/// Computes `y = W x` like [`matvec`], with the inputs treated as `inputs` selects.
///
/// # Panics
/// As [`matvec`].
pub fn matvec_with(w: &Matrix<'_>, x: &[f32], y: &mut [f32], inputs: Inputs) {
    if !try_int8(w, x, y, inputs, false) {
        matvec(w, x, y);
    }
}

/// Computes `y[t] = W x[t]` like [`matmul`], with the inputs treated as `inputs` selects. Row
/// `t` of `y` equals [`matvec_with`] on row `t` of `x`, bit for bit.
///
/// # Panics
/// As [`matmul`].
pub fn matmul_with(w: &Matrix<'_>, x: &[f32], y: &mut [f32], inputs: Inputs) {
    if !try_int8(w, x, y, inputs, true) {
        matmul(w, x, y);
    }
}

/// Computes `y[r] = sum_c W[r, c] * x[c]`, with `x` of length `w.cols` and `y` of length
/// `w.rows`.
///
/// # Panics
/// Panics when `x.len() != w.cols`, `y.len() != w.rows`, or `w.data` does not match the
/// shape. Callers check shapes once when the model loads, so a mismatch here is a bug.
pub fn matvec(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    match selected() {
        Tier::Scalar => scalar_matvec(w, x, y),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `selected` returns Avx2 only after avx2::is_available returned true.
        Tier::Avx2 => unsafe { x86_64::avx2::matvec(w, x, y) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `selected` returns Avx512 only after avx512::is_available returned true.
        Tier::Avx512 => unsafe { x86_64::avx512::matvec(w, x, y) },
        #[cfg(all(target_arch = "aarch64", target_endian = "little"))]
        // SAFETY: `selected` returns Neon only after neon::is_available returned true.
        Tier::Neon => unsafe { aarch64::neon::matvec(w, x, y) },
    }
}

fn scalar_matvec(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
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
/// Row `t` of `y` equals `matvec` on row `t` of `x`, bit for bit.
///
/// # Panics
/// Panics when `x.len()` is not a multiple of `w.cols`, `y.len() != m * w.rows`, or
/// `w.data` does not match the shape. With `w.cols == 0`, `m` is `y.len() / w.rows`.
pub fn matmul(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    match selected() {
        Tier::Scalar => scalar_matmul(w, x, y),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `selected` returns Avx2 only after avx2::is_available returned true.
        Tier::Avx2 => unsafe { x86_64::avx2::matmul(w, x, y) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `selected` returns Avx512 only after avx512::is_available returned true.
        Tier::Avx512 => unsafe { x86_64::avx512::matmul(w, x, y) },
        #[cfg(all(target_arch = "aarch64", target_endian = "little"))]
        // SAFETY: `selected` returns Neon only after neon::is_available returned true.
        Tier::Neon => unsafe { aarch64::neon::matmul(w, x, y) },
    }
}

fn scalar_matmul(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
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
