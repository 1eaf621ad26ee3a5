//! The garbage collector: deletes objects nothing can read any more (old
//! WAL tables, compacted-away tables, old manifest and compactions
//! versions) and expired checkpoints. The rules are in `collector` and
//! `docs/protocol.md`.
//!
//! Owns: one ticker per object class and the collector. Does not own any
//! metadata: it reads the manifest and compactions file and, for expired
//! checkpoints only, updates the manifest as an admin.
//!
//! Lifecycle: each class's `Poll` collects that class; `RunOnce` collects
//! every class now and reports what it deleted (or, as a dry run, what it
//! would delete). A failed periodic collection is logged and tried again at
//! the next tick: garbage can wait, so it never closes the database.

pub(crate) mod collector;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use talus_actors::{Actor, ActorError, Context, Reply, Ticker};

pub use collector::Collector;

use crate::error::Error;
use crate::store::Ulid;

/// A kind of object the collector deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// WAL tables whose rows are all in L0 or below.
    Wal,
    /// Sorted tables no manifest version, checkpoint or running job needs.
    Tables,
    /// Manifest versions older than the current one and every checkpoint's.
    Manifests,
    /// Old versions of the compactions file.
    Compactions,
    /// Expired checkpoints (removed from the manifest).
    Checkpoints,
}

impl Class {
    /// Every class.
    pub const ALL: [Class; 5] = [
        Class::Wal,
        Class::Tables,
        Class::Manifests,
        Class::Compactions,
        Class::Checkpoints,
    ];
}

/// When one class is collected and how old its objects must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassOptions {
    /// How often the class is collected.
    pub interval: Duration,
    /// Objects younger than this are kept whatever else holds.
    pub min_age: Duration,
}

impl ClassOptions {
    /// Collected every `interval`, objects at least `min_age` old.
    pub const fn new(interval: Duration, min_age: Duration) -> Self {
        ClassOptions { interval, min_age }
    }
}

/// Garbage collection settings. `Default` gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcOptions {
    /// WAL tables already in L0 (default every 1 min, at least 1 min old).
    pub wal: ClassOptions,
    /// Sorted tables no manifest or compaction references (default every
    /// 5 min, at least 1 h old). The age protects tables written but not
    /// yet recorded: an L0 table waiting for room in L0, a compaction
    /// output between its upload and its listing. Keep it above the longest
    /// such wait.
    pub tables: ClassOptions,
    /// Manifest versions older than the latest and not pinned (default
    /// every 5 min, at least 1 h old).
    pub manifests: ClassOptions,
    /// Compactions versions older than the latest (default every 5 min, at
    /// least 1 h old).
    pub compactions: ClassOptions,
    /// Expired checkpoints (default every 1 min; the age is not used).
    pub checkpoints: ClassOptions,
}

impl Default for GcOptions {
    fn default() -> Self {
        const MINUTE: Duration = Duration::from_secs(60);
        const HOUR: Duration = Duration::from_secs(3600);
        GcOptions {
            wal: ClassOptions::new(MINUTE, MINUTE),
            tables: ClassOptions::new(5 * MINUTE, HOUR),
            manifests: ClassOptions::new(5 * MINUTE, HOUR),
            compactions: ClassOptions::new(5 * MINUTE, HOUR),
            checkpoints: ClassOptions::new(MINUTE, Duration::ZERO),
        }
    }
}

impl GcOptions {
    /// Every class every `interval`, at `min_age` (handy in tests).
    pub fn uniform(interval: Duration, min_age: Duration) -> Self {
        let class = ClassOptions::new(interval, min_age);
        GcOptions {
            wal: class,
            tables: class,
            manifests: class,
            compactions: class,
            checkpoints: class,
        }
    }

    /// The settings of one class.
    pub fn class(&self, class: Class) -> ClassOptions {
        match class {
            Class::Wal => self.wal,
            Class::Tables => self.tables,
            Class::Manifests => self.manifests,
            Class::Compactions => self.compactions,
            Class::Checkpoints => self.checkpoints,
        }
    }

