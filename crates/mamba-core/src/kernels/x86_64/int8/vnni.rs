//! AVX-512 VNNI (with AVX-512BW and VL, AVX2, FMA and F16C): two blocks per 512-bit
//! register.
//!
//! The generic loops of `kernels::int8` take one block per step, and at one block per
//! 256-bit step the scale handling (an f16 load and convert, a multiply, a broadcast) costs
//! as much as the integer products. This tier walks a row in groups of 16 blocks instead:
//!
//! - One masked gather reads the 16 f16 weight scales, which are multiplied by the 16 input
//!   scales in one vector.
//! - Each step multiplies two blocks (64 bytes of quants) with `vpdpbusd` and takes the two
//!   scales from that vector with one permute.
//!
//! The inputs are rounded as [`InputBlock::quantize`] does, into a stack buffer laid out for
//! these loads. A row's outputs are added in lanes over its block pairs and then across the
//! 16 lanes, so they differ from the scalar specification by f32 rounding only. The matmul
//! runs the matvec on each input row, so its rows equal the matvec bit for bit.

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use crate::kernels::int8::{BLOCK, InputBlock, MAX_COLS};
use crate::kernels::scalar::{batch_size, check_matrix, check_matvec_lengths};
use crate::quant::{BlockQ4_0, BlockQ8_0};
use crate::tensor::{GgmlType, Matrix};

/// Blocks per group: one f32 vector of scales.
const GROUP: usize = 16;
/// Largest number of input blocks in a row.
const MAX_BLOCKS: usize = MAX_COLS / BLOCK;

/// Returns whether this CPU has the tier's features. Without the `std` feature, whether the
/// crate was compiled with them.
pub fn is_available() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512vl",
            target_feature = "avx512vnni",
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        ))
    }
}

/// Computes `y = W x` for Q8_0 or Q4_0 weights with `x` rounded to 8 bits, as
/// [`int8::matvec_q8_0`](crate::kernels::int8::matvec_q8_0) and
/// [`int8::matvec_q4_0`](crate::kernels::int8::matvec_q4_0) do up to f32 rounding.
///
/// # Panics
/// When [`is_available`] is false, on the shapes the scalar kernels reject, for other
/// formats, and for more than [`MAX_COLS`] columns.
pub fn matvec(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    assert!(is_available(), "this CPU lacks the features of the vnni kernels");
    // SAFETY: is_available confirmed the features.
    unsafe { matvec_unchecked(w, x, y) }
}

/// Computes `y[t] = W x[t]` for Q8_0 or Q4_0 weights and `m` input rows, each rounded to 8
/// bits, by running [`matvec`] on each row.
///
/// # Panics
/// As [`matvec`].
pub fn matmul(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    assert!(is_available(), "this CPU lacks the features of the vnni kernels");
    // SAFETY: is_available confirmed the features.
    unsafe { matmul_unchecked(w, x, y) }
}

/// [`matvec`] without the CPU check.
///
/// # Safety
/// [`is_available`] returned true.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn matvec_unchecked(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    let q4_0 = w.dtype == GgmlType::Q4_0;
    check_matrix(w, if q4_0 { GgmlType::Q4_0 } else { GgmlType::Q8_0 });
    check_matvec_lengths(w, x, y);
    assert!(w.cols <= MAX_COLS, "the 8-bit input kernels take at most {MAX_COLS} columns, not {}", w.cols);

    let mut inputs = Inputs::uninit();
    let inputs = inputs.quantize(x, q4_0);
    let row_bytes = w.row_bytes();
    for (r, y) in y.iter_mut().enumerate() {
        // SAFETY: check_matrix showed that row r lies inside w.data and holds `blocks` blocks.
        // The caller ensures the CPU features.
        *y = unsafe {
            let row = w.data.as_ptr().add(r * row_bytes);
            if q4_0 { row_q4_0(row, &inputs) } else { row_q8_0(row, &inputs) }
        };
    }
}

