//! x86-64 kernels in two tiers: [`avx2`] (AVX2, FMA, F16C) and [`avx512`] (AVX-512F, FMA,
//! F16C), and the Q8_0 and Q4_0 kernels with 8-bit inputs in [`int8`].
//!
//! Both f32 tiers share the loops in `kernels::generic` with the aarch64 tier. Weights are
//! decoded in registers, or for matmul into a stack buffer of a few KiB, and multiplied
//! with the f32 inputs by FMA. [`crate::kernels::matvec`] and [`crate::kernels::matmul`]
//! pick the best tier this CPU supports; call a tier's functions directly to force it.

pub mod avx2;
pub mod avx512;
pub mod int8;
