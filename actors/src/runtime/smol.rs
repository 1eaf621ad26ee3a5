//! The smol backend: tasks on talus's own work-stealing pool
//! ([`super::pool`]) or on an `async-executor` the caller drives,
//! `async-io` timers and the `blocking` thread pool.
//!
//! Owns: optionally, a set of worker threads ([`SmolThreads`]) that stop
//! when the last runtime using them is dropped. Does not own: an executor
//! handed in by the caller ([`Runtime::smol_on`]), which the caller drives.

use std::sync::{Arc, OnceLock};

use async_executor::Executor;

use super::pool::Pool;
use super::portable::{AsyncIoTimer, BlockingPool};
use super::{BoxFuture, Runtime, RuntimeParts, SeededRng, Spawn, SystemClock};

/// Worker threads owned by a runtime: they run its tasks until the last
/// handle is dropped.
#[derive(Debug)]
pub struct SmolThreads {
    pool: Pool,
}

impl SmolThreads {
    /// Starts `threads` (at least one) worker threads named `talus-smol-N`.
    ///
    /// # Errors
    ///
    /// The operating system refused a thread.
    pub fn start(threads: usize) -> std::io::Result<Arc<SmolThreads>> {
        Ok(Arc::new(SmolThreads {
            pool: Pool::start(threads, "talus-smol")?,
        }))
    }
}

/// Where a smol runtime's tasks run.
enum SmolSpawner {
    /// Our pool, kept alive by every runtime clone.
    Threads(Arc<SmolThreads>),
    /// The caller's executor.
    Executor(Arc<Executor<'static>>),
}

impl Spawn for SmolSpawner {
    fn spawn_detached(&self, task: BoxFuture<()>) {
        match self {
            SmolSpawner::Threads(threads) => threads.pool.spawn(task),
            SmolSpawner::Executor(executor) => executor.spawn(task).detach(),
        }
    }
}

static GLOBAL_THREADS: OnceLock<Arc<SmolThreads>> = OnceLock::new();

impl Runtime {
    /// The smol backend on a process-wide pool whose worker threads (one
    /// per core) start on first use and live as long as the process. Tasks
    /// run on talus's work-stealing pool (`runtime/pool.rs`: a task woken
    /// by a worker runs next on that worker, so an actor round trip stays
    /// on one thread), with `async-io` timers and the `blocking` pool.
    ///
    /// # Errors
    ///
    /// The operating system refused a worker thread.
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
        Ok(Self::smol_parts(SmolSpawner::Threads(threads)))
    }

    /// The smol backend on `threads` new worker threads of its own pool,
    /// which stop when the last clone of this runtime (and every task
    /// holding one) is gone.
    ///
    /// # Errors
    ///
    /// The operating system refused a worker thread.
    pub fn smol_with_threads(threads: usize) -> std::io::Result<Runtime> {
        Ok(Self::smol_parts(SmolSpawner::Threads(SmolThreads::start(threads)?)))
    }

    /// The smol backend on an executor the caller drives, as a smol
    /// application does with `smol::Executor::run`.
    pub fn smol_on(executor: Arc<Executor<'static>>) -> Runtime {
        Self::smol_parts(SmolSpawner::Executor(executor))
    }

    fn smol_parts(spawner: SmolSpawner) -> Runtime {
        Runtime::from_parts(RuntimeParts {
            kind: "smol",
            spawner: Arc::new(spawner),
            timer: Arc::new(AsyncIoTimer),
            clock: Arc::new(SystemClock::new()),
            rng: Arc::new(SeededRng::from_entropy()),
            blocking: Arc::new(BlockingPool),
        })
    }
}