/// [`matmul`] without the CPU check.
///
/// # Safety
/// [`is_available`] returned true.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn matmul_unchecked(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    let m = batch_size(w, x, y);
    if w.cols == 0 {
        check_matrix(w, if w.dtype == GgmlType::Q4_0 { GgmlType::Q4_0 } else { GgmlType::Q8_0 });
        y.fill(0.0);
        return;
    }
    for t in 0..m {
        // SAFETY: the caller ensures the CPU features.
        unsafe { matvec_unchecked(w, &x[t * w.cols..][..w.cols], &mut y[t * w.rows..][..w.rows]) };
    }
}

/// The rounded inputs of one call, laid out for the row loops.
struct Inputs {
    /// Rounded inputs. For Q8_0 in column order. For Q4_0 each step of four blocks A, B,
    /// C, D is stored as A[0..16], B[0..16], C[0..16], D[0..16], then A[16..32] to D[16..32],
    /// the order in which the weights' low and high nibbles unpack.
    qs: [MaybeUninit<i8>; MAX_COLS],
    /// Input block scales, zero past the last block up to a whole group.
    d: [MaybeUninit<f32>; MAX_BLOCKS],
    /// For Q4_0, one value per lane of each step: minus 8 times the sum of the 8 inputs
    /// the lane multiplies (4 low, 4 high), which the unsigned nibbles' products overcount.
    sums: [MaybeUninit<i32>; MAX_COLS / 8],
    /// Blocks in a row.
    blocks: usize,
}

/// The initialized view of [`Inputs`].
struct Rounded<'a> {
    qs: &'a [i8],
    d: &'a [f32],
    sums: &'a [i32],
    blocks: usize,
}

impl Inputs {
    fn uninit() -> Self {
        Self {
            qs: [MaybeUninit::uninit(); MAX_COLS],
            d: [MaybeUninit::uninit(); MAX_BLOCKS],
            sums: [MaybeUninit::uninit(); MAX_COLS / 8],
            blocks: 0,
        }
    }

    /// Rounds `x` (at most [`MAX_COLS`] values, whole blocks) for Q4_0 weights or Q8_0
    /// weights. Pads `qs` and `sums` with zeros to a whole step (two blocks for Q8_0, four
    /// for Q4_0) and `d` to a whole group.
    fn quantize(&mut self, x: &[f32], q4_0: bool) -> Rounded<'_> {
        let blocks = x.len() / BLOCK;
        let padded_blocks = blocks.next_multiple_of(if q4_0 { 4 } else { 2 });
        let padded_groups = blocks.next_multiple_of(GROUP);
        for (b, xs) in x.as_chunks::<BLOCK>().0.iter().enumerate() {
            let block = InputBlock::quantize(xs);
            self.d[b].write(block.d);
            for (i, &q) in block.qs.iter().enumerate() {
                self.qs[position(b, i, q4_0)].write(q);
            }
        }
        for b in blocks..padded_blocks {
            for i in 0..BLOCK {
                self.qs[position(b, i, q4_0)].write(0);
            }
        }
        for d in &mut self.d[blocks..padded_groups] {
            d.write(0.0);
        }
        let n = padded_blocks * BLOCK;
        let sums = if q4_0 { n / 8 } else { 0 };
        for (lane, sum) in self.sums[..sums].iter_mut().enumerate() {
            // Lane L of a four-block step multiplies bytes 4L..4L + 4 of the step's low
            // halves and the same bytes of its high halves, 64 bytes later.
            let (step, l) = (lane / 16, lane % 16);
            let low = step * 4 * BLOCK + 4 * l;
            // SAFETY: qs[..n] was written above, and both 4-byte runs lie inside the step.
            let total: i32 = unsafe { (0..4).map(|k| i32::from(self.qs[low + k].assume_init()) + i32::from(self.qs[low + 64 + k].assume_init())).sum() };
            sum.write(-8 * total);
        }
        self.blocks = blocks;

