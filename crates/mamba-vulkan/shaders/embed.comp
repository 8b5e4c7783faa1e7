// hidden[t, :] = row tokens[t] of the embedding matrix, decoded to f32. One invocation
// decodes one tile of one token's row. Token ids are checked on the host.
//
// Dispatch: [ceil(ceil(cols / TILE) / 64), n_tokens, 1].

layout(local_size_x = 64) in;

layout(std430, set = 0, binding = 1) readonly buffer Tokens { uint tokens[]; };
layout(std430, set = 0, binding = 2) buffer Hidden { float hidden[]; };

layout(push_constant) uniform Params {
    uint cols;
    uint n_tokens;
    uint row_bytes;
} p;

void main() {
    uint tile = gl_GlobalInvocationID.x;
    uint t = gl_GlobalInvocationID.y;
    uint n_tiles = (p.cols + TILE - 1u) / TILE;
    if (tile >= n_tiles || t >= p.n_tokens) {
        return;
    }
    uint tile_byte = tokens[t] * p.row_bytes + tile * TILE_BYTES;
    float scale = tile_scale(tile_byte);
    uint c0 = tile * TILE;
    uint count = min(TILE, p.cols - c0);
    for (uint j = 0u; j < count; j++) {
        hidden[t * p.cols + c0 + j] = tile_value(tile_byte, j) * scale;
    }
}
