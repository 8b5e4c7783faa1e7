// y[t, r] = sum_c W[r, c] * x[t, c] for up to TOKENS input rows per workgroup, with an
// optional epilogue. One workgroup computes ROWS weight rows for TOKENS tokens, with LANES
// invocations per row. Each invocation takes every LANES-th tile of its row, decodes it once
// and applies it to all the tokens, then the lanes of a row add their partial sums in
// shared memory.
//
// Dispatch: [min(row_groups, MAX_GROUPS_X), ceil(n_tokens / TOKENS),
// ceil(row_groups / MAX_GROUPS_X)] with row_groups = ceil(rows / ROWS).

layout(local_size_x = 64) in;

layout(std430, set = 0, binding = 1) readonly buffer Input { float x[]; };
layout(std430, set = 0, binding = 2) buffer Output { float y[]; };
layout(std430, set = 0, binding = 3) readonly buffer Bias { float bias[]; };

layout(push_constant) uniform Params {
    uint rows;
    uint cols;
    uint n_tokens;
    uint row_bytes;
    // x[t, c] is x[x_offset + t * x_stride + c].
    uint x_offset;
    uint x_stride;
    // y[t, r] is y[y_offset + t * y_stride + r].
    uint y_offset;
    uint y_stride;
    // 0: store; 1: add to y (residual); 2: store softplus(sum + bias[r]).
    uint epilogue;
} p;

const uint GROUP = 64u;
const uint LANES = 8u;
const uint ROWS = GROUP / LANES;
const uint TOKENS = 4u;
const uint MAX_GROUPS_X = 65535u;

shared vec4 partial[GROUP];

float softplus(float v) {
    // ln(1 + e^v) without overflow; v itself above 20, as PyTorch's default threshold.
    float value = max(v, 0.0) + log(1.0 + exp(-abs(v)));
    return v > 20.0 ? v : value;
}

void main() {
    uint lid = gl_LocalInvocationID.x;
    uint lane = lid % LANES;
    uint r = (gl_WorkGroupID.x + gl_WorkGroupID.z * MAX_GROUPS_X) * ROWS + lid / LANES;
    uint t0 = gl_WorkGroupID.y * TOKENS;
    // Invocations past the last row compute nothing but still reach every barrier.
    uint n_tiles = r < p.rows ? (p.cols + TILE - 1u) / TILE : 0u;
    uint row_byte = r * p.row_bytes;

    vec4 acc = vec4(0.0);
    for (uint tile = lane; tile < n_tiles; tile += LANES) {
        uint tile_byte = row_byte + tile * TILE_BYTES;
        float scale = tile_scale(tile_byte);
        uint c0 = tile * TILE;
        uint count = min(TILE, p.cols - c0);
        for (uint j = 0u; j < count; j++) {
            float weight = tile_value(tile_byte, j) * scale;
            uint column = p.x_offset + c0 + j;
            vec4 inputs = vec4(0.0);
            for (uint k = 0u; k < TOKENS; k++) {
                if (t0 + k < p.n_tokens) {
                    inputs[k] = x[column + (t0 + k) * p.x_stride];
                }
            }
            acc += weight * inputs;
        }
    }

    partial[lid] = acc;
    barrier();
    for (uint stride = LANES / 2u; stride > 0u; stride >>= 1) {
        if (lane < stride) {
            partial[lid] += partial[lid + stride];
        }
        barrier();
    }

    // Lane k of a row writes token t0 + k; TOKENS <= LANES.
    if (r < p.rows && lane < TOKENS && t0 + lane < p.n_tokens) {
        float sum = partial[lid - lane][lane];
        uint at = p.y_offset + (t0 + lane) * p.y_stride + r;
        if (p.epilogue == 1u) {
            y[at] += sum;
        } else if (p.epilogue == 2u) {
            y[at] = softplus(sum + bias[r]);
        } else {
            y[at] = sum;
        }
    }
}
