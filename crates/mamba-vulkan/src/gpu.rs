//! Vulkan device discovery, the opened device and its buffer helpers.

use std::sync::Arc;

use vulkano::buffer::{Buffer, BufferContents, BufferCreateInfo, BufferUsage, Subbuffer};
use vulkano::command_buffer::allocator::StandardCommandBufferAllocator;
use vulkano::command_buffer::{AutoCommandBufferBuilder, CommandBufferUsage, CopyBufferInfo, PrimaryAutoCommandBuffer};
use vulkano::descriptor_set::allocator::StandardDescriptorSetAllocator;
use vulkano::device::physical::{PhysicalDevice, PhysicalDeviceType};
use vulkano::device::{Device, DeviceCreateInfo, Queue, QueueCreateInfo, QueueFlags};
use vulkano::instance::{Instance, InstanceCreateFlags, InstanceCreateInfo};
use vulkano::memory::allocator::{AllocationCreateInfo, MemoryTypeFilter, StandardMemoryAllocator};
use vulkano::sync::GpuFuture;
use vulkano::{LoadingError, Validated, VulkanLibrary};

use crate::error::{VulkanContext, VulkanError};
use crate::pipelines::Pipelines;

/// A Vulkan device as [`list_devices`] reports it.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Position in the list; the value of `--device`.
    pub index: usize,
    /// Device name, for example "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// Discrete, integrated, virtual, CPU or other.
    pub device_type: &'static str,
    /// Vulkan version the device supports, as "major.minor.patch".
    pub api_version: String,
    /// Driver name and version, when the driver reports them.
    pub driver: String,
    /// Whether a queue family supports compute; the backend needs one.
    pub has_compute_queue: bool,
}

/// Lists the Vulkan devices in the order `--device` numbers them.
pub fn list_devices() -> Result<Vec<DeviceInfo>, VulkanError> {
    let instance = create_instance()?;
    let devices = physical_devices(&instance)?;
    Ok(devices.iter().enumerate().map(|(index, device)| describe(index, device)).collect())
}

/// An opened Vulkan device with a compute queue, allocators and the compiled pipelines.
pub struct Gpu {
    pub(crate) device: Arc<Device>,
    pub(crate) queue: Arc<Queue>,
    pub(crate) memory_allocator: Arc<StandardMemoryAllocator>,
    pub(crate) command_allocator: Arc<StandardCommandBufferAllocator>,
    pub(crate) descriptor_allocator: Arc<StandardDescriptorSetAllocator>,
    pub(crate) pipelines: Pipelines,
    info: DeviceInfo,
    max_storage_buffer_range: u64,
}

impl Gpu {
    /// Opens device `index` of [`list_devices`], or with `None` the first discrete GPU, else
    /// the first integrated, virtual or CPU device in that order of preference.
    pub fn new(index: Option<usize>) -> Result<Arc<Self>, VulkanError> {
        let instance = create_instance()?;
        let devices = physical_devices(&instance)?;
        if devices.is_empty() {
            return Err(VulkanError::NoDevice);
        }
        let index = match index {
            Some(index) if index >= devices.len() => {
                return Err(VulkanError::DeviceIndex { index, count: devices.len() });
            }
            Some(index) => index,
            None => preferred_device(&devices),
        };
        let physical = devices[index].clone();
        let info = describe(index, &physical);

        let queue_family_index = physical
            .queue_family_properties()
            .iter()
            .position(|family| family.queue_flags.intersects(QueueFlags::COMPUTE))
            .ok_or_else(|| VulkanError::NoComputeQueue { index, name: info.name.clone() })?;
        let (device, mut queues) = Device::new(
            physical.clone(),
            DeviceCreateInfo {
                queue_create_infos: vec![QueueCreateInfo { queue_family_index: queue_family_index as u32, ..Default::default() }],
                ..Default::default()
            },
        )
        .during("creating the logical device")?;
        let queue = queues.next().ok_or(VulkanError::Vulkan {
            operation: "getting the compute queue",
            message: "the device returned no queue".into(),
        })?;

        let pipelines = Pipelines::new(&device)?;
        let max_storage_buffer_range = u64::from(physical.properties().max_storage_buffer_range);
        Ok(Arc::new(Self {
            memory_allocator: Arc::new(StandardMemoryAllocator::new_default(device.clone())),
            command_allocator: Arc::new(StandardCommandBufferAllocator::new(device.clone(), Default::default())),
            descriptor_allocator: Arc::new(StandardDescriptorSetAllocator::new(device.clone(), Default::default())),
            device,
            queue,
            pipelines,
            info,
            max_storage_buffer_range,
        }))
    }

