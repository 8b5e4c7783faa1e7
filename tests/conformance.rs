//! Logits of every model path against the `transformers` reference fixtures.
//!
//! Each fixture checkpoint is converted with `mamba-quantize` at every format, loaded, and run
//! over the fixture's token sequences by prefill (whole prompt) and by decode (one token at a
//! time). The error metric is the relative L2 distance `||ours - ref|| / ||ref||` of each
//! position's logits row.
//!
//! There are two references. `logits_<i>.npy` comes from the float32 checkpoint, so against it
//! a format's error is mostly the rounding of its weights. `logits_<i>.<format>.npy`
//! (`tests/reference/make_format_fixtures.py`) comes from the weights that `mamba-quantize`
//! stores at that format, so against it only the engine's own float32 arithmetic remains.

use std::path::PathBuf;

use mamba_core::{Error, GgmlType, Inputs, Model, Session};
use mamba_edge_tests::{Array2, Fixture, argmax, read_npy_f32, relative_l2};

/// Fixtures made by `tests/reference/make_fixtures.py`.
const FIXTURES: [&str; 4] = ["tiny", "odd", "quant", "eps"];

/// F32 weights: only float rounding and summation order differ from transformers.
const F32_TOLERANCE: f64 = 1e-4;
/// F16 weights: 11 significant bits per weight. The largest error measured over all fixtures is
/// 2.2e-3 (`odd`).
const F16_TOLERANCE: f64 = 5e-3;
/// BF16 weights keep 8 significant bits. On `tiny`'s 300-token sequence, transformers itself,
/// run in float64 with the same bf16-rounded weights, is 1.11e-2 from the f32 reference, the
/// same as the engine: the error is the format's. The largest engine error measured over all
/// fixtures is 2.3e-2 (`odd`, 100 tokens).
const BF16_TOLERANCE: f64 = 3e-2;
/// Q8_0 against the f32 reference. The largest error measured over all fixtures, sequences and
/// paths is 4.45e-2 (`quant`), and the format-matched reference is as far from the f32
/// reference. These small random-weight models pass the weight noise through every matmul and
/// the recurrence, so it grows to six times the weights' own error (5.3e-3 relative L2 for
/// `tiny`'s Q8_0 matrices).
const Q8_0_TOLERANCE: f64 = 5e-2;
/// Q4_0 against the f32 reference: 4 bits per weight. The largest error measured over all
/// fixtures is 0.536 (`tiny`, 300 tokens), again the format-matched reference's own distance.
/// A bound this loose only catches a broken engine. The format-matched tests check precision.
const Q4_0_TOLERANCE: f64 = 0.6;

/// The engine against the format-matched reference, where both use the same weights, so only
/// float32 arithmetic differs. The reference is float64 except for a few float32 roundings
/// inside transformers (RMS norm input, B and u in the scan, A = -exp(A_log)). The largest error
/// measured over all fixtures, formats, sequences and paths is 1.2e-6 (`tiny` F16), as low as
/// the F32 engine's 1.5e-6. The bound leaves room for other CPUs and compilers and is still
/// about 100 times below the smallest format error (F16, 9.4e-4 on `eps`).
///
/// The argmax must agree everywhere. The smallest top-2 gap of any format-matched reference is
/// 5.6e-4 (`tiny` Q4_0), far above the engine's largest absolute logit error there, 5.2e-6.
const MATCHED_TOLERANCE: f64 = 1e-5;

/// Q8_0 with 8-bit inputs (`Inputs::Int8`, which `Session::step` uses) against the f32
/// reference. Rounding the inputs adds noise of the same size as the weights' own, and these
/// random models amplify both. The largest error measured over all fixtures, sequences and
/// paths is 5.3e-2 (`quant` decode), against 4.45e-2 with exact inputs. llama.cpp, which
/// rounds its inputs the same way, reaches 5.2e-2 on its own Q8_0 file of `tiny`
/// (`fixtures/llamacpp_errors.json`). Q4_0 keeps [`Q4_0_TOLERANCE`]: its largest error with
/// 8-bit inputs is 0.526 (`tiny`).
const INT8_Q8_0_TOLERANCE: f64 = 7e-2;

