//! Status codes, the thread-local last error message, and the panic guard that every
//! exported function runs its body in.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use mamba_core::{Error, StateError};

/// Result of every call. `MAMBA_STATUS_OK` is zero; any other value is an error, and
/// `mamba_last_error()` then returns a message that names the value at fault and the fix.
///
/// The values are stable: new codes are only ever appended.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MambaStatus {
    /// The call succeeded.
    Ok = 0,
    /// An argument is out of its documented range, for example a NaN temperature, text that
    /// is not UTF-8 or an empty token list.
    InvalidArgument = 1,
    /// A required pointer argument is NULL.
    NullPointer = 2,
    /// A handle is not a live handle of the expected type: a pointer to something else, or a
    /// handle that was already freed (detected only while its memory is not reused).
    InvalidHandle = 3,
    /// The model file cannot be opened or mapped.
    Io = 4,
    /// The bytes are not a GGUF file of a model this library runs.
    InvalidModel = 5,
    /// The model file has no usable tokenizer, or the tokenizer failed on the input.
    Tokenizer = 6,
    /// A token id is not below the model's vocabulary size.
    TokenOutOfRange = 7,
    /// An output buffer is too small. The size output argument then contains the size needed.
    BufferTooSmall = 8,
    /// The session has no logits yet: evaluate at least one token first.
    NoLogits = 9,
    /// Saved state belongs to a model with other hyperparameters.
    StateMismatch = 10,
    /// Saved state is damaged, truncated, or from an unsupported format version.
    StateInvalid = 11,
    /// Another thread is using the session right now, or a token callback called back into
    /// the session that is generating.
    Busy = 12,
    /// The library panicked (a bug). The call had no effect on the model, but a session
    /// that panicked must be reset before further use.
    Panic = 13,
    /// The requested compute backend is not available: a library built without it, no
    /// Vulkan driver or device, a device index that does not exist, or a GPU error.
    Backend = 14,
}

impl MambaStatus {
    /// Every status, in numeric order.
    pub(crate) const ALL: [Self; 15] = [
        Self::Ok,
        Self::InvalidArgument,
        Self::NullPointer,
        Self::InvalidHandle,
        Self::Io,
        Self::InvalidModel,
        Self::Tokenizer,
        Self::TokenOutOfRange,
        Self::BufferTooSmall,
        Self::NoLogits,
        Self::StateMismatch,
        Self::StateInvalid,
        Self::Busy,
        Self::Panic,
        Self::Backend,
    ];

    /// The C name of the status, NUL-terminated.
    pub(crate) const fn name(self) -> &'static [u8] {
        match self {
            Self::Ok => b"MAMBA_STATUS_OK\0",
            Self::InvalidArgument => b"MAMBA_STATUS_INVALID_ARGUMENT\0",
            Self::NullPointer => b"MAMBA_STATUS_NULL_POINTER\0",
            Self::InvalidHandle => b"MAMBA_STATUS_INVALID_HANDLE\0",
            Self::Io => b"MAMBA_STATUS_IO\0",
            Self::InvalidModel => b"MAMBA_STATUS_INVALID_MODEL\0",
            Self::Tokenizer => b"MAMBA_STATUS_TOKENIZER\0",
            Self::TokenOutOfRange => b"MAMBA_STATUS_TOKEN_OUT_OF_RANGE\0",
            Self::BufferTooSmall => b"MAMBA_STATUS_BUFFER_TOO_SMALL\0",
            Self::NoLogits => b"MAMBA_STATUS_NO_LOGITS\0",
            Self::StateMismatch => b"MAMBA_STATUS_STATE_MISMATCH\0",
            Self::StateInvalid => b"MAMBA_STATUS_STATE_INVALID\0",
            Self::Busy => b"MAMBA_STATUS_BUSY\0",
            Self::Panic => b"MAMBA_STATUS_PANIC\0",
            Self::Backend => b"MAMBA_STATUS_BACKEND\0",
        }
    }
}

/// A failed call: the status to return and the message for `mamba_last_error()`.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub status: MambaStatus,
    pub message: String,
}

impl FfiError {
    pub fn new(status: MambaStatus, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(MambaStatus::InvalidArgument, message)
    }

    /// A NULL pointer where `argument` is required.
    pub fn null(function: &str, argument: &str) -> Self {
        Self::new(MambaStatus::NullPointer, format!("{function}: argument `{argument}` is NULL; pass a valid pointer"))
    }

