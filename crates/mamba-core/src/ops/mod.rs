//! The non-matrix operations of a Mamba layer, each as a plain scalar reference.
//!
//! Shapes are written row-major with the sequence axis first: `[n_tokens, d_inner]` means
//! `n_tokens` rows of `d_inner` channels.

pub mod activation;
pub mod conv1d;
pub mod fast_math;
pub mod norm;
pub mod ssd;
pub mod ssm_scan;
