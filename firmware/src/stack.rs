//! Stack high-water mark by painting: fill the free stack with a pattern at start-up, and
//! later find the lowest word the pattern no longer covers.
//!
//! cortex-m-rt puts the stack at the top of RAM, growing down towards `__sheap`, the end of
//! the statics.

/// The pattern painted into the free stack.
const PAINT: u32 = 0xc0de_cafe;
/// Bytes just below the stack pointer left unpainted, for the frames of `paint` itself.
const PAINT_GAP: usize = 256;

unsafe extern "C" {
    /// End of the statics, the lowest address the stack may reach (cortex-m-rt's link.x).
    static __sheap: u32;
    /// Initial stack pointer, the top of RAM (cortex-m-rt's link.x).
    static _stack_start: u32;
}

fn stack_bottom() -> usize {
    core::ptr::addr_of!(__sheap) as usize
}

fn stack_top() -> usize {
    core::ptr::addr_of!(_stack_start) as usize
}

/// Bytes between the statics and the top of RAM, all of which the stack may use.
pub fn size() -> usize {
    stack_top() - stack_bottom()
}

/// Paints the stack below the current stack pointer. Call it first thing in `main`, before
/// any interrupt is enabled.
pub fn paint() {
    let sp = cortex_m::register::msp::read() as usize;
    let end = sp.saturating_sub(PAINT_GAP) & !3;
    let mut at = stack_bottom();
    while at < end {
        // SAFETY: `at` is word-aligned and lies between the end of the statics and below the
        // stack pointer, memory that nothing uses while interrupts are off.
        unsafe { (at as *mut u32).write_volatile(PAINT) };
        at += 4;
    }
}

/// Returns the most stack bytes used since [`paint`]: the distance from the top of RAM to
/// the lowest word that no longer contains the pattern.
pub fn high_water_mark() -> usize {
    let mut at = stack_bottom();
    let top = stack_top();
    // SAFETY: `at` stays word-aligned inside RAM between the statics and the stack top.
    while at < top && unsafe { (at as *const u32).read_volatile() } == PAINT {
        at += 4;
    }
    top - at
}
