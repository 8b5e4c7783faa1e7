//! Kernel loops shared by the SIMD tiers (x86-64 and aarch64), written once against the
//! [`Simd`] trait.
//!
//! Each tier implements [`Simd`] for its register width and calls these `#[inline(always)]`
//! loops from its own `#[target_feature]` functions. The loops and the trait methods are
//! inlined there, so the intrinsics compile with that tier's instructions.
//!
//! Summation order: each output `y[t, r]` has one vector accumulator. A row is walked in
//! chunks of [`CHUNK`] columns (one Q8_0 or Q4_0 block). Each chunk's weights are decoded
//! to the exact f32 values that `dequantize_row` returns, then multiplied into the
//! accumulator vector by vector in column order with FMA. The last vector of a row whose
//! length is not a multiple of the lane count is zero-padded in both weights and inputs.
//! [`Simd::sum`] adds the lanes at the end. matvec and matmul follow this order whatever
//! their tile shapes. So within one tier, row `t` of a matmul equals the matvec of input
//! row `t` bit for bit. A kernel called on a subset of a matrix's rows returns the same
//! values for those rows.

use core::ptr;

use crate::kernels::scalar::{batch_size, check_matrix, check_matvec_lengths};
use crate::quant::{BlockQ4_0, BlockQ8_0};
use crate::tensor::{GgmlType, Matrix};

/// Columns decoded at once: one Q8_0 or Q4_0 block, and a whole number of vectors in
/// every tier.
pub(super) const CHUNK: usize = 32;

/// Columns of decoded weights a matmul keeps per row (8 chunks). Four rows of them take
/// 4 KiB, which stays in L1 while every input row of a token block passes over them.
const K_BLOCK: usize = 256;

/// Input rows whose accumulators a matmul keeps in a stack buffer while it walks the
/// columns in [`K_BLOCK`] steps. A multiple of every token tile size the tiers use.
const TOKEN_BLOCK: usize = 48;

/// Row groups ahead that matvec prefetches. On a shared Zen 4 machine, a 768 x 50280 Q8_0
/// matvec ran at about half the speed without it (timed in a loop, 20 calls, twice).
const PREFETCH_GROUPS: usize = 1;

/// Maximum bytes a chunk of [`CHUNK`] columns takes in any format (F32 is the largest).
const MAX_CHUNK_BYTES: usize = 4 * CHUNK;

/// The vector operations of one SIMD tier.
///
/// Every method is `unsafe` for the same reason. The caller must ensure that the CPU
/// supports the tier's target features and that each pointer is valid for the reads or
/// writes the method describes. Pointers need no alignment.
pub(super) trait Simd {
    /// A register of [`Simd::LANES`] f32 values.
    type V: Copy;
    /// The 32 f32 values of one chunk, as `CHUNK / LANES` vectors in column order.
    type Chunk: Copy + AsRef<[Self::V]>;
    /// f32 lanes per vector. [`CHUNK`] is a multiple of it.
    const LANES: usize;

    /// Returns a vector of zeros.
    unsafe fn zero() -> Self::V;
    /// Loads `LANES` values from `p`.
    unsafe fn load(p: *const f32) -> Self::V;
    /// Loads `n < LANES` values from `p` and sets the other lanes to zero, reading nothing
    /// past `p + n`.
    unsafe fn load_partial(p: *const f32, n: usize) -> Self::V;
    /// Stores `LANES` values to `p`.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// Returns `a * b + acc`, rounded once.
    unsafe fn fma(a: Self::V, b: Self::V, acc: Self::V) -> Self::V;
    /// Adds the lanes of `v`, always in the same order.
    unsafe fn sum(v: Self::V) -> f32;
    /// Asks the CPU to load the cache line at `p` into L1. `p` may point anywhere, even
    /// outside any allocation: a prefetch never faults.
    unsafe fn prefetch(p: *const u8);
    /// Loads `n <= CHUNK` values from `p` as a chunk, zero padding past `n` and reading
    /// nothing past `p + n`.
    unsafe fn load_chunk(p: *const f32, n: usize) -> Self::Chunk;

