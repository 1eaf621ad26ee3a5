//! Starting actors and supervising them: the first fatal error of any actor
//! becomes the system's *closed result*, which every later send, ask and
//! waiter receives.
//!
//! Owns: the registry of started workers (for ordered shutdown), the closed
//! result ([`status`]), the task count, the optional [`Recorder`].
//! Does not own: the executor (it comes in through the [`Runtime`]).
//!
//! Lifecycle:
//! - `start`/`run` spawn one worker task per actor (N for a pool);
//! - the first failure — an `Err` from a handler, a panic in a handler or in
//!   a spawned job, or [`System::fail`] — is recorded once and stops every
//!   actor: in-flight jobs are aborted, mailboxes closed, and each actor's
//!   `cleanup` gets its unhandled messages and the error;
//! - [`System::shutdown`] closes mailboxes stage by stage, each stage
//!   draining through `handle` (and waiting for its in-flight jobs) before the
//!   next one starts, then resolves `Ok`; later sends get
//!   [`ActorError::Closed`];
//! - dropping the `System` stops every actor the same way as a failure would,
//!   with [`ActorError::Closed`] as the cause; it neither blocks nor hangs.

pub(crate) mod status;
mod worker;

use std::sync::{Arc, Mutex, MutexGuard};

use tracing::Instrument;

use crate::actor::Actor;
use crate::addr::Addr;
use crate::error::ActorError;
use crate::mailbox;
use crate::record::Recorder;
use crate::runtime::{Runtime, TaskMonitor};
use status::Status;
use worker::Worker;

/// How many messages a mailbox holds before senders wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capacity {
    /// Senders never wait (the sender is responsible for bounding the flow).
    Unbounded,
    /// Senders wait while this many messages are queued (at least 1).
    Bounded(usize),
}

/// A mailbox created ahead of its actor, so actors can hold each other's
/// addresses before any of them runs. Hand it to [`System::run`] or
/// [`System::run_pool`].
pub struct Mailbox<M, E> {
    addr: Addr<M, E>,
    receiver: mailbox::Receiver<M>,
}

impl<M: Send, E: Clone> Mailbox<M, E> {
    /// The address of this mailbox.
    pub fn addr(&self) -> Addr<M, E> {
        self.addr.clone()
    }
}

/// Starts and supervises actors whose errors are of type `E`.
///
/// Not `Clone`: it is the owner, and dropping it stops every actor. Share
/// it behind an `Arc` if several components need it.
pub struct System<E: Clone + Send + Sync + 'static> {
    runtime: Runtime,
    status: Arc<Status<E>>,
    workers: Mutex<Vec<Registered>>,
    tasks: TaskMonitor,
    recorder: Option<Recorder>,
}

/// A started worker, as shutdown sees it.
struct Registered {
    /// The actor's or pool's name: what shutdown orders are written in.
    group: Arc<str>,
    close: Box<dyn Fn() + Send + Sync>,
    /// Closed by the worker when it has finished.
    finished: async_channel::Receiver<()>,
}

