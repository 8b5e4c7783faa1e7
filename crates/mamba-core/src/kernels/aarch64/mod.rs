//! aarch64 kernels in one tier: [`neon`] (Advanced SIMD, 128-bit).
//!
//! The tier shares the loops in `kernels::generic` with the x86-64 tiers. Weights are
//! decoded in registers, or for matmul into a stack buffer of a few KiB, and multiplied
//! with the f32 inputs by FMA. The inputs are never quantized, so the integer dot product
//! instructions (`sdot`, the `dotprod` feature) have no use here: they need 8-bit inputs on
//! both sides.

pub mod neon;
