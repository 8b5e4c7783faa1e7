//! Checks of the raw pointers that cross the C boundary: handles, input slices, output
//! arguments.

use std::mem::{align_of, size_of};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{FfiError, FfiResult, MambaStatus};

/// A type whose values are handed to C as opaque pointers and start with a magic word.
pub(crate) trait Handle {
    /// The magic word of a live handle.
    const MAGIC: u64;
    /// The C type name, for messages.
    const NAME: &'static str;
    /// The handle's magic word.
    fn magic(&self) -> &AtomicU64;
}

/// Magic word written into a handle while it is freed, so a second free of the same memory
/// is reported while the allocator has not reused it.
pub(crate) const FREED_MAGIC: u64 = 0xdead_f4ee_dead_f4ee;

/// Borrows the handle behind `ptr` after checking that it is non-NULL, aligned and carries
/// the live magic word of `T`.
///
/// # Safety
/// `ptr` must be NULL or point to readable memory of at least `size_of::<T>()` bytes: a
/// handle returned by this library and not yet freed. A freed handle is detected only while
/// its memory is unchanged, so passing one is undefined behaviour that the check usually,
/// not always, reports.
pub(crate) unsafe fn handle_ref<'a, T: Handle>(function: &str, argument: &str, ptr: *const T) -> FfiResult<&'a T> {
    if ptr.is_null() {
        return Err(FfiError::null(function, argument));
    }
    if !ptr.is_aligned() {
        return Err(invalid_handle::<T>(function, argument));
    }
    // SAFETY: the caller guarantees `ptr` points to readable memory the size of a `T`, and
    // it is aligned. The magic word is an atomic, so this read does not race with a
    // concurrent free's store.
    let handle = unsafe { &*ptr };
    if handle.magic().load(Ordering::Acquire) != T::MAGIC {
        return Err(invalid_handle::<T>(function, argument));
    }
    Ok(handle)
}

/// Frees a handle created with `Box::into_raw`. NULL is accepted and does nothing.
///
/// # Safety
/// As for [`handle_ref`]; after a successful return the pointer is dangling.
pub(crate) unsafe fn free_handle<T: Handle>(function: &str, ptr: *mut T) -> FfiResult {
    if ptr.is_null() {
        return Ok(());
    }
    // SAFETY: forwarded from the caller's contract.
    let handle = unsafe { handle_ref(function, "handle", ptr)? };
    // Only one of two racing frees can swap the magic word, so only one drops the box.
    if handle.magic().compare_exchange(T::MAGIC, FREED_MAGIC, Ordering::AcqRel, Ordering::Acquire).is_err() {
        return Err(invalid_handle::<T>(function, "handle"));
    }
    // SAFETY: the handle was created by `Box::into_raw` (its magic word is live), and the
    // successful swap above makes this the only free of it.
    drop(unsafe { Box::from_raw(ptr) });
    Ok(())
}

fn invalid_handle<T: Handle>(function: &str, argument: &str) -> FfiError {
    FfiError::new(
        MambaStatus::InvalidHandle,
        format!(
            "{function}: `{argument}` is not a live {} handle; it was freed already or points to something else",
            T::NAME
        ),
    )
}

/// Borrows `len` elements at `ptr` as a slice. `ptr` may be NULL when `len` is 0.
///
/// # Safety
/// When `len > 0`, `ptr` must point to `len` initialised values of `T` that nothing writes
/// while the slice is in use.
pub(crate) unsafe fn input_slice<'a, T>(function: &str, argument: &str, ptr: *const T, len: usize) -> FfiResult<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    check_region(function, argument, ptr, len)?;
    // SAFETY: non-NULL, aligned and at most isize::MAX bytes (checked above); the caller
    // guarantees `len` initialised values.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows `len` elements at `ptr` as a mutable slice. `ptr` may be NULL when `len` is 0.
///
/// # Safety
/// When `len > 0`, `ptr` must point to `len` writable values of `T` (any bit pattern valid
/// for `T`) that nothing else accesses while the slice is in use.
pub(crate) unsafe fn output_slice<'a, T>(function: &str, argument: &str, ptr: *mut T, len: usize) -> FfiResult<&'a mut [T]> {
    if len == 0 {
        return Ok(&mut []);
    }
    check_region(function, argument, ptr, len)?;
    // SAFETY: non-NULL, aligned and at most isize::MAX bytes (checked above); the caller
    // guarantees `len` writable values that nothing else accesses.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

fn check_region<T>(function: &str, argument: &str, ptr: *const T, len: usize) -> FfiResult {
    if ptr.is_null() {
        return Err(FfiError::null(function, argument));
    }
    if !ptr.is_aligned() {
        return Err(FfiError::invalid(format!(
            "{function}: `{argument}` is not aligned to {} bytes; pass a pointer to an array of its element type",
            align_of::<T>()
        )));
    }
    if len.checked_mul(size_of::<T>()).is_none_or(|bytes| bytes > isize::MAX as usize) {
        return Err(FfiError::invalid(format!("{function}: length {len} of `{argument}` is too large")));
    }
    Ok(())
}

/// Writes `value` to the output argument `out`.
///
/// # Safety
/// `out` must be NULL or valid for a write of one `T`.
pub(crate) unsafe fn write_out<T>(function: &str, argument: &str, out: *mut T, value: T) -> FfiResult {
    if out.is_null() {
        return Err(FfiError::null(function, argument));
    }
    if !out.is_aligned() {
        return Err(FfiError::invalid(format!("{function}: `{argument}` is not aligned to {} bytes", align_of::<T>())));
    }
    // SAFETY: non-NULL and aligned (checked above); the caller guarantees it is writable.
    // `write` does not drop the old value, which may be uninitialised memory.
    unsafe { out.write(value) };
    Ok(())
}

/// Checks that the output argument `out` is usable before work starts, so that a call
/// with a NULL output fails without side effects.
pub(crate) fn check_out<T>(function: &str, argument: &str, out: *mut T) -> FfiResult {
    if out.is_null() {
        return Err(FfiError::null(function, argument));
    }
    if !out.is_aligned() {
        return Err(FfiError::invalid(format!("{function}: `{argument}` is not aligned to {} bytes", align_of::<T>())));
    }
    Ok(())
}
