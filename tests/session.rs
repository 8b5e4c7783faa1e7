//! Session behaviour on a fixture model: prefill against decode, chunking, saved state, and
//! bad input.

use mamba_core::{Error, GgmlType, Model, Session, StateError};
use mamba_edge_tests::{Fixture, relative_l2};

/// Prefill and decode run the same kernels on different batch shapes; only summation order
/// may differ.
const SAME_PATH_TOLERANCE: f64 = 1e-6;

fn tiny_f32() -> (Fixture, Vec<u8>) {
    let fixture = Fixture::load("tiny");
    let bytes = fixture.gguf_bytes(GgmlType::F32);
    (fixture, bytes)
}

/// The longest sequence of the fixture.
fn long_sequence(fixture: &Fixture) -> &[u32] {
    fixture.sequences.iter().max_by_key(|s| s.len()).unwrap()
}

#[test]
fn prefill_equals_decode_for_every_chunk_size() {
    let (fixture, bytes) = tiny_f32();
    let model = Model::from_bytes(&bytes).unwrap();
    let tokens = long_sequence(&fixture);

    let mut decode = Session::new(&model);
    let mut expected = Vec::new();
    for &t in tokens {
        expected.push(decode.step(t).unwrap().to_vec());
    }

    for batch in [1usize, 2, 7, 64, 512] {
        let mut session = Session::with_max_batch(&model, batch);
        session
            .prefill_all(tokens, |i, logits| {
                let err = relative_l2(logits, &expected[i]);
                assert!(err <= SAME_PATH_TOLERANCE, "batch {batch} pos {i}: relative L2 {err:.3e}");
            })
            .unwrap();
        let last = session.prefill(&[tokens[0]]).unwrap().to_vec();
        let mut again = Session::new(&model);
        again.prefill(tokens).unwrap();
        let expected_last = again.step(tokens[0]).unwrap();
        assert!(relative_l2(&last, expected_last) <= SAME_PATH_TOLERANCE, "batch {batch}: continuation after prefill");
    }
}

#[test]
fn saved_state_resumes_identically() {
    let (fixture, bytes) = tiny_f32();
    let model = Model::from_bytes(&bytes).unwrap();
    let tokens = long_sequence(&fixture);
    let (prompt, rest) = tokens.split_at(tokens.len() / 2);

    let mut first = Session::new(&model);
    first.prefill(prompt).unwrap();
    let saved = first.save_state_to_vec();
    assert_eq!(saved.len(), first.state_bytes_len());

    let mut second = Session::new(&model);
    second.load_state(&saved).unwrap();
    assert_eq!(second.n_past(), prompt.len() as u64);
    assert_eq!(first.logits().unwrap(), second.logits().unwrap(), "restored logits");
    for &t in rest {
        let a = first.step(t).unwrap().to_vec();
        let b = second.step(t).unwrap();
        assert_eq!(a.as_slice(), b, "logits after restore differ");
    }
}

#[test]
fn damaged_state_is_rejected() {
    let (fixture, bytes) = tiny_f32();
    let model = Model::from_bytes(&bytes).unwrap();
    let mut session = Session::new(&model);
    session.prefill(&fixture.sequences[0]).unwrap();
    let saved = session.save_state_to_vec();

    let mut target = Session::new(&model);
    let truncated = &saved[..saved.len() - 1];
    assert!(matches!(target.load_state(truncated), Err(Error::State(StateError::Length { .. }))));

    let mut flipped = saved.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    assert_eq!(target.load_state(&flipped), Err(Error::State(StateError::Checksum)));

    let mut bad_magic = saved.clone();
    bad_magic[0] = b'X';
    assert_eq!(target.load_state(&bad_magic), Err(Error::State(StateError::BadMagic)));

    let mut bad_version = saved.clone();
    bad_version[4] = 99;
    assert!(matches!(target.load_state(&bad_version), Err(Error::State(StateError::UnsupportedVersion { found: 99, .. }))));

    assert!(matches!(target.load_state(&[]), Err(Error::State(StateError::Length { .. }))));
    assert_eq!(target.n_past(), 0, "a rejected state leaves the session unchanged");
}

