//! The state space recurrence of Mamba-2 (SSD: one scalar decay per head, B and C shared by
//! the heads of a group).
//!
//! Prefill runs the same per-head recurrence as decode, token after token, not the chunked
//! SSD block form. The block form turns the recurrence into matrix products, which pays off
//! where matrix units are much faster than vector units (GPU tensor cores). On a CPU it costs
//! more arithmetic: per chunk of `L` tokens it adds `L * L * (d_state + head_dim)`
//! multiply-adds per head to the `L * head_dim * d_state` of the scan. The scan keeps one
//! head's state, `head_dim * d_state` floats (32 KiB at 64 × 128), in L1 or L2 across the
//! whole prompt, so it is bound by the vector units, and prefill and decode give the same bits.

use core::ops::Range;

use super::fast_math;
use super::ssm_scan::ScanKernel;

/// Inputs of one Mamba-2 scan over `n_tokens` positions.
///
/// `xbc` contains the conv output after SiLU, one row of `x_stride` values per token: x
/// (`n_head * head_dim` values, head `h` at `h * head_dim`), then B (`n_group * d_state`), then C
/// (`n_group * d_state`).
#[derive(Clone, Copy, Debug)]
pub struct SsdInputs<'x> {
    /// Number of heads.
    pub n_head: usize,
    /// Channels per head.
    pub head_dim: usize,
    /// State size per channel.
    pub d_state: usize,
    /// Number of B and C groups; head `h` uses group `h / (n_head / n_group)`.
    pub n_group: usize,
    /// Conv output rows `[x | B | C]`.
    pub xbc: &'x [f32],
    /// Row stride of `xbc`, at least `n_head * head_dim + 2 * n_group * d_state`.
    pub x_stride: usize,
    /// Step sizes after softplus and clamping, `[n_tokens, n_head]`.
    pub dt: &'x [f32],
    /// A = -exp(A_log), `[n_head]`.
    pub a: &'x [f32],
    /// Skip weights D, `[n_head]`.
    pub d: &'x [f32],
}

impl SsdInputs<'_> {
    /// Checks every slice against the shapes for `n_tokens` positions.
    ///
    /// # Panics
    /// Panics when a slice is shorter than its shape requires or `n_group` does not divide
    /// `n_head`.
    fn check(&self, n_tokens: usize, heads: &Range<usize>, state: &[f32]) {
        let d_inner = self.n_head * self.head_dim;
        assert!(self.n_group > 0, "ssd_scan: n_group must be at least 1");
        assert!(self.n_head.is_multiple_of(self.n_group), "ssd_scan: n_group must divide n_head");
        assert!(heads.start <= heads.end, "ssd_scan: head range {heads:?} is reversed");
        assert!(heads.end <= self.n_head, "ssd_scan: head range {heads:?} exceeds n_head {}", self.n_head);
        assert_eq!(state.len(), heads.len() * self.head_dim * self.d_state, "ssd_scan: state length");
        assert!(self.x_stride >= d_inner + 2 * self.n_group * self.d_state, "ssd_scan: x_stride");
        assert_eq!(self.a.len(), self.n_head, "ssd_scan: A is not [n_head]");
        assert_eq!(self.d.len(), self.n_head, "ssd_scan: D is not [n_head]");
        if n_tokens > 0 {
            let needed = (n_tokens - 1) * self.x_stride + d_inner + 2 * self.n_group * self.d_state;
            assert!(self.xbc.len() >= needed, "ssd_scan: xbc has {} values, {needed} needed", self.xbc.len());
            assert!(self.dt.len() >= n_tokens * self.n_head, "ssd_scan: dt is shorter than [n_tokens, n_head]");
        }
    }

    /// Returns the offsets of B and C of head `h` inside an `xbc` row.
    fn bc_offsets(&self, h: usize) -> (usize, usize) {
        let group = h / (self.n_head / self.n_group);
        let b = self.n_head * self.head_dim + group * self.d_state;
        (b, b + self.n_group * self.d_state)
    }
}

