//! The selective scan of Mamba-1: the input-dependent linear recurrence over the SSM state.

use core::ops::Range;

use super::activation::silu;

/// Inputs of one selective scan over `n_tokens` positions.
///
/// Row-major shapes; "rows with stride s" means row `t` starts at `t * s`.
#[derive(Clone, Copy, Debug)]
pub struct ScanInputs<'x> {
    /// Number of channels.
    pub d_inner: usize,
    /// State size per channel.
    pub d_state: usize,
    /// Conv output after SiLU, `[n_tokens, d_inner]`.
    pub x: &'x [f32],
    /// Step sizes after softplus, `[n_tokens, d_inner]`.
    pub dt: &'x [f32],
    /// A = -exp(A_log), `[d_inner, d_state]`.
    pub a: &'x [f32],
    /// Rows with stride `bc_stride`; B is at `b_offset..b_offset + d_state` of each row.
    pub bc: &'x [f32],
    /// Row stride of `bc`.
    pub bc_stride: usize,
    /// Offset of B inside a `bc` row.
    pub b_offset: usize,
    /// Offset of C inside a `bc` row.
    pub c_offset: usize,
    /// Skip weights D, `[d_inner]`.
    pub d: &'x [f32],
    /// Gate rows with stride `z_stride`, `d_inner` values each.
    pub z: &'x [f32],
    /// Row stride of `z`.
    pub z_stride: usize,
}

/// Runs the scan and writes the gated output.
///
/// For each channel `c` and position `t`, with `h` the `d_state` values of `state[c]`:
/// `h = exp(dt * A[c]) * h + (dt * B[t]) * x`, then
/// `y[t, c] = (sum_s C[t, s] * h[s] + D[c] * x) * silu(z[t, c])`.
/// The loop runs channel by channel so `h` stays in registers or L1 across the sequence, and
/// no `[n_tokens, d_inner, d_state]` tensor is ever formed.
///
/// * `state`: `[d_inner, d_state]`, advanced by `n_tokens` steps.
/// * `y`: `[n_tokens, d_inner]`.
///
/// # Panics
/// Panics when a slice is shorter than its shape requires.
pub fn selective_scan(inputs: &ScanInputs<'_>, state: &mut [f32], y: &mut [f32]) {
    let ScanInputs { d_inner, d_state, x, dt, a, bc, bc_stride, b_offset, c_offset, d, z, z_stride } =
        *inputs;
    let n_tokens = y.len() / d_inner.max(1);
    assert_eq!(y.len(), n_tokens * d_inner, "selective_scan: y is not whole rows");
    assert_eq!(state.len(), d_inner * d_state, "selective_scan: state length");
    assert!(x.len() >= n_tokens * d_inner, "selective_scan: x is shorter than [n_tokens, d_inner]");
    assert!(dt.len() >= n_tokens * d_inner, "selective_scan: dt is shorter than [n_tokens, d_inner]");
    assert_eq!(a.len(), d_inner * d_state, "selective_scan: A is not [d_inner, d_state]");
    assert_eq!(d.len(), d_inner, "selective_scan: D is not [d_inner]");
    if n_tokens == 0 {
        return;
    }
    let last = n_tokens - 1;
    assert!(
        b_offset + d_state <= bc_stride
            && c_offset + d_state <= bc_stride
            && bc.len() >= last * bc_stride + bc_stride.max(1),
        "selective_scan: B/C rows"
    );
    assert!(z.len() >= last * z_stride + d_inner, "selective_scan: z rows");

    for c in 0..d_inner {
        let h = &mut state[c * d_state..(c + 1) * d_state];
        let a_c = &a[c * d_state..(c + 1) * d_state];

        for t in 0..n_tokens {
            let dt_tc = dt[t * d_inner + c];
            let x_tc = x[t * d_inner + c];
            let row = &bc[t * bc_stride..];
            let b = &row[b_offset..b_offset + d_state];
            let c_row = &row[c_offset..c_offset + d_state];

            // State update and readout in one pass over d_state.
            let mut acc = 0.0f32;
            for s in 0..d_state {
                let decay = libm::expf(dt_tc * a_c[s]);
                h[s] = decay * h[s] + (dt_tc * b[s]) * x_tc;
                acc += h[s] * c_row[s];
            }

            // Skip connection and gate.
            let out = acc + x_tc * d[c];
            y[t * d_inner + c] = out * silu(z[t * z_stride + c]);
        }
    }
}

