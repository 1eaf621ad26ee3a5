//! One actor's loop: pick the next event, hand it to the actor, and on the
//! way out collect what was left and run `cleanup`.
//!
//! Event priority, highest first: the stop signal, completions of in-flight
//! jobs, due ticks, then the mailbox. Completions come first so a busy
//! mailbox cannot starve an actor's own I/O results.
//!
//! Fairness rule: after a tick, a waiting message is served before the next
//! tick. A tick handler that takes longer than its period finds its next
//! tick already due when it returns; without the rule the actor would run
//! ticks back to back and never read its mailbox again.

use std::future::poll_fn;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::FutureExt;

use super::status::Status;
use crate::actor::{Actor, Ticker};
use crate::addr::Addr;
use crate::context::{Completion, Completions, Context};
use crate::error::ActorError;
use crate::mailbox::{self, Received};
use crate::record::Recorder;
use crate::runtime::task::next_after;
use crate::runtime::{BoxFuture, Runtime, TaskGuard, TaskMonitor, panic_message};

pub(super) struct Worker<A: Actor> {
    name: Arc<str>,
    actor: A,
    ctx: Context<A>,
    /// Its doorbell is rung by new mail, finished jobs and the stop signal.
    mailbox: mailbox::Receiver<A::Msg>,
    completions: Arc<Completions<A::Msg>>,
    status: Arc<Status<A::Error>>,
    recorder: Option<Recorder>,
    /// A tick was the last event: the mailbox goes before the next tick.
    mail_owed: bool,
}

enum Event<M> {
    Stop,
    Message(M),
    Completion(Completion<M>),
    Tick(usize),
    MailboxClosed,
}

/// How the serving loop ended.
enum Exit {
    /// Clean shutdown: mailbox closed and drained, no job in flight.
    Drained,
    /// The system stopped (a failure, or a drop); the closed result is set.
    Stopped,
}