/// Runs the scan for the heads in `heads`, the scalar reference.
///
/// For each head `h`, position `t` and channel `p` of the head, with `s` the `d_state` values
/// of `state[h, p]`: `s = exp(dt * A[h]) * s + (x[t, p] * dt) * B[t]`, then
/// `y[t, p] = sum(C[t] * s) + D[h] * x[t, p]`. The gate and norm come after, outside the scan.
///
/// * `state`: `[heads.len(), head_dim, d_state]`, advanced by `n_tokens` steps.
/// * `emit(t, channel, values)`: the outputs of one head at position `t`, for channels
///   `channel..channel + head_dim` of the `[n_tokens, d_inner]` output.
///
/// # Panics
/// Panics when a slice is shorter than its shape requires.
pub fn ssd_scan_reference(
    inputs: &SsdInputs<'_>,
    n_tokens: usize,
    heads: Range<usize>,
    state: &mut [f32],
    emit: &mut dyn FnMut(usize, usize, &[f32]),
) {
    inputs.check(n_tokens, &heads, state);
    let SsdInputs { n_head, head_dim, d_state, xbc, x_stride, dt, a, d, .. } = *inputs;
    let mut out = [0.0f32; OUT_TILE];

    for (local, h) in heads.enumerate() {
        let head_state = &mut state[local * head_dim * d_state..(local + 1) * head_dim * d_state];
        let (b_offset, c_offset) = inputs.bc_offsets(h);
        for t in 0..n_tokens {
            let row = &xbc[t * x_stride..];
            let dt_th = dt[t * n_head + h];
            let decay = libm::expf(dt_th * a[h]);
            let b = &row[b_offset..b_offset + d_state];
            let c = &row[c_offset..c_offset + d_state];
            for p0 in (0..head_dim).step_by(OUT_TILE) {
                let width = OUT_TILE.min(head_dim - p0);
                for (i, y) in out[..width].iter_mut().enumerate() {
                    let p = p0 + i;
                    let x = row[h * head_dim + p];
                    let x_dt = x * dt_th;
                    let s = &mut head_state[p * d_state..(p + 1) * d_state];
                    let mut acc = 0.0f32;
                    for k in 0..d_state {
                        s[k] = decay * s[k] + x_dt * b[k];
                        acc += s[k] * c[k];
                    }
                    *y = acc + d[h] * x;
                }
                emit(t, h * head_dim + p0, &out[..width]);
            }
        }
    }
}

/// Channels whose outputs are collected before one `emit` call.
const OUT_TILE: usize = 64;
/// Lanes of the state loop: one AVX-512 vector or two AVX2 vectors of f32.
const LANES: usize = 16;

/// Runs the scan for the heads in `heads` like [`ssd_scan_reference`], with the state loop
/// written over `LANES` independent accumulators so that it vectorises, and the fast `exp`.
/// It uses the fastest instruction set of [`ScanKernel::best`].
///
/// The sum over `d_state` is taken in a different order than in the reference, and `exp`
/// differs by at most [`fast_math::EXP_MAX_REL_ERROR`], so outputs agree to float rounding, not
/// bit for bit. The result does not depend on the kernel, nor on how the heads are split.
///
/// # Panics
/// Panics when a slice is shorter than its shape requires.
pub fn ssd_scan(
    inputs: &SsdInputs<'_>,
    n_tokens: usize,
    heads: Range<usize>,
    state: &mut [f32],
    emit: &mut dyn FnMut(usize, usize, &[f32]),
) {
    ssd_scan_with(ScanKernel::best(), inputs, n_tokens, heads, state, emit);
}

