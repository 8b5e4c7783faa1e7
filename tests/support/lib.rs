//! Shared helpers of the end-to-end tests: fixture discovery, `.npy` reading, error metrics.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use mamba_core::GgmlType;

/// The fixture directory, `tests/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// One fixture: a random-init checkpoint with transformers' logits for some token sequences.
pub struct Fixture {
    /// Directory name, for example `tiny`.
    pub name: String,
    /// The fixture directory.
    pub dir: PathBuf,
    /// The token sequences whose logits are stored.
    pub sequences: Vec<Vec<u32>>,
}

impl Fixture {
    /// Loads `tests/fixtures/<name>/tokens.json`.
    pub fn load(name: &str) -> Self {
        let dir = fixtures_dir().join(name);
        let text = std::fs::read_to_string(dir.join("tokens.json"))
            .unwrap_or_else(|e| panic!("fixture {name}: cannot read tokens.json: {e}"));
        let json: serde_json::Value = serde_json::from_str(&text).expect("tokens.json is JSON");
        let sequences = json["sequences"]
            .as_array()
            .expect("tokens.json has a sequences array")
            .iter()
            .map(|seq| seq.as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect())
            .collect();
        Self { name: name.to_string(), dir, sequences }
    }

    /// Returns the Hugging Face checkpoint directory.
    pub fn hf_dir(&self) -> PathBuf {
        self.dir.join("hf")
    }

    /// transformers' logits for sequence `i`, `[n_tokens, n_vocab]`.
    pub fn reference_logits(&self, i: usize) -> Array2 {
        read_npy_f32(&self.dir.join(format!("logits_{i}.npy")))
    }

    /// Converts the checkpoint to GGUF at `dtype` in a fresh temporary directory and returns
    /// the file's bytes.
    pub fn gguf_bytes(&self, dtype: GgmlType) -> Vec<u8> {
        let out_dir = temp_dir(&format!("{}-{}", self.name, dtype.name()));
        let out = out_dir.join("model.gguf");
        let options = mamba_quantize::Options { input: self.hf_dir(), output: out.clone(), target: dtype, tokenizer: None };
        mamba_quantize::convert(&options, &mut mamba_quantize::NoProgress)
            .unwrap_or_else(|e| panic!("fixture {}: quantize to {dtype} failed: {e}", self.name));
        let bytes = std::fs::read(&out).unwrap();
        let _ = std::fs::remove_dir_all(&out_dir);
        bytes
    }
}

/// Creates a fresh, empty directory under the system temp dir, unique to this call.
pub fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mamba-edge-tests-{}-{n}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A row-major 2-D float32 array.
pub struct Array2 {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `rows * cols` values.
    pub data: Vec<f32>,
}

impl Array2 {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// Reads a little-endian float32 (`<f4`) C-order 2-D `.npy` file.
pub fn read_npy_f32(path: &Path) -> Array2 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}: not an npy file", path.display());
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
    };
    let header = std::str::from_utf8(&bytes[header_start..header_start + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{}: expected float32, header {header}", path.display());
    assert!(header.contains("'fortran_order': False"), "{}: expected C order", path.display());
    let shape_start = header.find("'shape': (").unwrap() + "'shape': (".len();
    let shape_end = shape_start + header[shape_start..].find(')').unwrap();
    let dims: Vec<usize> = header[shape_start..shape_end]
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    assert_eq!(dims.len(), 2, "{}: expected a 2-D array, shape {dims:?}", path.display());
    let data: Vec<f32> = bytes[header_start + header_len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(data.len(), dims[0] * dims[1], "{}: data length", path.display());
    Array2 { rows: dims[0], cols: dims[1], data }
}

/// `||a - b|| / ||b||` over one row, computed in f64.
pub fn relative_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mut diff = 0.0f64;
    let mut norm = 0.0f64;
    for (&x, &y) in a.iter().zip(b) {
        diff += (x as f64 - y as f64).powi(2);
        norm += (y as f64).powi(2);
    }
    (diff / norm.max(f64::MIN_POSITIVE)).sqrt()
}

/// Index of the largest value, the lowest index on ties.
pub fn argmax(v: &[f32]) -> usize {
    mamba_core::sampling::argmax(v) as usize
}
