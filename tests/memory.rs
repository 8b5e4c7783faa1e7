//! Generation runs in constant memory: 20,000 decode steps allocate nothing after warm-up.
//!
//! A counting global allocator sees every heap allocation of this test binary, so any
//! per-token allocation in the session, the kernels or the sampler fails the test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use mamba_core::{GgmlType, Model, Sampler, SamplerParams, Session};
use mamba_edge_tests::Fixture;

struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter has no
// effect on the returned memory.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed through unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `realloc` is passed through unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const TOKENS: usize = 20_000;

#[test]
fn twenty_thousand_tokens_in_constant_memory() {
    let fixture = Fixture::load("tiny");
    let bytes = fixture.gguf_bytes(GgmlType::Q8_0);
    let model = Model::from_bytes(&bytes).unwrap();
    let mut session = Session::new(&model);
    let params = SamplerParams { temperature: 0.9, seed: 11, ..SamplerParams::default() };
    let mut sampler = Sampler::new(params);
    let state_len = session.state().len();

    // Warm-up: the sampler sizes its candidate buffer on first use.
    let mut token = fixture.sequences[0][0];
    for _ in 0..4 {
        let logits = session.step(token).unwrap();
        token = sampler.sample(logits, &[]);
    }

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..TOKENS {
        let logits = session.step(token).unwrap();
        token = sampler.sample(logits, &[]);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;

    assert_eq!(allocations, 0, "{allocations} heap allocations during {TOKENS} decode steps");
    assert_eq!(session.state().len(), state_len);
    assert_eq!(session.n_past(), (TOKENS + 4) as u64);
    assert!(session.state().iter().all(|v| v.is_finite()), "state stays finite after {TOKENS} steps");
}