/// Channels per block of [`selective_scan_fast`]: one AVX-512 vector or two AVX2 vectors.
/// Channel ranges given to [`selective_scan_fast_channels`] start at a multiple of it.
pub const SCAN_BLOCK: usize = 16;
/// Tokens whose partial outputs a block keeps while it walks the state tiles.
const TOKEN_TILE: usize = 64;
/// State entries per channel kept in the block's local arrays at once.
const STATE_TILE: usize = 16;

/// A build of the fast scan's block loop for one instruction set.
///
/// All of them compute the same bits: the loop body is the same Rust code, compiled with
/// different target features, and it uses no fused multiply-add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanKernel {
    /// Baseline instructions of the target (SSE2 on x86_64, NEON on aarch64).
    Portable,
    /// x86_64 with AVX2.
    Avx2,
    /// x86_64 with AVX-512F.
    Avx512,
}

impl ScanKernel {
    /// Every kernel, slowest first.
    pub const ALL: [ScanKernel; 3] = [Self::Portable, Self::Avx2, Self::Avx512];

    /// Returns whether this CPU can run the kernel. Without `std` only compile-time target features
    /// count.
    pub fn is_available(self) -> bool {
        match self {
            Self::Portable => true,
            Self::Avx2 => x86_feature_avx2(),
            Self::Avx512 => x86_feature_avx512f(),
        }
    }

    /// Returns the fastest available kernel, detected once and cached.
    pub fn best() -> Self {
        use core::sync::atomic::{AtomicU8, Ordering};
        // 0: not detected yet; otherwise 1 + the index in ALL.
        static BEST: AtomicU8 = AtomicU8::new(0);
        let cached = BEST.load(Ordering::Relaxed);
        if cached != 0 {
            return Self::ALL[usize::from(cached - 1)];
        }
        let index = Self::ALL.iter().rposition(|k| k.is_available()).unwrap_or(0);
        BEST.store(index as u8 + 1, Ordering::Relaxed);
        Self::ALL[index]
    }
}

#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn x86_feature_avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}

#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn x86_feature_avx512f() -> bool {
    std::is_x86_feature_detected!("avx512f")
}

#[cfg(not(all(target_arch = "x86_64", feature = "std")))]
fn x86_feature_avx2() -> bool {
    cfg!(all(target_arch = "x86_64", target_feature = "avx2"))
}

#[cfg(not(all(target_arch = "x86_64", feature = "std")))]
fn x86_feature_avx512f() -> bool {
    cfg!(all(target_arch = "x86_64", target_feature = "avx512f"))
}

/// Runs the scan like [`selective_scan`], vectorised across channels and with the fast
/// `exp` and SiLU of [`fast_math`](super::fast_math), using [`ScanKernel::best`].
///
/// The result differs from [`selective_scan`] only by the error of those approximations.
/// It does not depend on the kernel, nor on how the channels are split in
/// [`selective_scan_fast_channels`].
///
/// # Panics
/// As [`selective_scan`].
pub fn selective_scan_fast(inputs: &ScanInputs<'_>, state: &mut [f32], y: &mut [f32]) {
    selective_scan_fast_with(ScanKernel::best(), inputs, state, y);
}

