//! The selective scan of Mamba-1: the input-dependent linear recurrence over the SSM state.

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
    assert!(x.len() >= n_tokens * d_inner && dt.len() >= n_tokens * d_inner, "selective_scan: x/dt");
    assert!(a.len() == d_inner * d_state && d.len() == d_inner, "selective_scan: A/D");
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
