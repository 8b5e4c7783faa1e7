//! The C API of mamba-edge: load Mamba language models and run sessions from C, C++, Swift,
//! Kotlin or any language with a C foreign function interface.
//!
//! The header is `include/mamba_edge.h`, generated from this crate by cbindgen; the guide
//! with a complete example is `docs/EMBEDDING.md` in the repository.
//!
//! Every function returns a [`MambaStatus`] and records a message for
//! [`mamba_last_error`] when it fails. Every function body runs inside
//! `std::panic::catch_unwind`, so a panic becomes `MAMBA_STATUS_PANIC` instead of unwinding
//! into C. Handles carry a magic word that is checked before use, so NULL, foreign and (while
//! their memory is not reused) freed handles are rejected with a status.
//!
//! Threads: a model is immutable and shared by any number of sessions on any threads; every
//! function that takes a `const mamba_model *` may run concurrently. A session serves one
//! call at a time: a concurrent call on the same session fails with `MAMBA_STATUS_BUSY`.
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

use std::ffi::c_char;

mod engine;
mod error;
mod handle;
mod model;
mod session;
mod stream;
mod tokenizer;

pub use engine::{MAMBA_BACKEND_CPU, MAMBA_BACKEND_VULKAN};
pub use error::MambaStatus;
pub use model::{
    MambaModel, MambaModelInfo, mamba_model_detokenize, mamba_model_free, mamba_model_get_info,
    mamba_model_load_buffer, mamba_model_load_buffer_borrowed, mamba_model_load_file, mamba_model_tokenize,
};
pub use session::{
    MambaSamplerParams, MambaSession, MambaSessionParams, MambaTokenCallback, mamba_sampler_default_params,
    mamba_session_decode_flush, mamba_session_decode_token, mamba_session_default_params, mamba_session_eval,
    mamba_session_free, mamba_session_generate, mamba_session_get_params, mamba_session_load_state,
    mamba_session_logits, mamba_session_n_past, mamba_session_new, mamba_session_reset, mamba_session_sample,
    mamba_session_save_state, mamba_session_state_size,
};

/// Version of the C API. It changes when a function, struct or status changes
/// incompatibly; additions keep it.
pub const MAMBA_API_VERSION: u32 = 2;

/// Returns `MAMBA_API_VERSION` of the library, to compare with the header's at run time.
#[unsafe(no_mangle)]
pub extern "C" fn mamba_api_version() -> u32 {
    MAMBA_API_VERSION
}

/// Returns the library version, for example "0.1.0", as a static NUL-terminated string.
#[unsafe(no_mangle)]
pub extern "C" fn mamba_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Returns the message of the last failed call on the calling thread, as a NUL-terminated
/// UTF-8 string, or "" before any failure. Each thread has its own message; a successful
/// call leaves it unchanged. The string stays valid until the next failed call on the same
/// thread; copy it to keep it longer.
#[unsafe(no_mangle)]
pub extern "C" fn mamba_last_error() -> *const c_char {
    error::last_error_ptr()
}

/// Returns the name of a status value, for example "MAMBA_STATUS_IO", as a static
/// NUL-terminated string; "MAMBA_STATUS_UNKNOWN" for a value this library does not define.
#[unsafe(no_mangle)]
pub extern "C" fn mamba_status_name(status: i32) -> *const c_char {
    let name: &'static [u8] = match usize::try_from(status).ok().and_then(|i| MambaStatus::ALL.get(i)) {
        Some(status) => status.name(),
        None => b"MAMBA_STATUS_UNKNOWN\0",
    };
    name.as_ptr().cast()
}