/// [`selective_scan_fast`] with a chosen kernel.
///
/// # Panics
/// As [`selective_scan`], and when `kernel` is not available on this CPU.
pub fn selective_scan_fast_with(kernel: ScanKernel, inputs: &ScanInputs<'_>, state: &mut [f32], y: &mut [f32]) {
    let d_inner = inputs.d_inner;
    let n_tokens = y.len() / d_inner.max(1);
    assert_eq!(y.len(), n_tokens * d_inner, "selective_scan: y is not whole rows");
    let mut emit = |t: usize, c0: usize, values: &[f32]| {
        y[t * d_inner + c0..][..values.len()].copy_from_slice(values);
    };
    scan_channels(kernel, inputs, n_tokens, 0..d_inner, state, &mut emit);
}

/// Runs the fast scan over `n_tokens` positions for the channels in `channels` only, and
/// calls `emit(t, c, values)` with the gated outputs `y[t, c..c + values.len()]`, at most
/// [`SCAN_BLOCK`] channels at a time. Several threads may scan disjoint channel ranges of
/// the same inputs.
///
/// `state` contains the rows of these channels only: `[channels.len(), d_state]`.
///
/// # Panics
/// Panics when `channels.start` is not a multiple of [`SCAN_BLOCK`], when `channels` is
/// not inside `0..d_inner`, or when a slice is shorter than its shape requires.
pub fn selective_scan_fast_channels(
    inputs: &ScanInputs<'_>,
    n_tokens: usize,
    channels: Range<usize>,
    state: &mut [f32],
    emit: &mut dyn FnMut(usize, usize, &[f32]),
) {
    scan_channels(ScanKernel::best(), inputs, n_tokens, channels, state, emit);
}

fn scan_channels(
    kernel: ScanKernel,
    inputs: &ScanInputs<'_>,
    n_tokens: usize,
    channels: Range<usize>,
    state: &mut [f32],
    emit: &mut dyn FnMut(usize, usize, &[f32]),
) {
    let ScanInputs { d_inner, d_state, x, dt, a, bc, bc_stride, b_offset, c_offset, d, z, z_stride } = *inputs;
    assert!(kernel.is_available(), "the {kernel:?} scan kernel is not available on this CPU");
    assert!(
        channels.start.is_multiple_of(SCAN_BLOCK) && channels.start <= channels.end && channels.end <= d_inner,
        "selective_scan: channel range {channels:?} must start at a multiple of {SCAN_BLOCK} and lie in 0..{d_inner}"
    );
    assert_eq!(state.len(), channels.len() * d_state, "selective_scan: state length");
    assert!(x.len() >= n_tokens * d_inner, "selective_scan: x is shorter than [n_tokens, d_inner]");
    assert!(dt.len() >= n_tokens * d_inner, "selective_scan: dt is shorter than [n_tokens, d_inner]");
    assert_eq!(a.len(), d_inner * d_state, "selective_scan: A is not [d_inner, d_state]");
    assert_eq!(d.len(), d_inner, "selective_scan: D is not [d_inner]");
    if n_tokens == 0 || channels.is_empty() {
        return;
    }
    let last = n_tokens - 1;
    assert!(
        b_offset + d_state <= bc_stride
            && c_offset + d_state <= bc_stride
            && bc.len() >= last * bc_stride + bc_stride.max(1),
        "selective_scan: B/C rows"
    );
    assert!(z.len() >= last * z_stride + d_inner, "selective_scan: z rows");

    let block_state = SCAN_BLOCK * d_state;
    for (i, state) in state.chunks_mut(block_state).enumerate() {
        let c0 = channels.start + i * SCAN_BLOCK;
        let block = Block { c0, width: SCAN_BLOCK.min(channels.end - c0), n_tokens };
        match kernel {
            ScanKernel::Portable => scan_block(inputs, block, state, emit),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the kernel is available (asserted above), so the CPU has AVX2.
            ScanKernel::Avx2 => unsafe { scan_block_avx2(inputs, block, state, emit) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the kernel is available (asserted above), so the CPU has AVX-512F.
            ScanKernel::Avx512 => unsafe { scan_block_avx512(inputs, block, state, emit) },
            #[cfg(not(target_arch = "x86_64"))]
            ScanKernel::Avx2 | ScanKernel::Avx512 => unreachable!("x86_64 kernels are never available here"),
        }
    }
}

/// One block of up to [`SCAN_BLOCK`] channels: `c0..c0 + width`.
#[derive(Clone, Copy)]
struct Block {
    c0: usize,
    width: usize,
    n_tokens: usize,
}

/// [`scan_block`] compiled with AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_block_avx2(inputs: &ScanInputs<'_>, block: Block, state: &mut [f32], emit: &mut dyn FnMut(usize, usize, &[f32])) {
    scan_block(inputs, block, state, emit);
}

