//! The executor abstraction: spawning, timers, a clock, a seeded RNG and
//! blocking work, each behind a small object-safe trait.
//!
//! Owns: the [`Runtime`] bundle that actors and engine code receive, the
//! generic helpers built on the traits ([`Runtime::spawn`],
//! [`Runtime::unblock`], [`Interval`]) and the backends behind features.
//! Does not own: actors, mailboxes or supervision (see [`crate::System`]).
//!
//! Invariants: nothing outside a backend module calls a runtime directly, so
//! swapping the backend (smol, tokio, actix-rt, sim) changes no behaviour
//! except timing; under `sim` every source of time and randomness is the
//! simulation's, which is what makes a run repeatable.
//!
//! ```
//! # #[cfg(feature = "sim")] {
//! use std::time::Duration;
//! use talus_actors::runtime::Sim;
//!
//! let sim = Sim::new(7);
//! let runtime = sim.runtime();
//! let answer = sim.block_on(async move {
//!     let task = runtime.spawn(async { 6 * 7 });
//!     runtime.sleep(Duration::from_secs(3600)).await; // virtual: returns at once
//!     task.await
//! });
//! assert_eq!(answer, Ok(42));
//! assert_eq!(sim.now(), Duration::from_secs(3600));
//! # }
//! ```

mod clock;
pub(crate) mod task;

#[cfg(feature = "actix")]
mod actix;
#[cfg(feature = "smol")]
mod pool;
#[cfg(any(feature = "smol", feature = "tokio", feature = "actix"))]
mod portable;
#[cfg(feature = "sim")]
mod sim;
#[cfg(feature = "smol")]
mod smol;
#[cfg(feature = "tokio")]
mod tokio;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ::tokio::sync::oneshot;
use futures::FutureExt;

#[cfg(feature = "actix")]
pub use actix::NotInActix;
pub use clock::{SeededRng, SystemClock};
#[cfg(feature = "sim")]
pub use sim::Sim;
#[cfg(feature = "smol")]
pub use smol::SmolThreads;
pub use task::{Interval, JoinError, JoinHandle, TaskGuard, TaskMonitor};

/// A boxed, `Send` future: the currency of the object-safe traits below.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Runs detached `Send` futures in the background.
pub trait Spawn: Send + Sync + 'static {
    /// Starts `task`; it runs to completion unless the executor is dropped,
    /// in which case the future is dropped unfinished.
    fn spawn_detached(&self, task: BoxFuture<()>);
}

/// One-shot timers on the same time base as the runtime's [`Clock`].
pub trait Timer: Send + Sync + 'static {
    /// A future that completes once `duration` has passed.
    fn sleep(&self, duration: Duration) -> BoxFuture<()>;
}

/// Monotonic time for timers and deadlines, plus wall-clock milliseconds for
/// timestamps that are stored (object ages, expiry times).
pub trait Clock: Send + Sync + 'static {
    /// Time since this clock's origin; never goes backwards.
    fn monotonic(&self) -> Duration;
    /// Milliseconds since the Unix epoch.
    fn wall_ms(&self) -> u64;
}

/// A source of random numbers; seeded wherever a run must be repeatable.
pub trait Rng: Send + Sync + 'static {
    /// The next 64 random bits.
    fn next_u64(&self) -> u64;

    /// A uniform number in `0.0..1.0` (53 random bits).
    fn next_unit(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs blocking work (file I/O, CPU-heavy encoding) off the async threads.
pub trait Blocking: Send + Sync + 'static {
    /// A future that runs `work` on a thread allowed to block and completes
    /// when it returns.
    fn run_blocking(&self, work: Box<dyn FnOnce() + Send>) -> BoxFuture<()>;
}

/// The parts of a [`Runtime`], for callers who assemble their own.
pub struct RuntimeParts {
    /// A short name for logs and traces: "smol", "tokio", "actix", "sim", …
    pub kind: &'static str,
    /// Where tasks run.
    pub spawner: Arc<dyn Spawn>,
    /// Sleeps and tickers.
    pub timer: Arc<dyn Timer>,
    /// Monotonic and wall time.
    pub clock: Arc<dyn Clock>,
    /// Randomness (seeded under sim).
    pub rng: Arc<dyn Rng>,
    /// Where blocking calls run.
    pub blocking: Arc<dyn Blocking>,
}

/// Everything a component needs from its environment: spawning, time,
/// randomness and a place for blocking work. Cheap to clone.
///
/// Build one with a backend constructor — `Runtime::smol()`,
/// `Runtime::tokio(handle)`, `Runtime::actix_current()`, `Sim::runtime()` —
/// or from [`RuntimeParts`]. The clock and RNG can be swapped afterwards
/// ([`Runtime::with_clock`], [`Runtime::with_seed`]); a replacement clock
/// must run at the same pace as the backend's timers.
#[derive(Clone)]
pub struct Runtime {
    kind: &'static str,
    spawner: Arc<dyn Spawn>,
    timer: Arc<dyn Timer>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Rng>,
    blocking: Arc<dyn Blocking>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("kind", &self.kind).finish()
    }
}

