//! The [`Actor`] trait and periodic [`Ticker`]s.
//!
//! An actor owns its state and changes it only in [`Actor::handle`], one
//! message at a time. It does not do long I/O there: it starts the I/O with
//! [`crate::Context::spawn_then`] and handles the result as a later message,
//! so its mailbox keeps moving.
//!
//! Lifecycle: started by [`crate::System`]; then messages, completions of
//! spawned work and ticks are handled in turn; it stops on a clean shutdown
//! (after its mailbox is drained through `handle`) or when any actor fails;
//! [`Actor::cleanup`] runs exactly once, last.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::Context;
use crate::error::ActorError;
use crate::runtime::task::MIN_PERIOD;

/// A unit of state driven by messages.
///
/// ```
/// # #[cfg(feature = "sim")] {
/// use talus_actors::{Actor, Context, Reply, System};
/// use talus_actors::runtime::Sim;
///
/// #[derive(Debug)]
/// enum CounterMsg {
///     Add(u64),
///     Get(Reply<u64>),
/// }
///
/// struct Counter(u64);
///
/// impl Actor for Counter {
///     type Msg = CounterMsg;
///     type Error = String;
///
///     async fn handle(&mut self, msg: CounterMsg, _ctx: &mut Context<Self>) -> Result<(), String> {
///         match msg {
///             CounterMsg::Add(n) => self.0 += n,
///             CounterMsg::Get(reply) => reply.send(self.0),
///         }
///         Ok(())
///     }
/// }
///
/// let sim = Sim::new(1);
/// let system = System::<String>::new(sim.runtime());
/// let counter = system.start("counter", Counter(0));
/// let total = sim.block_on(async {
///     counter.send(CounterMsg::Add(2)).await?;
///     counter.send(CounterMsg::Add(40)).await?;
///     counter.ask(CounterMsg::Get).await
/// });
/// assert_eq!(total, Ok(42));
/// # }
/// ```
pub trait Actor: Send + Sized + 'static {
    /// Everything the actor can be told, including its own I/O completions
    /// and ticks. `Debug` renders it for traces unless [`Actor::encode`] is
    /// overridden.
    type Msg: Send + fmt::Debug + 'static;
    /// The application's error; the same type for every actor of a system.
    type Error: Clone + fmt::Debug + Send + Sync + 'static;

    /// Handles one message. An `Err` is fatal: it becomes the system's closed
    /// result and every actor stops. So is a panic.
    fn handle(
        &mut self,
        msg: Self::Msg,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Periodic messages, asked for once when the actor starts.
    fn tickers(&mut self) -> Vec<Ticker<Self::Msg>> {
        Vec::new()
    }

    /// Runs exactly once when the actor stops. `leftover` holds the messages
    /// it never handled (none after a clean shutdown, which drains the
    /// mailbox); `result` is `Ok` for a clean shutdown and the system's closed
    /// result otherwise. Answer every waiter found in `leftover` or in the
    /// actor's own state: a waiter must never hang.
    fn cleanup(&mut self, leftover: Vec<Self::Msg>, result: &Result<(), ActorError<Self::Error>>) {
        let _ = (leftover, result);
    }

    /// How a delivered message is written into a trace. Override it with an
    /// encoding that [`crate::replay`] can decode back.
    fn encode(msg: &Self::Msg) -> String {
        format!("{msg:?}")
    }
}

/// A message delivered every `period`, optionally late by a random jitter of
/// up to `jitter` drawn from the runtime's RNG (so a seeded run repeats).
pub struct Ticker<M> {
    pub(crate) period: Duration,
    pub(crate) jitter: Duration,
    pub(crate) make: Box<dyn FnMut() -> M + Send>,
}

impl<M> Ticker<M> {
    /// A ticker whose k-th message is due at `start + k·period`. Periods
    /// under a millisecond are raised to one.
    pub fn every(period: Duration, make: impl FnMut() -> M + Send + 'static) -> Self {
        Ticker {
            period: period.max(MIN_PERIOD),
            jitter: Duration::ZERO,
            make: Box::new(make),
        }
    }

    /// Delays each tick by a random amount in `0..=jitter`.
    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }
}

impl<M> fmt::Debug for Ticker<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticker")
            .field("period", &self.period)
            .field("jitter", &self.jitter)
            .finish_non_exhaustive()
    }
}
