//! End-to-end tests of the `mamba-edge` binary on GGUF files converted by `mamba-quantize` and
//! on the llama.cpp files committed with the fixtures. Expected values come from transformers
//! (`logits_<i>.npy`, `greedy.json`) and from the fixtures' `tokenizer.json`.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    FIXTURES, Run, TempDir, argmax, convert, fixture_dir, greedy, hf_config, hf_decode, hf_encode, hf_tokenizer,
    id_list, llamacpp_file, mamba_edge, read_npy, relative_l2, sequences,
};
use mamba_core::GgmlType;

/// The path as `&str`; the temp and fixture paths of these tests are UTF-8.
fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Largest relative L2 error per logits row against transformers' float64 reference.
const MAX_LOGITS_ERROR: f64 = 1e-4;

/// Texts that exercise the byte-level pre-tokenizer: ASCII, accents, CJK, emoji, whitespace.
const TOKENIZER_TEXTS: [&str; 10] = [
    "Hello, world! 123 + 4567",
    "café naïve résumé Ærøskøbing",
    "日本語のテキスト、中文字符",
    "rocket 🚀 and a thumbs-up 👍🏽",
    "col1\tcol2\t\tcol3",
    "line one\nline two\r\n\nlast line\n",
    "   leading, inner   and trailing spaces   ",
    "def forward(self, hidden_states):\n    return self.mixer(hidden_states)",
    "text<|endoftext|>after the end-of-text token",
    "mixed: ü 日本 🚀\tend\n",
];

// ---------------------------------------------------------------------------------------------
// generate: greedy decoding against transformers

/// Runs `generate --temp 0` on the decoded `greedy.json` prompt and compares the output with
/// the prompt followed by transformers' 32 greedy tokens, decoded.
fn check_greedy(fixture: &str, model: &Path) {
    let tokenizer = hf_tokenizer(fixture);
    let (prompt_ids, expected_ids) = greedy(fixture);
    let prompt = hf_decode(&tokenizer, &prompt_ids);
    assert_eq!(
        hf_encode(&tokenizer, &prompt),
        prompt_ids,
        "{fixture}: the decoded prompt {prompt:?} does not encode back to the greedy.json ids"
    );

    let run = mamba_edge(["generate", "-m", path_str(model), "--temp", "0", "-n", "32", "--ignore-eos", &prompt]);
    let stdout = run.success();
    let expected = format!("{prompt}{}\n", hf_decode(&tokenizer, &expected_ids));
    assert_eq!(stdout, expected, "{fixture}: greedy output of {}", model.display());
    assert!(run.stderr.contains("generation: 32 tokens"), "{fixture}: {}", run.stderr);
}

#[test]
fn greedy_matches_transformers() {
    let dir = TempDir::new("greedy");
    for fixture in FIXTURES {
        let model = convert(fixture, GgmlType::F32, &dir);
        check_greedy(fixture, &model);
    }
}

#[test]
fn greedy_llamacpp_f32_matches() {
    for fixture in FIXTURES {
        check_greedy(fixture, &llamacpp_file(fixture, "llamacpp-f32.gguf"));
    }
}

/// Mamba-2 and Falcon-Mamba fixtures with a `greedy.json`.
const VARIANT_GREEDY_FIXTURES: [&str; 3] = ["mamba2_g1", "mamba2_g2", "falcon"];

#[test]
fn greedy_variants_match_transformers() {
    let dir = TempDir::new("greedy-variants");
    for fixture in VARIANT_GREEDY_FIXTURES {
        let model = convert(fixture, GgmlType::F32, &dir);
        check_greedy(fixture, &model);
    }
}

/// The fixtures with a `greedy.json` and a file written by llama.cpp's converter.
#[test]
fn greedy_variants_llamacpp_f32_matches() {
    for fixture in ["mamba2_g1", "falcon"] {
        check_greedy(fixture, &llamacpp_file(fixture, "llamacpp-f32.gguf"));
    }
}

// ---------------------------------------------------------------------------------------------
// logits

/// Runs `logits` with `extra` options on every sequence of the fixture and compares each row
/// with transformers' logits.
fn check_logits(fixture: &str, model: &Path, dir: &TempDir, extra: &[&str]) {
    for (i, tokens) in sequences(fixture).iter().enumerate() {
        let out = dir.join(&format!("{fixture}-{i}.npy"));
        let token_list = id_list(tokens);
        let mut args = vec!["logits", "-m", path_str(model), "--out", path_str(&out), "--tokens", &token_list];
        args.extend(extra);
        mamba_edge(args).success();

        let got = read_npy(&out);
        let reference = read_npy(&fixture_dir(fixture).join(format!("logits_{i}.npy")));
        assert_eq!((got.rows, got.cols), (reference.rows, reference.cols), "{fixture} sequence {i} {extra:?}: shape");
        for row in 0..got.rows {
            let error = relative_l2(got.row(row), reference.row(row));
            assert!(
                error <= MAX_LOGITS_ERROR,
                "{fixture} sequence {i} {extra:?}: row {row} has relative L2 error {error:.3e}"
            );
            assert_eq!(
                argmax(got.row(row)),
                argmax(reference.row(row)),
                "{fixture} sequence {i} {extra:?}: argmax of row {row}"
            );
        }
    }
}

