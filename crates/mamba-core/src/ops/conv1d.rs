//! Causal depthwise 1-D convolution with a carried state, as Mamba applies it to x.

/// Shapes of one causal conv call.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    /// Number of channels.
    pub d_inner: usize,
    /// Kernel width; the state carries the previous `d_conv - 1` inputs per channel.
    pub d_conv: usize,
    /// Distance between the starts of consecutive input rows in `x` (at least `d_inner`).
    pub x_stride: usize,
}

/// Runs the causal conv over `n_tokens` input rows and advances the state.
///
/// `out[t, c] = bias[c] + sum_k weight[c, k] * window[t + k]`, where the window of channel `c`
/// is its `d_conv - 1` carried inputs (oldest first) followed by `x[0.., c]`. This equals
/// PyTorch's `Conv1d(groups = d_inner, padding = d_conv - 1)` truncated to the first
/// `n_tokens` outputs when the state starts at zero.
///
/// * `state`: `[d_inner, d_conv - 1]`, replaced by the last `d_conv - 1` inputs.
/// * `x`: `n_tokens` rows, row `t` at `x[t * x_stride..][..d_inner]`.
/// * `weight`: `[d_inner, d_conv]`; `bias`: `[d_inner]`, or `None` for no bias.
/// * `out`: `[n_tokens, d_inner]`.
///
/// # Panics
/// Panics when a slice is shorter than its shape requires or `d_conv` is 0.
pub fn causal_conv1d(
    shape: ConvShape,
    state: &mut [f32],
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let ConvShape { d_inner, d_conv, x_stride } = shape;
    assert!(d_conv > 0, "causal_conv1d: d_conv must be at least 1");
    assert!(x_stride >= d_inner, "causal_conv1d: x_stride {x_stride} is below d_inner {d_inner}");
    let n_tokens = out.len() / d_inner.max(1);
    let history = d_conv - 1;
    assert_eq!(out.len(), n_tokens * d_inner, "causal_conv1d: out is not whole rows");
    assert_eq!(state.len(), d_inner * history, "causal_conv1d: state length");
    assert_eq!(weight.len(), d_inner * d_conv, "causal_conv1d: weight length");
    assert!(bias.is_none_or(|b| b.len() == d_inner), "causal_conv1d: bias length");
    if n_tokens == 0 {
        return;
    }
    assert!(x.len() >= (n_tokens - 1) * x_stride + d_inner, "causal_conv1d: x too short");

    // The input at window position `i` of channel `c`: carried state first, then x.
    let input = |state: &[f32], c: usize, i: usize| -> f32 {
        if i < history { state[c * history + i] } else { x[(i - history) * x_stride + c] }
    };

    // Outputs.
    for t in 0..n_tokens {
        for c in 0..d_inner {
            let w = &weight[c * d_conv..(c + 1) * d_conv];
            let mut sum = bias.map_or(0.0, |b| b[c]);
            for (k, &wk) in w.iter().enumerate() {
                sum += wk * input(state, c, t + k);
            }
            out[t * d_inner + c] = sum;
        }
    }

    // New state: the last `history` window entries. Index order keeps reads ahead of writes.
    for c in 0..d_inner {
        for j in 0..history {
            let value = input(state, c, n_tokens + j);
            state[c * history + j] = value;
        }
    }
}

