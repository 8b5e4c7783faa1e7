//! NEON kernels for Q8_0 and Q4_0 weights with 8-bit inputs (`kernels::int8`), in two tiers
//! of 128-bit integer operations:
//!
//! - [`dotprod`]: `sdot` (the `dotprod` extension, optional from Armv8.2-A) adds four byte
//!   products into each 32-bit lane in one instruction, two per block.
//! - [`neon`]: baseline Advanced SIMD. `smull` and `smlal` multiply bytes into 16-bit lanes,
//!   two products per lane, and `saddlp` and `sadalp` add the 16-bit lanes in pairs into
//!   32-bit lanes.
//!
//! Weights are in -128..=127 and inputs in -127..=127, so a product is at most 16256 in
//! magnitude and two of them fit in 16 bits (32512). Each 32-bit lane sums 8 products, at
//! most 130048 in magnitude, which converts to f32 exactly. Both tiers therefore give the
//! exact integer sums. They split them across the lanes differently, so their f32 results
//! may differ in the last bits.
//!
//! `sdot` is written as inline assembly because its intrinsic `vdotq_s32` is unstable in
//! Rust 1.96 (feature `stdarch_neon_dotprod`). The f16 block scales are converted by the
//! base floating-point instruction `fcvt`, also as inline assembly, as in the f32 tier.

use core::arch::aarch64::*;
use core::arch::asm;

use crate::kernels::int8::{self, Int8Simd, Q4_0, Q8_0};
use crate::tensor::{GgmlType, Matrix};

/// Weight rows per pass of matvec: the rows share each input block load. On a 3072 x 768
/// matrix, 4 rows executed 20 to 24 % fewer instructions than 1 row and 2 to 6 % more than
/// 8 (counted under qemu-aarch64).
const MATVEC_ROWS: usize = 4;
/// Weight rows per matmul tile.
const TILE_ROWS: usize = 4;
/// Input rows per matmul tile. With 4 input rows the tile needs more than the 32 vector
/// registers and LLVM spills accumulators to the stack in the inner loop. 2 rows fit.
const TILE_TOKENS: usize = 2;

/// Loads 32 signed bytes as two vectors.
///
/// # Safety
/// The CPU supports NEON, and `p` is valid for 32 reads.
#[inline(always)]
unsafe fn load_q(p: *const i8) -> [int8x16_t; 2] {
    // SAFETY: the caller ensures NEON and 32 readable bytes. Byte loads need no alignment.
    unsafe { [vld1q_s8(p), vld1q_s8(p.add(16))] }
}

/// Unpacks the 16 bytes of Q4_0 nibbles at `p` into 32 values in -8..=7: the low nibbles
/// are elements 0..16, the high nibbles elements 16..32.
///
/// # Safety
/// The CPU supports NEON, and `p` is valid for 16 reads.
#[inline(always)]
unsafe fn unpack_q4_0(p: *const u8) -> [int8x16_t; 2] {
    // SAFETY: the caller ensures NEON and 16 readable bytes.
    unsafe {
        let packed = vld1q_u8(p);
        let eight = vdupq_n_s8(8);
        let low = vreinterpretq_s8_u8(vandq_u8(packed, vdupq_n_u8(0x0f)));
        let high = vreinterpretq_s8_u8(vshrq_n_u8::<4>(packed));
        [vsubq_s8(low, eight), vsubq_s8(high, eight)]
    }
}

/// Returns `acc + sums * scale` per lane, rounded once (`fmla`).
///
/// # Safety
/// The CPU supports NEON.
#[inline(always)]
unsafe fn scale_add(acc: float32x4_t, sums: int32x4_t, scale: f32) -> float32x4_t {
    // SAFETY: the caller ensures NEON. scvtf is exact for the sums, which stay below 2^24.
    unsafe { vfmaq_n_f32(acc, vcvtq_f32_s32(sums), scale) }
}