#[test]
fn logits_prefill_matches_reference() {
    let dir = TempDir::new("prefill");
    for fixture in FIXTURES {
        let model = convert(fixture, GgmlType::F32, &dir);
        check_logits(fixture, &model, &dir, &[]);
    }
}

#[test]
fn logits_step_matches_reference() {
    let dir = TempDir::new("step");
    for fixture in FIXTURES {
        let model = convert(fixture, GgmlType::F32, &dir);
        check_logits(fixture, &model, &dir, &["--step"]);
    }
}

#[test]
fn logits_batch_three_matches_reference() {
    let dir = TempDir::new("batch3");
    for fixture in FIXTURES {
        let model = convert(fixture, GgmlType::F32, &dir);
        check_logits(fixture, &model, &dir, &["--batch", "3"]);
    }
}

#[test]
fn logits_huge_batch_matches_reference() {
    // Chunks longer than the token list are never filled, so this must not allocate for
    // 10^12 tokens.
    let dir = TempDir::new("huge-batch");
    let model = convert("odd", GgmlType::F32, &dir);
    check_logits("odd", &model, &dir, &["--batch", "1000000000000"]);
}

#[test]
fn logits_llamacpp_f32_matches_reference() {
    let dir = TempDir::new("llamacpp-logits");
    for fixture in FIXTURES {
        let model = llamacpp_file(fixture, "llamacpp-f32.gguf");
        check_logits(fixture, &model, &dir, &[]);
    }
}

#[test]
fn logits_bad_token_leaves_no_file() {
    let dir = TempDir::new("bad-token");
    let model = convert("tiny", GgmlType::F32, &dir);
    let n_vocab = hf_config("tiny")["vocab_size"].as_u64().unwrap();

    for mode in [None, Some("--step")] {
        let out = dir.join("logits.npy");
        let mut args = vec!["logits", "-m", path_str(&model), "--tokens", "5,4000,7", "--out", path_str(&out)];
        args.extend(mode);
        mamba_edge(&args).error(&["token id 4000", &format!("{n_vocab} tokens")]);
        assert!(!out.exists(), "{mode:?}: a failed run left {}", out.display());
        assert_eq!(dir.entries(), ["tiny-f32.gguf"], "{mode:?}: a failed run left files");

        // An existing output file is left as it was.
        std::fs::write(&out, b"old").unwrap();
        mamba_edge(&args).error(&["token id 4000"]);
        assert_eq!(std::fs::read(&out).unwrap(), b"old", "{mode:?}: a failed run changed the output file");
        std::fs::remove_file(&out).unwrap();
    }
}

#[test]
fn logits_zero_batch_rejected() {
    let dir = TempDir::new("zero-batch");
    let model = convert("tiny", GgmlType::F32, &dir);
    let out = dir.join("logits.npy");
    let args = ["logits", "-m", path_str(&model), "--tokens", "1,2", "--batch", "0", "--out", path_str(&out)];
    mamba_edge(args).error(&["--batch 0"]);
    assert!(!out.exists());
}

// ---------------------------------------------------------------------------------------------
// tokenize

/// Checks `tokenize` and `tokenize --pieces` against the fixture's `tokenizer.json`.
fn check_tokenize(fixture: &str, model: &Path) {
    let tokenizer = hf_tokenizer(fixture);
    let model = path_str(model);
    for text in TOKENIZER_TEXTS {
        let expected = hf_encode(&tokenizer, text);

        let stdout = mamba_edge(["tokenize", "-m", model, text]).success();
        assert_eq!(stdout, format!("{}\n", id_list(&expected)), "{fixture} {model}: ids of {text:?}");

        let stdout = mamba_edge(["tokenize", "-m", model, "--pieces", text]).success();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), expected.len(), "{fixture} {model}: --pieces lines for {text:?}");
        for (line, &id) in lines.iter().zip(&expected) {
            let piece = tokenizer.id_to_token(id).unwrap();
            assert_eq!(*line, format!("{id}\t{piece:?}"), "{fixture} {model}: --pieces of {text:?}");
        }
    }
}

