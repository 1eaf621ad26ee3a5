//! The compactor: merges L0 tables into sorted runs and sorted runs into
//! each other, so reads stay fast and L0 stays bounded.
//!
//! - `job`: one compaction (merge, version retention, output tables);
//! - `scheduler`: what to merge (the [`Strategy`] trait, size-tiered by
//!   default) and the ordering rules every compaction follows;
//! - `actor`: the compactor actor (polling, job limits, commits,
//!   fencing, resuming after a restart).
//!
//! A `Db` runs one compactor inside by default. [`Compactor`] runs one on
//! its own, e.g. in another process, on the same store: opening it fences
//! every earlier compactor, the embedded one included (which then stops
//! while its database keeps serving).

pub(crate) mod actor;
pub(crate) mod job;
pub(crate) mod options;
pub(crate) mod scheduler;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use talus_actors::{Capacity, System};

pub use actor::{CompactionSummary, CompactorStats, SubmitSpec};
pub(crate) use actor::{CompactorMsg, CompactorParts};

use actor::CompactorClient;
pub use options::CompactorOptions;
pub use scheduler::{Busy, SizeTiered, Strategy};

use crate::error::Error;
use crate::gc::{Collector, GC, GcActor, GcCounters, GcMsg};

/// The actor's name in its system.
pub(crate) const COMPACTOR: &str = "compactor";

/// A compactor running on its own (and, when opened with
/// [`DbBuilder::open_compactor_and_collector`](crate::DbBuilder::open_compactor_and_collector),
/// a garbage collector beside it).
pub struct Compactor {
    system: System<Error>,
    handle: CompactorClient,
    /// The collector's counters, if one runs beside it.
    collector: Option<Arc<GcCounters>>,
}

impl std::fmt::Debug for Compactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compactor")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Compactor {
    pub(crate) fn start(system: System<Error>, parts: CompactorParts, collector: Option<Collector>) -> Compactor {
        let (_, mailbox) = system.mailbox(COMPACTOR, Capacity::Unbounded);
        let handle = CompactorClient::run(&system, mailbox, parts);
        let collector = collector.map(|collector| {
            let counters = Arc::new(GcCounters::default());
            let (_, gc_box) = system.mailbox::<GcMsg>(GC, Capacity::Unbounded);
            system.run(gc_box, GcActor::new(collector, counters.clone()));
            counters
        });
        Compactor {
            system,
            handle,
            collector,
        }
    }

    /// Serves until `stop` completes, then closes (running jobs are
    /// abandoned at their next key; their outputs so far are recorded,
    /// and the next compactor redoes them and collects what they left).
    /// What `talus compactor run` does between its start and a SIGINT or
    /// SIGTERM.
    ///
    /// # Errors
    ///
    /// What stopped the compactor before `stop` did: `Fenced` when a newer
    /// compactor took over, or the fatal error it met; otherwise the first
    /// error of the close.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use talusdb::store::{ObjectStoreAdapter, Store};
    /// # use talusdb::{Db, DbOptions};
    /// # smol::block_on(async {
    /// let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
    /// // The writer leaves compaction and collection to another process.
    /// let options = DbOptions { compactor: None, gc: None, ..DbOptions::default() };
    /// let db = Db::builder("db", store.clone()).options(options).open().await?;
    /// db.put("k", "v").await?;
    ///
    /// let compactor = Db::builder("db", store.clone()).open_compactor_and_collector().await?;
    /// let (stop, stopped) = futures::channel::oneshot::channel::<()>();
    /// drop(stop); // a signal handler would send instead
    /// compactor.run_until(async { let _ = stopped.await; }).await?;
    /// println!("{:?}", compactor.stats());
    /// db.close().await?;
    /// # Ok::<_, talusdb::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn run_until(&self, stop: impl Future<Output = ()>) -> Result<(), Error> {
        let stop = std::pin::pin!(stop);
        let closed = std::pin::pin!(self.closed());
        match futures::future::select(stop, closed).await {
            futures::future::Either::Left(((), _)) => self.close().await,
            futures::future::Either::Right((result, _)) => result,
        }
    }

    /// Runs a compaction now and waits until it is committed; `None` if
    /// there was nothing to compact.
    ///
    /// # Errors
    ///
    /// `Closed` once the compactor has stopped; `Fenced` if a newer compactor
    /// took over; `Unavailable` or `Corruption` if a job could not read its
    /// inputs or write its output (nothing is committed then).
    pub async fn submit(&self, spec: SubmitSpec) -> Result<Option<CompactionSummary>, Error> {
        self.handle.submit(spec).await
    }

    /// Waits until no compaction is submitted or running (resumed ones
    /// included).
    ///
    /// # Errors
    ///
    /// `Closed` if the compactor stopped with an error first (the error says
    /// which).
    pub async fn await_idle(&self) -> Result<(), Error> {
        self.handle.await_idle().await
    }

    /// What this compactor (and its collector) has done since it started.
    pub fn stats(&self) -> CompactorStats {
        let mut stats = self.handle.stats();
        if let Some(collector) = &self.collector {
            stats.collections = collector.runs.load(Ordering::Relaxed);
            stats.collected = collector.deleted.load(Ordering::Relaxed);
        }
        stats
    }

    /// Stops: running jobs are cancelled (the next compactor redoes them).
    ///
    /// # Errors
    ///
    /// The first fatal error the compactor met, if any.
    pub async fn close(&self) -> Result<(), Error> {
        self.handle.cancel_jobs();
        self.system.shutdown().await.map_err(Error::from)
    }

    /// Completes when the compactor has stopped: `Ok` after `close`, the
    /// cause otherwise (`Fenced` when a newer compactor took over).
    ///
    /// # Errors
    ///
    /// The first fatal error the compactor met, if any.
    pub async fn closed(&self) -> Result<(), Error> {
        self.system.closed().await.map_err(Error::from)
    }
}
