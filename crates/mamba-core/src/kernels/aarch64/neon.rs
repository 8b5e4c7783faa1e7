//! NEON kernels: 4-lane f32 vectors with FMA, and `fcvtl` for f16 weights and block scales.
//!
//! Each format has a safe `matvec_<format>` and `matmul_<format>` that panic when
//! [`is_available`] is false, and `_unchecked` variants for callers that have checked.
//! Results match the [`scalar`](crate::kernels::scalar) kernels up to summation order, as
//! the `generic` module describes.
//!
//! The f16 conversions use inline assembly because the `float16x4_t` intrinsics are not
//! stable in Rust 1.95. `fcvtl` is part of the base Armv8-A floating-point instructions and
//! widens every f16 value exactly, subnormals included.

use core::arch::aarch64::*;
use core::arch::asm;

use crate::kernels::generic::{self, Bf16, CHUNK, F16, F32, Q4_0, Q8_0, Simd};
use crate::tensor::{GgmlType, Matrix};

/// Weight rows per pass of matvec: four independent accumulator chains.
const MATVEC_ROWS: usize = 4;
/// Weight rows per matmul tile.
const TILE_ROWS: usize = 4;
/// Input rows per matmul tile. 4 x 4 accumulators, 4 input vectors and one weight vector
/// take 21 of the 32 vector registers.
const TILE_TOKENS: usize = 4;

/// Returns whether this CPU has NEON (Advanced SIMD) with floating point.
///
/// Every aarch64 CPU that runs Linux, macOS or Android has it. With the `std` feature the
/// CPU is queried at run time. Without it the result is whether the crate was compiled with
/// the `neon` target feature, which `aarch64-unknown-none-softfloat` lacks.
pub fn is_available() -> bool {
    #[cfg(feature = "std")]
    {
        std::arch::is_aarch64_feature_detected!("neon")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(target_feature = "neon")
    }
}

/// The [`Simd`] implementation for 128-bit NEON registers.
struct Neon;

impl Simd for Neon {
    type V = float32x4_t;
    type Chunk = [float32x4_t; CHUNK / 4];
    const LANES: usize = 4;

