//! AVX2 kernels: 8-lane f32 vectors with FMA, and F16C for f16 weights and block scales.
//!
//! Each format has a safe `matvec_<format>` and `matmul_<format>` that panic when
//! [`is_available`] is false, and `_unchecked` variants for callers that have checked.
//! Results match the [`scalar`](crate::kernels::scalar) kernels up to summation order, as
//! the `generic` module describes.

use core::arch::x86_64::*;

use crate::kernels::generic::{self, Bf16, CHUNK, F16, F32, Q4_0, Q8_0, Simd};
use crate::tensor::{GgmlType, Matrix};

/// Weight rows per pass of matvec: four independent accumulator chains.
const MATVEC_ROWS: usize = 4;
/// Weight rows per matmul tile.
const TILE_ROWS: usize = 4;
/// Input rows per matmul tile. 4 x 3 accumulators, 3 input vectors and one weight vector
/// fill the 16 ymm registers.
const TILE_TOKENS: usize = 3;

/// Returns whether this CPU has AVX2, FMA and F16C.
///
/// With the `std` feature the CPU is queried at run time. Without it the result is whether
/// the crate was compiled with those target features.
pub fn is_available() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        ))
    }
}

/// The [`Simd`] implementation for 256-bit registers.
struct Avx2;

impl Simd for Avx2 {
    type V = __m256;
    type Chunk = [__m256; CHUNK / 8];
    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn zero() -> __m256 {
        // SAFETY: the caller ensures AVX.
        unsafe { _mm256_setzero_ps() }
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: the caller ensures AVX and 8 readable values at p.
        unsafe { _mm256_loadu_ps(p) }
    }

    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> __m256 {
        // SAFETY: the caller ensures AVX2 and n < 8 readable values at p. maskload reads
        // only the lanes whose mask is set, which are lanes 0..n.
        unsafe {
            let mask = _mm256_cmpgt_epi32(
                _mm256_set1_epi32(n as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            );
            _mm256_maskload_ps(p, mask)
        }
    }

    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: the caller ensures AVX and 8 writable values at p.
        unsafe { _mm256_storeu_ps(p, v) }
    }

    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, acc: __m256) -> __m256 {
        // SAFETY: the caller ensures FMA.
        unsafe { _mm256_fmadd_ps(a, b, acc) }
    }

    #[inline(always)]
    unsafe fn sum(v: __m256) -> f32 {
        // SAFETY: the caller ensures AVX.
        unsafe {
            let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
            _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
        }
    }

    #[inline(always)]
    unsafe fn prefetch(p: *const u8) {
        // SAFETY: the caller ensures SSE, which every x86-64 CPU has. A prefetch reads no
        // memory that the program can observe and never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }

    #[inline(always)]
    unsafe fn load_chunk(p: *const f32, n: usize) -> Self::Chunk {
        // SAFETY: the caller ensures AVX2 and n readable values at p. Vector v reads
        // p[8v..8v + 8] only when all of them are below n, and otherwise only those below n.
        unsafe {
            let mut chunk = [Self::zero(); CHUNK / 8];
            for (v, vector) in chunk.iter_mut().enumerate() {
                let start = 8 * v;
                if start + 8 <= n {
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
        // SAFETY: the caller ensures AVX and 128 readable bytes at p. loadu needs no
        // alignment, and x86-64 is little-endian like the file.
        unsafe {
            let mut chunk = [Self::zero(); CHUNK / 8];
            for (v, vector) in chunk.iter_mut().enumerate() {
                *vector = _mm256_loadu_ps(p.add(32 * v).cast());
            }
            chunk
        }
    }

    #[inline(always)]
    unsafe fn decode_f16(p: *const u8) -> Self::Chunk {
        // SAFETY: the caller ensures F16C and 64 readable bytes at p. vcvtph2ps widens f16
        // exactly, subnormals included.
        unsafe {
            let mut chunk = [Self::zero(); CHUNK / 8];
            for (v, vector) in chunk.iter_mut().enumerate() {
                *vector = _mm256_cvtph_ps(_mm_loadu_si128(p.add(16 * v).cast()));
            }
            chunk
        }
    }

    #[inline(always)]
    unsafe fn decode_bf16(p: *const u8) -> Self::Chunk {
        // SAFETY: the caller ensures AVX2 and 64 readable bytes at p. Shifting each
        // zero-extended bf16 into the upper half of a lane gives its exact f32 value.
        unsafe {
            let mut chunk = [Self::zero(); CHUNK / 8];
            for (v, vector) in chunk.iter_mut().enumerate() {
                let bits = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.add(16 * v).cast()));
                *vector = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(bits));
            }
            chunk
        }
    }

    #[inline(always)]
    unsafe fn decode_q8_0(p: *const u8) -> Self::Chunk {
        // SAFETY: the caller ensures AVX2 and F16C and 34 readable bytes at p: the f16
        // scale, then 32 quants read 8 at a time. Each q * d is exact in f32 (an 8-bit
        // integer times an 11-bit significand), as in BlockQ8_0::dequantize.
        unsafe {
            let d = scale(p);
            let mut chunk = [Self::zero(); CHUNK / 8];
            for (v, vector) in chunk.iter_mut().enumerate() {
                let quants = _mm256_cvtepi8_epi32(_mm_loadl_epi64(p.add(2 + 8 * v).cast()));
                *vector = _mm256_mul_ps(_mm256_cvtepi32_ps(quants), d);
            }
            chunk
        }
    }

    #[inline(always)]
    unsafe fn decode_q4_0(p: *const u8) -> Self::Chunk {
        // SAFETY: the caller ensures AVX2 and F16C and 18 readable bytes at p: the f16
        // scale, then 16 bytes of nibbles. Low nibbles are elements 0..16 and high nibbles
        // elements 16..32. Each (q - 8) * d is exact in f32.
        unsafe {
            let d = scale(p);
            let packed = _mm_loadu_si128(p.add(2).cast());
            let nibble = _mm_set1_epi8(0x0f);
            let eight = _mm_set1_epi8(8);
            let low = _mm_sub_epi8(_mm_and_si128(packed, nibble), eight);
            let high = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16::<4>(packed), nibble), eight);
            [
                widen(d, low),
                widen(d, _mm_srli_si128::<8>(low)),
                widen(d, high),
                widen(d, _mm_srli_si128::<8>(high)),
            ]
        }
    }
}

