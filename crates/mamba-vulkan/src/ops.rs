//! Each shader run alone on host data and read back, for the tests that compare the shaders
//! with the CPU reference kernels. Every call uploads its inputs, records one dispatch and
//! waits for it, so these are slow and meant for checks, not inference.

use mamba_core::ops::conv1d::ConvShape;
use mamba_core::ops::ssm_scan::ScanInputs;
use mamba_core::Matrix;
use vulkano::command_buffer::CommandBufferUsage;

use crate::error::{VulkanContext, VulkanError};
use crate::gpu::Gpu;
use crate::model::GpuMatrix;
use crate::record::{ConvParams, Epilogue, MatmulLayout, Recorder, ScanBuffers, ScanParams};

/// Runs the matmul shader: `y[t, r] = sum_c W[r, c] * x[t, c]` for the rows of `x`
/// (`[n_tokens, w.cols]`), starting from `y` (`[n_tokens, w.rows]`) and applying
/// `epilogue`, which reads `bias` (`[w.rows]`) for [`Epilogue::SoftplusBias`].
///
/// # Panics
/// Panics when `x` is not whole rows of `w.cols`, `y` does not have `w.rows` values per
/// row of `x`, or `bias` is shorter than `w.rows` with [`Epilogue::SoftplusBias`].
pub fn matmul(gpu: &Gpu, w: &Matrix<'_>, x: &[f32], y: &[f32], epilogue: Epilogue, bias: &[f32]) -> Result<Vec<f32>, VulkanError> {
    assert!(w.cols > 0, "w has no columns");
    assert!(x.len().is_multiple_of(w.cols), "x is not whole rows of {} columns", w.cols);
    let n_tokens = x.len() / w.cols;
    assert_eq!(y.len(), n_tokens * w.rows, "y must have {} rows of {}", n_tokens, w.rows);
    assert!(epilogue != Epilogue::SoftplusBias || bias.len() >= w.rows, "bias must have {} values", w.rows);

    let weights = GpuMatrix::upload(gpu, "w", w)?;
    let x_buffer = gpu.upload("x", x)?;
    let y_buffer = gpu.upload("y", y)?;
    let bias_buffer = gpu.upload("bias", if bias.is_empty() { &[0.0] } else { bias })?;
    let layout = MatmulLayout {
        n_tokens: n_tokens as u32,
        x_offset: 0,
        x_stride: w.cols as u32,
        y_offset: 0,
        y_stride: w.rows as u32,
        epilogue,
    };
    run(gpu, |rec| rec.matmul(&weights, &x_buffer, &y_buffer, &bias_buffer, layout))?;
    gpu.read(&y_buffer, y.len())
}

/// Runs the embedding shader: returns rows `tokens` of `w`, decoded to f32, as
/// `[tokens.len(), w.cols]`.
///
/// # Panics
/// Panics when a token is not below `w.rows`.
pub fn embed(gpu: &Gpu, w: &Matrix<'_>, tokens: &[u32]) -> Result<Vec<f32>, VulkanError> {
    assert!(tokens.iter().all(|&t| (t as usize) < w.rows), "a token is not below {} rows", w.rows);
    let weights = GpuMatrix::upload(gpu, "w", w)?;
    let token_buffer = gpu.upload("tokens", tokens)?;
    let hidden = gpu.device_buffer::<f32>("hidden", tokens.len() * w.cols)?;
    run(gpu, |rec| rec.embed(&weights, &token_buffer, &hidden, tokens.len() as u32))?;
    gpu.read(&hidden, tokens.len() * w.cols)
}

/// Runs the RMSNorm shader on every row of `x` (rows of `weight.len()` values).
///
/// # Panics
/// Panics when `weight` is empty or `x` is not whole rows.
pub fn rmsnorm(gpu: &Gpu, x: &[f32], weight: &[f32], eps: f32) -> Result<Vec<f32>, VulkanError> {
    assert!(!weight.is_empty(), "weight is empty");
    assert!(x.len().is_multiple_of(weight.len()), "x is not whole rows of {}", weight.len());
    let n_rows = (x.len() / weight.len()) as u32;
    let x_buffer = gpu.upload("x", x)?;
    let weight_buffer = gpu.upload("weight", weight)?;
    let normed = gpu.device_buffer::<f32>("normed", x.len())?;
    run(gpu, |rec| rec.rmsnorm(&x_buffer, &weight_buffer, &normed, weight.len() as u32, eps, 0, n_rows))?;
    gpu.read(&normed, x.len())
}