    #[inline(always)]
    unsafe fn zero() -> float32x4_t {
        // SAFETY: the caller ensures NEON.
        unsafe { vdupq_n_f32(0.0) }
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> float32x4_t {
        // SAFETY: the caller ensures NEON and 4 readable values at p. Reading them as bytes
        // needs no alignment.
        unsafe { vreinterpretq_f32_u8(vld1q_u8(p.cast())) }
    }

    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> float32x4_t {
        // SAFETY: the caller ensures NEON and n < 4 readable values at p. Only those n are
        // copied, into a zeroed buffer of 4.
        unsafe {
            let mut padded = [0.0f32; 4];
            core::ptr::copy_nonoverlapping(p, padded.as_mut_ptr(), n);
            vld1q_f32(padded.as_ptr())
        }
    }

    #[inline(always)]
    unsafe fn store(p: *mut f32, v: float32x4_t) {
        // SAFETY: the caller ensures NEON and 4 writable values at p. Writing them as bytes
        // needs no alignment.
        unsafe { vst1q_u8(p.cast(), vreinterpretq_u8_f32(v)) }
    }

    #[inline(always)]
    unsafe fn fma(a: float32x4_t, b: float32x4_t, acc: float32x4_t) -> float32x4_t {
        // SAFETY: the caller ensures NEON. fmla rounds a * b + acc once.
        unsafe { vfmaq_f32(acc, a, b) }
    }

    #[inline(always)]
    unsafe fn sum(v: float32x4_t) -> f32 {
        // SAFETY: the caller ensures NEON. faddp adds lanes (0 + 1) and (2 + 3), then the
        // two sums, in that order on every call.
        unsafe { vaddvq_f32(v) }
    }

    #[inline(always)]
    unsafe fn prefetch(p: *const u8) {
        // SAFETY: prfm is a hint. It reads no memory that the program can observe and
        // never faults, whatever the address.
        unsafe {
            asm!(
                "prfm pldl1keep, [{p}]",
                p = in(reg) p,
                options(nostack, preserves_flags, readonly)
            )
        }
    }

    #[inline(always)]
    unsafe fn load_chunk(p: *const f32, n: usize) -> Self::Chunk {
        // SAFETY: the caller ensures NEON and n readable values at p. Vector v reads
        // p[4v..4v + 4] only when all of them are below n, and otherwise only those below n.
        unsafe {
            let mut chunk = [Self::zero(); CHUNK / 4];
            for (v, vector) in chunk.iter_mut().enumerate() {
                let start = 4 * v;
                if start + 4 <= n {
                    *vector = Self::load(p.add(start));
                } else if start < n {
                    *vector = Self::load_partial(p.add(start), n - start);
                }
            }
            chunk
        }
    }

    #[inline(always)]
    unsafe fn decode_f32(p: *const u8) -> Self::Chunk {
        // SAFETY: the caller ensures NEON and 128 readable bytes at p. Byte loads need no
        // alignment, and the module is compiled only for little-endian aarch64, whose
        // lanes match the file's byte order.
        unsafe {
            let mut chunk = [Self::zero(); CHUNK / 4];
            for (v, vector) in chunk.iter_mut().enumerate() {
                *vector = vreinterpretq_f32_u8(vld1q_u8(p.add(16 * v)));
            }
            chunk
        }
    }

    #[inline(always)]
    unsafe fn decode_f16(p: *const u8) -> Self::Chunk {
        // SAFETY: the caller ensures NEON and 64 readable bytes at p, read 16 at a time.
        unsafe {
            let mut chunk = [Self::zero(); CHUNK / 4];
            for (pair, vectors) in chunk.chunks_exact_mut(2).enumerate() {
                let halves = vreinterpretq_u16_u8(vld1q_u8(p.add(16 * pair)));
                let (low, high) = widen_f16(halves);
                vectors[0] = low;
                vectors[1] = high;
            }
            chunk
        }
    }

    #[inline(always)]
    unsafe fn decode_bf16(p: *const u8) -> Self::Chunk {
        // SAFETY: the caller ensures NEON and 64 readable bytes at p, read 16 at a time.
        // Shifting each bf16 into the upper half of a 32-bit lane gives its exact f32 value.
        unsafe {
            let mut chunk = [Self::zero(); CHUNK / 4];
            for (pair, vectors) in chunk.chunks_exact_mut(2).enumerate() {
                let halves = vreinterpretq_u16_u8(vld1q_u8(p.add(16 * pair)));
                vectors[0] = vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(halves)));
                vectors[1] = vreinterpretq_f32_u32(vshll_high_n_u16::<16>(halves));
            }
            chunk
        }
    }

    #[inline(always)]
    unsafe fn decode_q8_0(p: *const u8) -> Self::Chunk {
        // SAFETY: the caller ensures NEON and 34 readable bytes at p: the f16 scale, then
        // 32 quants read 16 at a time. Each q * d is exact in f32 (an 8-bit integer times
        // an 11-bit significand), as in BlockQ8_0::dequantize.
        unsafe {
            let d = scale(p);
            let low = vld1q_s8(p.add(2).cast());
            let high = vld1q_s8(p.add(18).cast());
            let [v0, v1, v2, v3] = widen_i8(d, low);
            let [v4, v5, v6, v7] = widen_i8(d, high);
            [v0, v1, v2, v3, v4, v5, v6, v7]
        }
    }

    #[inline(always)]
    unsafe fn decode_q4_0(p: *const u8) -> Self::Chunk {
        // SAFETY: the caller ensures NEON and 18 readable bytes at p: the f16 scale, then
        // 16 bytes of nibbles. Low nibbles are elements 0..16 and high nibbles elements
        // 16..32. Each (q - 8) * d is exact in f32.
        unsafe {
            let d = scale(p);
            let packed = vld1q_u8(p.add(2));
            let eight = vdupq_n_s8(8);
            let low = vsubq_s8(
                vreinterpretq_s8_u8(vandq_u8(packed, vdupq_n_u8(0x0f))),
                eight,
            );
            let high = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8::<4>(packed)), eight);
            let [v0, v1, v2, v3] = widen_i8(d, low);
            let [v4, v5, v6, v7] = widen_i8(d, high);
            [v0, v1, v2, v3, v4, v5, v6, v7]
        }
    }
}

/// Widens 8 f16 values to f32: lanes 0..4 and lanes 4..8.
///
/// # Safety
/// The CPU supports NEON.
#[inline(always)]
unsafe fn widen_f16(halves: uint16x8_t) -> (float32x4_t, float32x4_t) {
    let low: float32x4_t;
    let high: float32x4_t;
    // SAFETY: the caller ensures NEON. fcvtl and fcvtl2 only read and write registers.
    unsafe {
        asm!(
            "fcvtl {low:v}.4s, {halves:v}.4h",
            "fcvtl2 {high:v}.4s, {halves:v}.8h",
            halves = in(vreg) halves,
            low = out(vreg) low,
            high = out(vreg) high,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    (low, high)
}

/// Reads the f16 block scale at `p` and broadcasts it as f32.
///
/// # Safety
/// The CPU supports NEON, and `p` is valid for 2 reads.
#[inline(always)]
unsafe fn scale(p: *const u8) -> float32x4_t {
    // SAFETY: the caller ensures NEON and 2 readable bytes. read_unaligned needs no
    // alignment, and the little-endian bytes match the target's byte order.
    unsafe {
        let bits = p.cast::<u16>().read_unaligned();
        widen_f16(vdupq_n_u16(bits)).0
    }
}

/// Converts 16 signed bytes to f32 and multiplies them by `d`, in lane order.
///
/// # Safety
/// The CPU supports NEON.
#[inline(always)]
unsafe fn widen_i8(d: float32x4_t, quants: int8x16_t) -> [float32x4_t; 4] {
    // SAFETY: the caller ensures NEON.
    unsafe {
        let low = vmovl_s8(vget_low_s8(quants));
        let high = vmovl_high_s8(quants);
        [
            vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(low))), d),
            vmulq_f32(vcvtq_f32_s32(vmovl_high_s16(low)), d),
            vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(high))), d),
            vmulq_f32(vcvtq_f32_s32(vmovl_high_s16(high)), d),
        ]
    }
}