impl<E: Clone + std::fmt::Debug + Send + Sync + 'static> System<E> {
    /// A system whose actors run on `runtime`.
    pub fn new(runtime: Runtime) -> Self {
        System {
            runtime,
            status: Arc::new(Status::new()),
            workers: Mutex::new(Vec::new()),
            tasks: TaskMonitor::new(),
            recorder: None,
        }
    }

    /// The same system recording every delivered message into `recorder`.
    /// Actors started before this call are not recorded.
    pub fn recording(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// The runtime actors run on.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The live tasks of this system: worker loops and in-flight jobs. Zero
    /// once it has stopped and every task is gone.
    pub fn tasks(&self) -> TaskMonitor {
        self.tasks.clone()
    }

    /// Creates a mailbox named `name` whose actor starts later.
    pub fn mailbox<M: Send + 'static>(&self, name: &str, capacity: Capacity) -> (Addr<M, E>, Mailbox<M, E>) {
        let (sender, receiver) = mailbox::channel(match capacity {
            Capacity::Unbounded => None,
            Capacity::Bounded(size) => Some(size),
        });
        let addr = Addr::new(Arc::from(name), sender, self.status.clone());
        (addr.clone(), Mailbox { addr, receiver })
    }

    /// Starts `actor` with an unbounded mailbox.
    pub fn start<A: Actor<Error = E>>(&self, name: &str, actor: A) -> Addr<A::Msg, E> {
        self.start_with(name, Capacity::Unbounded, actor)
    }

    /// Starts `actor` with a mailbox of the given capacity.
    pub fn start_with<A: Actor<Error = E>>(&self, name: &str, capacity: Capacity, actor: A) -> Addr<A::Msg, E> {
        let (addr, mailbox) = self.mailbox(name, capacity);
        self.run(mailbox, actor);
        addr
    }

    /// Starts `actor` on a mailbox made earlier with [`System::mailbox`].
    pub fn run<A: Actor<Error = E>>(&self, mailbox: Mailbox<A::Msg, E>, actor: A) {
        let name: Arc<str> = Arc::from(mailbox.addr.name());
        // The mailbox's own receiver, whose wake-ups need no lock.
        self.spawn_worker(name, &mailbox.addr, mailbox.receiver, actor);
    }

    /// Starts a pool: every worker takes messages from the one `mailbox`, so
    /// up to `workers.len()` messages are handled at once. Worker `i` is named
    /// `mailbox-name/i` in traces, spans and errors.
    pub fn run_pool<A: Actor<Error = E>>(&self, mailbox: Mailbox<A::Msg, E>, workers: impl IntoIterator<Item = A>) {
        for (index, actor) in workers.into_iter().enumerate() {
            let name: Arc<str> = Arc::from(format!("{}/{index}", mailbox.addr.name()));
            self.spawn_worker(name, &mailbox.addr, mailbox.receiver.clone(), actor);
        }
    }

    fn spawn_worker<A: Actor<Error = E>>(
        &self,
        name: Arc<str>,
        addr: &Addr<A::Msg, E>,
        receiver: mailbox::Receiver<A::Msg>,
        actor: A,
    ) {
        let (finished_sender, finished) = async_channel::bounded(1);
        let group: Arc<str> = Arc::from(addr.name());
        let closer = addr.clone();
        self.registry().push(Registered {
            group,
            close: Box::new(move || closer.close()),
            finished,
        });
        self.status.worker_started();
        let worker = Worker::new(
            name.clone(),
            actor,
            addr.clone(),
            receiver,
            self.runtime.clone(),
            self.status.clone(),
            self.tasks.clone(),
            self.recorder.clone(),
        );
        let span = tracing::info_span!("actor", name = &*name);
        let guard = self.tasks.guard();
        self.runtime
            .spawn_detached(Box::pin(worker.run(guard, finished_sender).instrument(span)));
    }

    fn registry(&self) -> MutexGuard<'_, Vec<Registered>> {
        self.workers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stops the system with `error` as its closed result, unless another
    /// cause was recorded first. Returns whether `error` won.
    pub fn fail(&self, error: E) -> bool {
        let failure = ActorError::Failed {
            actor: Arc::from("system"),
            error,
        };
        tracing::error!(error = ?failure, "system failed");
        self.status.close_with(failure)
    }

    /// The closed result if the system has stopped: `Ok` after a clean
    /// shutdown.
    pub fn closed_result(&self) -> Option<Result<(), ActorError<E>>> {
        self.status.result().map(|error| match error {
            ActorError::Closed => Ok(()),
            error => Err(error.clone()),
        })
    }

    /// Completes once the system has stopped and every actor has run its
    /// cleanup: `Ok` after a clean shutdown, otherwise the first failure.
    ///
    /// # Errors
    ///
    /// The first failure (an actor's error or panic) that stopped the system.
    pub async fn closed(&self) -> Result<(), ActorError<E>> {
        self.status.terminated().await
    }

    /// Shuts down actor by actor in the order they were started.
    ///
    /// # Errors
    ///
    /// The first failure that stopped the system, before or during the
    /// shutdown.
    pub async fn shutdown(&self) -> Result<(), ActorError<E>> {
        self.shutdown_in_order(&[]).await
    }

    /// Shuts down the actors (or pools) named in `order` first, one stage
    /// after another, then the rest in the order they were started. Each
    /// stage's mailbox is closed, drained through `handle` and its in-flight
    /// jobs awaited before the next stage is closed. Returns `Ok`, or the
    /// failure that stopped the system first.
    ///
    /// # Errors
    ///
    /// The first failure that stopped the system, before or during the
    /// shutdown.
    pub async fn shutdown_in_order(&self, order: &[&str]) -> Result<(), ActorError<E>> {
        let stages: Vec<(usize, Registered)> = {
            let mut registry = self.registry();
            let mut stages: Vec<(usize, Registered)> = registry
                .drain(..)
                .map(|worker| {
                    let rank = order
                        .iter()
                        .position(|name| **name == *worker.group)
                        .unwrap_or(order.len());
                    (rank, worker)
                })
                .collect();
            stages.sort_by_key(|(rank, _)| *rank);
            stages
        };
        for (_, worker) in &stages {
            (worker.close)();
            // Fails (ends) exactly when the worker closes it on exit.
            let _ = worker.finished.recv().await;
        }
        self.status.close_with(ActorError::Closed);
        self.status.terminated().await
    }
}

impl<E: Clone + Send + Sync + 'static> Drop for System<E> {
    fn drop(&mut self) {
        self.status.close_with(ActorError::Closed);
    }
}
