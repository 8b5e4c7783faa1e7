//! `mamba-edge devices`: list the Vulkan devices that `--device` selects from.

use crate::error::CliError;

/// Prints one line per Vulkan device.
#[cfg(feature = "vulkan")]
pub fn run() -> Result<(), CliError> {
    let devices = mamba_vulkan::list_devices().map_err(CliError::backend)?;
    if devices.is_empty() {
        return Err(CliError::backend(mamba_vulkan::VulkanError::NoDevice));
    }
    for device in devices {
        let compute = if device.has_compute_queue { "" } else { ", no compute queue" };
        println!(
            "{}: {} ({}, Vulkan {}, driver {}{compute})",
            device.index, device.name, device.device_type, device.api_version, device.driver
        );
    }
    Ok(())
}

/// Fails: the build has no Vulkan backend.
#[cfg(not(feature = "vulkan"))]
pub fn run() -> Result<(), CliError> {
    Err(CliError::Usage(crate::backend::NO_VULKAN.into()))
}
