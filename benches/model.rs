//! The selective scan, one decode step and a 512-token prefill at the shapes of mamba-130m
//! (24 layers, d_model 768, d_inner 1536, d_state 16, vocabulary 50280).
//!
//! The scan runs on random inputs. The model benchmarks read a GGUF file of that shape:
//! `MAMBA_BENCH_MODEL`, or by default `target/bench-130m/mamba-130m-q8_0.gguf`, which
//! `benches/compare/bench_mamba_edge.sh` writes (a random-init checkpoint converted by
//! mamba-quantize). Without the file they are skipped with a note on stderr.
//!
//! Throughput is in tokens per second for the model, and in state updates (channels ×
//! state size × tokens) for the scan. Run with, for example:
//! `cargo bench -p mamba-benches --bench model -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mamba_core::ops::ssm_scan::{ScanInputs, selective_scan_fast_channels};
use mamba_core::{Model, Session};

const D_INNER: usize = 1536;
const D_STATE: usize = 16;
const DT_RANK: usize = 48;
/// Prompt length of the prefill benchmarks.
const PROMPT: usize = 512;

/// Returns a fixed pseudo-random sequence in [-1, 1).
fn values(len: usize, seed: u32) -> Vec<f32> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

fn bench_scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("scan/130m_layer");
    let a: Vec<f32> = values(D_INNER * D_STATE, 1).iter().map(|v| -(1.0 + 8.0 * v.abs())).collect();
    let d = values(D_INNER, 2);
    let mut state = vec![0.0f32; D_INNER * D_STATE];
    for tokens in [1, PROMPT] {
        let x = values(tokens * D_INNER, 3);
        let dt: Vec<f32> = values(tokens * D_INNER, 4).iter().map(|v| 0.01 + 0.05 * v.abs()).collect();
        let bc_stride = DT_RANK + 2 * D_STATE;
        let bc = values(tokens * bc_stride, 5);
        let z = values(tokens * 2 * D_INNER, 6);
        let inputs = ScanInputs {
            d_inner: D_INNER,
            d_state: D_STATE,
            x: &x,
            dt: &dt,
            a: &a,
            bc: &bc,
            bc_stride,
            b_offset: DT_RANK,
            c_offset: DT_RANK + D_STATE,
            d: &d,
            z: &z,
            z_stride: 2 * D_INNER,
        };
        let mut y = vec![0.0f32; tokens * D_INNER];
        group.throughput(Throughput::Elements((tokens * D_INNER * D_STATE) as u64));
        let name = if tokens == 1 { "step" } else { "prefill_512" };
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut emit = |t: usize, c0: usize, out: &[f32]| {
                    y[t * D_INNER + c0..][..out.len()].copy_from_slice(out);
                };
                selective_scan_fast_channels(black_box(&inputs), tokens, 0..D_INNER, &mut state, &mut emit);
            });
        });
    }
    group.finish();
}

/// Returns the model file, or `None` with a note when it does not exist.
fn model_path() -> Option<PathBuf> {
    let path = std::env::var_os("MAMBA_BENCH_MODEL").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-130m/mamba-130m-q8_0.gguf"))
    });
    if path.is_file() {
        return Some(path);
    }
    eprintln!(
        "note: {} not found, so the model benchmarks are skipped; run benches/compare/bench_mamba_edge.sh \
         to write it, or set MAMBA_BENCH_MODEL to a GGUF file",
        path.display()
    );
    None
}

fn bench_model(c: &mut Criterion) {
    let Some(path) = model_path() else { return };
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let model = Model::from_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n_vocab = model.config.n_vocab as u32;
    let prompt: Vec<u32> = (0..PROMPT as u32).map(|i| i.wrapping_mul(2_654_435_761) % n_vocab).collect();
    let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());

    let mut group = c.benchmark_group(format!("model/{name}"));
    group.sample_size(10);
    for threads in [1, 2] {
        let mut session = Session::new(&model);
        session.set_threads(threads);
        session.prefill(&prompt[..8]).unwrap();
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("decode_step", format!("{threads}_threads")), |b| {
            let mut token = 1;
            b.iter(|| {
                let logits = session.step(black_box(token)).unwrap();
                token = (logits[0].to_bits() % n_vocab).max(1);
            });
        });

        group.throughput(Throughput::Elements(PROMPT as u64));
        group.bench_function(BenchmarkId::new("prefill_512", format!("{threads}_threads")), |b| {
            b.iter(|| {
                session.reset();
                black_box(session.prefill(black_box(&prompt)).unwrap()[0]);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_scan, bench_model);
criterion_main!(benches);