        // SAFETY: qs[..n], d[..padded_groups] and sums[..sums] were written above, and
        // MaybeUninit<T> has T's layout.
        unsafe {
            Rounded {
                qs: core::slice::from_raw_parts(self.qs.as_ptr().cast(), n),
                d: core::slice::from_raw_parts(self.d.as_ptr().cast(), padded_groups),
                sums: core::slice::from_raw_parts(self.sums.as_ptr().cast(), sums),
                blocks,
            }
        }
    }
}

/// Returns where input `i` of block `b` goes in [`Inputs::qs`].
fn position(b: usize, i: usize, q4_0: bool) -> usize {
    if !q4_0 {
        return b * BLOCK + i;
    }
    let (step, k) = (b / 4, b % 4);
    let (half, j) = (i / 16, i % 16);
    step * 4 * BLOCK + half * 64 + k * 16 + j
}

/// Returns the permute indices that give each lane the scale of its block, for each step of
/// a group: Q8_0 steps take two blocks (lanes 0..8 and 8..16), Q4_0 steps four (lanes in
/// fours).
const fn step_indices(q4_0: bool) -> [[i32; 16]; GROUP / 2] {
    let mut table = [[0i32; 16]; GROUP / 2];
    let mut step = 0;
    while step < GROUP / 2 {
        let mut lane = 0;
        while lane < 16 {
            table[step][lane] = if q4_0 { 4 * step + lane / 4 } else { 2 * step + lane / 8 } as i32;
            lane += 1;
        }
        step += 1;
    }
    table
}

const Q8_0_PAIRS: [[i32; 16]; GROUP / 2] = step_indices(false);
const Q4_0_QUADS: [[i32; 16]; GROUP / 2] = step_indices(true);

/// Byte offsets of the 16 block scales of a group, for the gather.
#[inline(always)]
unsafe fn scale_offsets(block_bytes: usize) -> __m512i {
    // SAFETY: the caller ensures AVX-512F.
    unsafe { _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(block_bytes as i32)) }
}

/// Returns the products `d_w * d_x` of the `count` blocks from `first` on, zero in the
/// other lanes.
///
/// # Safety
/// `row` points at a row of at least `first + count` blocks of `block_bytes` bytes, each
/// starting with its f16 scale, and `d` has at least `first + GROUP` values. The CPU has
/// AVX-512F and F16C.
#[inline(always)]
unsafe fn group_scales(row: *const u8, block_bytes: usize, first: usize, count: usize, d: &[f32], offsets: __m512i) -> __m512 {
    // SAFETY: the mask limits the gather to the `count` blocks that exist, and each lane
    // reads the block's first 4 bytes, its scale and two quant bytes. d has first + GROUP
    // values.
    unsafe {
        let mask: __mmask16 = if count >= GROUP { 0xffff } else { (1u16 << count) - 1 };
        let raw = _mm512_mask_i32gather_epi32::<1>(_mm512_setzero_si512(), mask, offsets, row.add(first * block_bytes).cast());
        let scales = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
        _mm512_mul_ps(scales, _mm512_loadu_ps(d.as_ptr().add(first)))
    }
}

/// Returns one Q8_0 row's dot product with the rounded inputs.
///
/// # Safety
/// `row` points at `inputs.blocks` Q8_0 blocks. The CPU has the tier's features.
#[inline(always)]
unsafe fn row_q8_0(row: *const u8, inputs: &Rounded<'_>) -> f32 {
    const BYTES: usize = BlockQ8_0::BYTES;
    // SAFETY: every block read lies inside the row: pair j of a group reads blocks first +
    // 2j and, when it exists, first + 2j + 1. The input reads stay inside qs, which is padded
    // to a whole pair, and group_scales reads d up to a whole group. The caller ensures the
    // CPU features.
    unsafe {
        let offsets = scale_offsets(BYTES);
        let mut acc = _mm512_setzero_ps();
        for first in (0..inputs.blocks).step_by(GROUP) {
            let count = GROUP.min(inputs.blocks - first);
            let scales = group_scales(row, BYTES, first, count, inputs.d, offsets);
            for (j, pair) in Q8_0_PAIRS.iter().enumerate().take(count.div_ceil(2)) {
                let b = first + 2 * j;
                let a = _mm256_loadu_si256(row.add(b * BYTES + 2).cast());
                let weights = if 2 * j + 1 < count {
                    let next = _mm256_loadu_si256(row.add((b + 1) * BYTES + 2).cast());
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(a), next)
                } else {
                    _mm512_zextsi256_si512(a)
                };
                let x = _mm512_loadu_si512(inputs.qs.as_ptr().add(b * BLOCK).cast());
                let negative = _mm512_movepi8_mask(weights);
                let signed = _mm512_mask_sub_epi8(x, negative, _mm512_setzero_si512(), x);
                let sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(weights), signed);
                let scale = _mm512_permutexvar_ps(_mm512_loadu_si512(pair.as_ptr().cast()), scales);
                acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scale, acc);
            }
        }
        _mm512_reduce_add_ps(acc)
    }
}

