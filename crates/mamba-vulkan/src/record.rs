//! Recording of single shader dispatches into a command buffer.
//!
//! Each method binds whole buffers, so vulkano inserts a pipeline barrier between a dispatch
//! that writes a buffer and any later one that reads it. Offsets and strides go in push
//! constants; every one is an element index and must fit in `u32` (checked on upload).

use std::sync::Arc;

use vulkano::buffer::{BufferContents, Subbuffer};
use vulkano::command_buffer::{AutoCommandBufferBuilder, PrimaryAutoCommandBuffer};
use vulkano::descriptor_set::{DescriptorSet, WriteDescriptorSet};
use vulkano::pipeline::{ComputePipeline, Pipeline, PipelineBindPoint};

use crate::error::{VulkanContext, VulkanError};
use crate::gpu::Gpu;
use crate::model::GpuMatrix;

/// Invocations per workgroup of every shader (`local_size_x`).
const GROUP: u32 = 64;
/// Input rows one matmul workgroup handles (`TOKENS` in matmul.comp).
const MATMUL_TOKENS: u32 = 4;
/// Weight rows one matmul workgroup handles (`ROWS` in matmul.comp).
const MATMUL_ROWS: u32 = 8;
/// Largest workgroup count of the first dispatch dimension that every device supports.
const MAX_GROUPS_X: u32 = 65535;
/// Columns per weight tile (`TILE` in weights.glsl).
const TILE: u32 = 32;

/// The operation the matmul shader applies to each sum before storing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Epilogue {
    /// Stores it.
    Store = 0,
    /// Adds it to the output (the residual connection).
    Add = 1,
    /// Stores `softplus(sum + bias[row])` (dt_proj).
    SoftplusBias = 2,
}

/// Element offsets and strides of the matmul's `x[t, c]` and `y[t, r]`, and its epilogue.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatmulLayout {
    pub n_tokens: u32,
    pub x_offset: u32,
    pub x_stride: u32,
    pub y_offset: u32,
    pub y_stride: u32,
    pub epilogue: Epilogue,
}

#[derive(BufferContents, Clone, Copy)]
#[repr(C)]
struct MatmulParams {
    rows: u32,
    cols: u32,
    n_tokens: u32,
    row_bytes: u32,
    x_offset: u32,
    x_stride: u32,
    y_offset: u32,
    y_stride: u32,
    epilogue: u32,
}

#[derive(BufferContents, Clone, Copy)]
#[repr(C)]
struct EmbedParams {
    cols: u32,
    n_tokens: u32,
    row_bytes: u32,
}

#[derive(BufferContents, Clone, Copy)]
#[repr(C)]
struct RmsNormParams {
    d: u32,
    first_row: u32,
    eps: f32,
}

/// Shapes and offsets of one conv dispatch.
#[derive(BufferContents, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct ConvParams {
    pub d_inner: u32,
    pub d_conv: u32,
    pub n_tokens: u32,
    pub x_stride: u32,
    pub state_offset: u32,
    pub has_bias: u32,
}

/// Shapes and offsets of one scan dispatch.
#[derive(BufferContents, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct ScanParams {
    pub d_inner: u32,
    pub d_state: u32,
    pub n_tokens: u32,
    pub dbc_stride: u32,
    pub b_offset: u32,
    pub c_offset: u32,
    pub z_offset: u32,
    pub z_stride: u32,
    pub state_offset: u32,
}

/// The buffers of one scan dispatch.
pub(crate) struct ScanBuffers<'a> {
    pub xc: &'a Subbuffer<[f32]>,
    pub dt: &'a Subbuffer<[f32]>,
    pub a: &'a Subbuffer<[f32]>,
    pub dbc: &'a Subbuffer<[f32]>,
    pub d: &'a Subbuffer<[f32]>,
    pub xz: &'a Subbuffer<[f32]>,
    pub state: &'a Subbuffer<[f32]>,
    pub y: &'a Subbuffer<[f32]>,
}

/// A command buffer being recorded on one [`Gpu`].
pub(crate) struct Recorder<'g> {
    gpu: &'g Gpu,
    pub builder: AutoCommandBufferBuilder<PrimaryAutoCommandBuffer>,
}

impl<'g> Recorder<'g> {
    pub fn new(gpu: &'g Gpu, builder: AutoCommandBufferBuilder<PrimaryAutoCommandBuffer>) -> Self {
        Self { gpu, builder }
    }

