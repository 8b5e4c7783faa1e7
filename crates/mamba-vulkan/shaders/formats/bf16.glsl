// Tile decoding for BF16 weights; see weights.glsl.
const uint TILE_BYTES = 64u;
float tile_scale(uint tile_byte) { return 1.0; }
float tile_value(uint tile_byte, uint j) { return uintBitsToFloat(load_u16(tile_byte + 2u * j) << 16); }
