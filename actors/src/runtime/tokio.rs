//! The tokio backend: tasks and blocking work on a tokio runtime reached
//! through its `Handle`; timers from `async-io`, so a runtime built without
//! tokio's time driver works too.
//!
//! Does not own the tokio runtime: the caller keeps it alive for as long as
//! the tasks spawned here should run.

use std::sync::Arc;

use tokio::runtime::Handle;

use super::portable::AsyncIoTimer;
use super::{Blocking, BoxFuture, Runtime, RuntimeParts, SeededRng, Spawn, SystemClock};

struct TokioSpawner {
    handle: Handle,
}

impl Spawn for TokioSpawner {
    fn spawn_detached(&self, task: BoxFuture<()>) {
        // Dropping tokio's JoinHandle detaches the task.
        drop(self.handle.spawn(task));
    }
}

impl Blocking for TokioSpawner {
    fn run_blocking(&self, work: Box<dyn FnOnce() + Send>) -> BoxFuture<()> {
        let task = self.handle.spawn_blocking(work);
        Box::pin(async move {
            // A panic in `work` is caught by `Runtime::unblock` before it
            // reaches tokio, so the join result carries nothing more.
            let _ = task.await;
        })
    }
}

impl Runtime {
    /// The tokio backend on the runtime behind `handle`.
    pub fn tokio(handle: Handle) -> Runtime {
        let spawner = Arc::new(TokioSpawner { handle });
        Runtime::from_parts(RuntimeParts {
            kind: "tokio",
            spawner: spawner.clone(),
            timer: Arc::new(AsyncIoTimer),
            clock: Arc::new(SystemClock::new()),
            rng: Arc::new(SeededRng::from_entropy()),
            blocking: spawner,
        })
    }

    /// The tokio backend on the runtime the caller is running in, if any.
    pub fn tokio_current() -> Option<Runtime> {
        Handle::try_current().ok().map(Runtime::tokio)
    }
}
