//! The compactor actor: keeps L0 small and the sorted runs few by merging
//! them in the background.
//!
//! Owns: the compactor's fenced state (manifest and compactions file), the
//! jobs it runs and the callers waiting for submitted compactions. Does not
//! own: what to merge (the [`Strategy`](super::scheduler::Strategy)) or how
//! rows are merged (the job).
//!
//! Lifecycle: every `Poll` re-reads the compactions file, then the manifest,
//! starts submitted entries, then asks the strategy for more, up to
//! `max_concurrent_jobs`. A job runs outside the handler (`spawn_then`) and
//! reports each output table (`OutputWritten`, recorded in the compactions
//! file so the garbage collector keeps it) and its end (`JobFinished`),
//! which commits: a checkpoint protecting the inputs, the manifest, then
//! the compactions file. On shutdown running jobs are cancelled between
//! keys and left `Running`; the next compactor resubmits them.
//!
//! Failure: a job that fails with a retryable store error is marked failed
//! and picked again later (a full compaction a caller waits for is started
//! again at once, up to [`FULL_COMPACTION_ATTEMPTS`] times, before the
//! caller gets the error); any other job error is fatal, and so is a
//! metadata write that fails past its retries. A fenced compactor
//! stops: fatally when standalone, quietly when embedded in a `Db` (the
//! database keeps serving while the newer compactor works).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use talus_actors::{Actor, ActorError, Addr, Context, Mailbox, Reply, System, Ticker};

use super::job::{self, JobHooks, JobInput, JobOutput};
use super::options::CompactorOptions;
use super::scheduler::{self, Busy, Unresolved};
use crate::error::{Error, ErrorKind};
use crate::manifest::{CompactionSpec, CompactionStatus, CompactorState, ManifestError, Source, TableHandle};
use crate::metrics as m;
use crate::store::{TableStore, Ulid};

/// How many times a full compaction a caller waits for (`Db::compact`) is
/// started before a transient store error is the call's answer.
pub const FULL_COMPACTION_ATTEMPTS: u32 = 5;

/// What a manual compaction merges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitSpec {
    /// All of L0 and every sorted run into one run.
    Everything,
    /// These sources (they must follow the ordering rules of
    /// `scheduler`).
    Sources(Vec<Source>),
}

/// A finished compaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionSummary {
    /// The compaction's id (its entry in the compactions file).
    pub id: Ulid,
    /// The sorted run it wrote.
    pub destination: u64,
    /// Tables written.
    pub tables_out: usize,
    /// Rows read from the inputs.
    pub rows_in: u64,
    /// Rows written (what version retention kept).
    pub rows_out: u64,
    /// Bytes of the input tables.
    pub bytes_in: u64,
    /// Bytes of the output tables.
    pub bytes_out: u64,
}

type SubmitReply = Reply<Result<Option<CompactionSummary>, Error>>;

#[derive(Debug)]
pub enum CompactorMsg {
    Poll,
    /// Runs a compaction (a full one after the active ones finish; others
    /// now, or after running jobs if the limit is reached) and replies when
    /// it is committed; `None` if there was nothing to compact.
    Submit {
        spec: SubmitSpec,
        reply: SubmitReply,
    },
    /// Replies once no compaction is submitted or running (checked after
    /// each message).
    AwaitIdle {
        reply: Reply<Result<(), Error>>,
    },
    OutputWritten {
        id: Ulid,
        table: TableHandle,
    },
    JobFinished {
        id: Ulid,
        result: Result<JobOutput, Error>,
    },
}

/// What the compactor has done since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactorStats {
    /// Compactions committed.
    pub compactions: u64,
    /// Jobs that failed (retried or abandoned).
    pub failed_jobs: u64,
    /// Bytes read from input tables.
    pub bytes_read: u64,
    /// Bytes written to output tables.
    pub bytes_written: u64,
    /// Rows read, summed over committed jobs.
    pub rows_in: u64,
    /// Rows written, summed over committed jobs.
    pub rows_out: u64,
    /// Time jobs spent running, summed over jobs (committed ones only).
    pub job_micros: u64,
    /// Jobs running now.
    pub running_jobs: u64,
    /// L0 tables in the manifest the compactor last read.
    pub l0_tables: u64,
    /// Sorted runs in it.
    pub sorted_runs: u64,
    /// Collections its garbage collector ran (a compactor opened with
    /// [`DbBuilder::open_compactor_and_collector`](crate::DbBuilder::open_compactor_and_collector); 0 otherwise).
    pub collections: u64,
    /// Objects and checkpoints those collections deleted.
    pub collected: u64,
}