/// [`scan_block`] compiled with AVX-512F.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scan_block_avx512(inputs: &ScanInputs<'_>, block: Block, state: &mut [f32], emit: &mut dyn FnMut(usize, usize, &[f32])) {
    scan_block(inputs, block, state, emit);
}

/// Scans one block of channels with the channels as vector lanes.
///
/// The block's state and A are copied into `[state, lane]` arrays one tile of state entries
/// at a time, so each step updates whole vectors. Each channel's output accumulates over the
/// state entries in the same order as in [`selective_scan`], carried across tiles in `acc`.
/// Lanes past `width` hold zeros and are never emitted.
#[inline(always)]
fn scan_block(inputs: &ScanInputs<'_>, block: Block, state: &mut [f32], emit: &mut dyn FnMut(usize, usize, &[f32])) {
    use super::fast_math::{exp, silu};
    const L: usize = SCAN_BLOCK;
    let ScanInputs { d_inner, d_state, x, dt, a, bc, bc_stride, b_offset, c_offset, d, z, z_stride } = *inputs;
    let Block { c0, width, n_tokens } = block;
    if n_tokens == 1 {
        step_block(inputs, block, state, emit);
        return;
    }

    let mut h = [[0.0f32; L]; STATE_TILE];
    let mut a_tile = [[0.0f32; L]; STATE_TILE];
    let mut acc = [[0.0f32; L]; TOKEN_TILE];
    let d_block = load_lanes(&d[c0..], width);

    for t0 in (0..n_tokens).step_by(TOKEN_TILE) {
        let t_len = TOKEN_TILE.min(n_tokens - t0);
        for row in &mut acc[..t_len] {
            *row = [0.0; L];
        }

        for s0 in (0..d_state).step_by(STATE_TILE) {
            let s_len = STATE_TILE.min(d_state - s0);

            // Load the tile of state and A, lane l = channel c0 + l.
            for l in 0..width {
                for s in 0..s_len {
                    h[s][l] = state[l * d_state + s0 + s];
                    a_tile[s][l] = a[(c0 + l) * d_state + s0 + s];
                }
            }

            for (tt, acc_t) in acc[..t_len].iter_mut().enumerate() {
                let t = t0 + tt;
                let dt_t = load_lanes(&dt[t * d_inner + c0..], width);
                let x_t = load_lanes(&x[t * d_inner + c0..], width);
                let row = &bc[t * bc_stride..];
                let b = &row[b_offset + s0..][..s_len];
                let c_row = &row[c_offset + s0..][..s_len];

                for s in 0..s_len {
                    let (b_s, c_s) = (b[s], c_row[s]);
                    let (h_s, a_s) = (&mut h[s], &a_tile[s]);
                    for l in 0..L {
                        let decay = exp(dt_t[l] * a_s[l]);
                        h_s[l] = decay * h_s[l] + (dt_t[l] * b_s) * x_t[l];
                        acc_t[l] += h_s[l] * c_s;
                    }
                }
            }

            // Store the tile of state back.
            for l in 0..width {
                for s in 0..s_len {
                    state[l * d_state + s0 + s] = h[s][l];
                }
            }
        }

        // Skip connection and gate, then hand the outputs over.
        for (tt, acc_t) in acc[..t_len].iter().enumerate() {
            let t = t0 + tt;
            let x_t = load_lanes(&x[t * d_inner + c0..], width);
            let z_t = load_lanes(&z[t * z_stride + c0..], width);
            let mut out = [0.0f32; L];
            for l in 0..L {
                out[l] = (acc_t[l] + x_t[l] * d_block[l]) * silu(z_t[l]);
            }
            emit(t, c0, &out[..width]);
        }
    }
}

