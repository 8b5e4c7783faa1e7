//! AVX-512 kernels: 16-lane f32 vectors with FMA, and F16C for the block scales.
//!
//! Only AVX-512F instructions are used: the inputs stay f32. VNNI multiplies 8-bit operands
//! on both sides, so it serves the kernels with 8-bit inputs in [`super::int8`]. Each format has a safe `matvec_<format>`
//! and `matmul_<format>` that panic when [`is_available`] is false, and `_unchecked`
//! variants for callers that have checked.

use core::arch::x86_64::*;

use crate::kernels::generic::{self, Bf16, CHUNK, F16, F32, Q4_0, Q8_0, Simd};
use crate::tensor::{GgmlType, Matrix};

/// Weight rows per pass of matvec. One row at a time streams the matrix in a single
/// sequential pass. On the benchmark machine (`docs/BENCHMARKS.md`), builds that differed only
/// in this constant decoded the 130M config on two threads at 61 tokens/s (F32) with one row
/// per pass against 54 with four. At Q8_0 with exact inputs they ran at 146 to 167 against
/// 108 to 121.
const MATVEC_ROWS: usize = 1;
/// Weight rows per matmul tile.
const TILE_ROWS: usize = 4;
/// Input rows per matmul tile. 4 x 4 accumulators, 4 input vectors and one weight vector
/// take 21 of the 32 zmm registers.
const TILE_TOKENS: usize = 4;

/// Returns whether this CPU has AVX-512F, AVX2, FMA and F16C.
///
/// With the `std` feature the CPU is queried at run time. Without it the result is whether
/// the crate was compiled with those target features.
pub fn is_available() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        ))
    }
}

/// The [`Simd`] implementation for 512-bit registers.
struct Avx512;

impl Simd for Avx512 {
    type V = __m512;
    type Chunk = [__m512; CHUNK / 16];
    const LANES: usize = 16;

    #[inline(always)]
    unsafe fn zero() -> __m512 {
        // SAFETY: the caller ensures AVX-512F.
        unsafe { _mm512_setzero_ps() }
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: the caller ensures AVX-512F and 16 readable values at p.
        unsafe { _mm512_loadu_ps(p) }
    }

    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> __m512 {
        // SAFETY: the caller ensures AVX-512F and n < 16 readable values at p. A masked
        // load reads only lanes 0..n and does not fault on the others.
        unsafe { _mm512_maskz_loadu_ps(((1u32 << n) - 1) as __mmask16, p) }
    }

    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: the caller ensures AVX-512F and 16 writable values at p.
        unsafe { _mm512_storeu_ps(p, v) }
    }

    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, acc: __m512) -> __m512 {
        // SAFETY: the caller ensures AVX-512F.
        unsafe { _mm512_fmadd_ps(a, b, acc) }
    }

    #[inline(always)]
    unsafe fn sum(v: __m512) -> f32 {
        // SAFETY: the caller ensures AVX-512F, which implies the AVX and SSE3 used here.
        unsafe {
            let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
            let octet = _mm256_add_ps(_mm512_castps512_ps256(v), high);
            let quad = _mm_add_ps(
                _mm256_castps256_ps128(octet),
                _mm256_extractf128_ps::<1>(octet),
            );
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
        // SAFETY: the caller ensures AVX-512F and n readable values at p. Vector v reads
        // p[16v..16v + 16] only when all of them are below n, and otherwise only those
        // below n.
        unsafe {
            let mut chunk = [Self::zero(); CHUNK / 16];
            for (v, vector) in chunk.iter_mut().enumerate() {
                let start = 16 * v;
                if start + 16 <= n {
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
        // SAFETY: the caller ensures AVX-512F and 128 readable bytes at p. loadu needs no
        // alignment, and x86-64 is little-endian like the file.
        unsafe {
            let mut chunk = [Self::zero(); CHUNK / 16];
            for (v, vector) in chunk.iter_mut().enumerate() {
                *vector = _mm512_loadu_ps(p.add(64 * v).cast());
            }
            chunk
        }
    }

    #[inline(always)]
    unsafe fn decode_f16(p: *const u8) -> Self::Chunk {
        // SAFETY: the caller ensures AVX-512F and 64 readable bytes at p. vcvtph2ps widens
        // f16 exactly, subnormals included.
        unsafe {
            let mut chunk = [Self::zero(); CHUNK / 16];
            for (v, vector) in chunk.iter_mut().enumerate() {
                *vector = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(32 * v).cast()));
            }
            chunk
        }
    }

    #[inline(always)]
    unsafe fn decode_bf16(p: *const u8) -> Self::Chunk {
        // SAFETY: the caller ensures AVX-512F and 64 readable bytes at p. Shifting each
        // zero-extended bf16 into the upper half of a lane gives its exact f32 value.
        unsafe {
            let mut chunk = [Self::zero(); CHUNK / 16];
            for (v, vector) in chunk.iter_mut().enumerate() {
                let bits = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.add(32 * v).cast()));
                *vector = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(bits));
            }
            chunk
        }
    }

    #[inline(always)]
    unsafe fn decode_q8_0(p: *const u8) -> Self::Chunk {
        // SAFETY: the caller ensures AVX-512F and F16C and 34 readable bytes at p: the f16
        // scale, then 32 quants read 16 at a time. Each q * d is exact in f32 (an 8-bit
        // integer times an 11-bit significand), as in BlockQ8_0::dequantize.
        unsafe {
            let d = scale(p);
            let mut chunk = [Self::zero(); CHUNK / 16];
            for (v, vector) in chunk.iter_mut().enumerate() {
                let quants = _mm512_cvtepi8_epi32(_mm_loadu_si128(p.add(2 + 16 * v).cast()));
                *vector = _mm512_mul_ps(_mm512_cvtepi32_ps(quants), d);
            }
            chunk
        }
    }

    #[inline(always)]
    unsafe fn decode_q4_0(p: *const u8) -> Self::Chunk {
        // SAFETY: the caller ensures AVX-512F and F16C and 18 readable bytes at p: the f16
        // scale, then 16 bytes of nibbles. Low nibbles are elements 0..16 and high nibbles
        // elements 16..32. Each (q - 8) * d is exact in f32.
        unsafe {
            let d = scale(p);
            let packed = _mm_loadu_si128(p.add(2).cast());
            let nibble = _mm_set1_epi8(0x0f);
            let eight = _mm_set1_epi8(8);
            let low = _mm_sub_epi8(_mm_and_si128(packed, nibble), eight);
            let high = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16::<4>(packed), nibble), eight);
            [widen(d, low), widen(d, high)]
        }
    }
}