    /// `Err(why)` if a setting is unusable (a zero interval, say).
    ///
    /// # Errors
    ///
    /// `Err(why)` names the unusable setting.
    pub fn validate(&self) -> Result<(), String> {
        if Class::ALL.iter().any(|class| self.class(*class).interval.is_zero()) {
            return Err("every gc interval must be positive".into());
        }
        Ok(())
    }
}

/// Whether a collection deletes what it finds or only reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GcMode {
    /// Delete (default).
    #[default]
    Delete,
    /// Report what a real run at the same moment would delete; delete
    /// nothing.
    DryRun,
}

/// What one collection deleted (or, as a dry run, would delete).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Whether nothing was deleted (the lists say what would have been).
    pub dry_run: bool,
    /// WAL table ids.
    pub wal: Vec<u64>,
    /// Sorted table ids.
    pub tables: Vec<Ulid>,
    /// Manifest version ids.
    pub manifests: Vec<u64>,
    /// Compactions file version ids.
    pub compactions: Vec<u64>,
    /// Expired checkpoints removed from the manifest.
    pub checkpoints: Vec<Ulid>,
    /// Checkpoints this database, a clone, held in its sources and let go:
    /// no version it keeps lists the source's tables any more.
    pub released: Vec<Released>,
}

/// A checkpoint a clone held in a source database and let go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Released {
    /// The source database's root.
    pub source: String,
    /// The checkpoint (there).
    pub checkpoint: Ulid,
}

impl GcReport {
    /// Objects and checkpoints in the report.
    pub fn total(&self) -> usize {
        self.wal.len()
            + self.tables.len()
            + self.manifests.len()
            + self.compactions.len()
            + self.checkpoints.len()
            + self.released.len()
    }
}

#[derive(Debug)]
pub(crate) enum GcMsg {
    Poll(Class),
    RunOnce {
        mode: GcMode,
        reply: Reply<Result<GcReport, Error>>,
    },
}

/// The collector actor's name in its system.
pub(crate) const GC: &str = "gc";

/// What a collector on its tickers has done.
#[derive(Debug, Default)]
pub(crate) struct GcCounters {
    /// Collections that finished (one class each).
    pub runs: AtomicU64,
    /// Objects and checkpoints they deleted.
    pub deleted: AtomicU64,
}

/// The collector on its tickers.
#[derive(Debug)]
pub(crate) struct GcActor {
    collector: Collector,
    counters: Arc<GcCounters>,
}

impl GcActor {
    pub fn new(collector: Collector, counters: Arc<GcCounters>) -> Self {
        GcActor { collector, counters }
    }
}

impl Actor for GcActor {
    type Msg = GcMsg;
    type Error = Error;

    async fn handle(&mut self, msg: GcMsg, _ctx: &mut Context<Self>) -> Result<(), Error> {
        match msg {
            GcMsg::Poll(class) => match self.collector.run(&[class], GcMode::Delete).await {
                Ok(report) => {
                    self.counters.runs.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .deleted
                        .fetch_add(report.total() as u64, Ordering::Relaxed);
                }
                Err(error) => {
                    tracing::warn!(?class, %error, "garbage collection failed; trying again at the next tick");
                }
            },
            GcMsg::RunOnce { mode, reply } => {
                reply.send(self.collector.run(&Class::ALL, mode).await);
            }
        }
        Ok(())
    }

    fn tickers(&mut self) -> Vec<Ticker<GcMsg>> {
        Class::ALL
            .iter()
            .map(|class| {
                let class = *class;
                Ticker::every(self.collector.options().class(class).interval, move || {
                    GcMsg::Poll(class)
                })
            })
            .collect()
    }

    fn cleanup(&mut self, leftover: Vec<GcMsg>, result: &Result<(), ActorError<Error>>) {
        let error = Error::from_closed_result(result);
        for msg in leftover {
            if let GcMsg::RunOnce { reply, .. } = msg {
                reply.send(Err(error.clone()));
            }
        }
    }
}