/// Q8_0 and Q4_0 with 8-bit inputs against the format-matched reference, which isolates the
/// rounding of the inputs. The largest error measured is 4.4e-2 (`quant` Q8_0 decode). The
/// kernels themselves are checked against exact integer sums in `kernels_int8.rs`.
const INT8_MATCHED_TOLERANCE: f64 = 6e-2;

/// Worst relative L2 error and argmax disagreements of one run over one sequence.
struct Errors {
    max_rel_l2: f64,
    argmax_mismatches: usize,
}

/// Runs `tokens` through a fresh session by prefill (`step == false`) or one token at a time and
/// compares each position's logits with `reference`.
fn compare(model: &Model<'_>, tokens: &[u32], reference: &Array2, step: bool, batch: usize, inputs: Inputs) -> Errors {
    assert_eq!(reference.rows, tokens.len(), "logits rows vs tokens");
    assert_eq!(reference.cols, model.config.n_vocab, "logits columns vs n_vocab");

    let mut errors = Errors { max_rel_l2: 0.0, argmax_mismatches: 0 };
    let mut check = |i: usize, logits: &[f32]| {
        assert!(logits.iter().all(|v| v.is_finite()), "position {i}: non-finite logits");
        errors.max_rel_l2 = errors.max_rel_l2.max(relative_l2(logits, reference.row(i)));
        if argmax(logits) != argmax(reference.row(i)) {
            errors.argmax_mismatches += 1;
        }
    };

    let mut session = Session::with_max_batch(model, batch);
    session.set_inputs(inputs);
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

/// Which logits a run is compared with.
#[derive(Clone, Copy)]
enum Reference {
    /// `logits_<i>.npy`, from the float32 checkpoint.
    F32,
    /// `logits_<i>.<format>.npy`, from the weights `mamba-quantize` stores at that format. For
    /// F32 these are the weights of the checkpoint, so it is `logits_<i>.npy`.
    Matched(GgmlType),
}

impl Reference {
    fn path(self, fixture: &Fixture, seq: usize) -> PathBuf {
        match self {
            Self::F32 | Self::Matched(GgmlType::F32) => fixture.dir.join(format!("logits_{seq}.npy")),
            Self::Matched(dtype) => fixture.dir.join(format!("logits_{seq}.{}.npy", dtype.name())),
        }
    }
}

/// Runs every sequence of `fixture` through `model` by prefill in two batch sizes and by decode,
/// with the matrix inputs treated as `inputs` selects, and checks each run against `reference`
/// within `tolerance`. `label` names the model file in messages.
fn check_model(
    model: &Model<'_>,
    fixture: &Fixture,
    label: &str,
    reference: Reference,
    tolerance: f64,
    require_argmax: bool,
    inputs: Inputs,
) {
    for (seq, tokens) in fixture.sequences.iter().enumerate() {
        let path = reference.path(fixture, seq);
        let expected = read_npy_f32(&path);
        let reference_name = path.file_name().unwrap().to_string_lossy();
        for (step, batch) in [(false, 64), (false, 5), (true, 1)] {
            let e = compare(model, tokens, &expected, step, batch, inputs);
            let run = if step { "decode" } else { "prefill" };
            eprintln!(
                "{label} seq {seq} {run} (batch {batch}) vs {reference_name}: max relative L2 {:.3e}, argmax mismatches {}",
                e.max_rel_l2, e.argmax_mismatches
            );
            assert!(
                e.max_rel_l2 <= tolerance,
                "{label} seq {seq} {run} vs {reference_name}: max relative L2 {:.3e} exceeds {tolerance:e}",
                e.max_rel_l2
            );
            if require_argmax {
                assert_eq!(
                    e.argmax_mismatches, 0,
                    "{label} seq {seq} {run} vs {reference_name}: argmax differs at some positions"
                );
            }
        }
    }
}

/// Converts every fixture to `dtype` with `mamba-quantize` and checks it against `reference`.
fn check_format(dtype: GgmlType, reference: Reference, tolerance: f64, require_argmax: bool) {
    check_format_with(dtype, reference, tolerance, require_argmax, Inputs::Exact);
}

/// As [`check_format`], with the matrix inputs treated as `inputs` selects.
fn check_format_with(dtype: GgmlType, reference: Reference, tolerance: f64, require_argmax: bool, inputs: Inputs) {
    for name in FIXTURES {
        let fixture = Fixture::load(name);
        let bytes = fixture.gguf_bytes(dtype);
        let model = Model::from_bytes(&bytes).unwrap();
        check_model(&model, &fixture, &format!("{name} {dtype}"), reference, tolerance, require_argmax, inputs);
    }
}

/// Returns the largest error against the f32 reference allowed for a file of `dtype`.
fn f32_reference_tolerance(dtype: GgmlType) -> f64 {
    match dtype {
        GgmlType::F32 => F32_TOLERANCE,
        GgmlType::F16 => F16_TOLERANCE,
        GgmlType::BF16 => BF16_TOLERANCE,
        GgmlType::Q8_0 => Q8_0_TOLERANCE,
        GgmlType::Q4_0 => Q4_0_TOLERANCE,
    }
}

#[test]
fn f32_matches_transformers() {
    check_format(GgmlType::F32, Reference::F32, F32_TOLERANCE, true);
}

#[test]
fn f16_matches_transformers() {
    check_format(GgmlType::F16, Reference::F32, F16_TOLERANCE, false);
}

#[test]
fn bf16_matches_transformers() {
    check_format(GgmlType::BF16, Reference::F32, BF16_TOLERANCE, false);
}

#[test]
fn q8_0_matches_transformers() {
    check_format(GgmlType::Q8_0, Reference::F32, Q8_0_TOLERANCE, false);
}

#[test]
fn q4_0_matches_transformers() {
    check_format(GgmlType::Q4_0, Reference::F32, Q4_0_TOLERANCE, false);
}

#[test]
fn f16_matches_format_reference() {
    check_format(GgmlType::F16, Reference::Matched(GgmlType::F16), MATCHED_TOLERANCE, true);
}

#[test]
fn bf16_matches_format_reference() {
    check_format(GgmlType::BF16, Reference::Matched(GgmlType::BF16), MATCHED_TOLERANCE, true);
}

#[test]
fn q8_0_matches_format_reference() {
    check_format(GgmlType::Q8_0, Reference::Matched(GgmlType::Q8_0), MATCHED_TOLERANCE, true);
}

#[test]
fn q4_0_matches_format_reference() {
    check_format(GgmlType::Q4_0, Reference::Matched(GgmlType::Q4_0), MATCHED_TOLERANCE, true);
}

#[test]
fn q8_0_int8_inputs_match_transformers() {
    check_format_with(GgmlType::Q8_0, Reference::F32, INT8_Q8_0_TOLERANCE, false, Inputs::Int8);
}

#[test]
fn q4_0_int8_inputs_match_transformers() {
    check_format_with(GgmlType::Q4_0, Reference::F32, Q4_0_TOLERANCE, false, Inputs::Int8);
}

#[test]
fn q8_0_int8_inputs_match_format_reference() {
    check_format_with(GgmlType::Q8_0, Reference::Matched(GgmlType::Q8_0), INT8_MATCHED_TOLERANCE, false, Inputs::Int8);
}

#[test]
fn q4_0_int8_inputs_match_format_reference() {
    check_format_with(GgmlType::Q4_0, Reference::Matched(GgmlType::Q4_0), INT8_MATCHED_TOLERANCE, false, Inputs::Int8);
}

/// The `llamacpp-<format>.gguf` files of one fixture that llama.cpp loads, with their format.
fn llamacpp_files(fixture: &Fixture) -> Vec<(PathBuf, GgmlType)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&fixture.dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(stem) = path.file_name().unwrap().to_str().and_then(|n| n.strip_suffix(".gguf")) else {
            continue;
        };
        let Some(format) = stem.strip_prefix("llamacpp-") else { continue };
        // llamacpp-f32-vocab336.gguf has its own test below.
        if let Some(dtype) = GgmlType::from_name(format) {
            files.push((path, dtype));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

/// llama.cpp's converter and quantizer store the same weight matrices as `mamba-quantize`, byte
/// for byte (checked with gguf-py for every `llamacpp-*.gguf` file). Only `ssm_a` differs, by
/// one float32 ulp in about 1.4% of its values, because the converter computes
/// `-exp(A_log)` in float32. So the same references and bounds apply as for our own files.
#[test]
fn llamacpp_files_match_references() {
    let mut checked = Vec::new();
    for name in FIXTURES {
        let fixture = Fixture::load(name);
        for (path, dtype) in llamacpp_files(&fixture) {
            let bytes = std::fs::read(&path).unwrap();
            let model = Model::from_bytes(&bytes).unwrap_or_else(|e| panic!("{}: failed to load: {e}", path.display()));
            let label = format!("{name}/{}", path.file_name().unwrap().to_string_lossy());
            check_model(&model, &fixture, &label, Reference::Matched(dtype), MATCHED_TOLERANCE, true, Inputs::Exact);
            check_model(
                &model,
                &fixture,
                &label,
                Reference::F32,
                f32_reference_tolerance(dtype),
                dtype == GgmlType::F32,
                Inputs::Exact,
            );
            checked.push(label);
        }
    }
    // Guards against the loop silently finding nothing, for example after a rename.
    assert_eq!(checked.len(), 11, "llama.cpp files checked: {checked:?}");
}

/// `odd/llamacpp-f32-vocab336.gguf` is the converter's default output for a vocab of 333: the
/// token list is padded to 336 with unused `[PAD<i>]` tokens, but `token_embd` and `output`
/// keep 333 rows. llama.cpp takes n_vocab from the token list and rejects the file. This engine
/// takes n_vocab from the embedding rows, and the weights are complete and correct, so it loads
/// the file. The padding tokens have no embedding row and no logit. Feeding one is an input
/// error, not a crash.
#[test]
fn llamacpp_padded_vocab_file_loads() {
    let fixture = Fixture::load("odd");
    let path: PathBuf = fixture.dir.join("llamacpp-f32-vocab336.gguf");
    let bytes = std::fs::read(&path).unwrap();
    let model = Model::from_bytes(&bytes).unwrap_or_else(|e| panic!("{}: failed to load: {e}", path.display()));
    assert_eq!(model.config.n_vocab, 333, "n_vocab comes from token_embd's rows");
    assert_eq!(token_count(&model), 336, "the file's token list is padded to 336");

    check_model(&model, &fixture, "odd/llamacpp-f32-vocab336.gguf", Reference::F32, F32_TOLERANCE, true, Inputs::Exact);

    let mut session = Session::new(&model);
    for token in [333, 335] {
        match session.step(token) {
            Err(Error::TokenOutOfRange { token: t, n_vocab: 333 }) => assert_eq!(t, token),
            Err(e) => panic!("token {token}: expected TokenOutOfRange, got {e}"),
            Ok(_) => panic!("token {token} has no embedding row but was accepted"),
        }
    }
    assert_eq!(session.n_past(), 0, "rejected tokens must not advance the session");
}

/// Number of entries in the file's `tokenizer.ggml.tokens` array.
fn token_count(model: &Model<'_>) -> u64 {
    let tokens = model.gguf.get("tokenizer.ggml.tokens").expect("the file has a token list");
    tokens.as_array().expect("tokenizer.ggml.tokens is an array").len()
}