impl<A: Actor> Worker<A> {
    #[allow(
        clippy::too_many_arguments,
        reason = "internal constructor mirroring the worker's fields"
    )]
    pub(super) fn new(
        name: Arc<str>,
        actor: A,
        addr: Addr<A::Msg, A::Error>,
        mailbox: mailbox::Receiver<A::Msg>,
        runtime: Runtime,
        status: Arc<Status<A::Error>>,
        tasks: TaskMonitor,
        recorder: Option<Recorder>,
    ) -> Self {
        let completions = Arc::new(Completions::new(mailbox.doorbell().clone()));
        let ctx = Context::new(name.clone(), addr, runtime, completions.clone(), tasks, false);
        status.watch(mailbox.doorbell());
        Worker {
            name,
            actor,
            ctx,
            mailbox,
            completions,
            status,
            recorder,
            mail_owed: false,
        }
    }

    /// Runs the actor to the end. `guard` counts this task; `finished` is
    /// closed when the worker is done, which is what shutdown waits for.
    pub(super) async fn run(mut self, guard: TaskGuard, finished: async_channel::Sender<()>) {
        let mut tickers = Tickers::new(self.actor.tickers(), self.ctx.runtime());
        let result = match self.serve(&mut tickers).await {
            Exit::Drained => Ok(()),
            Exit::Stopped => Err(self.status.closed_error()),
        };
        let leftover = match result {
            Ok(()) => Vec::new(),
            Err(_) => self.collect_leftovers().await,
        };
        tracing::debug!(leftover = leftover.len(), "stopping");
        let actor = &mut self.actor;
        if let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(|| actor.cleanup(leftover, &result))) {
            self.fail(ActorError::Panicked {
                actor: self.name.clone(),
                message: panic_message(payload.as_ref()),
            });
        }
        let status = self.status.clone();
        // Everything the actor owned (addresses, buffers) goes before the
        // system learns this worker is done.
        drop(self);
        drop(tickers);
        drop(guard);
        finished.close();
        status.worker_finished();
    }

    async fn serve(&mut self, tickers: &mut Tickers<A::Msg>) -> Exit {
        let mut draining = false;
        loop {
            if draining && self.ctx.in_flight() == 0 {
                return Exit::Drained;
            }
            let event = self.next_event(tickers, draining).await;
            match event {
                Event::Tick(_) => self.mail_owed = true,
                Event::Message(_) => self.mail_owed = false,
                _ => {}
            }
            let msg = match event {
                Event::Stop => return Exit::Stopped,
                Event::MailboxClosed => {
                    draining = true;
                    continue;
                }
                Event::Message(msg) => msg,
                Event::Tick(index) => tickers.fire(index, self.ctx.runtime()),
                Event::Completion(Completion::Done { job, msg }) => {
                    self.ctx.job_reported(job);
                    msg
                }
                Event::Completion(Completion::Aborted { job }) => {
                    self.ctx.job_reported(job);
                    continue;
                }
                Event::Completion(Completion::Panicked { job, message }) => {
                    self.ctx.job_reported(job);
                    self.fail(ActorError::Panicked {
                        actor: self.name.clone(),
                        message,
                    });
                    return Exit::Stopped;
                }
            };
            if !self.deliver(msg).await {
                return Exit::Stopped;
            }
        }
    }

    async fn next_event(&mut self, tickers: &mut Tickers<A::Msg>, draining: bool) -> Event<A::Msg> {
        // Fast path: a queued message and nothing more urgent, taken without
        // registering a waker.
        let mut found_empty = false;
        let mail_first = self.mail_owed;
        if !draining
            && !self.status.is_stopping()
            && self.completions.is_empty()
            && (mail_first || !tickers.is_due(self.ctx.runtime()))
        {
            match self.mailbox.try_recv() {
                Received::Message(msg) => return Event::Message(msg),
                Received::Empty => found_empty = true,
                Received::Closed => {}
            }
        }
        let Worker {
            status,
            completions,
            mailbox,
            ctx,
            ..
        } = self;
        let runtime = ctx.runtime();
        let event = poll_fn(|cx| {
            // Registered first: anything that happens after this rings us.
            mailbox.register(cx);
            if status.is_stopping() {
                return Poll::Ready(Event::Stop);
            }
            if let Some(completion) = completions.pop() {
                return Poll::Ready(Event::Completion(completion));
            }
            if draining {
                return Poll::Pending;
            }
            // Owed a turn, the mailbox is asked before the tickers (unless
            // the fast path just found it empty).
            let mail_first = mail_first && !found_empty;
            if !mail_first && let Poll::Ready(index) = tickers.poll_due(cx, runtime) {
                return Poll::Ready(Event::Tick(index));
            }
            // Right after the fast path found it empty, go straight to parking.
            let received = if std::mem::take(&mut found_empty) {
                mailbox.park_and_recv()
            } else {
                mailbox.poll_recv()
            };
            match received {
                Poll::Ready(Some(msg)) => Poll::Ready(Event::Message(msg)),
                Poll::Ready(None) => Poll::Ready(Event::MailboxClosed),
                Poll::Pending if mail_first => tickers.poll_due(cx, runtime).map(Event::Tick),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        // Busy now: a pool's next message should wake a worker that is idle.
        mailbox.unpark();
        event
    }

    /// Hands `msg` to the actor. False when the system must stop: the handler
    /// failed or panicked, or the stop signal came while it was running (the
    /// handler is then dropped mid-way; only `cleanup` runs after it).
    async fn deliver(&mut self, msg: A::Msg) -> bool {
        if let Some(recorder) = &self.recorder {
            recorder.record(&self.name, self.ctx.now(), A::encode(&msg));
        }
        tracing::trace!(msg = ?msg, "handle");
        let outcome = {
            // Panics are caught around creating and polling the handler's
            // future directly: cheaper than stacking future adapters on the
            // hottest path.
            let actor = &mut self.actor;
            let ctx = &mut self.ctx;
            let created = std::panic::catch_unwind(AssertUnwindSafe(move || {
                let actor: &mut A = actor;
                actor.handle(msg, ctx)
            }));
            match created {
                Err(payload) => Some(Err(panic_message(payload.as_ref()))),
                Ok(handled) => {
                    let mut handled = std::pin::pin!(handled);
                    let (status, mailbox) = (&self.status, &mut self.mailbox);
                    poll_fn(|cx| {
                        match std::panic::catch_unwind(AssertUnwindSafe(|| handled.as_mut().poll(cx))) {
                            Ok(Poll::Ready(result)) => return Poll::Ready(Some(Ok(result))),
                            Err(payload) => return Poll::Ready(Some(Err(panic_message(payload.as_ref())))),
                            Ok(Poll::Pending) => {}
                        }
                        mailbox.register(cx);
                        if status.is_stopping() {
                            Poll::Ready(None)
                        } else {
                            Poll::Pending
                        }
                    })
                    .await
                }
            }
        };
        match outcome {
            Some(Ok(Ok(()))) => true,
            Some(Ok(Err(error))) => {
                self.fail(ActorError::Failed {
                    actor: self.name.clone(),
                    error,
                });
                false
            }
            Some(Err(message)) => {
                self.fail(ActorError::Panicked {
                    actor: self.name.clone(),
                    message,
                });
                false
            }
            None => false,
        }
    }

    fn fail(&self, error: ActorError<A::Error>) {
        tracing::error!(error = ?error, "actor failed");
        self.status.close_with(error);
    }

    /// After a stop: refuses new messages, aborts in-flight jobs and waits for
    /// each to report (so none outlives the actor), and returns every message
    /// that was never handled, job results first.
    async fn collect_leftovers(&mut self) -> Vec<A::Msg> {
        self.mailbox.close();
        self.ctx.abort_jobs();
        let mut leftover = Vec::new();
        while self.ctx.in_flight() > 0 {
            let (completions, mailbox) = (&self.completions, &mut self.mailbox);
            let completion = poll_fn(|cx| {
                mailbox.register(cx);
                completions.pop().map_or(Poll::Pending, Poll::Ready)
            })
            .await;
            match completion {
                Completion::Done { job, msg } => {
                    self.ctx.job_reported(job);
                    leftover.push(msg);
                }
                Completion::Aborted { job } | Completion::Panicked { job, .. } => self.ctx.job_reported(job),
            }
        }
        while let Received::Message(msg) = self.mailbox.try_recv() {
            leftover.push(msg);
        }
        leftover
    }
}

/// An actor's tickers and the one timer armed for the earliest of them.
struct Tickers<M> {
    entries: Vec<TickerState<M>>,
    armed: Option<(usize, BoxFuture<()>)>,
}

struct TickerState<M> {
    ticker: Ticker<M>,
    /// When the current tick is due before jitter: start + k·period.
    base: Duration,
    /// When it is due with its jitter.
    due: Duration,
}

impl<M> Tickers<M> {
    fn new(tickers: Vec<Ticker<M>>, runtime: &Runtime) -> Self {
        let now = runtime.now();
        let entries = tickers
            .into_iter()
            .map(|ticker| {
                let base = now + ticker.period;
                let due = base + runtime.random_duration(ticker.jitter);
                TickerState { ticker, base, due }
            })
            .collect();
        Tickers { entries, armed: None }
    }

    #[inline]
    fn is_due(&self, runtime: &Runtime) -> bool {
        if self.entries.is_empty() {
            // Most actors have no ticker: skip reading the clock.
            return false;
        }
        let now = runtime.now();
        self.entries.iter().any(|entry| entry.due <= now)
    }

    /// Ready with the index of the earliest ticker once it is due (ties go to
    /// the ticker listed first).
    #[inline]
    fn poll_due(&mut self, cx: &mut std::task::Context<'_>, runtime: &Runtime) -> Poll<usize> {
        if self.entries.is_empty() {
            return Poll::Pending;
        }
        if self.armed.is_none() {
            let Some((index, entry)) = self.entries.iter().enumerate().min_by_key(|(_, entry)| entry.due) else {
                return Poll::Pending;
            };
            self.armed = Some((index, runtime.sleep_until(entry.due)));
        }
        let Some((index, sleep)) = &mut self.armed else {
            return Poll::Pending;
        };
        let index = *index;
        if sleep.poll_unpin(cx).is_pending() {
            return Poll::Pending;
        }
        self.armed = None;
        Poll::Ready(index)
    }

    /// Builds ticker `index`'s message and schedules its next tick.
    fn fire(&mut self, index: usize, runtime: &Runtime) -> M {
        let entry = &mut self.entries[index];
        let msg = (entry.ticker.make)();
        entry.base = next_after(entry.base, entry.ticker.period, runtime.now());
        entry.due = entry.base + runtime.random_duration(entry.ticker.jitter);
        msg
    }
}
