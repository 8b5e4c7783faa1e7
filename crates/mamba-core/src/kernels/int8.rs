//! Matrix products for Q8_0 and Q4_0 weights with the inputs rounded to 8 bits.
//!
//! The exact kernels widen every weight to f32 before multiplying it, which costs about one
//! instruction per weight and makes decode compute-bound. Here each block of 32 inputs is
//! rounded once per call to 32 signed 8-bit values and one f32 scale ([`InputBlock`]), the
//! same block shape as the weights. A weight block then meets its input block in integer
//! multiply-adds (`vpdpbusd` with AVX-512 VNNI, `vpmaddubsw` with AVX2, widening multiplies
//! or `sdot` on NEON), and only the block's sum is scaled in f32.
//!
//! Accuracy: the input block scale is `d = max|x| / 127`, and rounding moves each input by
//! at most `d / 2`, at most 1/254 of the block's largest input. The integer sums are exact.
//! Each block adds `(d_w * d_x) * sum` in f32.
//!
//! [`matvec_q8_0`], [`matvec_q4_0`], [`matmul_q8_0`] and [`matmul_q4_0`] here are the
//! scalar specification: one f32 accumulator per output, blocks added in column order. The
//! SIMD tiers split each block's integer sum across lanes and add the lanes at the end, so
//! they differ from it by f32 rounding only. Within one tier, row `t` of a matmul equals
//! the matvec of input row `t` bit for bit.
//!
//! The SIMD kernels quantize their inputs into a stack buffer, so they take rows of at most
//! [`MAX_COLS`] columns. The dispatchers in `kernels` use the exact kernels for longer rows.

use bytemuck::{Pod, Zeroable};

use crate::kernels::scalar::{batch_size, check_matrix, check_matvec_lengths};
use crate::quant::{BlockQ4_0, BlockQ8_0, QK8_0, f16_to_f32};
use crate::tensor::{GgmlType, Matrix};

/// Inputs per block, the same as the weight blocks.
pub const BLOCK: usize = QK8_0;

/// Maximum row length of the SIMD kernels: 256 blocks, whose inputs fill 9 KiB of stack.
pub const MAX_COLS: usize = 8192;

/// Input blocks of the stack buffer a SIMD matmul quantizes its input rows into (72 KiB).
/// A pass covers `MATMUL_BLOCKS / blocks_per_row` input rows, at least 8.
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_endian = "little")
))]
const MATMUL_BLOCKS: usize = 2048;

/// 32 inputs rounded to 8 bits: input `i` is about `d * qs[i]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Zeroable, Pod)]
pub struct InputBlock {
    /// Scale: the block's largest magnitude over 127.
    pub d: f32,
    /// Rounded inputs, in -127..=127.
    pub qs: [i8; BLOCK],
}

impl InputBlock {
    /// A block of zeros.
    pub const ZERO: Self = Self { d: 0.0, qs: [0; BLOCK] };

    /// Rounds 32 inputs: `d = max|x| / 127`, and each `qs[i]` is `x[i] / d` rounded to the
    /// nearest integer, ties to even. All zeros give `d = 0`. A NaN or infinite input makes
    /// `d` NaN, so the products that use the block are NaN, as with exact inputs they would
    /// not be finite either.
    #[inline]
    pub fn quantize(x: &[f32; BLOCK]) -> Self {
        // `max` ignores NaN, so `poison` carries it: 0 when every input is finite, else NaN.
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let poison = x.iter().fold(0.0f32, |p, &v| p + v * 0.0);
        let d = amax / 127.0 + poison;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        let mut qs = [0i8; BLOCK];
        for (q, &v) in qs.iter_mut().zip(x) {
            // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer, ties to even,
            // for |v| < 2^22. `as` saturates and maps NaN to 0, and finite values stay in ±127.
            let rounded = (v * id + ROUND_MAGIC) - ROUND_MAGIC;
            *q = rounded.clamp(-127.0, 127.0) as i8;
        }
        Self { d, qs }
    }
}

/// 1.5 * 2^23: f32 values of this size have no fraction bits.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// Rounds `x` block by block into `out`.
///
/// # Panics
/// Panics when `x.len() != BLOCK * out.len()`.
pub fn quantize_input(x: &[f32], out: &mut [InputBlock]) {
    assert_eq!(
        x.len(),
        BLOCK * out.len(),
        "quantize_input: {} inputs do not fill {} blocks of {BLOCK}",
        x.len(),
        out.len()
    );
    for (block, xs) in out.iter_mut().zip(x.as_chunks::<BLOCK>().0) {
        *block = InputBlock::quantize(xs);
    }
}