/// Computes the outputs of [`causal_conv1d`] for the positions in `tokens` without advancing
/// the state, so that several threads can each take a range of positions. Call
/// [`causal_conv1d_advance`] once all ranges are done.
///
/// `x` and `state` are the whole chunk's input and the state before it, as for
/// [`causal_conv1d`]; `out` is `[tokens.len(), d_inner]`. Each output equals the one
/// [`causal_conv1d`] computes, bit for bit.
///
/// # Panics
/// Panics when a slice is shorter than its shape requires or `d_conv` is 0.
pub fn causal_conv1d_tokens(
    shape: ConvShape,
    state: &[f32],
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    tokens: core::ops::Range<usize>,
    out: &mut [f32],
) {
    let ConvShape { d_inner, d_conv, x_stride } = shape;
    assert!(d_conv > 0, "causal_conv1d: d_conv must be at least 1");
    assert!(x_stride >= d_inner, "causal_conv1d: x_stride {x_stride} is below d_inner {d_inner}");
    let history = d_conv - 1;
    assert_eq!(out.len(), tokens.len() * d_inner, "causal_conv1d: out is not one row per token");
    assert_eq!(state.len(), d_inner * history, "causal_conv1d: state length");
    assert_eq!(weight.len(), d_inner * d_conv, "causal_conv1d: weight length");
    assert!(bias.is_none_or(|b| b.len() == d_inner), "causal_conv1d: bias length");
    if tokens.is_empty() {
        return;
    }
    assert!(x.len() >= (tokens.end - 1) * x_stride + d_inner, "causal_conv1d: x too short");

    // Blocks of LANES channels with their weights transposed to `[k][lane]`, so the sum over k
    // runs on whole vectors of channels. Each output adds the bias and then the products in
    // k order, as the scalar loop below and `causal_conv1d` do, so the bits are the same.
    const LANES: usize = 16;
    const MAX_TAPS: usize = 8;
    let vector_channels = if d_conv <= MAX_TAPS { d_inner - d_inner % LANES } else { 0 };
    for c0 in (0..vector_channels).step_by(LANES) {
        let mut taps = [[0.0f32; LANES]; MAX_TAPS];
        for (lane, w) in weight[c0 * d_conv..(c0 + LANES) * d_conv].chunks_exact(d_conv).enumerate() {
            for (k, &wk) in w.iter().enumerate() {
                taps[k][lane] = wk;
            }
        }
        let bias_lanes: [f32; LANES] = match bias {
            Some(b) => b[c0..c0 + LANES].try_into().expect("LANES values"),
            None => [0.0; LANES],
        };
        for (t, out_row) in tokens.clone().zip(out.chunks_exact_mut(d_inner)) {
            let mut sum = bias_lanes;
            for (k, taps) in taps.iter().enumerate().take(d_conv) {
                let i = t + k;
                let mut input = [0.0f32; LANES];
                if i < history {
                    for (lane, v) in input.iter_mut().enumerate() {
                        *v = state[(c0 + lane) * history + i];
                    }
                } else {
                    input.copy_from_slice(&x[(i - history) * x_stride + c0..][..LANES]);
                }
                for lane in 0..LANES {
                    sum[lane] += taps[lane] * input[lane];
                }
            }
            out_row[c0..c0 + LANES].copy_from_slice(&sum);
        }
    }

    // The remaining channels, one at a time.
    for (t, out_row) in tokens.zip(out.chunks_exact_mut(d_inner.max(1))) {
        for (c, out_value) in out_row.iter_mut().enumerate().skip(vector_channels) {
            let w = &weight[c * d_conv..(c + 1) * d_conv];
            let mut sum = bias.map_or(0.0, |b| b[c]);
            for (k, &wk) in w.iter().enumerate() {
                let i = t + k;
                let input = if i < history { state[c * history + i] } else { x[(i - history) * x_stride + c] };
                sum += wk * input;
            }
            *out_value = sum;
        }
    }
}