/// Scans one token (a decode step) for one block of channels, with the state entries of
/// each channel as vector lanes. A channel's state row and its row of A are contiguous, so
/// nothing is transposed, which at one token would cost more than the update itself.
///
/// The state update is the same as in [`scan_block`]. The output sums `h * C` over the
/// state entries in [`STATE_LANES`] lanes and then adds the lanes, so its rounding can
/// differ from the prefill path's by a few units in the last place.
#[inline(always)]
fn step_block(inputs: &ScanInputs<'_>, block: Block, state: &mut [f32], emit: &mut dyn FnMut(usize, usize, &[f32])) {
    use super::fast_math::{exp, silu};
    const L: usize = STATE_LANES;
    let ScanInputs { d_state, x, dt, a, bc, b_offset, c_offset, d, z, .. } = *inputs;
    let Block { c0, width, .. } = block;
    let b = &bc[b_offset..][..d_state];
    let c_row = &bc[c_offset..][..d_state];

    let mut out = [0.0f32; SCAN_BLOCK];
    for (l, out) in out.iter_mut().enumerate().take(width) {
        let channel = c0 + l;
        let (dt_c, x_c) = (dt[channel], x[channel]);
        let h = &mut state[l * d_state..][..d_state];
        let a_c = &a[channel * d_state..][..d_state];

        let mut acc = [0.0f32; L];
        let (h_full, h_rest) = h.as_chunks_mut::<L>();
        let (a_full, a_rest) = a_c.as_chunks::<L>();
        let (b_full, b_rest) = b.as_chunks::<L>();
        let (c_full, c_rest) = c_row.as_chunks::<L>();
        for (((h, a), b), c) in h_full.iter_mut().zip(a_full).zip(b_full).zip(c_full) {
            for i in 0..L {
                let decay = exp(dt_c * a[i]);
                h[i] = decay * h[i] + (dt_c * b[i]) * x_c;
                acc[i] += h[i] * c[i];
            }
        }
        for i in 0..h_rest.len() {
            let decay = exp(dt_c * a_rest[i]);
            h_rest[i] = decay * h_rest[i] + (dt_c * b_rest[i]) * x_c;
            acc[i] += h_rest[i] * c_rest[i];
        }

        // Add the lanes pairwise: 8 sums of two, then 4, 2 and 1.
        let mut width = L / 2;
        while width > 0 {
            for i in 0..width {
                acc[i] += acc[i + width];
            }
            width /= 2;
        }
        *out = (acc[0] + x_c * d[channel]) * silu(z[channel]);
    }
    emit(0, c0, &out[..width]);
}

/// Lanes of the state entries in [`step_block`].
const STATE_LANES: usize = 16;

/// Returns the first `width` values of `src` as lanes, with zeros after them. A full block
/// takes a fixed-size copy, which compiles to vector loads instead of a `memcpy` call.
#[inline(always)]
fn load_lanes(src: &[f32], width: usize) -> [f32; SCAN_BLOCK] {
    let mut lanes = [0.0f32; SCAN_BLOCK];
    if width == SCAN_BLOCK {
        lanes.copy_from_slice(&src[..SCAN_BLOCK]);
    } else {
        lanes[..width].copy_from_slice(&src[..width]);
    }
    lanes
}
