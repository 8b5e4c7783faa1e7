// normed[row, i] = weight[i] * (x[row, i] * (1 / sqrt(mean(x[row, :]^2) + eps))) for rows
// first_row.. of x. One workgroup per row.
//
// Dispatch: [n_rows, 1, 1].

layout(local_size_x = 64) in;

layout(std430, set = 0, binding = 0) readonly buffer Input { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer Weight { float weight[]; };
layout(std430, set = 0, binding = 2) buffer Normed { float normed[]; };

layout(push_constant) uniform Params {
    uint d;
    uint first_row;
    float eps;
} p;

const uint GROUP = 64u;

shared float partial[GROUP];

void main() {
    uint lid = gl_LocalInvocationID.x;
    uint base = (p.first_row + gl_WorkGroupID.x) * p.d;

    float sum_sq = 0.0;
    for (uint i = lid; i < p.d; i += GROUP) {
        float v = x[base + i];
        sum_sq += v * v;
    }
    partial[lid] = sum_sq;
    barrier();
    for (uint stride = GROUP / 2u; stride > 0u; stride >>= 1) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        barrier();
    }

    float scale = 1.0 / sqrt(partial[0] / float(p.d) + p.eps);
    for (uint i = lid; i < p.d; i += GROUP) {
        normed[base + i] = weight[i] * (x[base + i] * scale);
    }
}