impl Runtime {
    /// Assembles a runtime from its parts.
    pub fn from_parts(parts: RuntimeParts) -> Self {
        Runtime {
            kind: parts.kind,
            spawner: parts.spawner,
            timer: parts.timer,
            clock: parts.clock,
            rng: parts.rng,
            blocking: parts.blocking,
        }
    }

    /// The backend's short name ("smol", "tokio", "actix", "sim", …).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The same runtime with another clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The same runtime with another random source.
    pub fn with_rng(mut self, rng: Arc<dyn Rng>) -> Self {
        self.rng = rng;
        self
    }

    /// The same runtime with a [`SeededRng`] started from `seed`.
    pub fn with_seed(self, seed: u64) -> Self {
        self.with_rng(Arc::new(SeededRng::new(seed)))
    }

    /// Spawns `future`; the handle awaits its output or aborts it. Dropping
    /// the handle detaches the task. A panic inside the task is caught and
    /// reported as [`JoinError::Panicked`].
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (handle, task) = task::wrap(future);
        self.spawner.spawn_detached(task);
        handle
    }

    /// Spawns a future whose output nobody awaits.
    pub fn spawn_detached(&self, task: BoxFuture<()>) {
        self.spawner.spawn_detached(task);
    }

    /// Completes after `duration` on this runtime's time base.
    pub fn sleep(&self, duration: Duration) -> BoxFuture<()> {
        self.timer.sleep(duration)
    }

    /// Completes once [`Runtime::now`] reaches `deadline`.
    pub fn sleep_until(&self, deadline: Duration) -> BoxFuture<()> {
        self.timer.sleep(deadline.saturating_sub(self.now()))
    }

    /// A stream that yields every `period`, first one period from now.
    pub fn interval(&self, period: Duration) -> Interval {
        Interval::new(self.clone(), period)
    }

    /// Monotonic time since the clock's origin.
    pub fn now(&self) -> Duration {
        self.clock.monotonic()
    }

    /// Wall-clock milliseconds since the Unix epoch.
    pub fn wall_ms(&self) -> u64 {
        self.clock.wall_ms()
    }

    /// The next 64 random bits from the runtime's RNG.
    pub fn next_u64(&self) -> u64 {
        self.rng.next_u64()
    }

    /// A random number in `0..bound` (0 when `bound` is 0).
    pub fn random_below(&self, bound: u64) -> u64 {
        clock::below(self.rng.as_ref(), bound)
    }

    /// A random duration in `0..=max`, at nanosecond resolution.
    pub fn random_duration(&self, max: Duration) -> Duration {
        let max_ns = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.random_below(max_ns.saturating_add(1)))
    }

    /// Runs blocking `work` off the async threads and returns its output. A
    /// panic in `work` comes back as [`JoinError::Panicked`].
    ///
    /// # Errors
    ///
    /// [`JoinError::Panicked`] if `work` panicked; [`JoinError::Cancelled`]
    /// if the executor dropped it.
    pub fn unblock<T, W>(&self, work: W) -> impl Future<Output = Result<T, JoinError>> + Send + use<T, W>
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
    {
        let (sender, receiver) = oneshot::channel();
        let run = self.blocking.run_blocking(Box::new(move || {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(work))
                .map_err(|payload| JoinError::Panicked(panic_message(payload.as_ref())));
            let _ = sender.send(outcome);
        }));
        async move {
            run.await;
            receiver.await.unwrap_or(Err(JoinError::Cancelled))
        }
    }

    /// The clock, for components that take one directly.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The random source, for components that take one directly.
    pub fn rng(&self) -> Arc<dyn Rng> {
        self.rng.clone()
    }
}

/// Lets the executor run its other tasks before this one goes on: the
/// returned future is pending once (waking itself at once), then ready.
/// For work that may stay ready for long (a loop over data already in
/// memory), which would otherwise hold its thread while other tasks queue
/// behind it. Works on every executor, `sim` included.
pub fn yield_now() -> impl Future<Output = ()> + Send {
    YieldNow(false)
}

struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// The text of a panic payload (`&str` and `String` payloads; others get a
/// placeholder).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Wraps `future` so that a panic inside it becomes `Err(message)`.
pub(crate) fn catch_panic<F: Future>(future: F) -> impl Future<Output = Result<F::Output, String>> {
    AssertUnwindSafe(future)
        .catch_unwind()
        .map(|outcome| outcome.map_err(|payload| panic_message(payload.as_ref())))
}