/// Reads the f16 block scale at `p` and broadcasts it as f32.
///
/// # Safety
/// The CPU supports F16C, and `p` is valid for 2 reads.
#[inline(always)]
unsafe fn scale(p: *const u8) -> __m256 {
    // SAFETY: the caller ensures F16C and 2 readable bytes. read_unaligned needs no
    // alignment, and the little-endian bytes match x86-64's byte order.
    unsafe {
        let bits = p.cast::<u16>().read_unaligned();
        _mm256_cvtph_ps(_mm_set1_epi16(bits as i16))
    }
}

/// Converts the low 8 signed bytes of `quants` to f32 and multiplies them by `d`.
///
/// # Safety
/// The CPU supports AVX2.
#[inline(always)]
unsafe fn widen(d: __m256, quants: __m128i) -> __m256 {
    // SAFETY: the caller ensures AVX2.
    unsafe { _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(quants)), d) }
}

/// The panic message of the safe kernels on a CPU without the features.
const UNAVAILABLE: &str = "the AVX2 kernels need AVX2, FMA and F16C, which this CPU lacks";

/// Defines the safe and unchecked matvec and matmul for one format.
macro_rules! kernels {
    ($format:ty, $name:literal, $matvec:ident, $matvec_unchecked:ident, $matmul:ident, $matmul_unchecked:ident) => {
        #[doc = concat!("Computes `y = W x` for ", $name, " weights, as [`scalar::", stringify!($matvec), "`](crate::kernels::scalar::", stringify!($matvec), ") does.")]
        ///
        /// # Panics
        /// Panics when [`is_available`] is false, and on the shapes the scalar kernel rejects.
        pub fn $matvec(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
            assert!(is_available(), "{UNAVAILABLE}");
            // SAFETY: is_available confirmed AVX2, FMA and F16C.
            unsafe { $matvec_unchecked(w, x, y) }
        }

        #[doc = concat!("Computes `y = W x` for ", $name, " weights without checking the CPU.")]
        ///
        /// # Safety
        /// The CPU supports AVX2, FMA and F16C ([`is_available`] returned true).
        ///
        /// # Panics
        /// On the shapes the scalar kernel rejects.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn $matvec_unchecked(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
            // SAFETY: this function's target features are the ones Avx2 needs.
            unsafe { generic::matvec::<Avx2, $format, MATVEC_ROWS>(w, x, y) }
        }

        #[doc = concat!("Computes `y[t] = W x[t]` for ", $name, " weights and `m` input rows, as [`scalar::", stringify!($matmul), "`](crate::kernels::scalar::", stringify!($matmul), ") does.")]
        ///
        /// # Panics
        /// Panics when [`is_available`] is false, and on the shapes the scalar kernel rejects.
        pub fn $matmul(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
            assert!(is_available(), "{UNAVAILABLE}");
            // SAFETY: is_available confirmed AVX2, FMA and F16C.
            unsafe { $matmul_unchecked(w, x, y) }
        }

        #[doc = concat!("Computes `y[t] = W x[t]` for ", $name, " weights without checking the CPU.")]
        ///
        /// # Safety
        /// The CPU supports AVX2, FMA and F16C ([`is_available`] returned true).
        ///
        /// # Panics
        /// On the shapes the scalar kernel rejects.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn $matmul_unchecked(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
            // SAFETY: this function's target features are the ones Avx2 needs.
            unsafe { generic::matmul::<Avx2, $format, TILE_ROWS, TILE_TOKENS, MATVEC_ROWS>(w, x, y) }
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
    // SAFETY: the caller ensures the CPU features every unchecked kernel needs.
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
    // SAFETY: the caller ensures the CPU features every unchecked kernel needs.
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
