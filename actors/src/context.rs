//! What a handler can reach: its name, its own address, the runtime, and
//! [`Context::spawn_then`] for I/O that must not block the mailbox.
//!
//! Owns: the actor's in-flight jobs (spawned futures whose output will come
//! back as a message). Invariant: every job reports back exactly once —
//! done, panicked or aborted — even if its executor drops it, so the actor
//! always knows when none is left (clean shutdown waits for that; a failure
//! aborts them and waits too, so no task outlives its actor).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use concurrent_queue::ConcurrentQueue;

use crate::actor::Actor;
use crate::addr::Addr;
use crate::doorbell::{AbortHandle, Aborted, Doorbell, abortable};
use crate::runtime::{Runtime, TaskMonitor, catch_panic};

/// A handler's view of its surroundings; see the module docs.
pub struct Context<A: Actor> {
    name: Arc<str>,
    addr: Addr<A::Msg, A::Error>,
    runtime: Runtime,
    completions: Arc<Completions<A::Msg>>,
    // BTreeMap, not HashMap: abort order must not depend on a random hasher.
    in_flight: BTreeMap<u64, AbortHandle>,
    next_job: u64,
    tasks: TaskMonitor,
    replaying: bool,
}

/// Finished jobs waiting for their actor, who is woken through its doorbell.
pub(crate) struct Completions<M> {
    queue: ConcurrentQueue<Completion<M>>,
    doorbell: Arc<Doorbell>,
}

impl<M> Completions<M> {
    pub(crate) fn new(doorbell: Arc<Doorbell>) -> Self {
        Completions {
            queue: ConcurrentQueue::unbounded(),
            doorbell,
        }
    }

    fn push(&self, completion: Completion<M>) {
        // Unbounded and never closed: the push cannot fail.
        let _ = self.queue.push(completion);
        self.doorbell.ring();
    }

    #[inline]
    pub(crate) fn pop(&self) -> Option<Completion<M>> {
        // Checked first: `pop` fences even when there is nothing to take.
        if self.queue.is_empty() {
            return None;
        }
        self.queue.pop().ok()
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// How a job ended, as reported to its actor.
pub(crate) enum Completion<M> {
    Done { job: u64, msg: M },
    Panicked { job: u64, message: String },
    Aborted { job: u64 },
}

impl<A: Actor> Context<A> {
    pub(crate) fn new(
        name: Arc<str>,
        addr: Addr<A::Msg, A::Error>,
        runtime: Runtime,
        completions: Arc<Completions<A::Msg>>,
        tasks: TaskMonitor,
        replaying: bool,
    ) -> Self {
        Context {
            name,
            addr,
            runtime,
            completions,
            in_flight: BTreeMap::new(),
            next_job: 0,
            tasks,
            replaying,
        }
    }

    /// This actor's name (a pool worker's is `pool/index`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address of this actor's mailbox (shared by a pool's workers).
    pub fn addr(&self) -> Addr<A::Msg, A::Error> {
        self.addr.clone()
    }

    /// The runtime: time, randomness, spawning, blocking work.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Monotonic time on the runtime's clock.
    pub fn now(&self) -> Duration {
        self.runtime.now()
    }

    /// Jobs started with [`Context::spawn_then`] whose result has not been
    /// handled yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Runs `future` outside the handler and delivers `then(output)` to this
    /// actor as a message, ahead of queued mailbox messages. The mailbox keeps
    /// being served meanwhile. A panic in `future` or `then` is fatal to the
    /// system, like a panic in a handler.
    ///
    /// During a replay the future is not run: its result is already in the
    /// trace as a later message.
    pub fn spawn_then<F, T>(&mut self, future: F, then: impl FnOnce(T) -> A::Msg + Send + 'static)
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        if self.replaying {
            return;
        }
        let job = self.next_job;
        self.next_job += 1;
        let report = JobReport {
            job,
            completions: Some(self.completions.clone()),
        };
        let guard = self.tasks.guard();
        let (abort, work) = abortable(async move { then(future.await) });
        self.runtime.spawn_detached(Box::pin(async move {
            let outcome = catch_panic(work).await;
            // Uncounted before reporting, so an actor that has seen every
            // report has no counted task left.
            drop(guard);
            report.send(match outcome {
                Ok(Ok(msg)) => Completion::Done { job, msg },
                Ok(Err(Aborted)) => Completion::Aborted { job },
                Err(message) => Completion::Panicked { job, message },
            });
        }));
        self.in_flight.insert(job, abort);
    }

    pub(crate) fn job_reported(&mut self, job: u64) {
        self.in_flight.remove(&job);
    }

    pub(crate) fn abort_jobs(&self) {
        for abort in self.in_flight.values() {
            abort.abort();
        }
    }
}

/// Sends a job's completion; if the job is dropped before it finishes (its
/// executor went away), reports it aborted instead, so the actor never waits
/// for a job that cannot report.
struct JobReport<M> {
    job: u64,
    completions: Option<Arc<Completions<M>>>,
}

impl<M> JobReport<M> {
    fn send(mut self, completion: Completion<M>) {
        if let Some(completions) = self.completions.take() {
            completions.push(completion);
        }
    }
}

impl<M> Drop for JobReport<M> {
    fn drop(&mut self) {
        if let Some(completions) = self.completions.take() {
            completions.push(Completion::Aborted { job: self.job });
        }
    }
}
