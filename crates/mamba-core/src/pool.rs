//! Running one task over the parts of an index range, on one thread or several.
//!
//! [`Parallel`] is what the forward pass needs from an executor: call a task on contiguous
//! parts of `0..n` and return once every call has returned. [`Serial`] runs the whole range
//! on the calling thread and is the only executor without `std`. With `std`, [`ThreadPool`]
//! keeps `threads - 1` worker threads, started once, that sleep between jobs; the calling
//! thread runs the first part itself.

use core::marker::PhantomData;
use core::ops::Range;

/// An executor that runs a task over the parts of an index range.
///
/// # Safety
/// `run(n, f)` must call `f` only with ranges that are pairwise disjoint, lie inside `0..n`
/// and together cover it, and must not return before every call of `f` has returned (also
/// when a call panics). The forward pass relies on this to give each call exclusive access to
/// the outputs of its range.
pub unsafe trait Parallel: Sync {
    /// Maximum number of parts a range is split into, the calling thread included.
    fn threads(&self) -> usize;

    /// Calls `f` on contiguous parts of `0..n`, possibly at the same time on several
    /// threads, and returns when all calls have returned. An empty range makes no call.
    fn run(&self, n: usize, f: &(dyn Fn(Range<usize>) + Sync));
}

/// The single-threaded executor: one call of the task on the whole range.
#[derive(Clone, Copy, Debug, Default)]
pub struct Serial;

// SAFETY: `run` makes at most one call, on `0..n`, and returns after it.
unsafe impl Parallel for Serial {
    fn threads(&self) -> usize {
        1
    }

    fn run(&self, n: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
        if n > 0 {
            f(0..n);
        }
    }
}

/// Returns part `i` of `0..n` split into `parts` contiguous ranges whose lengths differ by at
/// most one, the longer ones first.
///
/// # Panics
/// Panics when `i >= parts`.
pub fn split(n: usize, parts: usize, i: usize) -> Range<usize> {
    assert!(i < parts, "part {i} is out of range for {parts} parts");
    let base = n / parts;
    let extra = n % parts;
    let start = i * base + i.min(extra);
    let len = base + usize::from(i < extra);
    start..start + len
}

/// A mutable slice that the calls of one [`Parallel::run`] write at disjoint ranges.
pub(crate) struct DisjointMut<'a> {
    ptr: *mut f32,
    len: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: the wrapper only hands out sub-slices through `slice`, whose contract makes the
// callers keep concurrent sub-slices disjoint, and f32 is Send.
unsafe impl Sync for DisjointMut<'_> {}

impl<'a> DisjointMut<'a> {
    /// Takes the exclusive borrow of `data` for the lifetime of the wrapper.
    pub(crate) fn new(data: &'a mut [f32]) -> Self {
        Self { ptr: data.as_mut_ptr(), len: data.len(), _borrow: PhantomData }
    }

    /// Returns `data[range]`.
    ///
    /// # Safety
    /// No other slice returned by this wrapper and still in use may overlap `range`.
    ///
    /// # Panics
    /// Panics when `range` is not inside the slice.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, range: Range<usize>) -> &mut [f32] {
        assert!(range.start <= range.end, "range {range:?} is reversed");
        assert!(range.end <= self.len, "range {range:?} is outside a slice of {}", self.len);
        // SAFETY: the range is inside the borrowed slice (checked above), the wrapper owns
        // the exclusive borrow, and the caller guarantees no overlapping slice is live.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.add(range.start), range.end - range.start) }
    }
}

#[cfg(feature = "std")]
pub use self::threads::ThreadPool;

