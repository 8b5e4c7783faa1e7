//! Errors of the Vulkan backend.

/// An error of the Vulkan backend.
#[derive(Debug, thiserror::Error)]
pub enum VulkanError {
    /// The Vulkan loader library could not be loaded.
    #[error("no Vulkan driver found ({0}); install a Vulkan driver (for example Mesa's lavapipe, Debian package mesa-vulkan-drivers) or use the CPU backend")]
    NoDriver(String),
    /// The loader is present but no device is.
    #[error("no Vulkan device found; install a Vulkan driver (for example Mesa's lavapipe, Debian package mesa-vulkan-drivers) or use the CPU backend")]
    NoDevice,
    /// A device index beyond the list.
    #[error("Vulkan device {index} does not exist: {count} device(s) found; list them with `mamba-edge devices`")]
    DeviceIndex {
        /// The requested index.
        index: usize,
        /// Number of devices found.
        count: usize,
    },
    /// The device has no queue family with compute support.
    #[error("Vulkan device {index} ({name}) has no compute queue; choose another device with --device")]
    NoComputeQueue {
        /// Index of the device.
        index: usize,
        /// Device name.
        name: String,
    },
    /// A tensor or buffer larger than the device can bind as one storage buffer.
    #[error("{buffer} needs {bytes} bytes in one storage buffer, but {device} allows at most {max} bytes (maxStorageBufferRange); use a smaller or more quantized model, or the CPU backend")]
    BufferTooLarge {
        /// Tensor or buffer name.
        buffer: String,
        /// Bytes needed.
        bytes: u64,
        /// The device's limit.
        max: u64,
        /// Device name.
        device: String,
    },
    /// A model architecture the shaders do not implement.
    #[error("the Vulkan backend runs Mamba-1 models only, not {0}; use the CPU backend")]
    UnsupportedArchitecture(String),
    /// A Vulkan call failed.
    #[error("Vulkan: {operation} failed: {message}")]
    Vulkan {
        /// The operation that failed.
        operation: &'static str,
        /// The error vulkano reported.
        message: String,
    },
    /// An input check or state decoding error of the engine, boxed because engine errors
    /// carry names inline.
    #[error(transparent)]
    Core(Box<mamba_core::Error>),
}

impl From<mamba_core::Error> for VulkanError {
    fn from(error: mamba_core::Error) -> Self {
        Self::Core(Box::new(error))
    }
}

/// Converts a vulkano error into [`VulkanError::Vulkan`] with the operation it came from.
pub(crate) trait VulkanContext<T> {
    /// Wraps the error, naming `operation`.
    fn during(self, operation: &'static str) -> Result<T, VulkanError>;
}

impl<T, E: std::fmt::Display> VulkanContext<T> for Result<T, E> {
    fn during(self, operation: &'static str) -> Result<T, VulkanError> {
        self.map_err(|e| VulkanError::Vulkan { operation, message: e.to_string() })
    }
}
