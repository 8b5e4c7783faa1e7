//! Checks that the committed C header matches a fresh cbindgen run over this crate.

use std::path::Path;

#[test]
fn header_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml is readable and valid");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);

    let path = crate_dir.join("include/mamba_edge.h");
    if std::env::var_os("MAMBA_FFI_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("include/mamba_edge.h is writable");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    if committed == fresh {
        return;
    }
    let (committed, fresh) = (String::from_utf8_lossy(&committed), String::from_utf8_lossy(&fresh));
    let mut committed_lines = committed.lines();
    let mut fresh_lines = fresh.lines();
    let mut line = 1;
    let (old, new) = loop {
        match (committed_lines.next(), fresh_lines.next()) {
            (a, b) if a == b && a.is_some() => line += 1,
            (a, b) => break (a.unwrap_or("<end of file>"), b.unwrap_or("<end of file>")),
        }
    };
    panic!(
        "{} differs from the header cbindgen generates now, first at line {line}:\n  committed: {old}\n  generated: {new}\n\
         Regenerate it with `MAMBA_FFI_BLESS=1 cargo test -p mamba-ffi --test header` and commit it.",
        path.display()
    );
}
