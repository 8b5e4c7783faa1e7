//! The fast selective scan against the scalar reference, across kernels, channel splits and
//! chunkings, and the split causal conv against the whole one.

use mamba_core::ops::conv1d::{ConvShape, causal_conv1d, causal_conv1d_advance, causal_conv1d_tokens};
use mamba_core::ops::ssm_scan::{
    SCAN_BLOCK, ScanInputs, ScanKernel, selective_scan, selective_scan_fast, selective_scan_fast_channels,
    selective_scan_fast_with,
};

/// Largest relative L2 error of the fast scan's outputs and final state against the
/// reference. Each decay factor carries the fast `exp`'s error (at most 1.5e-7), and the
/// state sums many decayed terms, so the error grows to a few times that.
const FAST_SCAN_TOLERANCE: f64 = 2e-6;

/// Channel counts: below, at and above one block, and a multi-block count with a tail.
const CHANNEL_COUNTS: [usize; 7] = [1, 3, 15, 16, 17, 33, 100];
/// State sizes: the minimum, the usual 16, and one past a state tile.
const STATE_SIZES: [usize; 3] = [1, 16, 17];
/// Token counts: one, a few, and around the 64-token tile.
const TOKEN_COUNTS: [usize; 5] = [1, 5, 64, 65, 130];

/// xorshift64* generator, enough for reproducible test data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A uniform value in [lo, hi).
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }

    fn fill(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.range(lo, hi)).collect()
    }
}

/// Scan inputs laid out as the forward pass lays them out: B and C after `dt_rank` values in
/// each `bc` row, and z in the second half of each `xz` row.
struct Case {
    d_inner: usize,
    d_state: usize,
    n_tokens: usize,
    x: Vec<f32>,
    dt: Vec<f32>,
    a: Vec<f32>,
    bc: Vec<f32>,
    d: Vec<f32>,
    xz: Vec<f32>,
    state: Vec<f32>,
}

const DT_RANK: usize = 3;

impl Case {
    fn random(d_inner: usize, d_state: usize, n_tokens: usize, seed: u64) -> Self {
        let mut rng = Rng(seed | 1);
        let bc_stride = DT_RANK + 2 * d_state;
        let mut dt = rng.fill(n_tokens * d_inner, 0.001, 0.5);
        // A few large steps drive dt * A far below exp's normal range.
        for v in dt.iter_mut().step_by(7) {
            *v = rng.range(5.0, 200.0);
        }
        Self {
            d_inner,
            d_state,
            n_tokens,
            x: rng.fill(n_tokens * d_inner, -2.0, 2.0),
            dt,
            // A = -exp(A_log) with A_log in [0, ln 16], as Mamba initialises it.
            a: (0..d_inner * d_state).map(|_| -rng.range(0.0, 16f32.ln()).exp()).collect(),
            bc: rng.fill(n_tokens * bc_stride, -1.0, 1.0),
            d: rng.fill(d_inner, -1.0, 1.0),
            xz: rng.fill(n_tokens * 2 * d_inner, -4.0, 4.0),
            state: rng.fill(d_inner * d_state, -1.0, 1.0),
        }
    }

    fn inputs(&self) -> ScanInputs<'_> {
        ScanInputs {
            d_inner: self.d_inner,
            d_state: self.d_state,
            x: &self.x,
            dt: &self.dt,
            a: &self.a,
            bc: &self.bc,
            bc_stride: DT_RANK + 2 * self.d_state,
            b_offset: DT_RANK,
            c_offset: DT_RANK + self.d_state,
            d: &self.d,
            z: &self.xz[self.d_inner..],
            z_stride: 2 * self.d_inner,
        }
    }

    /// Runs `scan` on a copy of the state and returns the outputs and the final state.
    fn run(&self, scan: impl FnOnce(&ScanInputs<'_>, &mut [f32], &mut [f32])) -> (Vec<f32>, Vec<f32>) {
        let mut state = self.state.clone();
        let mut y = vec![f32::NAN; self.n_tokens * self.d_inner];
        scan(&self.inputs(), &mut state, &mut y);
        (y, state)
    }

    fn name(&self) -> String {
        format!("d_inner {} d_state {} n_tokens {}", self.d_inner, self.d_state, self.n_tokens)
    }
}

