//! Fuzz target: load arbitrary bytes as a Mamba model and, when that succeeds, run a few
//! tokens through a session. Loading must return an error or a model whose every buffer
//! and kernel call stays in bounds; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mamba_core::session::ScratchLayout;
use mamba_core::{Model, Session};

/// Models whose buffers exceed this many f32 values are loaded but not run, to keep each
/// input fast.
const MAX_BUFFER: usize = 1 << 22;

fuzz_target!(|data: &[u8]| {
    let Ok(model) = Model::from_bytes(data) else {
        return;
    };
    let c = model.config;
    let layout = ScratchLayout::new(&c, 3);
    if c.state_len() > MAX_BUFFER || layout.len() > MAX_BUFFER {
        return;
    }

    let state = vec![0.0f32; c.state_len()];
    let scratch = vec![0.0f32; layout.len()];
    let Ok(mut session) = Session::with_buffers(&model, state, scratch, 3) else {
        return;
    };

    // Token ids from the input's last bytes, some of them out of range on purpose.
    let tokens: Vec<u32> = data.iter().rev().take(5).map(|&b| u32::from(b) * 7).collect();
    let _ = session.prefill(&tokens);
    let _ = session.step(0);
    let _ = session.step(c.n_vocab as u32);
});
