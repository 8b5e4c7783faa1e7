//! aarch64 kernels: [`neon`] (Advanced SIMD, 128-bit) for every weight format with f32
//! inputs, and the Q8_0 and Q4_0 kernels with 8-bit inputs in [`int8`].
//!
//! The f32 tier shares the loops in `kernels::generic` with the x86-64 tiers. Weights are
//! decoded in registers, or for matmul into a stack buffer of a few KiB, and multiplied
//! with the f32 inputs by FMA. The [`int8`] tiers round the inputs to 8 bits and multiply
//! them with the weight quants in integer instructions: `sdot` where the CPU has the
//! `dotprod` extension, widening multiplies otherwise.

pub mod int8;
pub mod neon;