impl CompactorStats {
    /// Input bytes per second of job time.
    pub fn read_bytes_per_second(&self) -> f64 {
        if self.job_micros == 0 {
            return 0.0;
        }
        self.bytes_read as f64 * 1e6 / self.job_micros as f64
    }
}

/// The live counters behind [`CompactorStats`].
#[derive(Debug, Default)]
pub struct CompactorCounters {
    compactions: AtomicU64,
    failed_jobs: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    rows_in: AtomicU64,
    rows_out: AtomicU64,
    job_micros: AtomicU64,
    running_jobs: AtomicU64,
    l0_tables: AtomicU64,
    sorted_runs: AtomicU64,
}

impl CompactorCounters {
    fn finished(&self, output: &JobOutput, took: std::time::Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.job_micros.fetch_add(micros, Ordering::Relaxed);
        self.compactions.fetch_add(1, Ordering::Relaxed);
        self.bytes_read.fetch_add(output.bytes_in, Ordering::Relaxed);
        self.bytes_written.fetch_add(output.bytes_out, Ordering::Relaxed);
        self.rows_in.fetch_add(output.rows_in, Ordering::Relaxed);
        self.rows_out.fetch_add(output.rows_out, Ordering::Relaxed);
        metrics::counter!(m::COMPACTIONS).increment(1);
        metrics::counter!(m::COMPACTION_BYTES_READ).increment(output.bytes_in);
        metrics::counter!(m::COMPACTION_BYTES_WRITTEN).increment(output.bytes_out);
    }

    fn failed(&self) {
        self.failed_jobs.fetch_add(1, Ordering::Relaxed);
    }

    fn set_running(&self, jobs: usize) {
        self.running_jobs.store(jobs as u64, Ordering::Relaxed);
    }

    fn set_shape(&self, manifest: &crate::manifest::Manifest) {
        self.l0_tables.store(manifest.l0.len() as u64, Ordering::Relaxed);
        self.sorted_runs
            .store(manifest.sorted_runs.len() as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CompactorStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CompactorStats {
            compactions: load(&self.compactions),
            failed_jobs: load(&self.failed_jobs),
            bytes_read: load(&self.bytes_read),
            bytes_written: load(&self.bytes_written),
            rows_in: load(&self.rows_in),
            rows_out: load(&self.rows_out),
            job_micros: load(&self.job_micros),
            running_jobs: load(&self.running_jobs),
            l0_tables: load(&self.l0_tables),
            sorted_runs: load(&self.sorted_runs),
            collections: 0,
            collected: 0,
        }
    }
}

/// Called after each commit (the embedded compactor wakes the L0 writer,
/// whose flushes may be waiting for room in L0).
pub type OnCommit = Arc<dyn Fn() + Send + Sync>;

pub struct CompactorActor {
    state: CompactorState,
    tables: TableStore,
    options: CompactorOptions,
    /// Specs of the jobs running now, with when they started.
    running: HashMap<Ulid, (CompactionSpec, std::time::Duration)>,
    waiters: HashMap<Ulid, Vec<SubmitReply>>,
    idle_waiters: Vec<Reply<Result<(), Error>>>,
    /// Full compactions asked for while others ran: they go next, once
    /// nothing is active (the strategy waits meanwhile).
    pending_everything: Vec<SubmitReply>,
    /// Attempt number (0 = first) of each running full compaction.
    full_attempts: HashMap<Ulid, u32>,
    /// The attempt number the next full compaction starts as.
    next_full_attempt: u32,
    cancel: Arc<AtomicBool>,
    counters: Arc<CompactorCounters>,
    on_commit: Option<OnCommit>,
    /// Whether being fenced closes the system (standalone) or only stops
    /// this compactor (embedded).
    fenced_is_fatal: bool,
    /// Set once fenced (embedded): the compactor does nothing more.
    stopped: Option<Error>,
}

impl std::fmt::Debug for CompactorActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompactorActor")
            .field("epoch", &self.state.epoch())
            .field("running", &self.running.len())
            .finish_non_exhaustive()
    }
}

/// How a compactor is put together (see [`CompactorClient::run`]).
pub struct CompactorParts {
    pub state: CompactorState,
    pub tables: TableStore,
    pub options: CompactorOptions,
    pub on_commit: Option<OnCommit>,
    pub fenced_is_fatal: bool,
}

/// A running compactor actor as its owner (a `Db` or a [`super::Compactor`])
/// holds it: its address, the flag that cancels its jobs, its counters.
pub(crate) struct CompactorClient {
    addr: Addr<CompactorMsg, Error>,
    cancel: Arc<AtomicBool>,
    counters: Arc<CompactorCounters>,
}

