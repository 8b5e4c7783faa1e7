//! Compiles the GLSL compute shaders in `shaders/` to SPIR-V.
//!
//! `glslc` (from shaderc) is used when it is on `PATH`, and the pure-Rust `naga` otherwise,
//! so a clean build needs neither a C++ toolchain nor a Vulkan driver. Set
//! `MAMBA_VULKAN_SHADER_COMPILER` to `glslc` or `naga` to force one. Each shader that reads
//! weights is built once per weight format, with `weights.glsl` and the format's decoder
//! inserted after `#version` (naga's preprocessor has no `#include` and no `#elif defined`).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Weight formats, each with its tile decoder in `shaders/formats/{format}.glsl`.
const FORMATS: [&str; 5] = ["f32", "f16", "bf16", "q8_0", "q4_0"];

/// Shaders that read weights: one variant per format.
const WEIGHT_SHADERS: [&str; 2] = ["matmul", "embed"];

/// Shaders with one variant.
const PLAIN_SHADERS: [&str; 3] = ["rmsnorm", "conv", "scan"];

#[derive(Clone, Copy, PartialEq)]
enum Compiler {
    Glslc,
    Naga,
}

fn main() {
    let shader_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("shaders");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=shaders");
    println!("cargo:rerun-if-env-changed=MAMBA_VULKAN_SHADER_COMPILER");
    println!("cargo:rerun-if-env-changed=PATH");

    let compiler = choose_compiler();
    let weights = read(&shader_dir.join("weights.glsl"));

    let mut module = String::new();
    module.push_str(&format!(
        "/// The compiler that built the shaders: `glslc` or `naga`.\npub const SHADER_COMPILER: &str = {:?};\n",
        match compiler {
            Compiler::Glslc => "glslc",
            Compiler::Naga => "naga",
        }
    ));

    for shader in WEIGHT_SHADERS {
        let body = read(&shader_dir.join(format!("{shader}.comp")));
        for format in FORMATS {
            let decoder = read(&shader_dir.join("formats").join(format!("{format}.glsl")));
            let source = format!("#version 450\n{weights}\n{decoder}\n{body}");
            let name = format!("{shader}_{format}");
            let spv = compile(compiler, &name, &source, &out_dir);
            module.push_str(&constant(&name, &spv));
        }
    }
    for shader in PLAIN_SHADERS {
        let body = read(&shader_dir.join(format!("{shader}.comp")));
        let source = format!("#version 450\n{body}");
        let spv = compile(compiler, shader, &source, &out_dir);
        module.push_str(&constant(shader, &spv));
    }

    fs::write(out_dir.join("shaders.rs"), module).expect("failed to write shaders.rs to OUT_DIR");
}

fn choose_compiler() -> Compiler {
    match env::var("MAMBA_VULKAN_SHADER_COMPILER").as_deref() {
        Ok("glslc") => Compiler::Glslc,
        Ok("naga") => Compiler::Naga,
        Ok(other) if !other.is_empty() => {
            panic!("MAMBA_VULKAN_SHADER_COMPILER is {other:?}; set it to \"glslc\" or \"naga\", or unset it")
        }
        _ => {
            let found = Command::new("glslc").arg("--version").output().is_ok_and(|out| out.status.success());
            if found { Compiler::Glslc } else { Compiler::Naga }
        }
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("failed to read shader source {}: {e}", path.display()))
}

/// Returns a Rust item that embeds the SPIR-V file `spv`.
fn constant(name: &str, spv: &Path) -> String {
    format!(
        "/// SPIR-V of `{name}`.\npub const {}: &[u8] = include_bytes!({:?});\n",
        name.to_uppercase(),
        spv.display().to_string()
    )
}

/// Compiles `source` and returns the path of the SPIR-V file.
fn compile(compiler: Compiler, name: &str, source: &str, out_dir: &Path) -> PathBuf {
    let spv_path = out_dir.join(format!("{name}.spv"));
    match compiler {
        Compiler::Glslc => {
            let glsl_path = out_dir.join(format!("{name}.comp"));
            fs::write(&glsl_path, source).expect("failed to write shader source to OUT_DIR");
            let output = Command::new("glslc")
                .args(["-O", "--target-env=vulkan1.0", "-fshader-stage=compute", "-o"])
                .arg(&spv_path)
                .arg(&glsl_path)
                .output()
                .expect("failed to run glslc");
            if !output.status.success() {
                panic!("glslc failed on shader {name}:\n{}", String::from_utf8_lossy(&output.stderr));
            }
        }
        Compiler::Naga => {
            let words = compile_with_naga(name, source);
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            fs::write(&spv_path, bytes).expect("failed to write SPIR-V to OUT_DIR");
        }
    }
    spv_path
}

fn compile_with_naga(name: &str, source: &str) -> Vec<u32> {
    let mut frontend = naga::front::glsl::Frontend::default();
    let options = naga::front::glsl::Options::from(naga::ShaderStage::Compute);
    let module = frontend
        .parse(&options, source)
        .unwrap_or_else(|e| panic!("naga failed to parse shader {name}:\n{}", e.emit_to_string(source)));
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::IMMEDIATES | naga::valid::Capabilities::SUBGROUP | naga::valid::Capabilities::SUBGROUP_BARRIER)
        .validate(&module)
        .unwrap_or_else(|e| panic!("naga rejected shader {name}:\n{}", e.emit_to_string(source)));
    let spv_options = naga::back::spv::Options { lang_version: (1, 0), ..Default::default() };
    naga::back::spv::write_vec(&module, &info, &spv_options, None)
        .unwrap_or_else(|e| panic!("naga failed to write SPIR-V for shader {name}: {e}"))
}