/// Returns whether these kernels take `w`: Q8_0 or Q4_0 with at most [`MAX_COLS`] columns.
pub fn supports(w: &Matrix<'_>) -> bool {
    matches!(w.dtype, GgmlType::Q8_0 | GgmlType::Q4_0) && w.cols <= MAX_COLS
}

/// Computes `y[r] = sum_c W[r, c] * x[c]` for Q8_0 weights with `x` rounded to 8 bits.
///
/// # Panics
/// Panics when `w` is not Q8_0, when `w.data` does not match its shape, or when
/// `x.len() != w.cols` or `y.len() != w.rows`.
pub fn matvec_q8_0(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    check_matrix(w, GgmlType::Q8_0);
    check_matvec_lengths(w, x, y);
    for (r, out) in y.iter_mut().enumerate() {
        *out = row_dot(w.row(r), x, BlockQ8_0::BYTES, q8_0_block_dot);
    }
}

/// Computes `y[r] = sum_c W[r, c] * x[c]` for Q4_0 weights with `x` rounded to 8 bits.
///
/// # Panics
/// As [`matvec_q8_0`], for Q4_0.
pub fn matvec_q4_0(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    check_matrix(w, GgmlType::Q4_0);
    check_matvec_lengths(w, x, y);
    for (r, out) in y.iter_mut().enumerate() {
        *out = row_dot(w.row(r), x, BlockQ4_0::BYTES, q4_0_block_dot);
    }
}

/// Computes `y[t, r] = sum_c W[r, c] * x[t, c]` for Q8_0 weights with each input row
/// rounded to 8 bits, `x` as `[m, w.cols]` and `y` as `[m, w.rows]`.
///
/// # Panics
/// Panics when `w` is not Q8_0, when `w.data` does not match its shape, when `x.len()` is
/// not a multiple of `w.cols`, or when `y.len() != m * w.rows`.
pub fn matmul_q8_0(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    check_matrix(w, GgmlType::Q8_0);
    matmul_rows(w, x, y, matvec_q8_0);
}

/// Computes `y[t, r] = sum_c W[r, c] * x[t, c]` for Q4_0 weights with each input row
/// rounded to 8 bits.
///
/// # Panics
/// As [`matmul_q8_0`], for Q4_0.
pub fn matmul_q4_0(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    check_matrix(w, GgmlType::Q4_0);
    matmul_rows(w, x, y, matvec_q4_0);
}

/// Runs `matvec` on each input row: the specification defines a matmul row by row.
fn matmul_rows(w: &Matrix<'_>, x: &[f32], y: &mut [f32], matvec: fn(&Matrix<'_>, &[f32], &mut [f32])) {
    let m = batch_size(w, x, y);
    if w.cols == 0 {
        y.fill(0.0);
        return;
    }
    for t in 0..m {
        matvec(w, &x[t * w.cols..][..w.cols], &mut y[t * w.rows..][..w.rows]);
    }
}

/// Returns one row's sum over blocks of `(d_w * d_x) * sum_i w_i x_i`, in block order.
fn row_dot(row: &[u8], x: &[f32], bytes: usize, block_dot: fn(&[u8], &[i8; BLOCK]) -> (f32, i32)) -> f32 {
    let mut sum = 0.0f32;
    for (xs, weights) in x.as_chunks::<BLOCK>().0.iter().zip(row.chunks_exact(bytes)) {
        let input = InputBlock::quantize(xs);
        let (d_w, dot) = block_dot(weights, &input.qs);
        sum += (d_w * input.d) * dot as f32;
    }
    sum
}

/// Returns a Q8_0 block's scale and its exact integer dot product with `xq`.
fn q8_0_block_dot(bytes: &[u8], xq: &[i8; BLOCK]) -> (f32, i32) {
    let block = BlockQ8_0::from_bytes(bytes.try_into().expect("a Q8_0 block is 34 bytes"));
    let dot = block.qs.iter().zip(xq).map(|(&w, &x)| i32::from(w) * i32::from(x)).sum();
    (f16_to_f32(block.d), dot)
}