/// Advances the state of [`causal_conv1d`] past `n_tokens` input rows of `x`: the state
/// becomes the last `d_conv - 1` inputs of the window.
///
/// # Panics
/// Panics when a slice is shorter than its shape requires or `d_conv` is 0.
pub fn causal_conv1d_advance(shape: ConvShape, state: &mut [f32], x: &[f32], n_tokens: usize) {
    let ConvShape { d_inner, d_conv, x_stride } = shape;
    assert!(d_conv > 0, "causal_conv1d: d_conv must be at least 1");
    assert!(x_stride >= d_inner, "causal_conv1d: x_stride {x_stride} is below d_inner {d_inner}");
    let history = d_conv - 1;
    assert_eq!(state.len(), d_inner * history, "causal_conv1d: state length");
    if n_tokens == 0 {
        return;
    }
    assert!(x.len() >= (n_tokens - 1) * x_stride + d_inner, "causal_conv1d: x too short");

    // Window position n_tokens + j; index order keeps reads of the old state ahead of writes.
    for c in 0..d_inner {
        for j in 0..history {
            let i = n_tokens + j;
            let value = if i < history { state[c * history + i] } else { x[(i - history) * x_stride + c] };
            state[c * history + j] = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct evaluation over the full sequence with zero history, for comparison.
    fn conv_full(x: &[f32], d_inner: usize, weight: &[f32], bias: &[f32], d_conv: usize) -> [f32; 64] {
        let n = x.len() / d_inner;
        let mut out = [0.0f32; 64];
        for t in 0..n {
            for c in 0..d_inner {
                let mut sum = bias[c];
                for k in 0..d_conv {
                    let src = t as isize + k as isize - (d_conv as isize - 1);
                    if src >= 0 {
                        sum += weight[c * d_conv + k] * x[src as usize * d_inner + c];
                    }
                }
                out[t * d_inner + c] = sum;
            }
        }
        out
    }

    /// The vector path of `causal_conv1d_tokens` (blocks of 16 channels, at most 8 taps)
    /// gives the same bits as `causal_conv1d`, for every token range, with and without bias,
    /// and with more taps than it takes.
    #[test]
    fn token_ranges_equal_whole_call_bits() {
        let d_inner = 37;
        let x_stride = 40;
        let n = 9;
        let x: [f32; 360] = core::array::from_fn(|i| (i as f32 * 0.731).sin());
        for d_conv in [1usize, 2, 4, 5, 9] {
            let history = d_conv - 1;
            let weight: [f32; 37 * 9] = core::array::from_fn(|i| (i as f32 * 0.173).cos());
            let weight = &weight[..d_inner * d_conv];
            let initial: [f32; 37 * 8] = core::array::from_fn(|i| (i as f32 * 0.29).sin());
            let initial = &initial[..d_inner * history];
            let bias: [f32; 37] = core::array::from_fn(|i| 0.01 * i as f32);
            for bias in [Some(&bias[..]), None] {
                let shape = ConvShape { d_inner, d_conv, x_stride };
                let mut whole_state = [0.0f32; 37 * 8];
                whole_state[..initial.len()].copy_from_slice(initial);
                let mut whole = [0.0f32; 37 * 9];
                causal_conv1d(shape, &mut whole_state[..initial.len()], &x, weight, bias, &mut whole[..n * d_inner]);
                for range in [0..n, 0..1, 2..3, 3..9] {
                    let mut out = [f32::NAN; 37 * 9];
                    let out = &mut out[..range.len() * d_inner];
                    causal_conv1d_tokens(shape, initial, &x, weight, bias, range.clone(), out);
                    for (i, (&got, &want)) in out.iter().zip(&whole[range.start * d_inner..]).enumerate() {
                        assert_eq!(got.to_bits(), want.to_bits(), "d_conv {d_conv}, tokens {range:?}, index {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn chunked_conv_equals_whole_sequence() {
        let d_inner = 3;
        let n = 7;
        for d_conv in 1..=4 {
            let x: [f32; 21] = core::array::from_fn(|i| (i as f32 * 0.37).sin());
            let weight: [f32; 12] = core::array::from_fn(|i| 0.1 * i as f32 - 0.4);
            let weight = &weight[..d_inner * d_conv];
            let bias = [0.5f32, -0.25, 0.125];
            let expected = conv_full(&x, d_inner, weight, &bias, d_conv);

            // Feed the sequence in chunks of 1, 2 and 4 tokens.
            for chunk in [1usize, 2, 4] {
                let mut state = [0.0f32; 9];
                let state = &mut state[..d_inner * (d_conv - 1)];
                let mut t = 0;
                while t < n {
                    let len = chunk.min(n - t);
                    let mut out = [0.0f32; 12];
                    let shape = ConvShape { d_inner, d_conv, x_stride: d_inner };
                    causal_conv1d(shape, state, &x[t * d_inner..], weight, Some(&bias), &mut out[..len * d_inner]);
                    for i in 0..len * d_inner {
                        let e = expected[t * d_inner + i];
                        assert!((out[i] - e).abs() < 1e-6, "d_conv {d_conv} chunk {chunk} t {t}: {} vs {e}", out[i]);
                    }
                    t += len;
                }
            }
        }
    }
}
