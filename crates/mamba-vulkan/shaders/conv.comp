// Causal depthwise conv over x with the carried conv state, then SiLU, for a step (one
// token) or a prefill chunk. One invocation walks the whole chunk for one channel c:
//
//   xc[t, c] = silu(bias[c] + sum_k weight[c, k] * window[t + k])
//
// where the window of channel c is its d_conv - 1 carried inputs (oldest first) followed by
// x[0.., c]. The invocation then replaces the state with the last d_conv - 1 inputs.
//
// Dispatch: [ceil(d_inner / 64), 1, 1].

layout(local_size_x = 64) in;

layout(std430, set = 0, binding = 0) readonly buffer Xz { float xz[]; };
layout(std430, set = 0, binding = 1) readonly buffer ConvWeight { float conv_weight[]; };
layout(std430, set = 0, binding = 2) readonly buffer ConvBias { float conv_bias[]; };
layout(std430, set = 0, binding = 3) buffer State { float state[]; };
layout(std430, set = 0, binding = 4) buffer Xc { float xc[]; };

layout(push_constant) uniform Params {
    uint d_inner;
    uint d_conv;
    uint n_tokens;
    // x[t, c] is xz[t * x_stride + c].
    uint x_stride;
    // Start of this layer's conv state [d_inner, d_conv - 1] in the state buffer.
    uint state_offset;
    uint has_bias;
} p;

float silu(float v) {
    return v * (1.0 / (1.0 + exp(-v)));
}

float window_at(uint c, uint history, uint i) {
    return i < history ? state[p.state_offset + c * history + i] : xz[(i - history) * p.x_stride + c];
}

void main() {
    uint c = gl_GlobalInvocationID.x;
    if (c >= p.d_inner) {
        return;
    }
    uint history = p.d_conv - 1u;

    for (uint t = 0u; t < p.n_tokens; t++) {
        float sum = p.has_bias != 0u ? conv_bias[c] : 0.0;
        for (uint k = 0u; k < p.d_conv; k++) {
            sum += conv_weight[c * p.d_conv + k] * window_at(c, history, t + k);
        }
        xc[t * p.d_inner + c] = silu(sum);
    }

    // Index order keeps reads of the old state ahead of the writes.
    for (uint j = 0u; j < history; j++) {
        float value = window_at(c, history, p.n_tokens + j);
        state[p.state_offset + c * history + j] = value;
    }
}