impl CompactorClient {
    /// Starts the actor on `mailbox` in `system` and has it look for work
    /// at once rather than after the first poll interval.
    pub(crate) fn run(system: &System<Error>, mailbox: Mailbox<CompactorMsg, Error>, parts: CompactorParts) -> Self {
        let actor = CompactorActor {
            state: parts.state,
            tables: parts.tables,
            options: parts.options,
            running: HashMap::new(),
            waiters: HashMap::new(),
            idle_waiters: Vec::new(),
            pending_everything: Vec::new(),
            full_attempts: HashMap::new(),
            next_full_attempt: 0,
            cancel: Arc::default(),
            counters: Arc::default(),
            on_commit: parts.on_commit,
            fenced_is_fatal: parts.fenced_is_fatal,
            stopped: None,
        };
        let handle = CompactorClient {
            addr: mailbox.addr(),
            cancel: actor.cancel.clone(),
            counters: actor.counters.clone(),
        };
        system.run(mailbox, actor);
        let _ = handle.addr.try_send(CompactorMsg::Poll);
        handle
    }

    pub(crate) async fn submit(&self, spec: SubmitSpec) -> Result<Option<CompactionSummary>, Error> {
        self.addr.ask(|reply| CompactorMsg::Submit { spec, reply }).await?
    }

    pub(crate) async fn await_idle(&self) -> Result<(), Error> {
        self.addr.ask(|reply| CompactorMsg::AwaitIdle { reply }).await?
    }

    /// Makes running jobs stop at their next key (before a shutdown, which
    /// would otherwise wait for them).
    pub(crate) fn cancel_jobs(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> CompactorStats {
        self.counters.snapshot()
    }
}

impl CompactorActor {
    fn answer(&mut self, id: Ulid, answer: &Result<Option<CompactionSummary>, Error>) {
        for reply in self.waiters.remove(&id).unwrap_or_default() {
            reply.send(answer.clone());
        }
    }

    /// Turns a metadata error into the actor's outcome: fenced stops this
    /// compactor (quietly when embedded), anything else is fatal.
    fn metadata_failed(&mut self, error: ManifestError) -> Result<(), Error> {
        let error = Error::from(error);
        if !error.is_fenced() || self.fenced_is_fatal {
            return Err(error);
        }
        tracing::warn!(%error, "a newer compactor took over; this one stops");
        self.stop(&error);
        self.stopped = Some(error);
        Ok(())
    }

    /// Cancels running jobs and answers every waiter with `error`.
    fn stop(&mut self, error: &Error) {
        self.cancel.store(true, Ordering::Relaxed);
        let submitted = self.waiters.drain().flat_map(|(_, replies)| replies);
        for reply in submitted.chain(self.pending_everything.drain(..)) {
            reply.send(Err(error.clone()));
        }
        for reply in self.idle_waiters.drain(..) {
            reply.send(Err(error.clone()));
        }
    }

    /// Answers idle waiters if nothing is submitted or running.
    fn check_idle(&mut self) {
        if self.running.is_empty()
            && self.pending_everything.is_empty()
            && self.state.compactions().active().next().is_none()
        {
            for reply in self.idle_waiters.drain(..) {
                reply.send(Ok(()));
            }
        }
    }

    /// Starts submitted entries, then whatever the strategy proposes, up to
    /// the job limit.
    async fn schedule(&mut self, ctx: &mut Context<Self>) -> Result<(), ManifestError> {
        self.counters.set_shape(self.state.manifest());
        let submitted: Vec<Ulid> = self
            .state
            .compactions()
            .active()
            .filter(|entry| entry.status == CompactionStatus::Submitted && !self.running.contains_key(&entry.id))
            .map(|entry| entry.id)
            .collect();
        for id in submitted {
            if self.running.len() >= self.options.max_concurrent_jobs {
                return Ok(());
            }
            self.start(id, ctx).await?;
        }
        if !self.pending_everything.is_empty() {
            return self.start_everything(ctx).await;
        }
        let mut busy = Busy::of(self.state.compactions());
        let picks = self.options.strategy.pick(self.state.manifest(), &busy);
        for sources in picks {
            if self.running.len() >= self.options.max_concurrent_jobs {
                break;
            }
            let spec = match scheduler::plan(self.state.manifest(), &busy, sources) {
                Ok(spec) => spec,
                Err(reason) => {
                    tracing::warn!(%reason, "the strategy proposed an invalid compaction");
                    continue;
                }
            };
            busy.add(&spec);
            let id = self.state.submit(spec).await?;
            self.start(id, ctx).await?;
        }
        Ok(())
    }