#[test]
fn state_from_another_model_is_rejected() {
    let tiny = Fixture::load("tiny");
    let odd = Fixture::load("odd");
    let tiny_bytes = tiny.gguf_bytes(GgmlType::F32);
    let odd_bytes = odd.gguf_bytes(GgmlType::F32);
    let tiny_model = Model::from_bytes(&tiny_bytes).unwrap();
    let odd_model = Model::from_bytes(&odd_bytes).unwrap();

    let mut session = Session::new(&tiny_model);
    session.prefill(&tiny.sequences[0]).unwrap();
    let saved = session.save_state_to_vec();
    let mut other = Session::new(&odd_model);
    let err = other.load_state(&saved).unwrap_err();
    assert!(matches!(err, Error::State(StateError::ModelMismatch { .. })), "{err:?}");
    assert!(err.to_string().contains("same model file"), "{err}");
}

#[test]
fn bad_tokens_are_rejected() {
    let (_, bytes) = tiny_f32();
    let model = Model::from_bytes(&bytes).unwrap();
    let n_vocab = model.config.n_vocab;
    let mut session = Session::new(&model);

    assert_eq!(session.prefill(&[]).unwrap_err(), Error::EmptyInput);
    let err = session.step(n_vocab as u32).unwrap_err();
    assert_eq!(err, Error::TokenOutOfRange { token: n_vocab as u32, n_vocab });
    assert!(err.to_string().contains(&format!("token id {n_vocab}")), "{err}");
    assert_eq!(session.prefill(&[0, u32::MAX]).unwrap_err(), Error::TokenOutOfRange { token: u32::MAX, n_vocab });
    assert_eq!(session.n_past(), 0, "rejected input is not processed");
}

#[test]
fn reset_starts_a_new_sequence() {
    let (fixture, bytes) = tiny_f32();
    let model = Model::from_bytes(&bytes).unwrap();
    let tokens = &fixture.sequences[0];
    let mut session = Session::new(&model);
    let first = session.prefill(tokens).unwrap().to_vec();
    session.reset();
    assert_eq!(session.n_past(), 0);
    assert!(session.logits().is_none());
    assert_eq!(session.prefill(tokens).unwrap(), first.as_slice());
}

#[test]
fn huge_batch_is_clamped() {
    let (fixture, bytes) = tiny_f32();
    let model = Model::from_bytes(&bytes).unwrap();
    let tokens = &fixture.sequences[0];
    let mut clamped = Session::with_max_batch(&model, usize::MAX);
    let mut default = Session::new(&model);
    let a = clamped.prefill(tokens).unwrap().to_vec();
    let b = default.prefill(tokens).unwrap();
    assert!(relative_l2(&a, b) <= SAME_PATH_TOLERANCE);
    let mut zero = Session::with_max_batch(&model, 0);
    assert!(relative_l2(zero.prefill(tokens).unwrap(), b) <= SAME_PATH_TOLERANCE);
}

#[test]
fn logits_are_identical_for_any_thread_count() {
    let (fixture, f32_bytes) = tiny_f32();
    // Q8_0 runs the decode steps with 8-bit inputs.
    for bytes in [f32_bytes, fixture.gguf_bytes(GgmlType::Q8_0)] {
        check_thread_counts(&fixture, &bytes);
    }
}

fn check_thread_counts(fixture: &Fixture, bytes: &[u8]) {
    let model = Model::from_bytes(bytes).unwrap();
    let tokens = long_sequence(fixture);

    // Prefill in chunks of 7 (matrix-matrix path), then decode (matrix-vector path).
    let run = |threads: usize| {
        let mut session = Session::with_max_batch(&model, 7);
        session.set_threads(threads);
        // Split every step, however small: the fixture's steps are all below the default.
        session.set_min_parallel_work(0);
        assert_eq!(session.threads(), threads);
        let mut logits = Vec::new();
        session.prefill_all(tokens, |_, l| logits.extend_from_slice(l)).unwrap();
        for &t in &tokens[..5] {
            logits.extend_from_slice(session.step(t).unwrap());
        }
        logits
    };
    let serial = run(1);
    for threads in [2, 3] {
        let parallel = run(threads);
        let first_difference = serial.iter().zip(&parallel).position(|(a, b)| a.to_bits() != b.to_bits());
        assert_eq!(first_difference, None, "{threads} threads: logits differ from 1 thread");
    }
}