    /// Decodes 32 little-endian f32 values (128 bytes) from `p`.
    unsafe fn decode_f32(p: *const u8) -> Self::Chunk;
    /// Decodes 32 little-endian f16 values (64 bytes) from `p`.
    unsafe fn decode_f16(p: *const u8) -> Self::Chunk;
    /// Decodes 32 little-endian bf16 values (64 bytes) from `p`.
    unsafe fn decode_bf16(p: *const u8) -> Self::Chunk;
    /// Decodes one Q8_0 block (34 bytes) from `p`.
    unsafe fn decode_q8_0(p: *const u8) -> Self::Chunk;
    /// Decodes one Q4_0 block (18 bytes) from `p`.
    unsafe fn decode_q4_0(p: *const u8) -> Self::Chunk;
}

/// A weight format as the generic loops see it: its type and how to decode one chunk.
pub(super) trait Format {
    /// The matrix type this format reads.
    const DTYPE: GgmlType;
    /// Bytes of one chunk of [`CHUNK`] columns.
    const CHUNK_BYTES: usize;

    /// Decodes [`CHUNK`] weights from `p`.
    ///
    /// # Safety
    /// As the [`Simd`] methods: the CPU supports `S`'s features and `p` is valid for
    /// `CHUNK_BYTES` reads.
    unsafe fn decode<S: Simd>(p: *const u8) -> S::Chunk;
}

/// F32 weights.
pub(super) struct F32;
/// F16 weights.
pub(super) struct F16;
/// BF16 weights.
pub(super) struct Bf16;
/// Q8_0 weights.
pub(super) struct Q8_0;
/// Q4_0 weights.
pub(super) struct Q4_0;

impl Format for F32 {
    const DTYPE: GgmlType = GgmlType::F32;
    const CHUNK_BYTES: usize = 4 * CHUNK;

    #[inline(always)]
    unsafe fn decode<S: Simd>(p: *const u8) -> S::Chunk {
        // SAFETY: the caller upholds this function's contract, which is decode_f32's.
        unsafe { S::decode_f32(p) }
    }
}

impl Format for F16 {
    const DTYPE: GgmlType = GgmlType::F16;
    const CHUNK_BYTES: usize = 2 * CHUNK;

    #[inline(always)]
    unsafe fn decode<S: Simd>(p: *const u8) -> S::Chunk {
        // SAFETY: the caller upholds this function's contract, which is decode_f16's.
        unsafe { S::decode_f16(p) }
    }
}

impl Format for Bf16 {
    const DTYPE: GgmlType = GgmlType::BF16;
    const CHUNK_BYTES: usize = 2 * CHUNK;

    #[inline(always)]
    unsafe fn decode<S: Simd>(p: *const u8) -> S::Chunk {
        // SAFETY: the caller upholds this function's contract, which is decode_bf16's.
        unsafe { S::decode_bf16(p) }
    }
}

impl Format for Q8_0 {
    const DTYPE: GgmlType = GgmlType::Q8_0;
    const CHUNK_BYTES: usize = BlockQ8_0::BYTES;

    #[inline(always)]
    unsafe fn decode<S: Simd>(p: *const u8) -> S::Chunk {
        // SAFETY: the caller upholds this function's contract, which is decode_q8_0's.
        unsafe { S::decode_q8_0(p) }
    }
}

impl Format for Q4_0 {
    const DTYPE: GgmlType = GgmlType::Q4_0;
    const CHUNK_BYTES: usize = BlockQ4_0::BYTES;

    #[inline(always)]
    unsafe fn decode<S: Simd>(p: *const u8) -> S::Chunk {
        // SAFETY: the caller upholds this function's contract, which is decode_q4_0's.
        unsafe { S::decode_q4_0(p) }
    }
}

