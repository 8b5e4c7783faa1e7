//! Cortex-M4F firmware that generates text with the micro Mamba model on fixed buffers: no
//! heap, the model in flash, the recurrent state in RAM.
//!
//! `app` does the work through the [`board::Board`] trait, and `qemu` implements that trait
//! for QEMU's mps2-an386. A port to a real board replaces `qemu` and `memory.x`.
#![no_std]
#![no_main]
#![deny(clippy::undocumented_unsafe_blocks)]
// mamba-core's errors carry names inline because it has no heap, which makes them large.
#![allow(clippy::result_large_err)]

mod app;
mod board;
mod prompt;
mod qemu;
mod stack;

use cortex_m_rt::entry;

use crate::board::Board;

#[entry]
fn main() -> ! {
    stack::paint();
    let mut board = qemu::Qemu::take();
    let success = app::run(&mut board);
    board.exit(success)
}