/// [`ssd_scan`] with a chosen kernel. Every kernel compiles the same Rust loop for its
/// instruction set, without fused multiply-adds, so all give the same bits.
///
/// # Panics
/// As [`ssd_scan`], and when `kernel` is not available on this CPU.
pub fn ssd_scan_with(
    kernel: ScanKernel,
    inputs: &SsdInputs<'_>,
    n_tokens: usize,
    heads: Range<usize>,
    state: &mut [f32],
    emit: &mut dyn FnMut(usize, usize, &[f32]),
) {
    inputs.check(n_tokens, &heads, state);
    assert!(kernel.is_available(), "the {kernel:?} scan kernel is not available on this CPU");
    match kernel {
        ScanKernel::Portable => scan_heads(inputs, n_tokens, heads, state, emit),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the kernel is available (asserted above), so the CPU has AVX2.
        ScanKernel::Avx2 => unsafe { scan_heads_avx2(inputs, n_tokens, heads, state, emit) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the kernel is available (asserted above), so the CPU has AVX-512F.
        ScanKernel::Avx512 => unsafe { scan_heads_avx512(inputs, n_tokens, heads, state, emit) },
        #[cfg(not(target_arch = "x86_64"))]
        ScanKernel::Avx2 | ScanKernel::Avx512 => unreachable!("x86 kernels are never available on this target"),
    }
}

/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_heads_avx2(
    inputs: &SsdInputs<'_>,
    n_tokens: usize,
    heads: Range<usize>,
    state: &mut [f32],
    emit: &mut dyn FnMut(usize, usize, &[f32]),
) {
    scan_heads(inputs, n_tokens, heads, state, emit);
}

/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scan_heads_avx512(
    inputs: &SsdInputs<'_>,
    n_tokens: usize,
    heads: Range<usize>,
    state: &mut [f32],
    emit: &mut dyn FnMut(usize, usize, &[f32]),
) {
    scan_heads(inputs, n_tokens, heads, state, emit);
}

/// Runs the loop of [`ssd_scan`]. It is inlined into each kernel, so it is compiled for that
/// kernel's instruction set. The caller checks the shapes.
#[inline(always)]
fn scan_heads(
    inputs: &SsdInputs<'_>,
    n_tokens: usize,
    heads: Range<usize>,
    state: &mut [f32],
    emit: &mut dyn FnMut(usize, usize, &[f32]),
) {
    let SsdInputs { n_head, head_dim, d_state, xbc, x_stride, dt, a, d, .. } = *inputs;
    let mut out = [0.0f32; OUT_TILE];

    for (local, h) in heads.enumerate() {
        let head_state = &mut state[local * head_dim * d_state..(local + 1) * head_dim * d_state];
        let (b_offset, c_offset) = inputs.bc_offsets(h);
        for t in 0..n_tokens {
            let row = &xbc[t * x_stride..];
            let dt_th = dt[t * n_head + h];
            let decay = fast_math::exp(dt_th * a[h]);
            let b = &row[b_offset..b_offset + d_state];
            let c = &row[c_offset..c_offset + d_state];
            for p0 in (0..head_dim).step_by(OUT_TILE) {
                let width = OUT_TILE.min(head_dim - p0);
                for (i, y) in out[..width].iter_mut().enumerate() {
                    let p = p0 + i;
                    let x = row[h * head_dim + p];
                    let s = &mut head_state[p * d_state..(p + 1) * d_state];
                    let acc = state_row_update(s, b, c, decay, x * dt_th);
                    *y = acc + d[h] * x;
                }
                emit(t, h * head_dim + p0, &out[..width]);
            }
        }
    }
}

/// Updates one state row `s = decay * s + x_dt * b` and returns `sum(s * c)`: whole groups of
/// `LANES` values in lanes (fixed-size arrays, so the loop vectorises without bounds checks),
/// the rest one by one.
#[inline(always)]
fn state_row_update(s: &mut [f32], b: &[f32], c: &[f32], decay: f32, x_dt: f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (s_main, s_tail) = s.as_chunks_mut::<LANES>();
    let (b_main, b_tail) = b.as_chunks::<LANES>();
    let (c_main, c_tail) = c.as_chunks::<LANES>();
    for ((s, b), c) in s_main.iter_mut().zip(b_main).zip(c_main) {
        for i in 0..LANES {
            s[i] = decay * s[i] + x_dt * b[i];
            lanes[i] += s[i] * c[i];
        }
    }
    let mut acc = 0.0f32;
    for ((s, &b), &c) in s_tail.iter_mut().zip(b_tail).zip(c_tail) {
        *s = decay * *s + x_dt * b;
        acc += *s * c;
    }
    // Pairwise sum of the lanes.
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
    }
    lanes[0] + acc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in `-1..1` from a linear congruential generator.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> f32 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }

        fn fill(&mut self, n: usize, scale: f32, offset: f32) -> [f32; 4096] {
            let mut out = [0.0f32; 4096];
            for v in &mut out[..n] {
                *v = offset + scale * self.next();
            }
            out
        }
    }

    /// The signature of [`ssd_scan`] and [`ssd_scan_reference`].
    type ScanFn = fn(&SsdInputs<'_>, usize, Range<usize>, &mut [f32], &mut dyn FnMut(usize, usize, &[f32]));

    /// Runs one scan function over `n_tokens` in chunks of `chunk` tokens and collects y.
    fn run(
        scan: ScanFn,
        inputs: &SsdInputs<'_>,
        n_tokens: usize,
        chunk: usize,
        state: &mut [f32],
        y: &mut [f32],
    ) {
        let d_inner = inputs.n_head * inputs.head_dim;
        let mut t0 = 0;
        while t0 < n_tokens {
            let len = chunk.min(n_tokens - t0);
            let part = SsdInputs { xbc: &inputs.xbc[t0 * inputs.x_stride..], dt: &inputs.dt[t0 * inputs.n_head..], ..*inputs };
            scan(&part, len, 0..inputs.n_head, state, &mut |t, channel, values| {
                let at = (t0 + t) * d_inner + channel;
                y[at..at + values.len()].copy_from_slice(values);
            });
            t0 += len;
        }
    }

    #[test]
    fn fast_scan_matches_reference() {
        let mut rng = Lcg(7);
        // (n_head, head_dim, d_state, n_group, n_tokens), with odd sizes and lane tails.
        let shapes = [(4, 3, 5, 2, 7), (2, 16, 17, 1, 9), (6, 5, 33, 3, 3), (1, 1, 1, 1, 1), (2, 70, 16, 2, 4)];
        for (n_head, head_dim, d_state, n_group, n_tokens) in shapes {
            let d_inner = n_head * head_dim;
            let x_stride = d_inner + 2 * n_group * d_state + 3;
            let xbc = rng.fill(n_tokens * x_stride, 1.0, 0.0);
            let dt = rng.fill(n_tokens * n_head, 0.2, 0.25);
            let a = rng.fill(n_head, 2.0, -2.5);
            let d = rng.fill(n_head, 1.0, 0.0);
            let inputs = SsdInputs {
                n_head,
                head_dim,
                d_state,
                n_group,
                xbc: &xbc[..n_tokens * x_stride],
                x_stride,
                dt: &dt[..n_tokens * n_head],
                a: &a[..n_head],
                d: &d[..n_head],
            };
            let state_len = d_inner * d_state;
            let start = rng.fill(state_len, 0.5, 0.0);

            let mut ref_state = start;
            let mut ref_y = [0.0f32; 4096];
            run(ssd_scan_reference, &inputs, n_tokens, n_tokens, &mut ref_state[..state_len], &mut ref_y);
            for chunk in [1, 2, n_tokens] {
                let mut state = start;
                let mut y = [f32::NAN; 4096];
                run(ssd_scan, &inputs, n_tokens, chunk, &mut state[..state_len], &mut y);
                let shape = (n_head, head_dim, d_state, n_group, n_tokens);
                for i in 0..n_tokens * d_inner {
                    assert!(y[i].is_finite(), "{shape:?} chunk {chunk}: y[{i}] = {}", y[i]);
                    let tolerance = 1e-5 * (1.0 + ref_y[i].abs());
                    assert!((y[i] - ref_y[i]).abs() <= tolerance, "{shape:?} chunk {chunk}: y[{i}] {} vs {}", y[i], ref_y[i]);
                }
                for i in 0..state_len {
                    let tolerance = 1e-5 * (1.0 + ref_state[i].abs());
                    assert!((state[i] - ref_state[i]).abs() <= tolerance, "{shape:?} chunk {chunk}: state[{i}]");
                }
            }
        }
    }

    #[test]
    fn every_kernel_gives_same_bits() {
        let mut rng = Lcg(11);
        let (n_head, head_dim, d_state, n_group, n_tokens) = (4, 7, 37, 2, 5);
        let d_inner = n_head * head_dim;
        let x_stride = d_inner + 2 * n_group * d_state;
        let xbc = rng.fill(n_tokens * x_stride, 1.0, 0.0);
        let dt = rng.fill(n_tokens * n_head, 0.2, 0.25);
        let a = rng.fill(n_head, 2.0, -2.5);
        let d = rng.fill(n_head, 1.0, 0.0);
        let inputs = SsdInputs {
            n_head,
            head_dim,
            d_state,
            n_group,
            xbc: &xbc[..n_tokens * x_stride],
            x_stride,
            dt: &dt[..n_tokens * n_head],
            a: &a[..n_head],
            d: &d[..n_head],
        };
        let state_len = d_inner * d_state;
        let run_kernel = |kernel: ScanKernel| {
            let mut state = [0.0f32; 4096];
            let mut y = [0.0f32; 4096];
            ssd_scan_with(kernel, &inputs, n_tokens, 0..n_head, &mut state[..state_len], &mut |t, channel, values| {
                let at = t * d_inner + channel;
                y[at..at + values.len()].copy_from_slice(values);
            });
            (state, y)
        };
        let portable = run_kernel(ScanKernel::Portable);
        for kernel in ScanKernel::ALL.into_iter().filter(|k| k.is_available()) {
            let (state, y) = run_kernel(kernel);
            assert_eq!(state[..state_len], portable.0[..state_len], "{kernel:?}: state");
            assert_eq!(y[..n_tokens * d_inner], portable.1[..n_tokens * d_inner], "{kernel:?}: y");
        }
    }

    #[test]
    fn heads_of_a_group_share_b_and_c() {
        let inputs = SsdInputs {
            n_head: 4,
            head_dim: 2,
            d_state: 3,
            n_group: 2,
            xbc: &[0.0; 20],
            x_stride: 20,
            dt: &[0.0; 4],
            a: &[0.0; 4],
            d: &[0.0; 4],
        };
        assert_eq!(inputs.bc_offsets(0), (8, 14));
        assert_eq!(inputs.bc_offsets(1), (8, 14));
        assert_eq!(inputs.bc_offsets(2), (11, 17));
        assert_eq!(inputs.bc_offsets(3), (11, 17));
    }
}