    /// `y[t, r] = sum_c W[r, c] * x[t, c]` with `layout`'s offsets and epilogue. `bias` is
    /// read only by [`Epilogue::SoftplusBias`].
    pub fn matmul(
        &mut self,
        w: &GpuMatrix,
        x: &Subbuffer<[f32]>,
        y: &Subbuffer<[f32]>,
        bias: &Subbuffer<[f32]>,
        layout: MatmulLayout,
    ) -> Result<(), VulkanError> {
        let params = MatmulParams {
            rows: w.rows,
            cols: w.cols,
            n_tokens: layout.n_tokens,
            row_bytes: w.row_bytes,
            x_offset: layout.x_offset,
            x_stride: layout.x_stride,
            y_offset: layout.y_offset,
            y_stride: layout.y_stride,
            epilogue: layout.epilogue as u32,
        };
        let row_groups = w.rows.div_ceil(MATMUL_ROWS);
        let groups = [
            row_groups.min(MAX_GROUPS_X),
            layout.n_tokens.div_ceil(MATMUL_TOKENS),
            row_groups.div_ceil(MAX_GROUPS_X),
        ];
        let pipeline = self.gpu.pipelines.matmul(w.dtype);
        self.dispatch(pipeline, &[w.data.as_bytes(), x.as_bytes(), y.as_bytes(), bias.as_bytes()], params, groups)
    }

    /// `hidden[t, :]` = row `tokens[t]` of `w` for `n_tokens` tokens.
    pub fn embed(&mut self, w: &GpuMatrix, tokens: &Subbuffer<[u32]>, hidden: &Subbuffer<[f32]>, n_tokens: u32) -> Result<(), VulkanError> {
        let params = EmbedParams { cols: w.cols, n_tokens, row_bytes: w.row_bytes };
        let groups = [w.cols.div_ceil(TILE).div_ceil(GROUP), n_tokens, 1];
        let pipeline = self.gpu.pipelines.embed(w.dtype);
        self.dispatch(pipeline, &[w.data.as_bytes(), tokens.as_bytes(), hidden.as_bytes()], params, groups)
    }

    /// RMSNorm of rows `first_row..first_row + n_rows` of `x` (rows of `weight.len()`
    /// values) into the same rows of `normed`.
    #[allow(clippy::too_many_arguments)]
    pub fn rmsnorm(
        &mut self,
        x: &Subbuffer<[f32]>,
        weight: &Subbuffer<[f32]>,
        normed: &Subbuffer<[f32]>,
        d: u32,
        eps: f32,
        first_row: u32,
        n_rows: u32,
    ) -> Result<(), VulkanError> {
        let params = RmsNormParams { d, first_row, eps };
        let pipeline = &self.gpu.pipelines.rmsnorm;
        self.dispatch(pipeline, &[x.as_bytes(), weight.as_bytes(), normed.as_bytes()], params, [n_rows, 1, 1])
    }

    /// Causal conv with SiLU from `xz` into `xc`, advancing the conv state in `state`.
    pub fn conv(
        &mut self,
        xz: &Subbuffer<[f32]>,
        weight: &Subbuffer<[f32]>,
        bias: &Subbuffer<[f32]>,
        state: &Subbuffer<[f32]>,
        xc: &Subbuffer<[f32]>,
        params: ConvParams,
    ) -> Result<(), VulkanError> {
        let groups = [params.d_inner.div_ceil(GROUP), 1, 1];
        let buffers = [xz.as_bytes(), weight.as_bytes(), bias.as_bytes(), state.as_bytes(), xc.as_bytes()];
        self.dispatch(&self.gpu.pipelines.conv, &buffers, params, groups)
    }

    /// Selective scan with skip connection and gate, advancing the SSM state.
    pub fn scan(&mut self, buffers: &ScanBuffers<'_>, params: ScanParams) -> Result<(), VulkanError> {
        let groups = [params.d_inner.div_ceil(GROUP), 1, 1];
        let b = buffers;
        let bound = [
            b.xc.as_bytes(),
            b.dt.as_bytes(),
            b.a.as_bytes(),
            b.dbc.as_bytes(),
            b.d.as_bytes(),
            b.xz.as_bytes(),
            b.state.as_bytes(),
            b.y.as_bytes(),
        ];
        self.dispatch(&self.gpu.pipelines.scan, &bound, params, groups)
    }

    fn dispatch<P: BufferContents>(
        &mut self,
        pipeline: &Arc<ComputePipeline>,
        buffers: &[&Subbuffer<[u8]>],
        params: P,
        groups: [u32; 3],
    ) -> Result<(), VulkanError> {
        if groups.contains(&0) {
            return Ok(());
        }
        let layout = pipeline.layout().clone();
        let writes = buffers.iter().enumerate().map(|(binding, buffer)| WriteDescriptorSet::buffer(binding as u32, (*buffer).clone()));
        let set = DescriptorSet::new(self.gpu.descriptor_allocator.clone(), layout.set_layouts()[0].clone(), writes, [])
            .during("creating a descriptor set")?;
        self.builder
            .bind_pipeline_compute(pipeline.clone())
            .during("binding a compute pipeline")?
            .bind_descriptor_sets(PipelineBindPoint::Compute, layout.clone(), 0, set)
            .during("binding a descriptor set")?
            .push_constants(layout, 0, params)
            .during("setting push constants")?;
        // SAFETY: every shader bounds-checks its invocation ids against the sizes in the push
        // constants. The callers size each bound buffer for those sizes. GpuSession
        // allocates its buffers from the model's hyperparameters and max_batch, and `ops`
        // checks the lengths of the inputs it uploads.
        unsafe { self.builder.dispatch(groups) }.during("recording a dispatch")?;
        Ok(())
    }
}