    /// An output buffer of `given` elements where `needed` are required.
    pub fn too_small(function: &str, buffer: &str, needed: usize, given: usize) -> Self {
        Self::new(
            MambaStatus::BufferTooSmall,
            format!("{function}: `{buffer}` holds {given} but {needed} are needed; call again with a larger buffer"),
        )
    }

    /// Maps an engine error to its status, keeping the engine's message.
    pub fn core(function: &str, error: Error) -> Self {
        let status = match &error {
            Error::Gguf(_) | Error::Model(_) | Error::Quant(_) => MambaStatus::InvalidModel,
            Error::TokenOutOfRange { .. } => MambaStatus::TokenOutOfRange,
            Error::EmptyInput => MambaStatus::InvalidArgument,
            Error::BufferTooSmall { .. } => MambaStatus::BufferTooSmall,
            Error::State(StateError::ModelMismatch { .. }) => MambaStatus::StateMismatch,
            Error::State(_) => MambaStatus::StateInvalid,
        };
        Self::new(status, format!("{function}: {error}"))
    }
}

#[cfg(feature = "vulkan")]
impl FfiError {
    /// Maps a Vulkan backend error: engine errors keep their status, the rest are
    /// `MAMBA_STATUS_BACKEND`.
    pub fn vulkan(function: &str, error: mamba_vulkan::VulkanError) -> Self {
        match error {
            mamba_vulkan::VulkanError::Core(error) => Self::core(function, *error),
            other => Self::new(MambaStatus::Backend, format!("{function}: {other}")),
        }
    }
}

pub(crate) type FfiResult<T = ()> = Result<T, FfiError>;

thread_local! {
    /// Message of the last failed call on this thread; empty before the first failure.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Stores `message` as this thread's last error. Interior NUL bytes become spaces so the
/// whole message reaches C.
pub(crate) fn set_last_error(message: &str) {
    let bytes: Vec<u8> = message.bytes().map(|b| if b == 0 { b' ' } else { b }).collect();
    // No NUL bytes remain, so the conversion cannot fail.
    let text = CString::new(bytes).unwrap_or_default();
    LAST_ERROR.with(|cell| *cell.borrow_mut() = text);
}

/// Pointer to this thread's last error message. The string lives in the thread-local slot
/// until the next failed call on this thread replaces it.
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|cell| cell.borrow().as_ptr())
}

/// Runs an exported function's body: catches panics, records the message of a failure and
/// converts the result into a status.
pub(crate) fn guard(function: &str, body: impl FnOnce() -> FfiResult) -> MambaStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => MambaStatus::Ok,
        Ok(Err(error)) => {
            set_last_error(&error.message);
            error.status
        }
        Err(payload) => {
            let message = format!(
                "{function}: internal panic: {}; this is a bug in mamba-edge, please report it. \
                 Reset or free the session that was in use",
                panic_message(payload.as_ref())
            );
            set_last_error(&message);
            MambaStatus::Panic
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "no message"
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    fn last_error() -> String {
        // SAFETY: the pointer comes from the thread-local CString, which is alive and
        // unchanged until the next failure on this thread.
        unsafe { CStr::from_ptr(last_error_ptr()) }.to_string_lossy().into_owned()
    }

    #[test]
    fn guard_catches_panic() {
        let status = guard("test_fn", || panic!("boom {}", 42));
        assert_eq!(status, MambaStatus::Panic);
        let message = last_error();
        assert!(message.contains("test_fn"), "{message}");
        assert!(message.contains("boom 42"), "{message}");
    }

    #[test]
    fn guard_records_error() {
        let status = guard("test_fn", || Err(FfiError::invalid("bad value 7")));
        assert_eq!(status, MambaStatus::InvalidArgument);
        assert_eq!(last_error(), "bad value 7");
    }

    #[test]
    fn success_keeps_last_error() {
        let _ = guard("test_fn", || Err(FfiError::invalid("first")));
        assert_eq!(guard("test_fn", || Ok(())), MambaStatus::Ok);
        assert_eq!(last_error(), "first");
    }

    #[test]
    fn message_nul_becomes_space() {
        set_last_error("a\0b");
        assert_eq!(last_error(), "a b");
    }

    #[test]
    fn status_names_match_values() {
        for (i, status) in MambaStatus::ALL.iter().enumerate() {
            assert_eq!(*status as i32, i as i32);
            let name = CStr::from_bytes_with_nul(status.name()).unwrap();
            assert!(name.to_str().unwrap().starts_with("MAMBA_STATUS_"));
        }
    }
}
