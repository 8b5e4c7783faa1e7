//! matvec and matmul per weight format and kernel tier, at the shapes of mamba-130m
//! (d_model 768, d_inner 1536, vocabulary 50280). The `-int8` tiers round the inputs to 8
//! bits (`kernels::int8`) and take Q8_0 and Q4_0 only.
//!
//! Throughput is in weight-input products (multiply-adds) per second: `rows * cols` for a
//! matvec and `rows * cols * m` for a matmul. A tier the CPU lacks, or a format a tier does
//! not take, is left out with a note on stderr.
//!
//! Run with, for example:
//! `cargo bench -p mamba-benches --bench kernels -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mamba_core::kernels::{int8, scalar};
use mamba_core::quant::quantize_row;
use mamba_core::{GgmlType, Matrix};

type Kernel = fn(&Matrix<'_>, &[f32], &mut [f32]);

/// A projection of mamba-130m: `rows` outputs from `cols` inputs.
struct Shape {
    name: &'static str,
    rows: usize,
    cols: usize,
}

/// The decode-step projections: in_proj, out_proj and the LM head.
const MATVEC_SHAPES: [Shape; 3] = [
    Shape {
        name: "in_proj_768x3072",
        rows: 3072,
        cols: 768,
    },
    Shape {
        name: "out_proj_1536x768",
        rows: 768,
        cols: 1536,
    },
    Shape {
        name: "lm_head_768x50280",
        rows: 50280,
        cols: 768,
    },
];

/// The prefill projections, applied to [`MATMUL_TOKENS`] input rows at once.
const MATMUL_SHAPES: [Shape; 2] = [
    Shape {
        name: "in_proj_768x3072",
        rows: 3072,
        cols: 768,
    },
    Shape {
        name: "out_proj_1536x768",
        rows: 768,
        cols: 1536,
    },
];

/// Input rows per matmul: the session's default prefill chunk.
const MATMUL_TOKENS: usize = 64;

/// One tier's kernels for one format, or `None` when the tier cannot run here.
struct Tier {
    name: &'static str,
    kernels: fn(GgmlType) -> Option<(Kernel, Kernel)>,
}

const TIERS: &[Tier] = &[
    Tier {
        name: "scalar",
        kernels: |dtype| {
            Some(match dtype {
                GgmlType::F32 => (scalar::matvec_f32, scalar::matmul_f32),
                GgmlType::F16 => (scalar::matvec_f16, scalar::matmul_f16),
                GgmlType::BF16 => (scalar::matvec_bf16, scalar::matmul_bf16),
                GgmlType::Q8_0 => (scalar::matvec_q8_0, scalar::matmul_q8_0),
                GgmlType::Q4_0 => (scalar::matvec_q4_0, scalar::matmul_q4_0),
            })
        },
    },
    #[cfg(target_arch = "x86_64")]
    Tier {
        name: "avx2",
        kernels: |dtype| {
            use mamba_core::kernels::x86_64::avx2;
            avx2::is_available().then_some(match dtype {
                GgmlType::F32 => (avx2::matvec_f32, avx2::matmul_f32),
                GgmlType::F16 => (avx2::matvec_f16, avx2::matmul_f16),
                GgmlType::BF16 => (avx2::matvec_bf16, avx2::matmul_bf16),
                GgmlType::Q8_0 => (avx2::matvec_q8_0, avx2::matmul_q8_0),
                GgmlType::Q4_0 => (avx2::matvec_q4_0, avx2::matmul_q4_0),
            })
        },
    },
    #[cfg(target_arch = "x86_64")]
    Tier {
        name: "avx512",
        kernels: |dtype| {
            use mamba_core::kernels::x86_64::avx512;
            avx512::is_available().then_some(match dtype {
                GgmlType::F32 => (avx512::matvec_f32, avx512::matmul_f32),
                GgmlType::F16 => (avx512::matvec_f16, avx512::matmul_f16),
                GgmlType::BF16 => (avx512::matvec_bf16, avx512::matmul_bf16),
                GgmlType::Q8_0 => (avx512::matvec_q8_0, avx512::matmul_q8_0),
                GgmlType::Q4_0 => (avx512::matvec_q4_0, avx512::matmul_q4_0),
            })
        },
    },
    Tier {
        name: "scalar-int8",
        kernels: |dtype| match dtype {
            GgmlType::Q8_0 => Some((int8::matvec_q8_0, int8::matmul_q8_0)),
            GgmlType::Q4_0 => Some((int8::matvec_q4_0, int8::matmul_q4_0)),
            _ => None,
        },
    },
    #[cfg(target_arch = "x86_64")]
    Tier {
        name: "avx2-int8",
        kernels: |dtype| {
            use mamba_core::kernels::x86_64::int8::avx2;
            (avx2::is_available() && matches!(dtype, GgmlType::Q8_0 | GgmlType::Q4_0)).then_some((avx2::matvec, avx2::matmul))
        },
    },
    #[cfg(target_arch = "x86_64")]
    Tier {
        name: "avx512-vnni-int8",
        kernels: |dtype| {
            use mamba_core::kernels::x86_64::int8::vnni;
            (vnni::is_available() && matches!(dtype, GgmlType::Q8_0 | GgmlType::Q4_0)).then_some((vnni::matvec, vnni::matmul))
        },
    },
    #[cfg(all(target_arch = "aarch64", target_endian = "little"))]
    Tier {
        name: "neon",
        kernels: |dtype| {
            use mamba_core::kernels::aarch64::neon;
            neon::is_available().then_some(match dtype {
                GgmlType::F32 => (neon::matvec_f32, neon::matmul_f32),
                GgmlType::F16 => (neon::matvec_f16, neon::matmul_f16),
                GgmlType::BF16 => (neon::matvec_bf16, neon::matmul_bf16),
                GgmlType::Q8_0 => (neon::matvec_q8_0, neon::matmul_q8_0),
                GgmlType::Q4_0 => (neon::matvec_q4_0, neon::matmul_q4_0),
            })
        },
    },
];

/// Returns `rows * cols` weights in `dtype` from a fixed pseudo-random sequence in [-1, 1).
fn weights(dtype: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let row_bytes = dtype
        .row_bytes(cols)
        .expect("shape columns are whole blocks");
    let mut data = vec![0u8; rows * row_bytes];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut row = vec![0.0f32; cols];
    for bytes in data.chunks_exact_mut(row_bytes) {
        for v in &mut row {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            *v = (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
        }
        quantize_row(dtype, &row, bytes).expect("values in [-1, 1) fit every format");
    }
    data
}

/// Returns `len` inputs in [-1, 1).
fn inputs(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

fn bench_matvec(c: &mut Criterion) {
    for shape in &MATVEC_SHAPES {
        let mut group = c.benchmark_group(format!("matvec/{}", shape.name));
        group.throughput(Throughput::Elements((shape.rows * shape.cols) as u64));
        for dtype in GgmlType::ALL {
            let data = weights(dtype, shape.rows, shape.cols);
            let w = Matrix::new(dtype, shape.rows, shape.cols, &data).unwrap();
            let x = inputs(shape.cols);
            let mut y = vec![0.0f32; shape.rows];
            for tier in TIERS {
                let Some((matvec, _)) = (tier.kernels)(dtype) else {
                    eprintln!("note: the {} tier does not run {dtype} here; skipped", tier.name);
                    continue;
                };
                group.bench_function(BenchmarkId::new(dtype.name(), tier.name), |b| {
                    b.iter(|| matvec(black_box(&w), black_box(&x), black_box(&mut y)));
                });
            }
        }
        group.finish();
    }
}

fn bench_matmul(c: &mut Criterion) {
    for shape in &MATMUL_SHAPES {
        let mut group = c.benchmark_group(format!("matmul_m{MATMUL_TOKENS}/{}", shape.name));
        group.throughput(Throughput::Elements(
            (shape.rows * shape.cols * MATMUL_TOKENS) as u64,
        ));
        group.sample_size(10);
        for dtype in GgmlType::ALL {
            let data = weights(dtype, shape.rows, shape.cols);
            let w = Matrix::new(dtype, shape.rows, shape.cols, &data).unwrap();
            let x = inputs(MATMUL_TOKENS * shape.cols);
            let mut y = vec![0.0f32; MATMUL_TOKENS * shape.rows];
            for tier in TIERS {
                let Some((_, matmul)) = (tier.kernels)(dtype) else {
                    eprintln!("note: the {} tier does not run {dtype} here; skipped", tier.name);
                    continue;
                };
                group.bench_function(BenchmarkId::new(dtype.name(), tier.name), |b| {
                    b.iter(|| matmul(black_box(&w), black_box(&x), black_box(&mut y)));
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench_matvec, bench_matmul);
criterion_main!(benches);