    /// Starts the submitted entry `id`, or settles it if it cannot run.
    async fn start(&mut self, id: Ulid, ctx: &mut Context<Self>) -> Result<(), ManifestError> {
        let Some(spec) = self.state.compactions().get(id).map(|entry| entry.spec.clone()) else {
            return Ok(());
        };
        let manifest = self.state.manifest();
        let resolved = match scheduler::resolve(manifest, &spec) {
            Ok(resolved) => resolved,
            Err(Unresolved::Applied) => {
                tracing::info!(%id, "a compaction committed by an earlier compactor is recorded as completed");
                self.state.complete_applied(id).await?;
                self.answer(id, &Ok(None));
                return Ok(());
            }
            Err(Unresolved::Invalid(reason)) => {
                tracing::warn!(%id, %reason, "a compaction can no longer run");
                self.state.fail(id).await?;
                let error = Error::invalid(format!("compaction {id} cannot run: {reason}"));
                self.answer(id, &Err(error));
                return Ok(());
            }
        };
        let input = JobInput {
            sources: resolved.sources,
            retain_seq: manifest.retain_seq,
            expire_before_ms: ctx.runtime().wall_ms(),
            merge_operator: self.options.merge_operator.clone(),
            bottom: resolved.bottom,
            target_table_bytes: self.options.target_table_bytes,
            read_ahead_blocks: self.options.read_ahead_blocks,
            busy_share: self.options.busy_share,
        };
        self.state.start(id).await?;
        self.running.insert(id, (spec, ctx.now()));
        self.counters.set_running(self.running.len());
        let tables = self.tables.clone();
        let addr = ctx.addr();
        let hooks = JobHooks {
            cancel: self.cancel.clone(),
            on_table: Some(Box::new(move |table: &TableHandle| {
                let _ = addr.try_send(CompactorMsg::OutputWritten {
                    id,
                    table: table.clone(),
                });
            })),
        };
        tracing::debug!(%id, sources = input.sources.len(), bottom = input.bottom, "compaction started");
        ctx.spawn_then(async move { job::run(&tables, &input, &hooks).await }, move |result| {
            CompactorMsg::JobFinished { id, result }
        });
        Ok(())
    }

    /// Commits a finished job, or records its failure.
    async fn finished(
        &mut self,
        id: Ulid,
        result: Result<JobOutput, Error>,
        now: std::time::Duration,
    ) -> Result<(), Error> {
        let Some((spec, started)) = self.running.remove(&id) else {
            return Ok(());
        };
        self.counters.set_running(self.running.len());
        let full_attempt = self.full_attempts.remove(&id);
        let output = match result {
            Ok(output) => output,
            // Cancelled at shutdown: left running for the next compactor.
            Err(error) if error.is_closed() => return Ok(()),
            Err(error) if *error.kind() == ErrorKind::Unavailable => {
                tracing::warn!(%id, %error, "a compaction failed; it will be tried again");
                self.counters.failed();
                if let Err(failed) = self.state.fail(id).await {
                    return self.metadata_failed(failed);
                }
                match full_attempt {
                    // A full compaction someone waits for starts again (over
                    // what the manifest holds then) rather than failing the
                    // call on one transient read.
                    Some(attempt) if attempt + 1 < FULL_COMPACTION_ATTEMPTS => {
                        let waiting = self.waiters.remove(&id).unwrap_or_default();
                        self.pending_everything.extend(waiting);
                        self.next_full_attempt = self.next_full_attempt.max(attempt + 1);
                    }
                    _ => self.answer(id, &Err(error)),
                }
                return Ok(());
            }
            Err(error) => {
                self.answer(id, &Err(error.clone()));
                return Err(error);
            }
        };
        let outputs = output.tables.clone();
        let committed = self
            .state
            .finish(id, outputs.clone(), |manifest| {
                scheduler::apply(manifest, &spec, &outputs).map_err(|detail| ManifestError::InvalidChange {
                    role: crate::manifest::Role::Compactor,
                    detail,
                })
            })
            .await;
        if let Err(error) = committed {
            return self.metadata_failed(error);
        }
        for table in &output.tables {
            self.tables.in_flight().remove(table.id);
        }
        self.counters.finished(&output, now.saturating_sub(started));
        tracing::info!(
            %id,
            destination = spec.destination,
            tables = output.tables.len(),
            rows_in = output.rows_in,
            rows_out = output.rows_out,
            bytes_in = output.bytes_in,
            bytes_out = output.bytes_out,
            "compaction committed"
        );
        if let Some(on_commit) = &self.on_commit {
            on_commit();
        }
        let summary = CompactionSummary {
            id,
            destination: spec.destination,
            tables_out: output.tables.len(),
            rows_in: output.rows_in,
            rows_out: output.rows_out,
            bytes_in: output.bytes_in,
            bytes_out: output.bytes_out,
        };
        self.answer(id, &Ok(Some(summary)));
        Ok(())
    }