/// Returns a Q4_0 block's scale and its exact integer dot product with `xq`. Byte `j`
/// contains element `j` in its low nibble and element `j + 16` in its high nibble, each
/// stored plus 8.
fn q4_0_block_dot(bytes: &[u8], xq: &[i8; BLOCK]) -> (f32, i32) {
    let block = BlockQ4_0::from_bytes(bytes.try_into().expect("a Q4_0 block is 18 bytes"));
    let mut dot = 0i32;
    for (j, &byte) in block.qs.iter().enumerate() {
        let low = i32::from(byte & 0x0f) - 8;
        let high = i32::from(byte >> 4) - 8;
        dot += low * i32::from(xq[j]) + high * i32::from(xq[j + BLOCK / 2]);
    }
    (f16_to_f32(block.d), dot)
}

// The loops the SIMD tiers share.
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_endian = "little")
))]
pub(super) use simd::{Int8Simd, Q4_0, Q8_0, matmul, matvec};

#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_endian = "little")
))]
mod simd {
    use core::mem::MaybeUninit;

    use super::{BLOCK, InputBlock, MATMUL_BLOCKS, MAX_COLS};
    use crate::kernels::scalar::{batch_size, check_matrix, check_matvec_lengths};
    use crate::quant::{BlockQ4_0, BlockQ8_0};
    use crate::tensor::{GgmlType, Matrix};

    /// The integer operations of one SIMD tier.
    ///
    /// Every method is `unsafe` for the same reason: the caller ensures that the CPU
    /// supports the tier's target features and that each pointer is valid for the reads
    /// the method describes. Pointers need no alignment.
    pub(in crate::kernels) trait Int8Simd {
        /// f32 accumulator lanes.
        type Acc: Copy;
        /// 32 signed 8-bit values.
        type Q: Copy;

        /// Returns an accumulator of zeros.
        unsafe fn zero() -> Self::Acc;
        /// Returns 32 zero bytes.
        unsafe fn zero_q() -> Self::Q;
        /// Loads 32 signed bytes from `p`.
        unsafe fn load_q(p: *const i8) -> Self::Q;
        /// Unpacks the 16 bytes of Q4_0 nibbles at `p` into 32 values in -8..=7: the low
        /// nibbles are elements 0..16, the high nibbles elements 16..32.
        unsafe fn unpack_q4_0(p: *const u8) -> Self::Q;
        /// Returns `acc` plus `scale` times the products `w * x`, whose 32 exact integer
        /// products the tier sums into its lanes in a fixed way.
        unsafe fn dot(acc: Self::Acc, w: Self::Q, x: Self::Q, scale: f32) -> Self::Acc;
        /// Adds the lanes of `acc`, always in the same order.
        unsafe fn sum(acc: Self::Acc) -> f32;
        /// Reads the little-endian f16 at `p` as f32.
        unsafe fn f16(p: *const u8) -> f32;
    }

    /// A weight block format as the loops see it.
    pub(in crate::kernels) trait Format {
        /// The matrix type this format reads.
        const DTYPE: GgmlType;
        /// Bytes of one block: an f16 scale, then the quants.
        const BYTES: usize;

        /// Loads the 32 quants of the block at `p` as signed values.
        ///
        /// # Safety
        /// The CPU supports `S`'s features and `p` is valid for `BYTES` reads.
        unsafe fn load<S: Int8Simd>(p: *const u8) -> S::Q;
    }

    /// Q8_0 weights.
    pub(in crate::kernels) struct Q8_0;
    /// Q4_0 weights.
    pub(in crate::kernels) struct Q4_0;

    impl Format for Q8_0 {
        const DTYPE: GgmlType = GgmlType::Q8_0;
        const BYTES: usize = BlockQ8_0::BYTES;

        #[inline(always)]
        unsafe fn load<S: Int8Simd>(p: *const u8) -> S::Q {
            // SAFETY: the 32 quants follow the 2-byte scale inside the block.
            unsafe { S::load_q(p.add(2).cast()) }
        }
    }

    impl Format for Q4_0 {
        const DTYPE: GgmlType = GgmlType::Q4_0;
        const BYTES: usize = BlockQ4_0::BYTES;

        #[inline(always)]
        unsafe fn load<S: Int8Simd>(p: *const u8) -> S::Q {
            // SAFETY: the 16 nibble bytes follow the 2-byte scale inside the block.
            unsafe { S::unpack_q4_0(p.add(2)) }
        }
    }

