// Tile decoding for Q8_0 weights; see weights.glsl.
// Block: f16 scale d, then 32 signed 8-bit quants q; weight = q * d.
const uint TILE_BYTES = 34u;
float tile_scale(uint tile_byte) { return half_bits_to_float(load_u16(tile_byte)); }
float tile_value(uint tile_byte, uint j) {
    int q = int(load_u8(tile_byte + 2u + j) << 24) >> 24;
    return float(q);
}