/// Computes `y = W x` with `R` rows per pass, checking shapes as the scalar kernel does.
///
/// # Safety
/// The CPU supports `S`'s target features.
#[inline(always)]
pub(super) unsafe fn matvec<S: Simd, F: Format, const R: usize>(
    w: &Matrix<'_>,
    x: &[f32],
    y: &mut [f32],
) {
    check_matrix(w, F::DTYPE);
    check_matvec_lengths(w, x, y);
    let row_bytes = w.row_bytes();

    let mut groups = y.chunks_exact_mut(R);
    for (group, out) in groups.by_ref().enumerate() {
        // SAFETY: check_matrix showed that w.data contains w.rows rows of row_bytes bytes, and
        // this group's R rows start inside it. x has w.cols elements. The caller ensures the
        // CPU features.
        let sums = unsafe {
            dot_rows::<S, F, R>(
                w.data.as_ptr().add(group * R * row_bytes),
                row_bytes,
                x,
                w.cols,
            )
        };
        out.copy_from_slice(&sums);
    }

    let first_rest = w.rows - w.rows % R;
    for (i, out) in groups.into_remainder().iter_mut().enumerate() {
        let row = first_rest + i;
        // SAFETY: as above, for the single row `row < w.rows`.
        let [sum] = unsafe {
            dot_rows::<S, F, 1>(w.data.as_ptr().add(row * row_bytes), row_bytes, x, w.cols)
        };
        *out = sum;
    }
}

/// Returns the dot products of `R` consecutive weight rows, the first at `rows`, with `x`.
///
/// # Safety
/// `rows` is valid for `R * row_bytes` reads, and each row contains `x.len()` weights of
/// format `F` in `row_bytes` bytes. The CPU supports `S`'s target features.
#[inline(always)]
unsafe fn dot_rows<S: Simd, F: Format, const R: usize>(
    rows: *const u8,
    row_bytes: usize,
    x: &[f32],
    cols: usize,
) -> [f32; R] {
    // SAFETY: the caller ensures the CPU features for every unsafe call in this block. Each
    // chunk read stays inside its row: a full chunk ends at or before column `cols`, and
    // decode_chunk pads the last partial one instead of reading past the row. The x loads
    // read columns below `cols`. A prefetch never faults, and wrapping_add keeps its
    // address computation defined past the end of the matrix.
    unsafe {
        let mut acc = [S::zero(); R];
        let full_chunks = cols / CHUNK;
        for c in 0..full_chunks {
            let xs = S::load_chunk(x.as_ptr().add(c * CHUNK), CHUNK);
            for (r, acc) in acc.iter_mut().enumerate() {
                let chunk = rows.add(r * row_bytes + c * F::CHUNK_BYTES);
                S::prefetch(chunk.wrapping_add(PREFETCH_GROUPS * R * row_bytes));
                let weights = F::decode::<S>(chunk);
                for (&w, &xv) in weights.as_ref().iter().zip(xs.as_ref()) {
                    *acc = S::fma(w, xv, *acc);
                }
            }
        }

        let tail = cols - full_chunks * CHUNK;
        if tail > 0 {
            let col = full_chunks * CHUNK;
            let xs = S::load_chunk(x.as_ptr().add(col), tail);
            let vectors = tail.div_ceil(S::LANES);
            for (r, acc) in acc.iter_mut().enumerate() {
                let weights = decode_chunk::<S, F>(rows.add(r * row_bytes), col, cols);
                for (&w, &xv) in weights.as_ref().iter().zip(xs.as_ref()).take(vectors) {
                    *acc = S::fma(w, xv, *acc);
                }
            }
        }

        // A loop rather than `acc.map`: a closure would not inherit the caller's target
        // features, and its intrinsics could stay out-of-line calls.
        let mut sums = [0.0f32; R];
        for (sum, &v) in sums.iter_mut().zip(&acc) {
            *sum = S::sum(v);
        }
        sums
    }
}