/// Returns one Q4_0 row's dot product with the rounded inputs, four blocks per step. The
/// nibbles multiply as unsigned values 0..=15, and `inputs.sums` takes off the 8 they are
/// stored above.
///
/// # Safety
/// `row` points at `inputs.blocks` Q4_0 blocks. The CPU has the tier's features.
#[inline(always)]
unsafe fn row_q4_0(row: *const u8, inputs: &Rounded<'_>) -> f32 {
    const BYTES: usize = BlockQ4_0::BYTES;
    // SAFETY: the masked loads read only the blocks below `count` of the group, which lie
    // inside the row. The input reads stay inside qs and sums, which are padded to a whole
    // step, and group_scales reads d up to a whole group. The caller ensures the CPU features.
    unsafe {
        let offsets = scale_offsets(BYTES);
        let nibble = _mm512_set1_epi8(0x0f);
        let mut acc = _mm512_setzero_ps();
        for first in (0..inputs.blocks).step_by(GROUP) {
            let count = GROUP.min(inputs.blocks - first);
            let scales = group_scales(row, BYTES, first, count, inputs.d, offsets);
            for (step, indices) in Q4_0_QUADS.iter().enumerate().take(count.div_ceil(4)) {
                let b = first + 4 * step;
                let present = count - 4 * step;
                // Block k's nibbles, or zeros past the group's last block. wrapping_add keeps
                // the address of a missing block defined, and its masked load reads nothing.
                let mask = |k: usize| -> __mmask16 { if k < present { 0xffff } else { 0 } };
                let quants = row.wrapping_add(b * BYTES + 2);
                let q0 = _mm_maskz_loadu_epi8(mask(0), quants.cast());
                let q1 = _mm_maskz_loadu_epi8(mask(1), quants.wrapping_add(BYTES).cast());
                let q2 = _mm_maskz_loadu_epi8(mask(2), quants.wrapping_add(2 * BYTES).cast());
                let q3 = _mm_maskz_loadu_epi8(mask(3), quants.wrapping_add(3 * BYTES).cast());
                let packed = _mm512_inserti32x4::<3>(_mm512_inserti32x4::<2>(_mm512_castsi256_si512(_mm256_set_m128i(q1, q0)), q2), q3);
                let low = _mm512_and_si512(packed, nibble);
                let high = _mm512_and_si512(_mm512_srli_epi16::<4>(packed), nibble);
                let x = inputs.qs.as_ptr().add(b * BLOCK);
                // The accumulator starts at minus 8 times the input sums, so the two vpdpbusd
                // return the products of the signed weights.
                let corrections = _mm512_loadu_si512(inputs.sums.as_ptr().add(b * BLOCK / 8).cast());
                let sums = _mm512_dpbusd_epi32(corrections, low, _mm512_loadu_si512(x.cast()));
                let sums = _mm512_dpbusd_epi32(sums, high, _mm512_loadu_si512(x.add(64).cast()));
                let scale = _mm512_permutexvar_ps(_mm512_loadu_si512(indices.as_ptr().cast()), scales);
                acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scale, acc);
            }
        }
        _mm512_reduce_add_ps(acc)
    }
}
