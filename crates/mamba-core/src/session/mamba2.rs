//! The forward pass of one Mamba-2 layer over a chunk of tokens.

use super::{ACTIVATION_COST, ChunkBuffers, Split, conv_step, par_matmul};
use crate::model::{Config, Mamba2Layer};
use crate::ops::conv1d::{ConvShape, causal_conv1d_advance, causal_conv1d_tokens};
use crate::ops::fast_math::{silu_slice, softplus};
use crate::ops::norm::{gated_rmsnorm, rmsnorm_rows};
use crate::ops::ssd::{SsdInputs, ssd_scan};
use crate::pool::DisjointMut;

/// Runs one Mamba-2 layer over `n` tokens and adds its output to the residual stream.
///
/// The layer as `transformers`' `Mamba2Mixer` computes it: in_proj gives each row
/// `[z | x B C | dt]`; a causal depthwise conv and SiLU over `x B C`; dt = softplus(dt +
/// dt_bias) clamped to `dt_min..=dt_max`; the per-head scan; the gated RMSNorm; out_proj.
pub(super) fn mamba2_layer(
    c: &Config,
    layer: &Mamba2Layer<'_>,
    par: Split<'_>,
    n: usize,
    layer_state: &mut [f32],
    bufs: &mut ChunkBuffers<'_>,
) {
    let ChunkBuffers { hidden, normed, xz, xc, dt, y, out, .. } = bufs;
    let conv_dim = c.conv_dim();
    let in_rows = c.in_proj_rows();
    let (conv_state, ssm_state) = layer_state.split_at_mut(conv_dim * (c.d_conv - 1));

    // Pre-norm and in_proj.
    rmsnorm_rows(hidden, layer.attn_norm, c.rms_eps, normed);
    par_matmul(par, &layer.ssm_in, normed, xz);

    // Causal conv over x, B and C, then SiLU, then the conv state: split over channels for
    // one token, over positions for several.
    let shape = ConvShape { d_inner: conv_dim, d_conv: c.d_conv, x_stride: in_rows };
    let xbc_in = &xz[c.d_inner..];
    if n == 1 {
        conv_step(par, shape, conv_state, xbc_in, layer.conv_weight, layer.conv_bias, xc);
    } else {
        let xc_out = DisjointMut::new(xc);
        let par = par.for_work(n * conv_dim * (c.d_conv + ACTIVATION_COST));
        par.run(n, &|tokens| {
            // SAFETY: `run` passes disjoint token ranges, so these rows are disjoint.
            let out = unsafe { xc_out.slice(tokens.start * conv_dim..tokens.end * conv_dim) };
            causal_conv1d_tokens(shape, &*conv_state, xbc_in, layer.conv_weight, layer.conv_bias, tokens, out);
            silu_slice(out);
        });
        causal_conv1d_advance(shape, conv_state, xbc_in, n);
    }

    // Step sizes: one per head and token.
    let dt_offset = c.d_inner + conv_dim;
    for (row, dst) in xz.chunks_exact(in_rows).zip(dt.chunks_exact_mut(c.n_head)) {
        for ((v, &raw), &bias) in dst.iter_mut().zip(&row[dt_offset..]).zip(layer.dt_bias) {
            *v = softplus(raw + bias).clamp(c.dt_min, c.dt_max);
        }
    }

    // The scan, split over heads, each with its own rows of the SSM state.
    let inputs = SsdInputs {
        n_head: c.n_head,
        head_dim: c.head_dim,
        d_state: c.d_state,
        n_group: c.n_group,
        xbc: xc,
        x_stride: conv_dim,
        dt,
        a: layer.a,
        d: layer.d,
    };
    {
        let head_len = c.head_dim * c.d_state;
        let states = DisjointMut::new(ssm_state);
        let y_out = DisjointMut::new(y);
        // One state update is about one multiply-add once vectorised (an estimate).
        let par = par.for_work(n * c.d_inner * c.d_state);
        par.run(c.n_head, &|heads| {
            // SAFETY: `run` passes disjoint head ranges, so their state rows are disjoint.
            let state = unsafe { states.slice(heads.start * head_len..heads.end * head_len) };
            let mut emit = |t: usize, channel: usize, values: &[f32]| {
                let at = t * c.d_inner + channel;
                // SAFETY: the channels of a head lie inside this task's heads, so the window
                // of row t is disjoint from every other task's.
                unsafe { y_out.slice(at..at + values.len()) }.copy_from_slice(values);
            };
            ssd_scan(&inputs, n, heads, state, &mut emit);
        });
    }

    // Gate with z and normalise in groups.
    for (y_row, xz_row) in y.chunks_exact_mut(c.d_inner).zip(xz.chunks_exact(in_rows)) {
        gated_rmsnorm(y_row, &xz_row[..c.d_inner], layer.norm, c.n_group, c.rms_eps);
    }

    // out_proj and residual.
    par_matmul(par, &layer.ssm_out, y, out);
    for (h, &o) in hidden.iter_mut().zip(out.iter()) {
        *h += o;
    }
}