/// Runs the conv shader over `n_tokens` rows of `x` (row `t` at `t * shape.x_stride`) and
/// returns the outputs after SiLU (`[n_tokens, d_inner]`) and the advanced state.
///
/// # Panics
/// Panics when a slice is shorter than its shape requires or `d_conv` is 0.
pub fn conv(
    gpu: &Gpu,
    shape: ConvShape,
    state: &[f32],
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    n_tokens: usize,
) -> Result<(Vec<f32>, Vec<f32>), VulkanError> {
    let ConvShape { d_inner, d_conv, x_stride } = shape;
    assert!(d_conv > 0, "d_conv must be at least 1");
    assert_eq!(state.len(), d_inner * (d_conv - 1), "state must be [d_inner, d_conv - 1]");
    assert_eq!(weight.len(), d_inner * d_conv, "weight must be [d_inner, d_conv]");
    assert!(n_tokens == 0 || x.len() >= (n_tokens - 1) * x_stride + d_inner, "x is too short");

    let x_buffer = gpu.upload("x", if x.is_empty() { &[0.0] } else { x })?;
    let weight_buffer = gpu.upload("weight", weight)?;
    let bias_buffer = gpu.upload("bias", bias.unwrap_or(&[0.0]))?;
    let state_buffer = gpu.upload("state", if state.is_empty() { &[0.0] } else { state })?;
    let out = gpu.device_buffer::<f32>("out", n_tokens * d_inner)?;
    let params = ConvParams {
        d_inner: d_inner as u32,
        d_conv: d_conv as u32,
        n_tokens: n_tokens as u32,
        x_stride: x_stride as u32,
        state_offset: 0,
        has_bias: u32::from(bias.is_some()),
    };
    run(gpu, |rec| rec.conv(&x_buffer, &weight_buffer, &bias_buffer, &state_buffer, &out, params))?;
    Ok((gpu.read(&out, n_tokens * d_inner)?, gpu.read(&state_buffer, state.len())?))
}

/// Runs the scan shader over `n_tokens` positions and returns `y` (`[n_tokens, d_inner]`)
/// and the advanced state (`[d_inner, d_state]`), as
/// [`selective_scan`](mamba_core::ops::ssm_scan::selective_scan) computes them.
///
/// # Panics
/// Panics when a slice is shorter than its shape requires.
pub fn scan(gpu: &Gpu, inputs: &ScanInputs<'_>, n_tokens: usize, state: &[f32]) -> Result<(Vec<f32>, Vec<f32>), VulkanError> {
    let ScanInputs { d_inner, d_state, x, dt, a, bc, bc_stride, b_offset, c_offset, d, z, z_stride } = *inputs;
    assert_eq!(state.len(), d_inner * d_state, "state must be [d_inner, d_state]");
    assert!(x.len() >= n_tokens * d_inner, "x is shorter than [n_tokens, d_inner]");
    assert!(dt.len() >= n_tokens * d_inner, "dt is shorter than [n_tokens, d_inner]");
    assert_eq!(a.len(), d_inner * d_state, "A must be [d_inner, d_state]");
    assert_eq!(d.len(), d_inner, "D must be [d_inner]");
    assert!(b_offset + d_state <= bc_stride, "B does not fit in a bc row");
    assert!(c_offset + d_state <= bc_stride, "C does not fit in a bc row");
    if n_tokens > 0 {
        assert!(bc.len() >= (n_tokens - 1) * bc_stride + c_offset.max(b_offset) + d_state, "bc is shorter than n_tokens rows");
        assert!(z.len() >= (n_tokens - 1) * z_stride + d_inner, "z is shorter than n_tokens rows");
    }

    let nonempty = |values: &[f32]| if values.is_empty() { vec![0.0] } else { values.to_vec() };
    let xc = gpu.upload("x", &nonempty(x))?;
    let dt_buffer = gpu.upload("dt", &nonempty(dt))?;
    let a_buffer = gpu.upload("A", a)?;
    let bc_buffer = gpu.upload("bc", &nonempty(bc))?;
    let d_buffer = gpu.upload("D", d)?;
    let z_buffer = gpu.upload("z", &nonempty(z))?;
    let state_buffer = gpu.upload("state", state)?;
    let y = gpu.device_buffer::<f32>("y", n_tokens * d_inner)?;
    let params = ScanParams {
        d_inner: d_inner as u32,
        d_state: d_state as u32,
        n_tokens: n_tokens as u32,
        dbc_stride: bc_stride as u32,
        b_offset: b_offset as u32,
        c_offset: c_offset as u32,
        z_offset: 0,
        z_stride: z_stride as u32,
        state_offset: 0,
    };
    let buffers = ScanBuffers {
        xc: &xc,
        dt: &dt_buffer,
        a: &a_buffer,
        dbc: &bc_buffer,
        d: &d_buffer,
        xz: &z_buffer,
        state: &state_buffer,
        y: &y,
    };
    run(gpu, |rec| rec.scan(&buffers, params))?;
    Ok((gpu.read(&y, n_tokens * d_inner)?, gpu.read(&state_buffer, state.len())?))
}

/// Records what `body` adds to a command buffer, runs it and waits.
fn run(gpu: &Gpu, body: impl FnOnce(&mut Recorder<'_>) -> Result<(), VulkanError>) -> Result<(), VulkanError> {
    let mut rec = Recorder::new(gpu, gpu.builder(CommandBufferUsage::OneTimeSubmit)?);
    body(&mut rec)?;
    gpu.run(rec.builder.build().during("building a command buffer")?)
}