    /// Starts the full compaction callers are waiting for, once nothing
    /// else is active.
    async fn start_everything(&mut self, ctx: &mut Context<Self>) -> Result<(), ManifestError> {
        if !self.running.is_empty() || self.state.compactions().active().next().is_some() {
            return Ok(());
        }
        let waiting = std::mem::take(&mut self.pending_everything);
        let attempt = std::mem::take(&mut self.next_full_attempt);
        let sources = scheduler::everything(self.state.manifest());
        if sources.is_empty() {
            for reply in waiting {
                reply.send(Ok(None));
            }
            return Ok(());
        }
        let spec = match scheduler::plan(self.state.manifest(), &Busy::default(), sources) {
            Ok(spec) => spec,
            Err(reason) => {
                let error = Error::internal(format!("a full compaction does not fit the rules: {reason}"));
                for reply in waiting {
                    reply.send(Err(error.clone()));
                }
                return Ok(());
            }
        };
        let id = self.state.submit(spec).await?;
        self.waiters.entry(id).or_default().extend(waiting);
        self.full_attempts.insert(id, attempt);
        self.start(id, ctx).await
    }

    async fn submit(
        &mut self,
        spec: SubmitSpec,
        reply: SubmitReply,
        ctx: &mut Context<Self>,
    ) -> Result<(), ManifestError> {
        self.state.refresh().await?;
        let manifest = self.state.manifest();
        let sources = match spec {
            SubmitSpec::Everything => {
                self.pending_everything.push(reply);
                return self.schedule(ctx).await;
            }
            SubmitSpec::Sources(sources) => sources,
        };
        if sources.is_empty() {
            reply.send(Ok(None));
            return Ok(());
        }
        let spec = match scheduler::plan(manifest, &Busy::of(self.state.compactions()), sources) {
            Ok(spec) => spec,
            Err(reason) => {
                reply.send(Err(Error::invalid(format!("cannot compact: {reason}"))));
                return Ok(());
            }
        };
        let id = self.state.submit(spec).await?;
        self.waiters.entry(id).or_default().push(reply);
        self.schedule(ctx).await
    }
}

impl Actor for CompactorActor {
    type Msg = CompactorMsg;
    type Error = Error;

    async fn handle(&mut self, msg: CompactorMsg, ctx: &mut Context<Self>) -> Result<(), Error> {
        if let Some(stopped) = &self.stopped {
            match msg {
                CompactorMsg::Submit { reply, .. } => reply.send(Err(stopped.clone())),
                CompactorMsg::AwaitIdle { reply } => reply.send(Err(stopped.clone())),
                _ => {}
            }
            return Ok(());
        }
        let outcome = match msg {
            CompactorMsg::Poll => match self.state.refresh().await {
                Ok(()) => self.schedule(ctx).await,
                Err(error) => Err(error),
            },
            CompactorMsg::Submit { spec, reply } => self.submit(spec, reply, ctx).await,
            CompactorMsg::AwaitIdle { reply } => {
                self.idle_waiters.push(reply);
                Ok(())
            }
            CompactorMsg::OutputWritten { id, table } => {
                let running = self
                    .state
                    .compactions()
                    .get(id)
                    .is_some_and(|entry| entry.status == CompactionStatus::Running);
                if running {
                    self.state.add_output(id, table).await
                } else {
                    Ok(())
                }
            }
            CompactorMsg::JobFinished { id, result } => {
                self.finished(id, result, ctx.now()).await?;
                if self.stopped.is_some() {
                    return Ok(());
                }
                self.schedule(ctx).await
            }
        };
        match outcome {
            Ok(()) => {
                self.check_idle();
                Ok(())
            }
            Err(error) => self.metadata_failed(error),
        }
    }

    fn tickers(&mut self) -> Vec<Ticker<CompactorMsg>> {
        vec![Ticker::every(self.options.poll_interval, || CompactorMsg::Poll)]
    }

    fn cleanup(&mut self, leftover: Vec<CompactorMsg>, result: &Result<(), ActorError<Error>>) {
        let error = Error::from_closed_result(result);
        self.stop(&error);
        for msg in leftover {
            match msg {
                CompactorMsg::Submit { reply, .. } => reply.send(Err(error.clone())),
                CompactorMsg::AwaitIdle { reply } => reply.send(Err(error.clone())),
                _ => {}
            }
        }
    }
}
