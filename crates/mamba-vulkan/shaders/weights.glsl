// Weight decoding from the raw GGUF bytes of one matrix in binding 0.
//
// The bytes are read as 32-bit words, so no 8-bit or 16-bit storage feature is needed and
// blocks may start at any even byte offset. A row is split into tiles of 32 columns: one
// Q8_0 or Q4_0 block, or 32 float values (the last tile of a float row may be shorter).
// Weight j of a tile is tile_value(tile_byte, j) * tile_scale(tile_byte), which gives the
// same f32 value as the CPU's dequantize_row. The build inserts one file of formats/ after
// this one, which defines TILE_BYTES, tile_scale and tile_value.

layout(std430, set = 0, binding = 0) readonly buffer Weights { uint w_words[]; };

const uint TILE = 32u;

uint load_u8(uint byte_offset) {
    return (w_words[byte_offset >> 2] >> ((byte_offset & 3u) * 8u)) & 0xffu;
}

// byte_offset must be even.
uint load_u16(uint byte_offset) {
    uint word = w_words[byte_offset >> 2];
    return (byte_offset & 2u) != 0u ? (word >> 16) : (word & 0xffffu);
}

// Exact IEEE half to float conversion, subnormals included. It uses integer operations
// instead of unpackHalf2x16, which some drivers flush to zero on subnormal input.
float half_bits_to_float(uint bits) {
    uint sign = (bits & 0x8000u) << 16;
    uint exponent = (bits >> 10) & 0x1fu;
    uint mantissa = bits & 0x3ffu;
    if (exponent == 0u) {
        // Zero or subnormal: mantissa * 2^-24, exact in f32.
        return uintBitsToFloat(sign | floatBitsToUint(float(mantissa) * 5.9604645e-8));
    }
    if (exponent == 31u) {
        return uintBitsToFloat(sign | 0x7f800000u | (mantissa << 13));
    }
    return uintBitsToFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