fn every_case() -> impl Iterator<Item = Case> {
    let mut seed = 0;
    CHANNEL_COUNTS.into_iter().flat_map(move |d_inner| {
        STATE_SIZES.into_iter().flat_map(move |d_state| {
            TOKEN_COUNTS.into_iter().map(move |n_tokens| {
                seed += 1;
                Case::random(d_inner, d_state, n_tokens, seed * 0x9e37_79b9 + d_inner as u64)
            })
        })
    })
}

fn relative_l2(got: &[f32], expected: &[f32]) -> f64 {
    let mut diff = 0.0f64;
    let mut norm = 0.0f64;
    for (&g, &e) in got.iter().zip(expected) {
        diff += (g as f64 - e as f64).powi(2);
        norm += (e as f64).powi(2);
    }
    (diff / norm.max(f64::MIN_POSITIVE)).sqrt()
}

fn assert_bits_equal(got: &[f32], expected: &[f32], what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}: length");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert_eq!(g.to_bits(), e.to_bits(), "{what}: index {i}: {g:e} vs {e:e}");
    }
}

#[test]
fn fast_scan_matches_reference() {
    let mut worst = 0.0f64;
    for case in every_case() {
        let (y_ref, state_ref) = case.run(selective_scan);
        let (y, state) = case.run(selective_scan_fast);
        assert!(y.iter().chain(&state).all(|v| v.is_finite()), "{}: non-finite output", case.name());
        let err_y = relative_l2(&y, &y_ref);
        let err_state = relative_l2(&state, &state_ref);
        assert!(err_y <= FAST_SCAN_TOLERANCE, "{}: y relative L2 {err_y:.3e}", case.name());
        assert!(err_state <= FAST_SCAN_TOLERANCE, "{}: state relative L2 {err_state:.3e}", case.name());
        worst = worst.max(err_y).max(err_state);
    }
    eprintln!("fast scan: worst relative L2 against the reference {worst:.3e}");
}

#[test]
fn every_kernel_gives_same_bits() {
    let kernels: Vec<ScanKernel> = ScanKernel::ALL.into_iter().filter(|k| k.is_available()).collect();
    eprintln!("scan kernels available on this CPU: {kernels:?}");
    assert!(kernels.contains(&ScanKernel::Portable));
    for case in every_case() {
        let (y_portable, state_portable) = case.run(|i, s, y| selective_scan_fast_with(ScanKernel::Portable, i, s, y));
        for &kernel in &kernels {
            let (y, state) = case.run(|i, s, y| selective_scan_fast_with(kernel, i, s, y));
            assert_bits_equal(&y, &y_portable, &format!("{} {kernel:?} y", case.name()));
            assert_bits_equal(&state, &state_portable, &format!("{} {kernel:?} state", case.name()));
        }
    }
}

#[test]
fn channel_split_gives_same_bits() {
    for case in every_case().filter(|c| c.d_inner > SCAN_BLOCK) {
        let (y_whole, state_whole) = case.run(selective_scan_fast);
        let n_blocks = case.d_inner.div_ceil(SCAN_BLOCK);
        for parts in [2, 3, n_blocks] {
            let (y, state) = case.run(|inputs, state, y| {
                for part in 0..parts {
                    let blocks = part * n_blocks / parts..(part + 1) * n_blocks / parts;
                    let channels = blocks.start * SCAN_BLOCK..(blocks.end * SCAN_BLOCK).min(case.d_inner);
                    let rows = &mut state[channels.start * case.d_state..channels.end * case.d_state];
                    let mut emit = |t: usize, c0: usize, values: &[f32]| {
                        assert!(channels.contains(&c0), "emitted channel {c0} outside {channels:?}");
                        y[t * case.d_inner + c0..][..values.len()].copy_from_slice(values);
                    };
                    selective_scan_fast_channels(inputs, case.n_tokens, channels.clone(), rows, &mut emit);
                }
            });
            assert_bits_equal(&y, &y_whole, &format!("{} in {parts} parts: y", case.name()));
            assert_bits_equal(&state, &state_whole, &format!("{} in {parts} parts: state", case.name()));
        }
    }
}

