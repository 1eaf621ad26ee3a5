//! The actix backend: tasks run on an actix-rt arbiter, so the runtime lives
//! inside an actix `System` (what an actix-web application has). Timers come
//! from `async-io` and blocking work from the `blocking` pool, both usable
//! from any thread.
//!
//! Spawning goes through an `ArbiterHandle`, which is `Send`: a component on
//! another thread (another actix-web worker, say) can still spawn onto the
//! arbiter it was built for. Does not own the arbiter.

use std::sync::Arc;

use actix_rt::ArbiterHandle;

use super::portable::{AsyncIoTimer, BlockingPool};
use super::{BoxFuture, Runtime, RuntimeParts, SeededRng, Spawn, SystemClock};

struct ActixSpawner {
    arbiter: ArbiterHandle,
}

impl Spawn for ActixSpawner {
    fn spawn_detached(&self, task: BoxFuture<()>) {
        // `false` means the arbiter has stopped; the task is dropped, which a
        // JoinHandle reports as cancelled.
        let _ = self.arbiter.spawn(task);
    }
}

/// Returned by [`Runtime::actix_current`] when called outside an actix-rt
/// arbiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotInActix;

impl std::fmt::Display for NotInActix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no actix-rt arbiter runs on this thread; call from inside an actix System")
    }
}

impl std::error::Error for NotInActix {}

impl Runtime {
    /// The actix backend on the arbiter of the calling thread.
    ///
    /// # Errors
    ///
    /// [`NotInActix`] when the calling thread runs no actix-rt arbiter.
    pub fn actix_current() -> Result<Runtime, NotInActix> {
        actix_rt::Arbiter::try_current().map(Runtime::actix).ok_or(NotInActix)
    }

    /// The actix backend on the arbiter behind `arbiter`.
    pub fn actix(arbiter: ArbiterHandle) -> Runtime {
        Runtime::from_parts(RuntimeParts {
            kind: "actix",
            spawner: Arc::new(ActixSpawner { arbiter }),
            timer: Arc::new(AsyncIoTimer),
            clock: Arc::new(SystemClock::new()),
            rng: Arc::new(SeededRng::from_entropy()),
            blocking: Arc::new(BlockingPool),
        })
    }
}
