// Tile decoding for F32 weights; see weights.glsl.
const uint TILE_BYTES = 128u;
float tile_scale(uint tile_byte) { return 1.0; }
float tile_value(uint tile_byte, uint j) { return uintBitsToFloat(w_words[(tile_byte >> 2) + j]); }