    /// Returns the description of the opened device.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Returns an error when `bytes` exceed what one storage buffer binding may cover.
    pub(crate) fn check_buffer_size(&self, buffer: &str, bytes: u64) -> Result<(), VulkanError> {
        if bytes > self.max_storage_buffer_range {
            return Err(VulkanError::BufferTooLarge {
                buffer: buffer.to_owned(),
                bytes,
                max: self.max_storage_buffer_range,
                device: self.info.name.clone(),
            });
        }
        Ok(())
    }

    /// Creates a device-local storage buffer of `len` elements (at least one) that the host
    /// reaches only through copies.
    pub(crate) fn device_buffer<T: BufferContents>(&self, name: &str, len: usize) -> Result<Subbuffer<[T]>, VulkanError> {
        let len = len.max(1) as u64;
        self.check_buffer_size(name, len * size_of::<T>() as u64)?;
        Buffer::new_slice::<T>(
            self.memory_allocator.clone(),
            BufferCreateInfo {
                usage: BufferUsage::STORAGE_BUFFER | BufferUsage::TRANSFER_SRC | BufferUsage::TRANSFER_DST,
                ..Default::default()
            },
            AllocationCreateInfo { memory_type_filter: MemoryTypeFilter::PREFER_DEVICE, ..Default::default() },
            len,
        )
        .during("allocating a device buffer")
    }

    /// Creates a host-visible buffer of `len` elements (at least one) for uploads and
    /// read-back.
    pub(crate) fn host_buffer<T: BufferContents>(&self, len: usize) -> Result<Subbuffer<[T]>, VulkanError> {
        Buffer::new_slice::<T>(
            self.memory_allocator.clone(),
            BufferCreateInfo {
                usage: BufferUsage::STORAGE_BUFFER | BufferUsage::TRANSFER_SRC | BufferUsage::TRANSFER_DST,
                ..Default::default()
            },
            AllocationCreateInfo {
                memory_type_filter: MemoryTypeFilter::PREFER_HOST | MemoryTypeFilter::HOST_RANDOM_ACCESS,
                ..Default::default()
            },
            len.max(1) as u64,
        )
        .during("allocating a host-visible buffer")
    }

    /// Creates a device-local buffer holding `data`.
    pub(crate) fn upload<T: BufferContents + Copy>(&self, name: &str, data: &[T]) -> Result<Subbuffer<[T]>, VulkanError> {
        let buffer = self.device_buffer::<T>(name, data.len())?;
        self.write(&buffer, data)?;
        Ok(buffer)
    }

    /// Copies `data` to the start of `dst` through a staging buffer and waits for the copy.
    pub(crate) fn write<T: BufferContents + Copy>(&self, dst: &Subbuffer<[T]>, data: &[T]) -> Result<(), VulkanError> {
        if data.is_empty() {
            return Ok(());
        }
        let staging = self.host_buffer::<T>(data.len())?;
        staging.write().during("writing a staging buffer")?.copy_from_slice(data);
        let mut builder = self.builder(CommandBufferUsage::OneTimeSubmit)?;
        builder
            .copy_buffer(CopyBufferInfo::buffers(staging, dst.clone().slice(0..data.len() as u64)))
            .during("recording a buffer upload")?;
        self.run(builder.build().during("building an upload command buffer")?)
    }

