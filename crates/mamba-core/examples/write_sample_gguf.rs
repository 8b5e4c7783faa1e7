//! Writes a small GGUF file with every metadata value type and every tensor type, for
//! checking interoperability with other readers (`tests/reference/check_gguf_python.py`).
//!
//! Usage: `cargo run -p mamba-core --example write_sample_gguf -- OUT.gguf [ALIGNMENT]`

// The writer needs std, so without it the example only explains that.
#[cfg(not(feature = "std"))]
fn main() {
    eprintln!("write_sample_gguf needs the std feature of mamba-core");
}

#[cfg(feature = "std")]
fn main() -> std::process::ExitCode {
    sample::main()
}

#[cfg(feature = "std")]
mod sample {
    use std::path::PathBuf;
    use std::process::ExitCode;

    use mamba_core::GgmlType;
    use mamba_core::gguf::{GgufWriter, MetaValue, ValueType};

    /// Returns the writer and the byte size of each tensor, in the order added.
    fn build_writer(
        alignment: u64,
    ) -> Result<(GgufWriter, Vec<usize>), Box<dyn std::error::Error>> {
        let mut writer = GgufWriter::new();
        writer.set_alignment(alignment)?;

        // Metadata: every scalar type, unicode text, and flat, empty and nested arrays.
        let string = |s: &str| MetaValue::String(s.to_string());
        let entries = [
            ("general.architecture", string("mamba")),
            ("general.name", string("mamba-edge sample ✓")),
            ("general.quantization_version", MetaValue::U32(2)),
            ("sample.u8", MetaValue::U8(200)),
            ("sample.i8", MetaValue::I8(-100)),
            ("sample.u16", MetaValue::U16(60_000)),
            ("sample.i16", MetaValue::I16(-30_000)),
            ("sample.i32", MetaValue::I32(-2_000_000_000)),
            ("sample.f32", MetaValue::F32(1e-5)),
            ("sample.bool", MetaValue::Bool(true)),
            ("sample.u64", MetaValue::U64(u64::MAX)),
            ("sample.i64", MetaValue::I64(i64::MIN)),
            ("sample.f64", MetaValue::F64(-0.125)),
            (
                "sample.tokens",
                MetaValue::Array(
                    ValueType::String,
                    vec![string("<s>"), string("ü"), string("🐍")],
                ),
            ),
            (
                "sample.scores",
                MetaValue::Array(
                    ValueType::F32,
                    vec![MetaValue::F32(0.0), MetaValue::F32(-1.5)],
                ),
            ),
            (
                "sample.flags",
                MetaValue::Array(
                    ValueType::Bool,
                    vec![MetaValue::Bool(false), MetaValue::Bool(true)],
                ),
            ),
            ("sample.empty", MetaValue::Array(ValueType::I32, vec![])),
            (
                "sample.nested",
                MetaValue::Array(
                    ValueType::Array,
                    vec![
                        MetaValue::Array(
                            ValueType::U16,
                            vec![MetaValue::U16(1), MetaValue::U16(2)],
                        ),
                        MetaValue::Array(ValueType::U16, vec![MetaValue::U16(3)]),
                    ],
                ),
            ),
        ];
        for (key, value) in entries {
            writer.add_metadata(key, value)?;
        }

        // Tensors: every type, with one to four dimensions.
        let mut sizes = Vec::new();
        for dtype in GgmlType::ALL {
            let row = dtype.block_size() as u64 * 2;
            let shapes: [&[u64]; 4] = [&[row], &[row, 3], &[row, 2, 2], &[row, 1, 2, 3]];
            for (rank, dims) in (1..).zip(shapes) {
                writer.add_tensor(&format!("{}.{rank}d.weight", dtype.name()), dtype, dims)?;
                let rows: u64 = dims[1..].iter().product();
                sizes.push(
                    dtype
                        .row_bytes(row as usize)
                        .ok_or("row length is not whole blocks")?
                        * rows as usize,
                );
            }
        }
        Ok((writer, sizes))
    }

    pub fn main() -> ExitCode {
        let mut args = std::env::args_os().skip(1);
        let Some(path) = args.next().map(PathBuf::from) else {
            eprintln!("usage: write_sample_gguf OUT.gguf [ALIGNMENT]");
            return ExitCode::from(2);
        };
        let alignment = match args.next().map(|arg| arg.to_string_lossy().parse::<u64>()) {
            None => 32,
            Some(Ok(alignment)) => alignment,
            Some(Err(error)) => {
                eprintln!("ALIGNMENT must be a power of two in bytes: {error}");
                return ExitCode::from(2);
            }
        };

        let result = build_writer(alignment).and_then(|(writer, sizes)| {
            // Each tensor's bytes follow its own sequence, so a reader that mixes up tensors
            // shows it.
            let written = writer.write_file(&path, |index, sink| {
                let mut state = index as u8;
                let bytes: Vec<u8> = (0..sizes[index])
                    .map(|_| {
                        state = state.wrapping_mul(31).wrapping_add(7);
                        state
                    })
                    .collect();
                sink.write_all(&bytes)?;
                Ok(())
            })?;
            Ok(written)
        });
        match result {
            Ok(bytes) => {
                println!("wrote {bytes} bytes to {}", path.display());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        }
    }
}