#[test]
fn tokenize_matches_hf_tokenizer() {
    let dir = TempDir::new("tokenize");
    for fixture in FIXTURES {
        let model = convert(fixture, GgmlType::F32, &dir);
        check_tokenize(fixture, &model);
    }
}

#[test]
fn tokenize_llamacpp_matches_hf_tokenizer() {
    for fixture in FIXTURES {
        check_tokenize(fixture, &llamacpp_file(fixture, "llamacpp-f32.gguf"));
    }
    // The converter's default output for `odd` pads the token list to 336 entries.
    check_tokenize("odd", &llamacpp_file("odd", "llamacpp-f32-vocab336.gguf"));
}

#[test]
fn tokenize_sources_match_each_other() {
    // The embedded tokenizer.json and the rebuilt one must agree on longer, mixed text too.
    let dir = TempDir::new("tokenize-sources");
    let text = TOKENIZER_TEXTS.join(" ");
    for fixture in FIXTURES {
        let ours = convert(fixture, GgmlType::Q8_0, &dir);
        let theirs = llamacpp_file(fixture, "llamacpp-f32.gguf");
        let a = mamba_edge(["tokenize", "-m", path_str(&ours), &text]).success();
        let b = mamba_edge(["tokenize", "-m", path_str(&theirs), &text]).success();
        assert_eq!(a, b, "{fixture}: embedded and rebuilt tokenizers differ");
    }
}

// ---------------------------------------------------------------------------------------------
// generate: saved state

/// Runs greedy `generate` with `extra` arguments and returns stdout.
fn greedy_run(model: &Path, n: usize, extra: &[&str]) -> String {
    let n = n.to_string();
    let mut args = vec!["generate", "-m", path_str(model), "--temp", "0", "-n", &n, "--ignore-eos"];
    args.extend(extra);
    mamba_edge(args).success()
}

#[test]
fn state_resume_matches_one_run() {
    let dir = TempDir::new("state-resume");
    for fixture in FIXTURES {
        let model = convert(fixture, GgmlType::F32, &dir);
        let prompt = "    def forward(self, x):";
        let state = dir.join(&format!("{fixture}.state"));

        let full = greedy_run(&model, 32, &[prompt]);
        let first = greedy_run(&model, 0, &["--state-out", path_str(&state), prompt]);
        assert_eq!(first, format!("{prompt}\n"), "{fixture}: -n 0 prints only the prompt");
        let rest = greedy_run(&model, 32, &["--state-in", path_str(&state)]);
        assert_eq!(format!("{prompt}{rest}"), full, "{fixture}: resumed run differs from one run");
    }
}

#[test]
fn state_after_generation_continues() {
    // A state saved after generating k tokens continues with token k + 1. The texts are
    // compared where decoding the two parts separately gives the same text as decoding all.
    let dir = TempDir::new("state-continue");
    let fixture = "tiny";
    let tokenizer = hf_tokenizer(fixture);
    let model = convert(fixture, GgmlType::F32, &dir);
    let (prompt_ids, generated) = greedy(fixture);
    let prompt = hf_decode(&tokenizer, &prompt_ids);
    let whole = hf_decode(&tokenizer, &generated);
    let split = (8..generated.len())
        .find(|&k| hf_decode(&tokenizer, &generated[..k]) + &hf_decode(&tokenizer, &generated[k..]) == whole)
        .expect("a split point where the text splits cleanly");
    let state = dir.join("tiny.state");

    let first = greedy_run(&model, split, &["--state-out", path_str(&state), &prompt]);
    let rest = greedy_run(&model, 32 - split, &["--state-in", path_str(&state)]);
    let first = first.strip_suffix('\n').expect("output ends with a newline");
    assert_eq!(format!("{first}{rest}"), format!("{prompt}{whole}\n"), "split after {split} tokens");
}

#[test]
fn state_out_to_missing_folder_rejected_first() {
    let dir = TempDir::new("state-out-folder");
    let tiny = convert("tiny", GgmlType::F32, &dir);
    let missing = dir.join("no-such-folder").join("s.state");
    let run = mamba_edge(["generate", "-m", path_str(&tiny), "--state-out", path_str(&missing), "hello"]);
    run.error(&["no-such-folder", "does not exist"]);
    assert!(run.stdout.is_empty(), "nothing is generated before the path is checked");

    let run = mamba_edge(["generate", "-m", path_str(&tiny), "--state-out", path_str(&dir.join("")), "hello"]);
    run.error(&["is a folder"]);
}

