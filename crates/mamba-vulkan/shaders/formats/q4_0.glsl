// Tile decoding for Q4_0 weights; see weights.glsl.
// Block: f16 scale d, then 16 bytes; byte j has weight j in its low nibble and weight
// j + 16 in its high nibble; weight = (q - 8) * d.
const uint TILE_BYTES = 18u;
float tile_scale(uint tile_byte) { return half_bits_to_float(load_u16(tile_byte)); }
float tile_value(uint tile_byte, uint j) {
    uint packed_byte = load_u8(tile_byte + 2u + (j & 15u));
    uint q = j < 16u ? (packed_byte & 15u) : (packed_byte >> 4);
    return float(int(q) - 8);
}
