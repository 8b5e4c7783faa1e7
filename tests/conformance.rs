//! Logits of every model path against the `transformers` reference fixtures.
//!
//! Each fixture checkpoint is converted with `mamba-quantize` at every format, loaded, and run
//! over the fixture's token sequences by prefill (whole prompt) and by decode (one token at a
//! time). The error metric is the relative L2 distance `||ours - ref|| / ||ref||` of each
//! position's logits row.

use mamba_core::{GgmlType, Model, Session};
use mamba_edge_tests::{Fixture, argmax, relative_l2};

/// Fixtures made by `tests/reference/make_fixtures.py`.
const FIXTURES: [&str; 4] = ["tiny", "odd", "quant", "eps"];

/// F32 weights: only float rounding and summation order differ from transformers.
const F32_TOLERANCE: f64 = 1e-4;
/// F16 weights: 11 significant bits per weight.
const F16_TOLERANCE: f64 = 5e-3;
/// BF16 weights keep 8 significant bits. On `tiny`'s 300-token sequence, transformers itself,
/// run in float64 with the same bf16-rounded weights, is 1.11e-2 from the f32 reference, the
/// same as the engine: the error is the format's. The largest engine error measured over all
/// fixtures is 2.3e-2 (`odd`, 100 tokens).
const BF16_TOLERANCE: f64 = 3e-2;

/// Worst relative L2 error and argmax disagreements of one run over one sequence.
struct Errors {
    max_rel_l2: f64,
    argmax_mismatches: usize,
}

/// Runs `tokens` through a fresh session by prefill (`step == false`) or one token at a time.
fn compare(model: &Model<'_>, fixture: &Fixture, seq: usize, step: bool, batch: usize) -> Errors {
    let tokens = &fixture.sequences[seq];
    let reference = fixture.reference_logits(seq);
    assert_eq!(reference.rows, tokens.len(), "{}: logits rows vs tokens", fixture.name);
    assert_eq!(reference.cols, model.config.n_vocab, "{}: logits columns vs n_vocab", fixture.name);

    let mut errors = Errors { max_rel_l2: 0.0, argmax_mismatches: 0 };
    let mut check = |i: usize, logits: &[f32]| {
        assert!(logits.iter().all(|v| v.is_finite()), "{} seq {seq} pos {i}: non-finite logits", fixture.name);
        errors.max_rel_l2 = errors.max_rel_l2.max(relative_l2(logits, reference.row(i)));
        if argmax(logits) != argmax(reference.row(i)) {
            errors.argmax_mismatches += 1;
        }
    };

    let mut session = Session::with_max_batch(model, batch);
    if step {
        for (i, &token) in tokens.iter().enumerate() {
            let logits = session.step(token).unwrap();
            check(i, logits);
        }
    } else {
        session.prefill_all(tokens, &mut check).unwrap();
    }
    errors
}

/// Checks every fixture and sequence at `dtype` by prefill and by decode.
fn check_format(dtype: GgmlType, tolerance: f64, require_argmax: bool) {
    for name in FIXTURES {
        let fixture = Fixture::load(name);
        let bytes = fixture.gguf_bytes(dtype);
        let model = Model::from_bytes(&bytes).unwrap();
        for seq in 0..fixture.sequences.len() {
            for (step, batch) in [(false, 64), (false, 5), (true, 1)] {
                let e = compare(&model, &fixture, seq, step, batch);
                let path = if step { "decode" } else { "prefill" };
                eprintln!(
                    "{name} {dtype} seq {seq} {path} (batch {batch}): max relative L2 {:.3e}, argmax mismatches {}",
                    e.max_rel_l2, e.argmax_mismatches
                );
                assert!(
                    e.max_rel_l2 <= tolerance,
                    "{name} {dtype} seq {seq} {path}: max relative L2 {:.3e} exceeds {tolerance:e}",
                    e.max_rel_l2
                );
                if require_argmax {
                    assert_eq!(e.argmax_mismatches, 0, "{name} {dtype} seq {seq} {path}: argmax differs");
                }
            }
        }
    }
}

#[test]
fn f32_matches_transformers() {
    check_format(GgmlType::F32, F32_TOLERANCE, true);
}

#[test]
fn f16_matches_transformers() {
    check_format(GgmlType::F16, F16_TOLERANCE, false);
}

#[test]
fn bf16_matches_transformers() {
    check_format(GgmlType::BF16, BF16_TOLERANCE, false);
}