#[cfg(feature = "std")]
mod threads {
    use core::ops::Range;
    use std::cell::Cell;
    use std::format;
    use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Condvar, Mutex, MutexGuard};
    use std::thread::JoinHandle;
    use std::vec::Vec;

    use super::{Parallel, split};

    /// Busy-wait iterations before a worker waiting for a job, or a caller waiting for the
    /// workers, blocks on a condition variable. A forward pass issues a few hundred jobs per
    /// token with short serial steps between them, and a worker that is still spinning takes
    /// the next job without a wake-up system call.
    const SPIN_ITERATIONS: u32 = 1 << 14;

    type Task = dyn Fn(Range<usize>) + Sync;

    std::thread_local! {
        /// True on pool workers and on a caller while it runs its own part, so a nested `run`
        /// runs serially instead of waiting for itself.
        static IN_TASK: Cell<bool> = const { Cell::new(false) };
    }

    /// The job of one `run` call.
    #[derive(Clone, Copy)]
    struct Job {
        /// The caller's task with its lifetime erased; see the SAFETY note in `run`.
        task: *const Task,
        n: usize,
        parts: usize,
    }

    // SAFETY: the task is `Sync`, so calling it from a worker through a shared pointer is
    // allowed, and `run` keeps it alive until every worker has finished with it.
    unsafe impl Send for Job {}

    struct State {
        epoch: u64,
        job: Option<Job>,
        shutdown: bool,
    }

    struct Shared {
        state: Mutex<State>,
        /// Workers wait here for a new epoch or shutdown.
        wake: Condvar,
        /// `state.epoch`, readable without the lock while spinning.
        epoch: AtomicU64,
        /// Worker parts of the current job that have not finished.
        pending: AtomicUsize,
        /// Set when a worker's part panicked.
        panicked: AtomicBool,
        done_lock: Mutex<()>,
        /// The caller waits here for `pending` to reach 0.
        done: Condvar,
    }

    /// A fixed set of worker threads that run [`Parallel`] jobs together with the caller.
    ///
    /// The workers start in [`ThreadPool::new`] and stop when the pool is dropped. Between
    /// jobs they spin briefly and then block on a condition variable. Jobs from several
    /// threads sharing one pool run one after another. A `run` called from inside a task
    /// runs serially on the calling thread. A panic in any part is re-raised by `run` on the
    /// calling thread after all parts have finished.
    pub struct ThreadPool {
        shared: Arc<Shared>,
        workers: Vec<JoinHandle<()>>,
        /// Serializes `run` calls from different threads.
        run_lock: Mutex<()>,
    }

    impl ThreadPool {
        /// Starts a pool that splits work into up to `threads` parts: `threads - 1` workers
        /// plus the calling thread. `threads` 0 is treated as 1.
        ///
        /// # Panics
        /// Panics when the operating system cannot start a thread.
        pub fn new(threads: usize) -> Self {
            let shared = Arc::new(Shared {
                state: Mutex::new(State { epoch: 0, job: None, shutdown: false }),
                wake: Condvar::new(),
                epoch: AtomicU64::new(0),
                pending: AtomicUsize::new(0),
                panicked: AtomicBool::new(false),
                done_lock: Mutex::new(()),
                done: Condvar::new(),
            });
            let workers = (1..threads.max(1))
                .map(|index| {
                    let shared = Arc::clone(&shared);
                    std::thread::Builder::new()
                        .name(format!("mamba-worker-{index}"))
                        .spawn(move || worker_loop(&shared, index))
                        .unwrap_or_else(|err| panic!("failed to start pool worker thread {index}: {err}"))
                })
                .collect();
            Self { shared, workers, run_lock: Mutex::new(()) }
        }
    }

    impl core::fmt::Debug for ThreadPool {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.debug_struct("ThreadPool").field("threads", &self.threads()).finish()
        }
    }

    // SAFETY: part 0 runs on the caller and part `i` on worker `i`, with the ranges of
    // `split`, which are disjoint and cover `0..n`. `run` returns only after its own part and
    // `pending` worker parts have finished, panics included, because every part runs under
    // `catch_unwind`.
    unsafe impl Parallel for ThreadPool {
        fn threads(&self) -> usize {
            self.workers.len() + 1
        }

        fn run(&self, n: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
            let parts = self.threads().min(n);
            if parts <= 1 || IN_TASK.get() {
                if n > 0 {
                    f(0..n);
                }
                return;
            }
            let _serial = lock(&self.run_lock);
            let shared = &*self.shared;

            // Publish the job, with the task's lifetime erased to 'static.
            let task: *const (dyn Fn(Range<usize>) + Sync + '_) = f;
            // SAFETY: only the lifetime changes. This function does not return, not even by
            // unwinding, before `pending` is 0, and a worker decrements `pending` only after
            // its last use of the task. The job is cleared before returning.
            let task = unsafe { core::mem::transmute::<*const (dyn Fn(Range<usize>) + Sync + '_), *const Task>(task) };
            shared.pending.store(parts - 1, Ordering::Relaxed);
            shared.panicked.store(false, Ordering::Relaxed);
            {
                let mut state = lock(&shared.state);
                state.epoch += 1;
                state.job = Some(Job { task, n, parts });
                shared.epoch.store(state.epoch, Ordering::Release);
            }
            shared.wake.notify_all();

            // Run part 0 here, then wait for the workers.
            IN_TASK.set(true);
            let own = catch_unwind(AssertUnwindSafe(|| f(split(n, parts, 0))));
            IN_TASK.set(false);
            let mut spins = 0;
            while shared.pending.load(Ordering::Acquire) != 0 && spins < SPIN_ITERATIONS {
                core::hint::spin_loop();
                spins += 1;
            }
            let mut guard = lock(&shared.done_lock);
            while shared.pending.load(Ordering::Acquire) != 0 {
                guard = shared.done.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            drop(guard);
            lock(&shared.state).job = None;

            if let Err(payload) = own {
                resume_unwind(payload);
            }
            if shared.panicked.load(Ordering::Relaxed) {
                panic!("a pool worker panicked while running a task");
            }
        }
    }

    impl Drop for ThreadPool {
        fn drop(&mut self) {
            lock(&self.shared.state).shutdown = true;
            self.shared.wake.notify_all();
            for worker in self.workers.drain(..) {
                // A worker catches task panics, so joining fails only if the loop itself
                // panicked, and there is nothing left to clean up then.
                let _ = worker.join();
            }
        }
    }

    /// Waits for jobs and runs part `index` of each until the pool shuts down.
    fn worker_loop(shared: &Shared, index: usize) {
        IN_TASK.set(true);
        let mut seen = 0u64;
        loop {
            let mut spins = 0;
            while shared.epoch.load(Ordering::Acquire) == seen && spins < SPIN_ITERATIONS {
                core::hint::spin_loop();
                spins += 1;
            }
            let job = {
                let mut state = lock(&shared.state);
                while state.epoch == seen && !state.shutdown {
                    state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                if state.shutdown {
                    return;
                }
                seen = state.epoch;
                state.job
            };
            let Some(job) = job else { continue };
            if index >= job.parts {
                continue;
            }

            // SAFETY: `run` keeps the task alive until `pending` reaches 0, which happens
            // only after the decrement below.
            let task = unsafe { &*job.task };
            let result = catch_unwind(AssertUnwindSafe(|| task(split(job.n, job.parts, index))));
            if result.is_err() {
                shared.panicked.store(true, Ordering::Relaxed);
            }
            if shared.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                let _guard = lock(&shared.done_lock);
                shared.done.notify_one();
            }
        }
    }

    /// Locks `mutex`, ignoring poisoning: every section leaves the data consistent.
    fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::vec::Vec;

    /// Runs `n` through `executor` and returns how often each index was visited.
    fn visits(executor: &dyn Parallel, n: usize) -> Vec<usize> {
        let counts: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
        executor.run(n, &|range| {
            for i in range {
                counts[i].fetch_add(1, Ordering::Relaxed);
            }
        });
        counts.into_iter().map(AtomicUsize::into_inner).collect()
    }

    #[test]
    fn split_covers_range_evenly() {
        for n in 0..20 {
            for parts in 1..6 {
                let ranges: Vec<_> = (0..parts).map(|i| split(n, parts, i)).collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[parts - 1].end, n);
                for pair in ranges.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start, "n {n} parts {parts}");
                    assert!(pair[0].len() - pair[1].len() <= 1, "n {n} parts {parts}");
                }
            }
        }
    }

    #[test]
    fn pool_visits_every_index_once() {
        for threads in 1..=4 {
            let pool = ThreadPool::new(threads);
            assert_eq!(pool.threads(), threads);
            for n in 0..40 {
                assert!(visits(&pool, n).iter().all(|&c| c == 1), "threads {threads} n {n}");
            }
        }
        assert!(visits(&Serial, 7).iter().all(|&c| c == 1));
    }

    #[test]
    fn worker_panic_reaches_caller() {
        let pool = ThreadPool::new(3);
        let result = catch_unwind(AssertUnwindSafe(|| {
            pool.run(30, &|range| {
                if range.start != 0 {
                    panic!("task failed on {range:?}");
                }
            });
        }));
        assert!(result.is_err());
        // The pool still runs jobs afterwards.
        assert!(visits(&pool, 30).iter().all(|&c| c == 1));
    }

    #[test]
    fn caller_panic_waits_for_workers() {
        let pool = ThreadPool::new(2);
        let finished = AtomicUsize::new(0);
        let result = catch_unwind(AssertUnwindSafe(|| {
            pool.run(2, &|range| {
                if range.start == 0 {
                    panic!("caller part failed");
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
                finished.fetch_add(1, Ordering::Relaxed);
            });
        }));
        assert!(result.is_err());
        assert_eq!(finished.load(Ordering::Relaxed), 1, "run returned before the worker part finished");
    }

    #[test]
    fn nested_run_is_serial() {
        let pool = ThreadPool::new(2);
        let inner_calls = AtomicUsize::new(0);
        pool.run(2, &|_| {
            pool.run(10, &|range| {
                assert_eq!(range, 0..10);
                inner_calls.fetch_add(1, Ordering::Relaxed);
            });
        });
        assert_eq!(inner_calls.load(Ordering::Relaxed), 2);
    }

    /// Many tiny jobs back to back (the workers never sleep), then jobs after pauses long
    /// enough for the workers and the caller to go to sleep.
    #[test]
    fn pool_wakes_after_spinning_and_sleeping() {
        for threads in [2, 3, 5] {
            let pool = ThreadPool::new(threads);
            let total = AtomicUsize::new(0);
            for n in (0..2_000).map(|i| i % 7) {
                pool.run(n, &|range| {
                    total.fetch_add(range.len(), Ordering::Relaxed);
                });
            }
            assert_eq!(total.load(Ordering::Relaxed), (0..2_000).map(|i| i % 7).sum::<usize>());

            for _ in 0..5 {
                std::thread::sleep(std::time::Duration::from_millis(20));
                assert!(visits(&pool, 40).iter().all(|&c| c == 1), "threads {threads}");
            }

            // A worker part that outlasts the caller's spinning makes the caller sleep.
            let slow = AtomicUsize::new(0);
            pool.run(threads, &|range| {
                if range.start != 0 {
                    std::thread::sleep(std::time::Duration::from_millis(30));
                }
                slow.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(slow.load(Ordering::Relaxed), threads);
        }
    }

    #[test]
    fn pool_is_shared_between_threads() {
        let pool = ThreadPool::new(2);
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    for n in [1, 5, 64] {
                        assert!(visits(&pool, n).iter().all(|&c| c == 1));
                    }
                });
            }
        });
    }
}
