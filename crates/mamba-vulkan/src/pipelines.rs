//! The compute pipelines, one per shader and weight format.

use std::sync::Arc;

use mamba_core::GgmlType;
use vulkano::device::Device;
use vulkano::pipeline::compute::ComputePipelineCreateInfo;
use vulkano::pipeline::layout::PipelineDescriptorSetLayoutCreateInfo;
use vulkano::pipeline::{ComputePipeline, PipelineLayout, PipelineShaderStageCreateInfo};
use vulkano::shader::{ShaderModule, ShaderModuleCreateInfo};

use crate::error::{VulkanContext, VulkanError};

mod spirv {
    include!(concat!(env!("OUT_DIR"), "/shaders.rs"));
}

pub use spirv::SHADER_COMPILER;

/// Every compute pipeline the backend uses.
pub(crate) struct Pipelines {
    matmul: [Arc<ComputePipeline>; 5],
    embed: [Arc<ComputePipeline>; 5],
    pub rmsnorm: Arc<ComputePipeline>,
    pub conv: Arc<ComputePipeline>,
    pub scan: Arc<ComputePipeline>,
}

impl Pipelines {
    pub fn new(device: &Arc<Device>) -> Result<Self, VulkanError> {
        let build = |spv: &[u8]| pipeline(device, spv);
        Ok(Self {
            matmul: [
                build(spirv::MATMUL_F32)?,
                build(spirv::MATMUL_F16)?,
                build(spirv::MATMUL_BF16)?,
                build(spirv::MATMUL_Q8_0)?,
                build(spirv::MATMUL_Q4_0)?,
            ],
            embed: [
                build(spirv::EMBED_F32)?,
                build(spirv::EMBED_F16)?,
                build(spirv::EMBED_BF16)?,
                build(spirv::EMBED_Q8_0)?,
                build(spirv::EMBED_Q4_0)?,
            ],
            rmsnorm: build(spirv::RMSNORM)?,
            conv: build(spirv::CONV)?,
            scan: build(spirv::SCAN)?,
        })
    }

    /// Returns the matmul pipeline for weights of `dtype`.
    pub fn matmul(&self, dtype: GgmlType) -> &Arc<ComputePipeline> {
        &self.matmul[format_index(dtype)]
    }

    /// Returns the embedding lookup pipeline for weights of `dtype`.
    pub fn embed(&self, dtype: GgmlType) -> &Arc<ComputePipeline> {
        &self.embed[format_index(dtype)]
    }
}

fn format_index(dtype: GgmlType) -> usize {
    match dtype {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::BF16 => 2,
        GgmlType::Q8_0 => 3,
        GgmlType::Q4_0 => 4,
    }
}

fn pipeline(device: &Arc<Device>, spv: &[u8]) -> Result<Arc<ComputePipeline>, VulkanError> {
    let words = vulkano::shader::spirv::bytes_to_words(spv).during("reading embedded SPIR-V")?;
    // SAFETY: the SPIR-V was compiled from this crate's shaders by glslc or naga at build
    // time. vulkano parses it, and the code below checks its entry point and interface.
    let module = unsafe { ShaderModule::new(device.clone(), ShaderModuleCreateInfo::new(&words)) }
        .during("creating a shader module")?;
    let entry_point = module.entry_point("main").ok_or(VulkanError::Vulkan {
        operation: "finding the shader entry point",
        message: "the shader has no entry point named main".into(),
    })?;
    let stage = PipelineShaderStageCreateInfo::new(entry_point);
    let layout_info = PipelineDescriptorSetLayoutCreateInfo::from_stages([&stage])
        .into_pipeline_layout_create_info(device.clone())
        .during("deriving a pipeline layout")?;
    let layout = PipelineLayout::new(device.clone(), layout_info).during("creating a pipeline layout")?;
    ComputePipeline::new(device.clone(), None, ComputePipelineCreateInfo::stage_layout(stage, layout))
        .during("creating a compute pipeline")
}
