//! Task handles, task accounting and periodic ticks, built once on top of the
//! object-safe traits so every backend behaves the same.
//!
//! Owns: [`JoinHandle`] (await or abort a task), [`TaskMonitor`] (how many
//! tasks of a component are still alive, and a way to await zero) and
//! [`Interval`] (fixed-rate ticks).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use event_listener::Event;
use futures::{FutureExt, Stream};
use tokio::sync::oneshot;

use super::{BoxFuture, Runtime, catch_panic};
use crate::doorbell::{AbortHandle, Aborted, abortable};

/// Why a task produced no output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinError {
    /// [`JoinHandle::abort`] stopped it.
    Aborted,
    /// It panicked; the panic's message.
    Panicked(String),
    /// The executor dropped it unfinished (for example, it was shut down).
    Cancelled,
}

impl std::fmt::Display for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinError::Aborted => f.write_str("task was aborted"),
            JoinError::Panicked(message) => write!(f, "task panicked: {message}"),
            JoinError::Cancelled => f.write_str("task was dropped by its executor before it finished"),
        }
    }
}

impl std::error::Error for JoinError {}

/// Awaits a spawned task's output. Dropping it detaches the task.
#[derive(Debug)]
pub struct JoinHandle<T> {
    output: oneshot::Receiver<Result<T, JoinError>>,
    abort: AbortHandle,
}

impl<T> JoinHandle<T> {
    /// Stops the task at its next suspension point; awaiting the handle then
    /// gives [`JoinError::Aborted`] (or the output, if it had finished).
    pub fn abort(&self) {
        self.abort.abort();
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.output
            .poll_unpin(cx)
            .map(|received| received.unwrap_or(Err(JoinError::Cancelled)))
    }
}

/// Turns `future` into a detached-runnable task plus the handle to its output.
pub(crate) fn wrap<F>(future: F) -> (JoinHandle<F::Output>, BoxFuture<()>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (abort, future) = abortable(future);
    let (sender, receiver) = oneshot::channel();
    let task = async move {
        let outcome = match catch_panic(future).await {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(Aborted)) => Err(JoinError::Aborted),
            Err(message) => Err(JoinError::Panicked(message)),
        };
        let _ = sender.send(outcome);
    };
    (
        JoinHandle {
            output: receiver,
            abort,
        },
        Box::pin(task),
    )
}

/// Counts a component's live tasks and lets a caller await the moment none
/// is left: how tests prove that shutdown and drop leak nothing.
#[derive(Clone, Debug, Default)]
pub struct TaskMonitor {
    inner: Arc<MonitorInner>,
}

#[derive(Debug, Default)]
struct MonitorInner {
    live: AtomicUsize,
    idle: Event,
}

impl TaskMonitor {
    /// A monitor with no live tasks.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many guarded tasks are alive now.
    pub fn live(&self) -> usize {
        self.inner.live.load(Ordering::Acquire)
    }

    /// Completes when no guarded task is alive.
    pub async fn idle(&self) {
        loop {
            let listener = self.inner.idle.listen();
            if self.live() == 0 {
                return;
            }
            listener.await;
        }
    }

    /// Counts one more live task until the guard drops.
    pub fn guard(&self) -> TaskGuard {
        self.inner.live.fetch_add(1, Ordering::AcqRel);
        TaskGuard {
            inner: self.inner.clone(),
        }
    }
}

/// Keeps one task counted in its [`TaskMonitor`] while alive.
#[derive(Debug)]
pub struct TaskGuard {
    inner: Arc<MonitorInner>,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.inner.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify(usize::MAX);
        }
    }
}

/// Fixed-rate ticks: the n-th tick is due at `start + n·period`, so ticks do
/// not drift. A consumer that falls a whole period behind gets one tick at
/// once and the schedule restarts from then, instead of a burst.
pub struct Interval {
    runtime: Runtime,
    period: Duration,
    next_due: Duration,
    sleep: Option<BoxFuture<()>>,
}

/// The shortest period an [`Interval`] or ticker accepts; shorter ones are
/// raised to it so a zero period cannot spin a thread.
pub const MIN_PERIOD: Duration = Duration::from_millis(1);

impl Interval {
    pub(crate) fn new(runtime: Runtime, period: Duration) -> Self {
        let period = period.max(MIN_PERIOD);
        let next_due = runtime.now() + period;
        Interval {
            runtime,
            period,
            next_due,
            sleep: None,
        }
    }

    /// The time the next tick is due on the runtime's clock.
    pub fn next_due(&self) -> Duration {
        self.next_due
    }
}

impl Stream for Interval {
    /// The time each tick was due.
    type Item = Duration;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Duration>> {
        let this = &mut *self;
        let sleep = this
            .sleep
            .get_or_insert_with(|| this.runtime.sleep_until(this.next_due));
        if sleep.poll_unpin(cx).is_pending() {
            return Poll::Pending;
        }
        this.sleep = None;
        let due = this.next_due;
        this.next_due = next_after(due, this.period, this.runtime.now());
        Poll::Ready(Some(due))
    }
}

/// The due time after `due`: one period later, or now if that is already past.
pub(crate) fn next_after(due: Duration, period: Duration, now: Duration) -> Duration {
    (due + period).max(now)
}
