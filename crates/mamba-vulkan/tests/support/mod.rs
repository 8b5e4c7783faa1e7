//! Helpers shared by the Vulkan tests: the device under test and a seeded random source.

use std::sync::{Arc, OnceLock};

use mamba_vulkan::Gpu;

/// Opens the device under test once per test binary: `MAMBA_VULKAN_DEVICE` (an index of
/// `mamba-edge devices`) or the preferred device.
///
/// # Panics
/// Panics with the reason when no Vulkan device can be opened, so a run that asked for the
/// Vulkan tests never passes without a GPU.
pub fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        let index = std::env::var("MAMBA_VULKAN_DEVICE").ok().map(|value| {
            value.parse::<usize>().unwrap_or_else(|_| panic!("MAMBA_VULKAN_DEVICE is {value:?}, expected a device index"))
        });
        Gpu::new(index).unwrap_or_else(|e| {
            panic!("the Vulkan tests (feature gpu-tests) need a Vulkan device, but none could be opened: {e}")
        })
    })
    .clone()
}

/// A xorshift64* generator: the same inputs on every run for a given seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `low..high`.
    pub fn uniform(&mut self, low: f32, high: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        low + (high - low) * unit
    }

    pub fn vec(&mut self, len: usize, low: f32, high: f32) -> Vec<f32> {
        (0..len).map(|_| self.uniform(low, high)).collect()
    }
}

/// Asserts that every value is finite.
pub fn assert_finite(what: &str, values: &[f32]) {
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        panic!("{what}: value {i} is {}", values[i]);
    }
}
