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

use talus_actors::{Capacity, System};

pub use actor::{CompactionSummary, CompactorStats, SubmitSpec};
pub(crate) use actor::{CompactorMsg, CompactorParts};

use actor::CompactorClient;
pub use options::CompactorOptions;
pub use scheduler::{Busy, SizeTiered, Strategy};

use crate::error::Error;

/// The actor's name in its system.
pub(crate) const COMPACTOR: &str = "compactor";

/// A compactor running on its own.
pub struct Compactor {
    system: System<Error>,
    handle: CompactorClient,
}

impl std::fmt::Debug for Compactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compactor")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Compactor {
    pub(crate) fn start(system: System<Error>, parts: CompactorParts) -> Compactor {
        let (_, mailbox) = system.mailbox(COMPACTOR, Capacity::Unbounded);
        let handle = CompactorClient::run(&system, mailbox, parts);
        Compactor { system, handle }
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

    /// What this compactor has done since it started.
    pub fn stats(&self) -> CompactorStats {
        self.handle.stats()
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
