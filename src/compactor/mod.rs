//! The compactor: merges L0 tables into sorted runs and sorted runs into
//! each other, so reads stay fast and L0 stays bounded.
//!
//! - [`job`]: one compaction (merge, version retention, output tables);
//! - [`scheduler`]: what to merge (the [`Strategy`] trait, size-tiered by
//!   default) and the ordering rules every compaction follows;
//! - [`actor`]: the compactor actor (polling, job limits, commits,
//!   fencing, resuming after a restart).
//!
//! A `Db` runs one compactor inside by default. [`Compactor`] runs one on
//! its own, e.g. in another process, on the same store: opening it fences
//! every earlier compactor, the embedded one included (which then stops
//! while its database keeps serving).

pub mod actor;
pub mod job;
pub mod options;
pub mod scheduler;

use std::sync::Arc;

use object_store::path::Path;
use talus_actors::{Capacity, System};

pub use actor::{CompactionSummary, CompactorMsg, CompactorParts, CompactorStats, SubmitSpec};

use actor::CompactorHandle;
pub use job::{JobInput, JobOutput};
pub use options::CompactorOptions;
pub use scheduler::{SizeTiered, Strategy};

use crate::db::Db;
use crate::error::Error;
use crate::store::Store;

/// The actor's name in its system.
pub(crate) const COMPACTOR: &str = "compactor";

/// A compactor running on its own.
pub struct Compactor {
    system: System<Error>,
    handle: CompactorHandle,
}

impl std::fmt::Debug for Compactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compactor")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Compactor {
    /// Starts a compactor for the database under `path` in `store`, with
    /// default options on the default executor. Use
    /// [`DbBuilder::open_compactor`](crate::DbBuilder::open_compactor) for
    /// other settings.
    pub async fn open(path: impl Into<Path>, store: Arc<dyn Store>) -> Result<Compactor, Error> {
        Db::builder(path, store).open_compactor().await
    }

    pub(crate) fn start(system: System<Error>, parts: CompactorParts) -> Compactor {
        let (_, mailbox) = system.mailbox(COMPACTOR, Capacity::Unbounded);
        let handle = CompactorHandle::run(&system, mailbox, parts);
        Compactor { system, handle }
    }

    /// Runs a compaction now and waits until it is committed; `None` if
    /// there was nothing to compact.
    pub async fn submit(&self, spec: SubmitSpec) -> Result<Option<CompactionSummary>, Error> {
        self.handle.submit(spec).await
    }

    /// Waits until no compaction is submitted or running (resumed ones
    /// included).
    pub async fn await_idle(&self) -> Result<(), Error> {
        self.handle.await_idle().await
    }

    pub fn stats(&self) -> CompactorStats {
        self.handle.stats()
    }

    /// Stops: running jobs are cancelled (the next compactor redoes them).
    pub async fn close(&self) -> Result<(), Error> {
        self.handle.cancel_jobs();
        self.system.shutdown().await.map_err(Error::from)
    }

    /// Completes when the compactor has stopped: `Ok` after `close`, the
    /// cause otherwise (`Fenced` when a newer compactor took over).
    pub async fn closed(&self) -> Result<(), Error> {
        self.system.closed().await.map_err(Error::from)
    }
}