/// Reads the f16 block scale at `p` and broadcasts it as f32.
///
/// # Safety
/// The CPU supports AVX-512F, and `p` is valid for 2 reads.
#[inline(always)]
unsafe fn scale(p: *const u8) -> __m512 {
    // SAFETY: the caller ensures AVX-512F and 2 readable bytes. read_unaligned needs no
    // alignment, and the little-endian bytes match x86-64's byte order.
    unsafe {
        let bits = p.cast::<u16>().read_unaligned();
        _mm512_cvtph_ps(_mm256_set1_epi16(bits as i16))
    }
}

/// Converts the low 16 signed bytes of `quants` to f32 and multiplies them by `d`.
///
/// # Safety
/// The CPU supports AVX-512F.
#[inline(always)]
unsafe fn widen(d: __m512, quants: __m128i) -> __m512 {
    // SAFETY: the caller ensures AVX-512F.
    unsafe { _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(quants)), d) }
}

/// The panic message of the safe kernels on a CPU without the features.
const UNAVAILABLE: &str = "the AVX-512 kernels need AVX-512F, FMA and F16C, which this CPU lacks";

/// Defines the safe and unchecked matvec and matmul for one format.
macro_rules! kernels {
    ($format:ty, $name:literal, $matvec:ident, $matvec_unchecked:ident, $matmul:ident, $matmul_unchecked:ident) => {
        #[doc = concat!("Computes `y = W x` for ", $name, " weights, as [`scalar::", stringify!($matvec), "`](crate::kernels::scalar::", stringify!($matvec), ") does.")]
        ///
        /// # Panics
        /// Panics when [`is_available`] is false, and on the shapes the scalar kernel rejects.
        pub fn $matvec(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
            assert!(is_available(), "{UNAVAILABLE}");
            // SAFETY: is_available confirmed AVX-512F, FMA and F16C.
            unsafe { $matvec_unchecked(w, x, y) }
        }

        #[doc = concat!("Computes `y = W x` for ", $name, " weights without checking the CPU.")]
        ///
        /// # Safety
        /// The CPU supports AVX-512F, FMA and F16C ([`is_available`] returned true).
        ///
        /// # Panics
        /// On the shapes the scalar kernel rejects.
        #[target_feature(enable = "avx512f,avx2,fma,f16c")]
        pub unsafe fn $matvec_unchecked(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
            // SAFETY: this function's target features are the ones Avx512 needs.
            unsafe { generic::matvec::<Avx512, $format, MATVEC_ROWS>(w, x, y) }
        }

        #[doc = concat!("Computes `y[t] = W x[t]` for ", $name, " weights and `m` input rows, as [`scalar::", stringify!($matmul), "`](crate::kernels::scalar::", stringify!($matmul), ") does.")]
        ///
        /// # Panics
        /// Panics when [`is_available`] is false, and on the shapes the scalar kernel rejects.
        pub fn $matmul(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
            assert!(is_available(), "{UNAVAILABLE}");
            // SAFETY: is_available confirmed AVX-512F, FMA and F16C.
            unsafe { $matmul_unchecked(w, x, y) }
        }

        #[doc = concat!("Computes `y[t] = W x[t]` for ", $name, " weights without checking the CPU.")]
        ///
        /// # Safety
        /// The CPU supports AVX-512F, FMA and F16C ([`is_available`] returned true).
        ///
        /// # Panics
        /// On the shapes the scalar kernel rejects.
        #[target_feature(enable = "avx512f,avx2,fma,f16c")]
        pub unsafe fn $matmul_unchecked(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
            // SAFETY: this function's target features are the ones Avx512 needs.
            unsafe { generic::matmul::<Avx512, $format, TILE_ROWS, TILE_TOKENS, MATVEC_ROWS>(w, x, y) }
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