#[test]
fn token_chunks_give_same_state_bits() {
    let case = Case::random(37, 17, 130, 42);
    let (y_whole, state_whole) = case.run(selective_scan_fast);
    let d_inner = case.d_inner;
    let bc_stride = DT_RANK + 2 * case.d_state;
    for chunk in [1, 7, 64] {
        let mut state = case.state.clone();
        let mut y = vec![0.0; y_whole.len()];
        for t0 in (0..case.n_tokens).step_by(chunk) {
            let t1 = (t0 + chunk).min(case.n_tokens);
            let full = case.inputs();
            let inputs = ScanInputs {
                x: &full.x[t0 * d_inner..],
                dt: &full.dt[t0 * d_inner..],
                bc: &full.bc[t0 * bc_stride..],
                z: &full.z[t0 * 2 * d_inner..],
                ..full
            };
            selective_scan_fast(&inputs, &mut state, &mut y[t0 * d_inner..t1 * d_inner]);
        }
        assert_bits_equal(&state, &state_whole, &format!("chunks of {chunk}: state"));
        if chunk == 1 {
            // A one-token step adds h * C over the state in lanes, then the lanes, so only
            // the rounding of y differs from the prefill path.
            let error = relative_l2(&y, &y_whole);
            assert!(error < 1e-6, "chunks of 1: y is {error:e} from the whole sequence's");
        } else {
            assert_bits_equal(&y, &y_whole, &format!("chunks of {chunk}: y"));
        }
    }
}

#[test]
fn huge_steps_stay_finite() {
    let mut case = Case::random(19, 16, 9, 7);
    case.dt.fill(1.0e6);
    let (y, state) = case.run(selective_scan_fast);
    assert!(y.iter().chain(&state).all(|v| v.is_finite()), "non-finite output with dt = 1e6");
}

#[test]
#[should_panic(expected = "multiple of")]
fn misaligned_channel_range_is_rejected() {
    let case = Case::random(40, 4, 2, 3);
    let mut state = vec![0.0; 20 * 4];
    selective_scan_fast_channels(&case.inputs(), 2, 3..23, &mut state, &mut |_, _, _| {});
}

#[test]
fn split_conv_gives_same_bits() {
    let mut rng = Rng(11);
    for d_conv in 1..=4 {
        for d_inner in [1usize, 5, 33] {
            let n = 9;
            let shape = ConvShape { d_inner, d_conv, x_stride: 2 * d_inner };
            let x = rng.fill(n * 2 * d_inner, -1.0, 1.0);
            let weight = rng.fill(d_inner * d_conv, -1.0, 1.0);
            let bias = rng.fill(d_inner, -1.0, 1.0);
            let state0 = rng.fill(d_inner * (d_conv - 1), -1.0, 1.0);

            let mut state_ref = state0.clone();
            let mut out_ref = vec![0.0; n * d_inner];
            causal_conv1d(shape, &mut state_ref, &x, &weight, Some(&bias), &mut out_ref);

            for split in [0, 1, 4, n] {
                let mut out = vec![0.0; n * d_inner];
                let (first, second) = out.split_at_mut(split * d_inner);
                causal_conv1d_tokens(shape, &state0, &x, &weight, Some(&bias), 0..split, first);
                causal_conv1d_tokens(shape, &state0, &x, &weight, Some(&bias), split..n, second);
                let mut state = state0.clone();
                causal_conv1d_advance(shape, &mut state, &x, n);
                let what = format!("d_conv {d_conv} d_inner {d_inner} split at {split}");
                assert_bits_equal(&out, &out_ref, &format!("{what}: out"));
                assert_bits_equal(&state, &state_ref, &format!("{what}: state"));
            }
        }
    }
}