#[test]
fn state_from_other_model_rejected() {
    let dir = TempDir::new("state-other");
    let tiny = convert("tiny", GgmlType::F32, &dir);
    let odd = convert("odd", GgmlType::F32, &dir);
    let state = dir.join("tiny.state");
    greedy_run(&tiny, 0, &["--state-out", path_str(&state), "hello"]);

    let run = mamba_edge(["generate", "-m", path_str(&odd), "--state-in", path_str(&state)]);
    run.error(&[path_str(&state), "saved for a model with", "use the same model file"]);
    assert!(run.stdout.is_empty(), "nothing is printed before the state is checked");
}

#[test]
fn damaged_state_rejected() {
    let dir = TempDir::new("state-damaged");
    let model = convert("tiny", GgmlType::F32, &dir);
    let state = dir.join("tiny.state");
    greedy_run(&model, 0, &["--state-out", path_str(&state), "hello"]);
    let bytes = std::fs::read(&state).unwrap();

    let damaged = dir.join("damaged.state");
    let load = |content: &[u8]| -> Run {
        std::fs::write(&damaged, content).unwrap();
        mamba_edge(["generate", "-m", path_str(&model), "--state-in", path_str(&damaged)])
    };
    let path = path_str(&damaged);

    load(&bytes[..bytes.len() / 2]).error(&[path, "truncated"]);
    load(&bytes[..10]).error(&[path, "truncated"]);
    load(&[]).error(&[path, "truncated"]);
    load(&std::fs::read(&model).unwrap()).error(&[path, "bad magic"]);

    let mut flipped = bytes.clone();
    *flipped.last_mut().unwrap() ^= 0x40;
    load(&flipped).error(&[path, "checksum"]);

    let missing = dir.join("missing.state");
    mamba_edge(["generate", "-m", path_str(&model), "--state-in", path_str(&missing)]).error(&[path_str(&missing)]);
}

// ---------------------------------------------------------------------------------------------
// generate: sampling and streaming

fn sample_run(model: &Path, seed: u64, n: usize) -> Run {
    let (seed, n) = (seed.to_string(), n.to_string());
    let model = path_str(model);
    mamba_edge([
        "generate", "-m", model, "--temp", "1.5", "--top-k", "0", "--top-p", "1", "--min-p", "0", "--seed", &seed,
        "-n", &n, "--ignore-eos", "naïve 日本 🚀",
    ])
}

#[test]
fn sampled_output_is_valid_utf8() {
    // At temperature 1.5 with no cut-offs the random models emit many single-byte tokens, so
    // the streamed bytes contain partial and invalid UTF-8 sequences.
    let dir = TempDir::new("utf8");
    for fixture in FIXTURES {
        let model = convert(fixture, GgmlType::F32, &dir);
        for seed in [1, 2, 3] {
            let run = sample_run(&model, seed, 400);
            let stdout = run.success();
            assert!(stdout.starts_with("naïve 日本 🚀"), "{fixture} seed {seed}: {stdout:?}");
            assert!(stdout.ends_with('\n'), "{fixture} seed {seed}");
            assert!(run.stderr.contains("generation: 400 tokens"), "{fixture} seed {seed}: {}", run.stderr);
        }
    }
}

#[test]
fn seeded_sampling_is_reproducible() {
    let dir = TempDir::new("seed");
    let model = convert("quant", GgmlType::F32, &dir);
    let first = sample_run(&model, 42, 100).success();
    let again = sample_run(&model, 42, 100).success();
    let other = sample_run(&model, 43, 100).success();
    assert_eq!(first, again, "the same seed gives the same text");
    assert_ne!(first, other, "another seed gives other text");
}

