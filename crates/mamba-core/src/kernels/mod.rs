//! Matrix-vector and matrix-matrix products over every weight format.
//!
//! STUB: filled in by the kernel work.
