//! Helpers of the CLI tests: running the binary, fixtures, temporary model files and `.npy`.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};

use mamba_core::GgmlType;
use tokenizers::Tokenizer;

/// The fixtures that have a checkpoint, `tokens.json`, logits and `greedy.json`.
pub const FIXTURES: [&str; 4] = ["tiny", "odd", "quant", "eps"];

/// `tests/fixtures/<name>` at the workspace root.
pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn ids(value: &serde_json::Value) -> Vec<u32> {
    let array = value.as_array().expect("a JSON array of token ids");
    array.iter().map(|id| id.as_u64().expect("a token id") as u32).collect()
}

/// Reads the token sequences of `tokens.json`. `logits_<i>.npy` belongs to sequence `i`.
pub fn sequences(fixture: &str) -> Vec<Vec<u32>> {
    let json = read_json(&fixture_dir(fixture).join("tokens.json"));
    json["sequences"].as_array().expect("tokens.json has sequences").iter().map(ids).collect()
}

/// Reads the prompt ids and transformers' 32 greedy ids from `greedy.json`.
pub fn greedy(fixture: &str) -> (Vec<u32>, Vec<u32>) {
    let json = read_json(&fixture_dir(fixture).join("greedy.json"));
    (ids(&json["prompt"]), ids(&json["generated"]))
}

/// Reads the checkpoint's `config.json`.
pub fn hf_config(fixture: &str) -> serde_json::Value {
    read_json(&fixture_dir(fixture).join("hf/config.json"))
}

/// Loads the fixture's `tokenizer.json` with the `tokenizers` crate.
pub fn hf_tokenizer(fixture: &str) -> Tokenizer {
    let path = fixture_dir(fixture).join("hf/tokenizer.json");
    Tokenizer::from_file(&path).unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()))
}

/// Encodes `text` as the CLI does: special tokens are recognised, nothing is added.
pub fn hf_encode(tokenizer: &Tokenizer, text: &str) -> Vec<u32> {
    tokenizer.encode(text, true).expect("tokenizers encodes the text").get_ids().to_vec()
}

/// Decodes ids with special tokens kept, as the CLI's streaming does.
pub fn hf_decode(tokenizer: &Tokenizer, ids: &[u32]) -> String {
    tokenizer.decode(ids, false).expect("tokenizers decodes the ids")
}

/// A llama.cpp-converted file of a fixture, for example `llamacpp-f32.gguf`.
pub fn llamacpp_file(fixture: &str, file: &str) -> PathBuf {
    fixture_dir(fixture).join(file)
}

/// A directory under the system temp dir, removed with its contents on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a fresh, empty directory whose name contains `tag`.
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mamba-cli-test-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Self(dir)
    }

    /// Path of `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Names of the entries in the directory, sorted.
    pub fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Converts the fixture's checkpoint with the quantizer library to `<fixture>-<type>.gguf` in
/// `dir` and returns the file's path.
pub fn convert(fixture: &str, target: GgmlType, dir: &TempDir) -> PathBuf {
    let output = dir.join(&format!("{fixture}-{}.gguf", target.name()));
    let options = mamba_quantize::Options { input: fixture_dir(fixture).join("hf"), output: output.clone(), target, tokenizer: None };
    mamba_quantize::convert(&options, &mut mamba_quantize::NoProgress)
        .unwrap_or_else(|e| panic!("converting {fixture} to {target} failed: {e}"));
    output
}

/// Exit status and output of one `mamba-edge` run.
pub struct Run {
    /// Shell-like rendering of the command, for failure messages.
    pub command: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Raw standard output.
    pub stdout: Vec<u8>,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout, which must be UTF-8.
    pub fn success(&self) -> String {
        assert!(self.status.success(), "`{}` failed with {}:\n{}", self.command, self.status, self.stderr);
        assert_no_panic(self);
        String::from_utf8(self.stdout.clone())
            .unwrap_or_else(|e| panic!("`{}` wrote invalid UTF-8 to stdout: {e}", self.command))
    }

    /// Asserts a failure with exactly one stderr line, `error: ...`, containing every string
    /// of `needles`, and returns that line.
    pub fn error(&self, needles: &[&str]) -> String {
        assert!(!self.status.success(), "`{}` succeeded but should fail", self.command);
        assert_eq!(self.status.code(), Some(1), "`{}` exit status; stderr:\n{}", self.command, self.stderr);
        assert_no_panic(self);
        let lines: Vec<&str> = self.stderr.lines().filter(|line| !line.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "`{}` should print one error line, got:\n{}", self.command, self.stderr);
        let line = lines[0];
        assert!(line.starts_with("error: "), "`{}`: {line}", self.command);
        for needle in needles {
            assert!(line.contains(needle), "`{}`: error line lacks {needle:?}: {line}", self.command);
        }
        line.to_string()
    }
}

fn assert_no_panic(run: &Run) {
    assert!(!run.stderr.contains("panicked"), "`{}` panicked:\n{}", run.command, run.stderr);
}

/// Returns the path of the built `mamba-edge` binary.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_mamba-edge")
}

/// Runs `mamba-edge` with `args` and collects its output.
pub fn mamba_edge<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
    let command = std::iter::once("mamba-edge".to_string())
        .chain(args.iter().map(|a| format!("{:?}", a.to_string_lossy())))
        .collect::<Vec<_>>()
        .join(" ");
    let output = Command::new(binary())
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary()));
    Run {
        command,
        status: output.status,
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A row-major float32 matrix read from a `.npy` file.
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `rows * cols` values.
    pub data: Vec<f32>,
}

impl Matrix {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// Reads a 2-D little-endian float32 C-order `.npy` file, format version 1 or 2.
pub fn read_npy(path: &Path) -> Matrix {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{} has no npy magic", path.display());
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        version => panic!("{}: npy version {version} is not supported", path.display()),
    };
    let data_start = header_start + header_len;
    assert_eq!(data_start % 64, 0, "{}: the npy header must end on a 64-byte boundary", path.display());
    let header = std::str::from_utf8(&bytes[header_start..data_start]).expect("the npy header is ASCII");
    assert!(header.ends_with('\n'), "{}: header {header:?}", path.display());
    assert!(header.contains("'descr': '<f4'"), "{}: header {header:?}", path.display());
    assert!(header.contains("'fortran_order': False"), "{}: header {header:?}", path.display());

    let shape_start = header.find("'shape': (").expect("the header has a shape") + "'shape': (".len();
    let shape_end = shape_start + header[shape_start..].find(')').expect("the shape tuple ends");
    let dims: Vec<usize> = header[shape_start..shape_end]
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().expect("a dimension"))
        .collect();
    assert_eq!(dims.len(), 2, "{}: shape {dims:?}", path.display());

    let data: Vec<f32> = bytes[data_start..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(data.len(), dims[0] * dims[1], "{}: data length for shape {dims:?}", path.display());
    Matrix { rows: dims[0], cols: dims[1], data }
}

/// `||a - b|| / ||b||` in f64.
pub fn relative_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "row lengths differ");
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        diff += (f64::from(x) - f64::from(y)).powi(2);
        norm += f64::from(y).powi(2);
    }
    (diff / norm.max(f64::MIN_POSITIVE)).sqrt()
}

/// Index of the largest value; the first one on ties.
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Comma-separated ids for `--tokens`.
pub fn id_list(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}