/// Reads the little-endian f16 at `p` as f32.
///
/// # Safety
/// The CPU supports NEON, and `p` is valid for 2 reads.
#[inline(always)]
unsafe fn f16(p: *const u8) -> f32 {
    let value: f32;
    // SAFETY: the caller ensures 2 readable bytes. read_unaligned needs no alignment, and
    // the little-endian bytes match the target's byte order. fcvt only reads and writes
    // registers, and it widens every f16 exactly, subnormals included.
    unsafe {
        let bits = p.cast::<u16>().read_unaligned();
        asm!(
            "fcvt {value:s}, {bits:h}",
            bits = in(vreg) bits,
            value = out(vreg) value,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    value
}

/// Returns the 32 products `w * x` summed into 4 lanes with `sdot`: lane `i` adds bytes
/// `4i..4i + 4` of both halves.
///
/// # Safety
/// The CPU supports NEON and `dotprod`.
#[inline(always)]
unsafe fn dot_sdot(w: [int8x16_t; 2], x: [int8x16_t; 2]) -> int32x4_t {
    // SAFETY: the caller ensures NEON, and dotprod for sdot, which only reads and writes
    // registers.
    unsafe {
        let mut sums = vdupq_n_s32(0);
        asm!(
            "sdot {sums:v}.4s, {w0:v}.16b, {x0:v}.16b",
            "sdot {sums:v}.4s, {w1:v}.16b, {x1:v}.16b",
            sums = inout(vreg) sums,
            w0 = in(vreg) w[0],
            x0 = in(vreg) x[0],
            w1 = in(vreg) w[1],
            x1 = in(vreg) x[1],
            options(pure, nomem, nostack, preserves_flags)
        );
        sums
    }
}

/// Returns the 32 products `w * x` summed into 4 lanes with widening multiplies. Lane `i`
/// adds the products of bytes `2i`, `2i + 1`, `2i + 8` and `2i + 9` of both 16-byte
/// halves, first in pairs (one from each half) in 16-bit lanes.
///
/// # Safety
/// The CPU supports NEON.
#[inline(always)]
unsafe fn dot_widening(w: [int8x16_t; 2], x: [int8x16_t; 2]) -> int32x4_t {
    // SAFETY: the caller ensures NEON. Two products fit in 16 bits (see the module
    // documentation), so smlal does not wrap.
    unsafe {
        let low = vmlal_s8(vmull_s8(vget_low_s8(w[0]), vget_low_s8(x[0])), vget_low_s8(w[1]), vget_low_s8(x[1]));
        let high = vmlal_high_s8(vmull_high_s8(w[0], x[0]), w[1], x[1]);
        vpadalq_s16(vpaddlq_s16(low), high)
    }
}

/// Defines one tier: its [`Int8Simd`] type, availability check and kernels.
macro_rules! tier {
    ($tier:ident, $doc:literal, $features:literal, $check:expr, $dot:path) => {
        #[doc = $doc]
        pub mod $tier {
            use super::*;

            /// The [`Int8Simd`] implementation of this tier.
            pub(in crate::kernels) struct Simd;

            impl Int8Simd for Simd {
                type Acc = float32x4_t;
                type Q = [int8x16_t; 2];

                #[inline(always)]
                unsafe fn zero() -> float32x4_t {
                    // SAFETY: the caller ensures NEON.
                    unsafe { vdupq_n_f32(0.0) }
                }

                #[inline(always)]
                unsafe fn zero_q() -> [int8x16_t; 2] {
                    // SAFETY: the caller ensures NEON.
                    unsafe { [vdupq_n_s8(0); 2] }
                }

                #[inline(always)]
                unsafe fn load_q(p: *const i8) -> [int8x16_t; 2] {
                    // SAFETY: the caller ensures NEON and 32 readable bytes at p.
                    unsafe { super::load_q(p) }
                }

                #[inline(always)]
                unsafe fn unpack_q4_0(p: *const u8) -> [int8x16_t; 2] {
                    // SAFETY: the caller ensures NEON and 16 readable bytes at p.
                    unsafe { super::unpack_q4_0(p) }
                }

                #[inline(always)]
                unsafe fn dot(acc: float32x4_t, w: [int8x16_t; 2], x: [int8x16_t; 2], scale: f32) -> float32x4_t {
                    // SAFETY: the caller ensures this tier's features.
                    unsafe { scale_add(acc, $dot(w, x), scale) }
                }

                #[inline(always)]
                unsafe fn sum(acc: float32x4_t) -> f32 {
                    // SAFETY: the caller ensures NEON. faddp adds lanes (0 + 1) and (2 + 3),
                    // then the two sums, in that order on every call.
                    unsafe { vaddvq_f32(acc) }
                }

                #[inline(always)]
                unsafe fn f16(p: *const u8) -> f32 {
                    // SAFETY: the caller ensures NEON and 2 readable bytes at p.
                    unsafe { super::f16(p) }
                }
            }

            /// Returns whether this CPU has the tier's features. Without the `std` feature,
            /// whether the crate was compiled with them.
            pub fn is_available() -> bool {
                $check
            }

            /// Computes `y = W x` for Q8_0 or Q4_0 weights with `x` rounded to 8 bits, as
            /// [`int8::matvec_q8_0`] and [`int8::matvec_q4_0`] do up to f32 rounding.
            ///
            /// # Panics
            /// When [`is_available`] is false, on the shapes the scalar kernels reject, for
            /// other formats, and for more than [`int8::MAX_COLS`] columns.
            pub fn matvec(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
                assert!(is_available(), "this CPU lacks the features of the {} kernels", stringify!($tier));
                // SAFETY: is_available confirmed the features.
                unsafe { matvec_unchecked(w, x, y) }
            }

            /// Computes `y[t] = W x[t]` for Q8_0 or Q4_0 weights and `m` input rows, each
            /// rounded to 8 bits.
            ///
            /// # Panics
            /// As [`matvec`].
            pub fn matmul(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
                assert!(is_available(), "this CPU lacks the features of the {} kernels", stringify!($tier));
                // SAFETY: is_available confirmed the features.
                unsafe { matmul_unchecked(w, x, y) }
            }

            /// [`matvec`] without the CPU check.
            ///
            /// # Safety
            /// [`is_available`] returned true.
            #[target_feature(enable = $features)]
            pub unsafe fn matvec_unchecked(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
                // SAFETY: this function's target features are the ones Simd needs.
                unsafe {
                    match w.dtype {
                        GgmlType::Q4_0 => int8::matvec::<Simd, Q4_0, MATVEC_ROWS>(w, x, y),
                        _ => int8::matvec::<Simd, Q8_0, MATVEC_ROWS>(w, x, y),
                    }
                }
            }

            /// [`matmul`] without the CPU check.
            ///
            /// # Safety
            /// [`is_available`] returned true.
            #[target_feature(enable = $features)]
            pub unsafe fn matmul_unchecked(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
                // SAFETY: this function's target features are the ones Simd needs.
                unsafe {
                    match w.dtype {
                        GgmlType::Q4_0 => int8::matmul::<Simd, Q4_0, TILE_ROWS, TILE_TOKENS, MATVEC_ROWS>(w, x, y),
                        _ => int8::matmul::<Simd, Q8_0, TILE_ROWS, TILE_TOKENS, MATVEC_ROWS>(w, x, y),
                    }
                }
            }
        }
    };
}

tier!(
    dotprod,
    "NEON with the `dotprod` extension: `sdot`, four byte products per 32-bit lane.",
    "neon,dotprod",
    {
        #[cfg(feature = "std")]
        {
            std::arch::is_aarch64_feature_detected!("neon") && std::arch::is_aarch64_feature_detected!("dotprod")
        }
        #[cfg(not(feature = "std"))]
        {
            cfg!(all(target_feature = "neon", target_feature = "dotprod"))
        }
    },
    dot_sdot
);

tier!(
    neon,
    "Baseline NEON: `smull` and `smlal` to 16 bits, then `saddlp` and `sadalp` to 32 bits.",
    "neon",
    crate::kernels::aarch64::neon::is_available(),
    dot_widening
);
