//! The smol backend: tasks on an `async-executor`, `async-io` timers and the
//! `blocking` thread pool.
//!
//! Owns: optionally, a set of executor threads ([`SmolThreads`]) that stop
//! when the last runtime using them is dropped. Does not own: an executor
//! handed in by the caller ([`Runtime::smol_on`]), which the caller drives.

use std::sync::{Arc, OnceLock};

use async_executor::Executor;

use super::portable::{AsyncIoTimer, BlockingPool};
use super::{BoxFuture, Runtime, RuntimeParts, SeededRng, Spawn, SystemClock};

/// Executor threads owned by a runtime: each runs the executor until the
/// last handle is dropped.
#[derive(Debug)]
pub struct SmolThreads {
    executor: Arc<Executor<'static>>,
    stop: async_channel::Sender<()>,
}

impl SmolThreads {
    /// Starts `threads` (at least one) threads named `talus-smol-N` driving
    /// a new executor.
    pub fn start(threads: usize) -> std::io::Result<Arc<SmolThreads>> {
        let executor = Arc::new(Executor::new());
        let (stop, stopped) = async_channel::bounded::<()>(1);
        for index in 0..threads.max(1) {
            let executor = executor.clone();
            let stopped = stopped.clone();
            std::thread::Builder::new()
                .name(format!("talus-smol-{index}"))
                .spawn(move || {
                    // `recv` fails once `stop` is closed: that ends the thread.
                    async_io::block_on(executor.run(stopped.recv()))
                })?;
        }
        Ok(Arc::new(SmolThreads { executor, stop }))
    }
}

impl Drop for SmolThreads {
    fn drop(&mut self) {
        // The threads are not joined: the last handle may be dropped on one of
        // them, and joining itself would hang.
        self.stop.close();
    }
}

struct SmolSpawner {
    executor: Arc<Executor<'static>>,
    _threads: Option<Arc<SmolThreads>>,
}

impl Spawn for SmolSpawner {
    fn spawn_detached(&self, task: BoxFuture<()>) {
        self.executor.spawn(task).detach();
    }
}

static GLOBAL_THREADS: OnceLock<Arc<SmolThreads>> = OnceLock::new();

impl Runtime {
    /// The smol backend on a process-wide executor whose threads (one per
    /// core) start on first use and live as long as the process.
    pub fn smol() -> std::io::Result<Runtime> {
        let threads = match GLOBAL_THREADS.get() {
            Some(threads) => threads.clone(),
            None => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                let started = SmolThreads::start(cores)?;
                // A racing caller may have won; its threads are used and ours stop.
                GLOBAL_THREADS.get_or_init(|| started).clone()
            }
        };
        Ok(Self::smol_parts(threads.executor.clone(), Some(threads)))
    }

    /// The smol backend on `threads` new executor threads, which stop when the
    /// last clone of this runtime (and every task holding one) is gone.
    pub fn smol_with_threads(threads: usize) -> std::io::Result<Runtime> {
        let owned = SmolThreads::start(threads)?;
        Ok(Self::smol_parts(owned.executor.clone(), Some(owned)))
    }

    /// The smol backend on an executor the caller drives, as a smol
    /// application does with `smol::Executor::run`.
    pub fn smol_on(executor: Arc<Executor<'static>>) -> Runtime {
        Self::smol_parts(executor, None)
    }

    fn smol_parts(executor: Arc<Executor<'static>>, threads: Option<Arc<SmolThreads>>) -> Runtime {
        Runtime::from_parts(RuntimeParts {
            kind: "smol",
            spawner: Arc::new(SmolSpawner {
                executor,
                _threads: threads,
            }),
            timer: Arc::new(AsyncIoTimer),
            clock: Arc::new(SystemClock::new()),
            rng: Arc::new(SeededRng::from_entropy()),
            blocking: Arc::new(BlockingPool),
        })
    }
}