/// Decodes columns `col..col + CHUNK` of the row at `row`, with zeros past `cols`.
///
/// # Safety
/// `row` contains `cols` weights of format `F`, `col < cols` is a multiple of [`CHUNK`], and
/// the CPU supports `S`'s target features.
#[inline(always)]
unsafe fn decode_chunk<S: Simd, F: Format>(row: *const u8, col: usize, cols: usize) -> S::Chunk {
    // SAFETY: chunk `col / CHUNK` starts inside the row. A whole chunk fits before its end.
    // Otherwise only the float formats remain (a Q8_0 or Q4_0 row is whole blocks), their
    // elements are CHUNK_BYTES / CHUNK bytes each, and only the row's remaining bytes are
    // copied, into a buffer that holds any chunk.
    unsafe {
        let p = row.add(col / CHUNK * F::CHUNK_BYTES);
        if col + CHUNK <= cols {
            return F::decode::<S>(p);
        }
        let bytes = (cols - col) * (F::CHUNK_BYTES / CHUNK);
        let mut padded = [0u8; MAX_CHUNK_BYTES];
        ptr::copy_nonoverlapping(p, padded.as_mut_ptr(), bytes);
        F::decode::<S>(padded.as_ptr())
    }
}

/// Vectors of one column block of a matmul, the same for every input row.
#[derive(Clone, Copy)]
struct ColumnBlock {
    /// Vectors in the block, the last one possibly partial.
    vectors: usize,
    /// Elements in the last vector when it is partial, else 0.
    tail: usize,
    /// Whether the block starts the row, so the accumulators start at zero.
    first: bool,
}

/// Computes `y = x W^T` for `m` input rows with tiles of `R` weight rows by `T` input rows,
/// checking shapes as the scalar kernel does. With `m == 1` it runs the matvec loop with
/// `MATVEC_ROWS` rows per pass instead, which gives the same result.
///
/// For each block of [`TOKEN_BLOCK`] input rows and each group of `R` weight rows, it
/// decodes [`K_BLOCK`] columns of the group into a stack buffer, then runs every tile of
/// the token block over them. The accumulators stay in registers within a tile and in a
/// stack buffer between column blocks. Each weight is decoded once per token block.
///
/// # Safety
/// The CPU supports `S`'s target features.
#[inline(always)]
pub(super) unsafe fn matmul<
    S: Simd,
    F: Format,
    const R: usize,
    const T: usize,
    const MATVEC_ROWS: usize,
>(
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

    let (rows, cols) = (w.rows, w.cols);
    let row_bytes = w.row_bytes();
    let mut weights = [[0.0f32; K_BLOCK]; R];
    // SAFETY: the caller ensures the CPU features.
    let zero = unsafe { S::zero() };
    let mut acc = [[zero; R]; TOKEN_BLOCK];

    for t0 in (0..m).step_by(TOKEN_BLOCK) {
        let tokens = TOKEN_BLOCK.min(m - t0);
        for r0 in (0..rows).step_by(R) {
            let group_rows = R.min(rows - r0);
            for k0 in (0..cols).step_by(K_BLOCK) {
                let block_cols = K_BLOCK.min(cols - k0);
                let block = ColumnBlock {
                    vectors: block_cols.div_ceil(S::LANES),
                    tail: block_cols % S::LANES,
                    first: k0 == 0,
                };

                // Decode the group's rows. Rows past the matrix keep stale weights: their
                // sums are computed but never written.
                for (r, dst) in weights.iter_mut().enumerate().take(group_rows) {
                    // SAFETY: check_matrix showed that row r0 + r < rows lies inside w.data
                    // and contains `cols` weights. Column k0 + j < cols is a multiple of CHUNK,
                    // and chunk j fills dst[j..j + CHUNK], inside the K_BLOCK columns.
                    unsafe {
                        let row = w.data.as_ptr().add((r0 + r) * row_bytes);
                        for j in (0..block_cols).step_by(CHUNK) {
                            let chunk = decode_chunk::<S, F>(row, k0 + j, cols);
                            for (v, &vector) in chunk.as_ref().iter().enumerate() {
                                S::store(dst.as_mut_ptr().add(j + v * S::LANES), vector);
                            }
                        }
                    }
                }

                // Run the tiles over this column block.
                let x_block = &x[t0 * cols + k0..];
                let mut t = 0;
                while t + T <= tokens {
                    // SAFETY: input rows t0 + t .. t0 + t + T exist (t + T <= tokens), and
                    // each has the columns k0 .. k0 + block_cols. The caller ensures the
                    // CPU features.
                    unsafe {
                        tile::<S, R, T>(
                            &weights,
                            &x_block[t * cols..],
                            cols,
                            block,
                            &mut acc[t..t + T],
                        )
                    };
                    t += T;
                }
                for t in t..tokens {
                    // SAFETY: as above, for the single input row t0 + t.
                    unsafe {
                        tile::<S, R, 1>(
                            &weights,
                            &x_block[t * cols..],
                            cols,
                            block,
                            &mut acc[t..=t],
                        )
                    };
                }
            }

            // Write the finished sums of the group's real rows.
            for (t, sums) in acc.iter().enumerate().take(tokens) {
                let out = &mut y[(t0 + t) * rows + r0..][..group_rows];
                for (y, &v) in out.iter_mut().zip(sums) {
                    // SAFETY: the caller ensures the CPU features.
                    *y = unsafe { S::sum(v) };
                }
            }
        }
    }
}