    /// Copies the first `len` elements of `src` to the host and waits for them.
    pub(crate) fn read<T: BufferContents + Copy>(&self, src: &Subbuffer<[T]>, len: usize) -> Result<Vec<T>, VulkanError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let staging = self.host_buffer::<T>(len)?;
        let mut builder = self.builder(CommandBufferUsage::OneTimeSubmit)?;
        builder
            .copy_buffer(CopyBufferInfo::buffers(src.clone().slice(0..len as u64), staging.clone()))
            .during("recording a buffer read-back")?;
        self.run(builder.build().during("building a read-back command buffer")?)?;
        let values = staging.read().during("reading a staging buffer")?.to_vec();
        Ok(values)
    }

    /// Starts a primary command buffer on the compute queue's family.
    pub(crate) fn builder(&self, usage: CommandBufferUsage) -> Result<AutoCommandBufferBuilder<PrimaryAutoCommandBuffer>, VulkanError> {
        AutoCommandBufferBuilder::primary(self.command_allocator.clone(), self.queue.queue_family_index(), usage)
            .during("starting a command buffer")
    }

    /// Submits `commands` and waits until the GPU has finished them.
    pub(crate) fn run(&self, commands: Arc<PrimaryAutoCommandBuffer>) -> Result<(), VulkanError> {
        vulkano::sync::now(self.device.clone())
            .then_execute(self.queue.clone(), commands)
            .during("submitting a command buffer")?
            .then_signal_fence_and_flush()
            .during("flushing the queue")?
            .wait(None)
            .during("waiting for the GPU")
    }
}

fn create_instance() -> Result<Arc<Instance>, VulkanError> {
    let library = VulkanLibrary::new().map_err(|e: LoadingError| VulkanError::NoDriver(e.to_string()))?;
    Instance::new(
        library,
        InstanceCreateInfo { flags: InstanceCreateFlags::ENUMERATE_PORTABILITY, ..Default::default() },
    )
    .map_err(|e| match e {
        Validated::Error(error @ (vulkano::VulkanError::IncompatibleDriver | vulkano::VulkanError::InitializationFailed)) => {
            VulkanError::NoDriver(error.to_string())
        }
        other => VulkanError::Vulkan { operation: "creating a Vulkan instance", message: other.to_string() },
    })
}

fn physical_devices(instance: &Arc<Instance>) -> Result<Vec<Arc<PhysicalDevice>>, VulkanError> {
    match instance.enumerate_physical_devices() {
        Ok(devices) => Ok(devices.collect()),
        Err(vulkano::VulkanError::InitializationFailed) => Ok(Vec::new()),
        Err(e) => Err(VulkanError::Vulkan { operation: "listing Vulkan devices", message: e.to_string() }),
    }
}

fn preferred_device(devices: &[Arc<PhysicalDevice>]) -> usize {
    let rank = |device: &Arc<PhysicalDevice>| match device.properties().device_type {
        PhysicalDeviceType::DiscreteGpu => 0,
        PhysicalDeviceType::IntegratedGpu => 1,
        PhysicalDeviceType::VirtualGpu => 2,
        PhysicalDeviceType::Cpu => 3,
        _ => 4,
    };
    (0..devices.len()).min_by_key(|&i| rank(&devices[i])).unwrap_or(0)
}

fn describe(index: usize, device: &Arc<PhysicalDevice>) -> DeviceInfo {
    let properties = device.properties();
    let device_type = match properties.device_type {
        PhysicalDeviceType::DiscreteGpu => "discrete GPU",
        PhysicalDeviceType::IntegratedGpu => "integrated GPU",
        PhysicalDeviceType::VirtualGpu => "virtual GPU",
        PhysicalDeviceType::Cpu => "CPU",
        _ => "other",
    };
    let driver = match (&properties.driver_name, &properties.driver_info) {
        (Some(name), Some(info)) => format!("{name} {info}"),
        (Some(name), None) => name.clone(),
        _ => String::from("unknown"),
    };
    DeviceInfo {
        index,
        name: properties.device_name.clone(),
        device_type,
        api_version: device.api_version().to_string(),
        driver,
        has_compute_queue: device.queue_family_properties().iter().any(|f| f.queue_flags.intersects(QueueFlags::COMPUTE)),
    }
}