/// The panic message of the safe kernels on a CPU without the features.
const UNAVAILABLE: &str = "the NEON kernels need NEON (Advanced SIMD), which this CPU lacks";

/// Defines the safe and unchecked matvec and matmul for one format.
macro_rules! kernels {
    ($format:ty, $name:literal, $matvec:ident, $matvec_unchecked:ident, $matmul:ident, $matmul_unchecked:ident) => {
        #[doc = concat!("Computes `y = W x` for ", $name, " weights, as [`scalar::", stringify!($matvec), "`](crate::kernels::scalar::", stringify!($matvec), ") does.")]
        ///
        /// # Panics
        /// Panics when [`is_available`] is false, and on the shapes the scalar kernel rejects.
        pub fn $matvec(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
            assert!(is_available(), "{UNAVAILABLE}");
            // SAFETY: is_available confirmed NEON.
            unsafe { $matvec_unchecked(w, x, y) }
        }

        #[doc = concat!("Computes `y = W x` for ", $name, " weights without checking the CPU.")]
        ///
        /// # Safety
        /// The CPU supports NEON ([`is_available`] returned true).
        ///
        /// # Panics
        /// On the shapes the scalar kernel rejects.
        #[target_feature(enable = "neon")]
        pub unsafe fn $matvec_unchecked(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
            // SAFETY: this function's target feature is the one Neon needs.
            unsafe { generic::matvec::<Neon, $format, MATVEC_ROWS>(w, x, y) }
        }

        #[doc = concat!("Computes `y[t] = W x[t]` for ", $name, " weights and `m` input rows, as [`scalar::", stringify!($matmul), "`](crate::kernels::scalar::", stringify!($matmul), ") does.")]
        ///
        /// # Panics
        /// Panics when [`is_available`] is false, and on the shapes the scalar kernel rejects.
        pub fn $matmul(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
            assert!(is_available(), "{UNAVAILABLE}");
            // SAFETY: is_available confirmed NEON.
            unsafe { $matmul_unchecked(w, x, y) }
        }

        #[doc = concat!("Computes `y[t] = W x[t]` for ", $name, " weights without checking the CPU.")]
        ///
        /// # Safety
        /// The CPU supports NEON ([`is_available`] returned true).
        ///
        /// # Panics
        /// On the shapes the scalar kernel rejects.
        #[target_feature(enable = "neon")]
        pub unsafe fn $matmul_unchecked(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
            // SAFETY: this function's target feature is the one Neon needs.
            unsafe { generic::matmul::<Neon, $format, TILE_ROWS, TILE_TOKENS, MATVEC_ROWS>(w, x, y) }
        }
    };
}

kernels!(
    F32,
    "F32",
    matvec_f32,
    matvec_f32_unchecked,
    matmul_f32,
    matmul_f32_unchecked
);
kernels!(
    F16,
    "F16",
    matvec_f16,
    matvec_f16_unchecked,
    matmul_f16,
    matmul_f16_unchecked
);
kernels!(
    Bf16,
    "BF16",
    matvec_bf16,
    matvec_bf16_unchecked,
    matmul_bf16,
    matmul_bf16_unchecked
);
kernels!(
    Q8_0,
    "Q8_0",
    matvec_q8_0,
    matvec_q8_0_unchecked,
    matmul_q8_0,
    matmul_q8_0_unchecked
);
kernels!(
    Q4_0,
    "Q4_0",
    matvec_q4_0,
    matvec_q4_0_unchecked,
    matmul_q4_0,
    matmul_q4_0_unchecked
);

/// Runs the matvec for `w`'s format.
///
/// # Safety
/// As [`matvec_f32_unchecked`].
pub(in crate::kernels) unsafe fn matvec(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    // SAFETY: the caller ensures the CPU feature every unchecked kernel needs.
    unsafe {
        match w.dtype {
            GgmlType::F32 => matvec_f32_unchecked(w, x, y),
            GgmlType::F16 => matvec_f16_unchecked(w, x, y),
            GgmlType::BF16 => matvec_bf16_unchecked(w, x, y),
            GgmlType::Q8_0 => matvec_q8_0_unchecked(w, x, y),
            GgmlType::Q4_0 => matvec_q4_0_unchecked(w, x, y),
        }
    }
}

/// Runs the matmul for `w`'s format.
///
/// # Safety
/// As [`matmul_f32_unchecked`].
pub(in crate::kernels) unsafe fn matmul(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    // SAFETY: the caller ensures the CPU feature every unchecked kernel needs.
    unsafe {
        match w.dtype {
            GgmlType::F32 => matmul_f32_unchecked(w, x, y),
            GgmlType::F16 => matmul_f16_unchecked(w, x, y),
            GgmlType::BF16 => matmul_bf16_unchecked(w, x, y),
            GgmlType::Q8_0 => matmul_q8_0_unchecked(w, x, y),
            GgmlType::Q4_0 => matmul_q4_0_unchecked(w, x, y),
        }
    }
}