    /// Rounds `x` into `out` as [`quantize_input`] does and returns the written blocks. The
    /// buffer is not zeroed first, which saves a 9 KiB memset per matvec.
    ///
    /// # Panics
    /// Panics when `x.len() != BLOCK * out.len()`.
    #[inline(always)]
    fn quantize_uninit<'a>(x: &[f32], out: &'a mut [MaybeUninit<InputBlock>]) -> &'a [InputBlock] {
        assert_eq!(x.len(), BLOCK * out.len(), "{} inputs do not fill {} blocks of {BLOCK}", x.len(), out.len());
        for (block, xs) in out.iter_mut().zip(x.as_chunks::<BLOCK>().0) {
            block.write(InputBlock::quantize(xs));
        }
        // SAFETY: the loop wrote all out.len() elements (x has exactly that many blocks),
        // and MaybeUninit<InputBlock> has InputBlock's layout.
        unsafe { core::slice::from_raw_parts(out.as_ptr().cast::<InputBlock>(), out.len()) }
    }

    /// Computes `y = W x` with `x` rounded to 8 bits, `R` weight rows per pass.
    ///
    /// # Safety
    /// The CPU supports `S`'s target features.
    ///
    /// # Panics
    /// On the shapes the scalar kernels reject, and when `w.cols > MAX_COLS`.
    #[inline(always)]
    pub(in crate::kernels) unsafe fn matvec<S: Int8Simd, F: Format, const R: usize>(
        w: &Matrix<'_>,
        x: &[f32],
        y: &mut [f32],
    ) {
        check_matrix(w, F::DTYPE);
        check_matvec_lengths(w, x, y);
        assert!(w.cols <= MAX_COLS, "the 8-bit input kernels take at most {MAX_COLS} columns, not {}", w.cols);

        let blocks = w.cols / BLOCK;
        let mut buffer = [MaybeUninit::<InputBlock>::uninit(); MAX_COLS / BLOCK];
        let xq = quantize_uninit(x, &mut buffer[..blocks]);

        let row_bytes = w.row_bytes();
        let mut groups = y.chunks_exact_mut(R);
        for (group, out) in groups.by_ref().enumerate() {
            // SAFETY: check_matrix showed that w.data holds w.rows rows of row_bytes bytes,
            // each `blocks` blocks long, and this group's R rows start inside it. The caller
            // ensures the CPU features.
            let sums = unsafe {
                tile::<S, F, R, 1>(w.data.as_ptr().add(group * R * row_bytes), row_bytes, xq.as_ptr(), blocks)
            };
            for (y, sum) in out.iter_mut().zip(sums) {
                *y = sum[0];
            }
        }
        let first_rest = w.rows - w.rows % R;
        for (i, out) in groups.into_remainder().iter_mut().enumerate() {
            // SAFETY: as above, for the single row first_rest + i < w.rows.
            let [[sum]] = unsafe {
                tile::<S, F, 1, 1>(w.data.as_ptr().add((first_rest + i) * row_bytes), row_bytes, xq.as_ptr(), blocks)
            };
            *out = sum;
        }
    }

    /// Computes `y = x W^T` for `m` input rows, each rounded to 8 bits, with tiles of `R`
    /// weight rows by `T` input rows. With `m == 1` it runs the matvec loop with
    /// `MATVEC_ROWS` rows per pass, which gives the same result.
    ///
    /// It quantizes as many input rows as fit in a stack buffer of [`MATMUL_BLOCKS`] blocks.
    /// Then it runs every tile of those rows, one group of weight rows at a time, so a
    /// group's weights stay in L1 while the inputs pass over them.
    ///
    /// # Safety
    /// The CPU supports `S`'s target features.
    ///
    /// # Panics
    /// On the shapes the scalar kernels reject, and when `w.cols > MAX_COLS`.
    #[inline(always)]
    pub(in crate::kernels) unsafe fn matmul<S: Int8Simd, F: Format, const R: usize, const T: usize, const MATVEC_ROWS: usize>(
        w: &Matrix<'_>,
        x: &[f32],
        y: &mut [f32],
    ) {
        check_matrix(w, F::DTYPE);
        let m = batch_size(w, x, y);
        if m == 1 {
            // SAFETY: the caller ensures the CPU features.
            unsafe { matvec::<S, F, MATVEC_ROWS>(w, x, y) };
            return;
        }
        if w.cols == 0 {
            y.fill(0.0);
            return;
        }
        assert!(w.cols <= MAX_COLS, "the 8-bit input kernels take at most {MAX_COLS} columns, not {}", w.cols);

        let (rows, cols) = (w.rows, w.cols);
        let blocks = cols / BLOCK;
        let row_bytes = w.row_bytes();
        let pass_tokens = MATMUL_BLOCKS / blocks;
        let mut buffer = [MaybeUninit::<InputBlock>::uninit(); MATMUL_BLOCKS];

        for t0 in (0..m).step_by(pass_tokens) {
            let tokens = pass_tokens.min(m - t0);
            let xq = quantize_uninit(&x[t0 * cols..(t0 + tokens) * cols], &mut buffer[..tokens * blocks]).as_ptr();

            let mut r0 = 0;
            while r0 < rows {
                let group_rows = if r0 + R <= rows { R } else { 1 };
                // SAFETY: rows r0 .. r0 + group_rows exist, and w.data contains each of them
                // (check_matrix). Input rows t .. t + T (or t + 1) lie in the first `tokens`
                // rows of the buffer. The caller ensures the CPU features.
                unsafe {
                    let weights = w.data.as_ptr().add(r0 * row_bytes);
                    let mut t = 0;
                    while t + T <= tokens {
                        let out = y.as_mut_ptr().add((t0 + t) * rows + r0);
                        if group_rows == R {
                            let sums = tile::<S, F, R, T>(weights, row_bytes, xq.add(t * blocks), blocks);
                            for (r, sums) in sums.iter().enumerate() {
                                for (i, &sum) in sums.iter().enumerate() {
                                    *out.add(i * rows + r) = sum;
                                }
                            }
                        } else {
                            let [sums] = tile::<S, F, 1, T>(weights, row_bytes, xq.add(t * blocks), blocks);
                            for (i, &sum) in sums.iter().enumerate() {
                                *out.add(i * rows) = sum;
                            }
                        }
                        t += T;
                    }
                    for t in t..tokens {
                        let out = y.as_mut_ptr().add((t0 + t) * rows + r0);
                        if group_rows == R {
                            let sums = tile::<S, F, R, 1>(weights, row_bytes, xq.add(t * blocks), blocks);
                            for (r, [sum]) in sums.iter().enumerate() {
                                *out.add(r) = *sum;
                            }
                        } else {
                            let [[sum]] = tile::<S, F, 1, 1>(weights, row_bytes, xq.add(t * blocks), blocks);
                            *out = sum;
                        }
                    }
                }
                r0 += group_rows;
            }
        }
    }

    /// Returns the products of `R` weight rows, the first at `rows`, and `T` quantized input
    /// rows, the first at `xq`, as `[r][t]`. Each output has its own accumulator, which
    /// takes the blocks in column order, so the tile shape does not change the results.
    ///
    /// # Safety
    /// `rows` is valid for `R * row_bytes` reads, each row holding `blocks` blocks of format
    /// `F`. `xq` is valid for `T` consecutive rows of `blocks` input blocks.
    /// The CPU supports `S`'s target features.
    #[inline(always)]
    unsafe fn tile<S: Int8Simd, F: Format, const R: usize, const T: usize>(
        rows: *const u8,
        row_bytes: usize,
        xq: *const InputBlock,
        blocks: usize,
    ) -> [[f32; T]; R] {
        // SAFETY: block b of row r lies at r * row_bytes + b * BYTES inside the rows the
        // caller vouches for, and input block b of row t at t * blocks + b inside its
        // buffer.
        unsafe {
            let mut acc = [[S::zero(); T]; R];
            for b in 0..blocks {
                let mut xs = [S::zero_q(); T];
                let mut dx = [0.0f32; T];
                for t in 0..T {
                    let input = xq.add(t * blocks + b);
                    xs[t] = S::load_q((*input).qs.as_ptr());
                    dx[t] = (*input).d;
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let block = rows.add(r * row_bytes + b * F::BYTES);
                    let weights = F::load::<S>(block);
                    let d_w = S::f16(block);
                    for t in 0..T {
                        acc[t] = S::dot(acc[t], weights, xs[t], d_w * dx[t]);
                    }
                }
            }

            let mut sums = [[0.0f32; T]; R];
            for r in 0..R {
                for t in 0..T {
                    sums[r][t] = S::sum(acc[r][t]);
                }
            }
            sums
        }
    }
}
