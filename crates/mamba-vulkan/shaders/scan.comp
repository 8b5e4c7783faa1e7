// Selective scan of Mamba-1 with skip connection and SiLU(z) gate, for a step (one token)
// or a prefill chunk. One invocation walks the whole chunk for one channel c, with h the
// d_state values of the channel's SSM state:
//
//   h = exp(dt * A[c]) * h + (dt * B[t]) * x
//   y[t, c] = (sum_s C[t, s] * h[s] + D[c] * x) * silu(z[t, c])
//
// Dispatch: [ceil(d_inner / 64), 1, 1].

layout(local_size_x = 64) in;

layout(std430, set = 0, binding = 0) readonly buffer Xc { float xc[]; };
layout(std430, set = 0, binding = 1) readonly buffer Dt { float dt[]; };
layout(std430, set = 0, binding = 2) readonly buffer A { float a[]; };
layout(std430, set = 0, binding = 3) readonly buffer Dbc { float dbc[]; };
layout(std430, set = 0, binding = 4) readonly buffer Skip { float skip_d[]; };
layout(std430, set = 0, binding = 5) readonly buffer Xz { float xz[]; };
layout(std430, set = 0, binding = 6) buffer State { float state[]; };
layout(std430, set = 0, binding = 7) buffer Y { float y[]; };

layout(push_constant) uniform Params {
    uint d_inner;
    uint d_state;
    uint n_tokens;
    // B[t, s] is dbc[t * dbc_stride + b_offset + s], C likewise at c_offset.
    uint dbc_stride;
    uint b_offset;
    uint c_offset;
    // z[t, c] is xz[z_offset + t * z_stride + c].
    uint z_offset;
    uint z_stride;
    // Start of this layer's SSM state [d_inner, d_state] in the state buffer.
    uint state_offset;
} p;

float silu(float v) {
    return v * (1.0 / (1.0 + exp(-v)));
}

void main() {
    uint c = gl_GlobalInvocationID.x;
    if (c >= p.d_inner) {
        return;
    }
    uint h0 = p.state_offset + c * p.d_state;
    uint a0 = c * p.d_state;

    for (uint t = 0u; t < p.n_tokens; t++) {
        float dt_tc = dt[t * p.d_inner + c];
        float x_tc = xc[t * p.d_inner + c];
        uint row = t * p.dbc_stride;

        float acc = 0.0;
        for (uint s = 0u; s < p.d_state; s++) {
            float decay = exp(dt_tc * a[a0 + s]);
            float h = decay * state[h0 + s] + (dt_tc * dbc[row + p.b_offset + s]) * x_tc;
            state[h0 + s] = h;
            acc += h * dbc[row + p.c_offset + s];
        }

        float out_value = acc + x_tc * skip_d[c];
        y[t * p.d_inner + c] = out_value * silu(xz[p.z_offset + t * p.z_stride + c]);
    }
}
