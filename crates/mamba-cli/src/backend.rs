//! The compute backend a command runs the model on: the CPU, or a Vulkan GPU when the
//! binary was built with the `vulkan` feature.

use mamba_core::{Inputs, Model, Session};

use crate::error::CliError;

/// The compute backend of the forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// The CPU, on --threads threads.
    Cpu,
    /// A Vulkan GPU (needs a build with `--features vulkan`).
    Vulkan,
}

impl BackendKind {
    /// Returns the name the `--backend` option takes.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Vulkan => "vulkan",
        }
    }
}

/// Backend options shared by the commands that run a model.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct BackendArgs {
    /// Compute backend: cpu, or vulkan for a GPU (needs a build with --features vulkan).
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendKind,
    /// Vulkan device index, as `mamba-edge devices` lists them; default: the first discrete
    /// GPU, else the first integrated, virtual or CPU device.
    #[arg(long)]
    pub device: Option<usize>,
    /// Keep the inputs of Q8_0 and Q4_0 matrix products in f32 on the CPU instead of
    /// rounding them to 8 bits: slower, and the logits then depend on the weights alone.
    #[arg(long)]
    pub exact_inputs: bool,
}

impl BackendArgs {
    /// Returns how the CPU's matrix products treat their inputs.
    pub fn inputs(&self) -> Inputs {
        if self.exact_inputs { Inputs::Exact } else { Inputs::Int8 }
    }
}

/// A model prepared for the chosen backend. Sessions borrow it.
pub enum BackendModel {
    /// The CPU reads the weights in place.
    Cpu(Inputs),
    /// The weights uploaded to a GPU.
    #[cfg(feature = "vulkan")]
    Vulkan(std::sync::Arc<mamba_vulkan::GpuModel>),
}

impl BackendModel {
    /// Prepares `model` for `args.backend`: uploads its weights for Vulkan.
    pub fn new(model: &Model<'_>, args: &BackendArgs) -> Result<Self, CliError> {
        if args.backend == BackendKind::Cpu {
            if args.device.is_some() {
                return Err(CliError::Usage("--device selects a Vulkan device; add --backend vulkan".into()));
            }
            return Ok(Self::Cpu(args.inputs()));
        }
        vulkan_model(model, args)
    }
}

#[cfg(feature = "vulkan")]
fn vulkan_model(model: &Model<'_>, args: &BackendArgs) -> Result<BackendModel, CliError> {
    let gpu = mamba_vulkan::Gpu::new(args.device).map_err(CliError::backend)?;
    let info = gpu.info();
    eprintln!("vulkan: device {} ({}, {}, Vulkan {})", info.index, info.name, info.device_type, info.api_version);
    Ok(BackendModel::Vulkan(mamba_vulkan::GpuModel::new(gpu, model).map_err(CliError::backend)?))
}

#[cfg(not(feature = "vulkan"))]
fn vulkan_model(_model: &Model<'_>, _args: &BackendArgs) -> Result<BackendModel, CliError> {
    Err(CliError::Usage(NO_VULKAN.into()))
}

/// Message for `--backend vulkan` and `devices` in a build without the `vulkan` feature.
#[cfg(not(feature = "vulkan"))]
pub const NO_VULKAN: &str =
    "this mamba-edge was built without the Vulkan backend; rebuild it with `cargo build --release -p mamba-cli --features vulkan`";

/// A session on either backend, with the operations the commands use.
#[allow(clippy::large_enum_variant, reason = "one per command run, created once")]
pub enum AnySession<'m> {
    /// A CPU session.
    Cpu(Session<'m, Vec<f32>>),
    /// A GPU session.
    #[cfg(feature = "vulkan")]
    Vulkan(Box<mamba_vulkan::GpuSession>),
}

impl<'m> AnySession<'m> {
    /// Creates a session on `backend`; `threads` applies to the CPU.
    pub fn new(model: &'m Model<'m>, backend: &'m BackendModel, threads: usize) -> Result<Self, CliError> {
        Self::with_max_batch(model, backend, threads, mamba_core::session::DEFAULT_MAX_BATCH)
    }

    /// Creates a session on `backend` whose CPU prompt chunks hold up to `max_batch` tokens.
    /// `threads` and `max_batch` apply to the CPU only, because the GPU session chooses its own
    /// chunks.
    pub fn with_max_batch(model: &'m Model<'m>, backend: &'m BackendModel, threads: usize, max_batch: usize) -> Result<Self, CliError> {
        match backend {
            BackendModel::Cpu(inputs) => {
                let mut session = Session::with_max_batch(model, max_batch);
                session.set_threads(threads);
                session.set_inputs(*inputs);
                Ok(Self::Cpu(session))
            }
            #[cfg(feature = "vulkan")]
            BackendModel::Vulkan(gpu_model) => Ok(Self::Vulkan(Box::new(mamba_vulkan::GpuSession::new(gpu_model).map_err(CliError::backend)?))),
        }
    }

    /// Processes `tokens` and returns the logits after the last one.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[f32], CliError> {
        match self {
            Self::Cpu(session) => Ok(session.prefill(tokens)?),
            #[cfg(feature = "vulkan")]
            Self::Vulkan(session) => session.prefill(tokens).map_err(CliError::backend),
        }
    }

    /// Processes one token and returns the logits for the next.
    pub fn step(&mut self, token: u32) -> Result<&[f32], CliError> {
        match self {
            Self::Cpu(session) => Ok(session.step(token)?),
            #[cfg(feature = "vulkan")]
            Self::Vulkan(session) => session.step(token).map_err(CliError::backend),
        }
    }

    /// Returns the logits after the last processed token, or `None` before any token.
    pub fn logits(&self) -> Option<&[f32]> {
        match self {
            Self::Cpu(session) => session.logits(),
            #[cfg(feature = "vulkan")]
            Self::Vulkan(session) => session.logits(),
        }
    }

    /// Restores a saved state; either backend reads what the other wrote.
    pub fn load_state(&mut self, bytes: &[u8]) -> Result<(), CliError> {
        match self {
            Self::Cpu(session) => Ok(session.load_state(bytes)?),
            #[cfg(feature = "vulkan")]
            Self::Vulkan(session) => session.load_state(bytes).map_err(CliError::backend),
        }
    }

    /// Saves the state in the MEST layout.
    pub fn save_state_to_vec(&self) -> Result<Vec<u8>, CliError> {
        match self {
            Self::Cpu(session) => Ok(session.save_state_to_vec()),
            #[cfg(feature = "vulkan")]
            Self::Vulkan(session) => session.save_state_to_vec().map_err(CliError::backend),
        }
    }
}
