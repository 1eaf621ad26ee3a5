//! The timer and blocking pool shared by the real backends: `async-io`
//! timers and the `blocking` pool work under smol, tokio and actix-rt alike,
//! since neither needs a particular runtime's context to be polled.

use std::time::Duration;

use super::{BoxFuture, Timer};

/// Timers driven by `async-io`'s reactor (its own thread when no smol
/// executor is driving it).
pub(super) struct AsyncIoTimer;

impl Timer for AsyncIoTimer {
    fn sleep(&self, duration: Duration) -> BoxFuture<()> {
        Box::pin(async move {
            async_io::Timer::after(duration).await;
        })
    }
}

/// The `blocking` crate's thread pool.
#[cfg(any(feature = "smol", feature = "actix"))]
pub(super) struct BlockingPool;

#[cfg(any(feature = "smol", feature = "actix"))]
impl super::Blocking for BlockingPool {
    fn run_blocking(&self, work: Box<dyn FnOnce() + Send>) -> BoxFuture<()> {
        Box::pin(blocking::unblock(work))
    }
}