#[test]
fn closed_stdout_stops_generation() {
    // With the reader gone, generation must stop at the next write instead of running all
    // 10^9 tokens, and exit quietly.
    let dir = TempDir::new("pipe");
    let model = convert("tiny", GgmlType::F32, &dir);
    let mut child = Command::new(common::binary())
        .args(["generate", "-m", path_str(&model), "-n", "1000000000", "--ignore-eos", "hello"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("generate kept running after its stdout was closed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.success(), "{status}: {stderr}");
}

#[test]
fn closed_stdout_does_not_panic() {
    let dir = TempDir::new("pipe-info");
    let model = convert("odd", GgmlType::F32, &dir);
    let model = path_str(&model);
    let long_text = "token ".repeat(20_000);
    let commands: [Vec<&str>; 3] = [
        vec!["info", "-m", model],
        vec!["tokenize", "-m", model, "--pieces", &long_text],
        vec!["bench", "-m", model, "-p", "4", "-n", "2"],
    ];
    for args in commands {
        let mut child = Command::new(common::binary())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(output.status.success(), "{args:?}: {}: {stderr}", output.status);
    }
}

// ---------------------------------------------------------------------------------------------
// errors

#[test]
fn missing_model_file_rejected() {
    let dir = TempDir::new("missing");
    let missing = dir.join("no-such-model.gguf");
    let path = path_str(&missing);
    let out = dir.join("out.npy");
    let commands: [Vec<&str>; 5] = [
        vec!["generate", "-m", path, "hello"],
        vec!["logits", "-m", path, "--tokens", "1", "--out", path_str(&out)],
        vec!["tokenize", "-m", path, "hello"],
        vec!["info", "-m", path],
        vec!["bench", "-m", path, "-p", "4", "-n", "2"],
    ];
    for args in commands {
        mamba_edge(&args).error(&[path, "No such file"]);
    }
}

#[test]
fn non_gguf_file_rejected() {
    let dir = TempDir::new("not-gguf");
    let text = dir.join("notes.gguf");
    std::fs::write(&text, "hello, this is plain text and not a model\n").unwrap();
    let path = path_str(&text);
    mamba_edge(["generate", "-m", path, "hello"]).error(&[path, "GGUF"]);
    mamba_edge(["info", "-m", path]).error(&[path, "GGUF"]);
    mamba_edge(["tokenize", "-m", path, "hello"]).error(&[path, "GGUF"]);

    let empty = dir.join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    let path = path_str(&empty);
    mamba_edge(["info", "-m", path]).error(&[path]);
}

#[test]
fn truncated_gguf_rejected() {
    let dir = TempDir::new("truncated");
    for source in [convert("tiny", GgmlType::F32, &dir), llamacpp_file("quant", "llamacpp-q8_0.gguf")] {
        let bytes = std::fs::read(&source).unwrap();
        let half = dir.join("half.gguf");
        std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
        let path = path_str(&half);
        mamba_edge(["generate", "-m", path, "hello"]).error(&[path, "truncated"]);
        mamba_edge(["info", "-m", path]).error(&[path, "truncated"]);
        mamba_edge(["tokenize", "-m", path, "hello"]).error(&[path, "truncated"]);
        mamba_edge(["bench", "-m", path, "-p", "4", "-n", "2"]).error(&[path, "truncated"]);
    }
}

#[test]
fn directory_model_rejected() {
    let dir = TempDir::new("directory");
    let path = path_str(dir.path());
    mamba_edge(["info", "-m", path]).error(&[path, "is a directory"]);
    mamba_edge(["generate", "-m", path, "hello"]).error(&[path, "is a directory"]);
}

#[test]
fn empty_prompt_rejected() {
    let dir = TempDir::new("empty-prompt");
    let model = convert("tiny", GgmlType::F32, &dir);
    let run = mamba_edge(["generate", "-m", path_str(&model), ""]);
    run.error(&["prompt \"\"", "--state-in"]);
    assert!(run.stdout.is_empty());
    mamba_edge(["generate", "-m", path_str(&model)]).error(&["prompt \"\""]);
}

#[test]
fn bad_sampling_options_rejected() {
    let dir = TempDir::new("sampling-options");
    let model = convert("tiny", GgmlType::F32, &dir);
    let model = path_str(&model);
    let cases: [(&[&str], &str); 9] = [
        (&["--top-p", "2"], "--top-p 2"),
        (&["--top-p", "-0.5"], "--top-p -0.5"),
        (&["--temp", "nan"], "--temp NaN"),
        (&["--temp", "inf"], "--temp inf"),
        (&["--temp", "-1"], "--temp -1"),
        (&["--min-p", "1.5"], "--min-p 1.5"),
        (&["--repeat-penalty", "0"], "--repeat-penalty 0"),
        (&["--repeat-penalty", "-2"], "--repeat-penalty -2"),
        (&["--threads", "0"], "--threads 0"),
    ];
    for (options, needle) in cases {
        let mut args = vec!["generate", "-m", model];
        args.extend(options);
        args.push("hello");
        let run = mamba_edge(&args);
        run.error(&[needle]);
        assert!(run.stdout.is_empty(), "{options:?}: nothing is generated");
    }
}

#[test]
fn bench_zero_values_rejected() {
    let dir = TempDir::new("bench-zero");
    let model = convert("tiny", GgmlType::F32, &dir);
    let model = path_str(&model);
    mamba_edge(["bench", "-m", model, "-p", "0"]).error(&["--n-prompt 0"]);
    mamba_edge(["bench", "-m", model, "-p", "4", "--batch", "0"]).error(&["--batch 0"]);
    mamba_edge(["bench", "-m", model, "-p", "4", "--threads", "0"]).error(&["--threads 0"]);
}

// ---------------------------------------------------------------------------------------------
// info and bench

/// Checks that `info` names every tensor of the file with its type, and the hyperparameters
/// of the fixture's config.
fn check_info(fixture: &str, model: &Path) {
    let stdout = mamba_edge(["info", "-m", path_str(model)]).success();
    let bytes = std::fs::read(model).unwrap();
    let gguf = mamba_core::gguf::Gguf::parse(&bytes).unwrap();
    for tensor in gguf.tensors() {
        let line = stdout
            .lines()
            .find(|line| line.split_whitespace().next() == Some(tensor.name))
            .unwrap_or_else(|| panic!("{fixture}: info lacks tensor {}:\n{stdout}", tensor.name));
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[1], tensor.dtype.name(), "{fixture}: type of {}", tensor.name);
        assert_eq!(fields.last(), Some(&tensor.data.len().to_string().as_str()), "{fixture}: bytes of {}", tensor.name);
    }

    let config = hf_config(fixture);
    let value = |key: &str| config[key].as_u64().unwrap_or_else(|| panic!("{fixture}: config.json lacks {key}"));
    let hyperparameters = [
        ("d_model", value("hidden_size")),
        ("n_layer", value("num_hidden_layers")),
        ("d_inner", value("intermediate_size")),
        ("d_state", value("state_size")),
        ("dt_rank", value("time_step_rank")),
        ("d_conv", value("conv_kernel")),
        ("n_vocab", value("vocab_size")),
    ];
    for (name, expected) in hyperparameters {
        assert!(stdout.contains(&format!("{name} {expected} ")), "{fixture}: info lacks {name} {expected}:\n{stdout}");
    }
    let eps = config["layer_norm_epsilon"].as_f64().unwrap();
    assert!(stdout.contains(&format!("rms_eps {:e}", eps as f32)), "{fixture}: rms_eps {eps}:\n{stdout}");
    assert!(stdout.contains("architecture: mamba"), "{fixture}:\n{stdout}");
}

#[test]
fn info_lists_tensors_and_hyperparameters() {
    let dir = TempDir::new("info");
    for fixture in FIXTURES {
        check_info(fixture, &convert(fixture, GgmlType::Q8_0, &dir));
        check_info(fixture, &llamacpp_file(fixture, "llamacpp-f32.gguf"));
    }
    check_info("tiny", &llamacpp_file("tiny", "llamacpp-q4_0.gguf"));
}

#[test]
fn bench_prints_json_report() {
    let dir = TempDir::new("bench");
    let model = convert("tiny", GgmlType::F32, &dir);
    let stdout = mamba_edge(["bench", "-m", path_str(&model), "-p", "16", "-n", "8", "--json"]).success();
    assert_eq!(stdout.lines().count(), 1, "one JSON object on one line:\n{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("bench --json prints JSON");

    for key in ["prompt_tokens_per_second", "generation_tokens_per_second"] {
        let speed = report[key].as_f64().unwrap_or_else(|| panic!("{key} is not a number: {report}"));
        assert!(speed > 0.0, "{key} = {speed}");
        assert!(speed.is_finite(), "{key} = {speed}");
    }
    if cfg!(target_os = "linux") {
        let rss = report["peak_rss_bytes"].as_u64().unwrap_or_else(|| panic!("peak_rss_bytes: {report}"));
        assert!(rss > 1 << 20, "peak RSS of {rss} bytes is implausibly small");
    } else {
        assert!(report.get("peak_rss_bytes").is_some(), "{report}");
    }
    assert_eq!(report["n_prompt"], 16);
    assert_eq!(report["n_gen"], 8);
    assert_eq!(report["model"], path_str(&model));
    let kernels = report["kernels"].as_str().unwrap_or_else(|| panic!("kernels: {report}"));
    assert!(kernels.starts_with(mamba_core::kernels::selected_tier()), "kernels = {kernels}");
}

/// The shipped Q8_0 model with `--exact-inputs` gives the recorded continuation, which is
/// transformers' greedy one, as the model's README states.
#[test]
fn exact_inputs_reproduce_recorded_continuation() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/default/expected.json");
    let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let prompt = expected["prompt"].as_str().unwrap();
    let ids: Vec<u32> = expected["engine_q8_0"]["generated_token_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();

    let dir = TempDir::new("exact-inputs");
    let out = dir.join("logits.npy");
    let prompt_ids: Vec<u32> = expected["prompt_token_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let all: Vec<u32> = prompt_ids.iter().chain(&ids[..ids.len() - 1]).copied().collect();
    mamba_edge(["logits", "--step", "--exact-inputs", "--tokens", &id_list(&all), "--out", path_str(&out)]).success();
    let logits = read_npy(&out);
    for (i, &id) in ids.iter().enumerate() {
        assert_eq!(argmax(logits.row(prompt_ids.len() - 1 + i)) as u32, id, "generated token {i} with --exact-inputs ({prompt:?})");
    }

    let text = mamba_edge(["generate", prompt, "-n", "48", "--temp", "0", "--exact-inputs"]).success();
    assert!(text.contains("_format_c_size"), "--exact-inputs text:\n{text}");
}

#[test]
fn bench_json_escapes_model_path() {
    // Quotes, backslashes and control characters in the path must still give valid JSON.
    let dir = TempDir::new("bench-path");
    let model = convert("tiny", GgmlType::F32, &dir);
    let odd_name = dir.join("a \"quoted\" \\ name\twith\u{1b}escape.gguf");
    std::fs::rename(&model, &odd_name).unwrap();
    let stdout = mamba_edge(["bench", "-m", path_str(&odd_name), "-p", "4", "-n", "0", "--json"]).success();
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("bench --json prints JSON");
    assert_eq!(report["model"], path_str(&odd_name));
    assert_eq!(report["generation_tokens_per_second"], 0.0, "no tokens were generated");
}

#[test]
fn default_model_runs_from_any_directory() {
    let cwd = std::env::temp_dir();
    let run = |args: &[&str]| {
        let output = std::process::Command::new(common::binary()).args(args).current_dir(&cwd).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "mamba-edge {args:?} failed:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        String::from_utf8(output.stdout).unwrap()
    };

    let text = run(&["generate", "def fibonacci(n):", "-n", "8", "--temp", "0"]);
    assert!(text.starts_with("def fibonacci(n):"), "{text}");

    let info = run(&["info"]);
    let shipped = std::fs::metadata(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/default/model.gguf")).unwrap();
    assert!(info.contains("<built-in default model>"), "{info}");
    assert!(info.contains(&format!("CPU kernels: {}", mamba_core::kernels::selected_tier())), "{info}");
    assert!(info.contains(&format!("({} bytes", shipped.len())), "the built-in model is the shipped file:\n{info}");
}

/// Mean negative log-likelihood of each next token, from a logits matrix, in f64.
fn mean_nll(logits: &common::Matrix, ids: &[u32]) -> f64 {
    let mut total = 0.0f64;
    for (row, &next) in ids[1..].iter().enumerate() {
        let values = logits.row(row);
        let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = values.iter().map(|&v| (v as f64 - max).exp()).sum();
        total += max + sum.ln() - values[next as usize] as f64;
    }
    total / (ids.len() - 1) as f64
}

#[test]
fn perplexity_matches_logits() {
    let dir = TempDir::new("perplexity");
    let model = convert("tiny", GgmlType::F32, &dir);
    let text = "def add(a, b):\n    return a + b\n\nprint(add(2, 3))  # five\n";
    let text_path = dir.join("text.py");
    std::fs::write(&text_path, text).unwrap();

    // The reference: logits of the same tokens, scored in the test.
    let ids = common::hf_tokenizer("tiny").encode(text, false).unwrap().get_ids().to_vec();
    let npy = dir.join("text.npy");
    mamba_edge(["logits", "-m", path_str(&model), "--tokens", &id_list(&ids), "--out", path_str(&npy)]).success();
    let expected = mean_nll(&read_npy(&npy), &ids);

    let out = mamba_edge(["perplexity", "-m", path_str(&model), "-f", path_str(&text_path), "--json"]).success();
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["tokens"], ids.len());
    assert_eq!(report["scored_tokens"], ids.len() - 1);
    assert_eq!(report["bytes"], text.len());
    let nll = report["nll_per_token"].as_f64().unwrap();
    assert!((nll - expected).abs() <= 1e-4 * expected, "nll per token {nll} vs {expected} from logits");
    let ppl = report["perplexity"].as_f64().unwrap();
    assert!((ppl.ln() - expected).abs() <= 1e-4 * expected, "perplexity {ppl}");
    let bpb = report["bits_per_byte"].as_f64().unwrap();
    let expected_bpb = expected / std::f64::consts::LN_2 * ids.len() as f64 / text.len() as f64;
    assert!((bpb - expected_bpb).abs() <= 1e-4 * expected_bpb, "bits per byte {bpb} vs {expected_bpb}");
}

#[test]
fn perplexity_windows_and_kl() {
    let dir = TempDir::new("perplexity-kl");
    let f32_model = convert("quant", GgmlType::F32, &dir);
    let q8_model = convert("quant", GgmlType::Q8_0, &dir);
    let text: String = (0..40).map(|i| format!("value_{i} = {i} * 3\n")).collect();
    let text_path = dir.join("text.py");
    std::fs::write(&text_path, &text).unwrap();
    let n_tokens = common::hf_tokenizer("quant").encode(text.as_str(), false).unwrap().get_ids().len();

    // Windows of 16 tokens: the first token of each window is not scored.
    let run = |model: &Path, extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["perplexity", "-m", path_str(model), "-f", path_str(&text_path), "--json"];
        args.extend(extra);
        serde_json::from_str(mamba_edge(args).success().trim()).unwrap()
    };
    let windowed = run(&f32_model, &["--ctx", "16"]);
    assert_eq!(windowed["scored_tokens"], n_tokens - n_tokens.div_ceil(16));

    // A model compared with itself diverges by nothing.
    let same = run(&f32_model, &["--kl-base", path_str(&f32_model)]);
    assert_eq!(same["mean_kl"].as_f64().unwrap(), 0.0);
    assert_eq!(same["top1_agreement"].as_f64().unwrap(), 1.0);

    // Q8_0 against F32: a small positive divergence, and the reference perplexity is the F32 one.
    let q8 = run(&q8_model, &["--kl-base", path_str(&f32_model)]);
    let kl = q8["mean_kl"].as_f64().unwrap();
    assert!(kl > 0.0 && kl < 0.1, "mean KL {kl}");
    let whole = run(&f32_model, &[]);
    assert_eq!(q8["base_perplexity"], whole["perplexity"]);
}

#[test]
fn perplexity_rejects_bad_input() {
    let dir = TempDir::new("perplexity-bad");
    let model = convert("tiny", GgmlType::F32, &dir);
    let other = convert("odd", GgmlType::F32, &dir);
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let invalid = dir.join("invalid.txt");
    std::fs::write(&invalid, b"abc\xff\xfe def").unwrap();

    mamba_edge(["perplexity", "-m", path_str(&model), "-f", path_str(&empty)]).error(&["empty.txt"]);
    mamba_edge(["perplexity", "-m", path_str(&model), "-f", path_str(&invalid)]).error(&["UTF-8"]);
    mamba_edge(["perplexity", "-m", path_str(&model), "-f", "/nonexistent/text.txt"]).error(&["/nonexistent/text.txt"]);
    mamba_edge(["perplexity", "-m", path_str(&model), "-f", path_str(&empty), "--kl-base", path_str(&other)])
        .error(&["333", "312"]);
}

// ---------------------------------------------------------------------------------------------
// backends

#[test]
fn device_needs_vulkan_backend() {
    mamba_edge(["generate", "x", "-n", "1", "--device", "0"]).error(&["--backend vulkan"]);
}

/// A build without the `vulkan` feature names the feature that adds the backend.
#[cfg(not(feature = "vulkan"))]
#[test]
fn vulkan_backend_absent_without_feature() {
    mamba_edge(["generate", "x", "-n", "1", "--backend", "vulkan"]).error(&["--features vulkan"]);
    mamba_edge(["bench", "-p", "4", "-n", "1", "--backend", "vulkan"]).error(&["--features vulkan"]);
    mamba_edge(["devices"]).error(&["--features vulkan"]);
}

/// `bench` runs on the GPU and reports the backend it measured.
#[cfg(feature = "vulkan")]
#[test]
fn vulkan_bench_reports_backend() {
    let report = mamba_edge(["bench", "-p", "8", "-n", "4", "--json", "--backend", "vulkan"]).success();
    let report: serde_json::Value = serde_json::from_str(report.trim()).expect("bench --json prints one JSON object");
    assert_eq!(report["backend"], "vulkan");
    assert!(report["generation_tokens_per_second"].as_f64().is_some_and(|rate| rate > 0.0));
}

/// A state saved by the GPU continues on the CPU with the same greedy tokens, and back.
#[cfg(feature = "vulkan")]
#[test]
fn vulkan_state_continues_on_cpu() {
    let dir = TempDir::new("vulkan-state");
    let gpu_state = dir.join("gpu.mest");
    let cpu_state = dir.join("cpu.mest");
    // The GPU multiplies f32 inputs, so the CPU keeps its decode inputs exact too.
    let generate = |backend: &str, extra: &[&str]| {
        let mut args = vec!["generate", "-n", "8", "--temp", "0", "--exact-inputs", "--backend", backend];
        args.extend_from_slice(extra);
        mamba_edge(args).success()
    };
    let first_gpu = generate("vulkan", &["def f(x):", "--state-out", path_str(&gpu_state)]);
    let first_cpu = generate("cpu", &["def f(x):", "--state-out", path_str(&cpu_state)]);
    assert_eq!(first_gpu, first_cpu, "greedy text on the two backends");

    let cpu_after_gpu = generate("cpu", &["--state-in", path_str(&gpu_state)]);
    let gpu_after_cpu = generate("vulkan", &["--state-in", path_str(&cpu_state)]);
    assert_eq!(cpu_after_gpu, gpu_after_cpu, "continuations of the saved states");
}
