//! x86-64 kernels for Q8_0 and Q4_0 weights with 8-bit inputs (`kernels::int8`), in two
//! tiers:
//!
//! - [`vnni`]: `vpdpbusd` (AVX-512 VNNI) adds four byte products into each 32-bit lane in
//!   one instruction, on two blocks per 512-bit register, with its own row loop.
//! - [`avx2`]: `vpmaddubsw` adds byte products in pairs to 16 bits, and `vpmaddwd` adds the
//!   pairs to 32 bits, one block per 256-bit register, in the generic loops.
//!
//! Both multiply an unsigned byte by a signed one. Q8_0 blocks multiply `|w|` by `x` with
//! the sign of `w`. With `|x| <= 127` and `|w| <= 128` a pair of products fits in 16 bits,
//! so neither tier saturates and both give the exact integer sums.

pub mod vnni;

use core::arch::x86_64::*;

use crate::kernels::int8::{self, Int8Simd, Q4_0, Q8_0};
use crate::tensor::{GgmlType, Matrix};

/// Weight rows per pass of matvec.
const MATVEC_ROWS: usize = 1;
/// Weight rows per matmul tile.
const TILE_ROWS: usize = 4;
/// Input rows per matmul tile with 16 registers (AVX2): 8 accumulators.
const AVX2_TILE_TOKENS: usize = 2;

/// Unpacks Q4_0 nibbles to 32 values in -8..=7, for both tiers.
#[inline(always)]
unsafe fn unpack_q4_0(p: *const u8) -> __m256i {
    // SAFETY: the caller ensures AVX2 and 16 readable bytes at p.
    unsafe {
        let packed = _mm_loadu_si128(p.cast());
        let high = _mm_srli_epi16::<4>(packed);
        let nibbles = _mm256_and_si256(_mm256_set_m128i(high, packed), _mm256_set1_epi8(0x0f));
        _mm256_sub_epi8(nibbles, _mm256_set1_epi8(8))
    }
}

/// Adds the 8 lanes of `v` in a fixed order.
#[inline(always)]
unsafe fn sum8(v: __m256) -> f32 {
    // SAFETY: the caller ensures AVX, and SSE3 which every AVX CPU has.
    unsafe {
        let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
    }
}

/// Reads a little-endian f16 as f32 with F16C.
#[inline(always)]
unsafe fn f16(p: *const u8) -> f32 {
    // SAFETY: the caller ensures F16C and 2 readable bytes at p; read_unaligned needs no
    // alignment and x86-64 is little-endian like the file.
    unsafe {
        let bits = p.cast::<u16>().read_unaligned();
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
    }
}

/// Defines one tier: its [`Int8Simd`] type, availability check and kernels.
macro_rules! tier {
    ($tier:ident, $doc:literal, $features:literal, $check:expr, $tokens:expr, |$a:ident, $b:ident| $dot:expr) => {
        #[doc = $doc]
        pub mod $tier {
            use super::*;

            /// The [`Int8Simd`] implementation of this tier.
            pub(in crate::kernels) struct Simd;

            impl Int8Simd for Simd {
                type Acc = __m256;
                type Q = __m256i;

                #[inline(always)]
                unsafe fn zero() -> __m256 {
                    // SAFETY: the caller ensures AVX.
                    unsafe { _mm256_setzero_ps() }
                }

                #[inline(always)]
                unsafe fn zero_q() -> __m256i {
                    // SAFETY: the caller ensures AVX.
                    unsafe { _mm256_setzero_si256() }
                }

                #[inline(always)]
                unsafe fn load_q(p: *const i8) -> __m256i {
                    // SAFETY: the caller ensures AVX and 32 readable bytes at p.
                    unsafe { _mm256_loadu_si256(p.cast()) }
                }

                #[inline(always)]
                unsafe fn unpack_q4_0(p: *const u8) -> __m256i {
                    // SAFETY: the caller ensures AVX2 and 16 readable bytes at p.
                    unsafe { super::unpack_q4_0(p) }
                }

                #[inline(always)]
                unsafe fn dot(acc: __m256, w: __m256i, x: __m256i, scale: f32) -> __m256 {
                    // SAFETY: the caller ensures this tier's features.
                    unsafe {
                        let $a = _mm256_sign_epi8(w, w);
                        let $b = _mm256_sign_epi8(x, w);
                        let sums = $dot;
                        _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_set1_ps(scale), acc)
                    }
                }

                #[inline(always)]
                unsafe fn sum(acc: __m256) -> f32 {
                    // SAFETY: the caller ensures AVX.
                    unsafe { sum8(acc) }
                }

                #[inline(always)]
                unsafe fn f16(p: *const u8) -> f32 {
                    // SAFETY: the caller ensures F16C and 2 readable bytes at p.
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
                        GgmlType::Q4_0 => int8::matmul::<Simd, Q4_0, TILE_ROWS, { $tokens }, MATVEC_ROWS>(w, x, y),
                        _ => int8::matmul::<Simd, Q8_0, TILE_ROWS, { $tokens }, MATVEC_ROWS>(w, x, y),
                    }
                }
            }
        }
    };
}

tier!(
    avx2,
    "AVX2 (with FMA and F16C): `vpmaddubsw` then `vpmaddwd`.",
    "avx2,fma,f16c",
    {
        #[cfg(feature = "std")]
        {
            std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
                && std::is_x86_feature_detected!("f16c")
        }
        #[cfg(not(feature = "std"))]
        {
            cfg!(all(target_feature = "avx2", target_feature = "fma", target_feature = "f16c"))
        }
    },
    AVX2_TILE_TOKENS,
    |a, b| _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1))
);