/// Adds one column block's products for `T` input rows and `R` weight rows to `acc`
/// (`acc[t][r]`), or sets `acc` to them when the block starts the row.
///
/// # Safety
/// `x` points at `T` input rows, `x_stride` elements apart. Each row has the block's
/// `(vectors - 1) * LANES + tail` columns, or `vectors * LANES` when `tail == 0`. `acc` has
/// `T` entries, and the CPU supports `S`'s target features.
#[inline(always)]
unsafe fn tile<S: Simd, const R: usize, const T: usize>(
    weights: &[[f32; K_BLOCK]; R],
    x: &[f32],
    x_stride: usize,
    block: ColumnBlock,
    acc: &mut [[S::V; R]],
) {
    // SAFETY: the caller ensures the CPU features. Vector v of input row t reads
    // x[t * x_stride + v * LANES..][..LANES], or only `tail` elements for the last partial
    // vector, which the caller guarantees exist. The weight loads read weights[r][..vectors
    // * LANES], inside K_BLOCK because the block has at most K_BLOCK columns and K_BLOCK is
    // a multiple of LANES.
    unsafe {
        let mut sums = [[S::zero(); T]; R];
        if !block.first {
            for (t, saved) in acc.iter().enumerate().take(T) {
                for r in 0..R {
                    sums[r][t] = saved[r];
                }
            }
        }

        let x = x.as_ptr();
        let full = if block.tail == 0 {
            block.vectors
        } else {
            block.vectors - 1
        };
        for v in 0..full {
            let mut xs = [S::zero(); T];
            for (t, xv) in xs.iter_mut().enumerate() {
                *xv = S::load(x.add(t * x_stride + v * S::LANES));
            }
            for (sums, row) in sums.iter_mut().zip(weights) {
                let w = S::load(row.as_ptr().add(v * S::LANES));
                for (sum, &xv) in sums.iter_mut().zip(&xs) {
                    *sum = S::fma(w, xv, *sum);
                }
            }
        }
        if block.tail != 0 {
            let v = full;
            let mut xs = [S::zero(); T];
            for (t, xv) in xs.iter_mut().enumerate() {
                *xv = S::load_partial(x.add(t * x_stride + v * S::LANES), block.tail);
            }
            for (sums, row) in sums.iter_mut().zip(weights) {
                let w = S::load(row.as_ptr().add(v * S::LANES));
                for (sum, &xv) in sums.iter_mut().zip(&xs) {
                    *sum = S::fma(w, xv, *sum);
                }
            }
        }

        for (t, saved) in acc.iter_mut().enumerate().take(T) {
            for r in 0..R {
                saved[r] = sums[r][t];
            }
        }
    }
}
