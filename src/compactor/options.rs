//! Compactor options, every one with its default.

use std::sync::Arc;
use std::time::Duration;

use super::scheduler::{SizeTiered, Strategy};
use crate::read::operator::MergeOperator;

/// How the compactor schedules and runs jobs. `Default` gives the
/// documented defaults.
#[derive(Clone, Debug)]
pub struct CompactorOptions {
    /// How often the compactor re-reads its state and looks for work
    /// (default 1 s). The embedded compactor is also woken at once when an
    /// L0 table lands.
    pub poll_interval: Duration,
    /// Jobs running at once (default: half the cores, 1 to 4). Only one of
    /// them merges L0 at a time: L0 output must stay newer than every run.
    pub max_concurrent_jobs: usize,
    /// Output tables are cut at this size (default 64 MiB).
    pub target_table_bytes: usize,
    /// Blocks fetched per read while a job scans its inputs (default 256:
    /// 1 MiB per request at the default block size, so a job reading a
    /// 64 MiB table makes 64 requests, not 1,000).
    pub read_ahead_blocks: usize,
    /// The share of wall-clock time a job may use while the database's
    /// foreground reads are busy (default 0.1; 1 turns pacing off). A job
    /// then rests after each millisecond of work in proportion, so gets
    /// keep their throughput and p99 on a small machine while a long
    /// compaction runs. Jobs run at full speed whenever no read arrived in
    /// the last millisecond of work, and while L0 holds half of
    /// `max_l0_tables` or more (writes would soon wait for the compactor).
    /// A compactor in its own process sees no reads and is never paced.
    pub busy_share: f64,
    /// Decides what to merge (default [`SizeTiered`] with its defaults).
    pub strategy: Arc<dyn Strategy>,
    /// Folds merge operands that no snapshot can tell apart (default
    /// `None`: operands are kept as they are). The embedded compactor gets
    /// the database's ([`DbBuilder::merge_operator`](crate::DbBuilder::merge_operator)).
    pub merge_operator: Option<Arc<dyn MergeOperator>>,
}

impl Default for CompactorOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        CompactorOptions {
            poll_interval: Duration::from_secs(1),
            max_concurrent_jobs: (cores / 2).clamp(1, 4),
            target_table_bytes: 64 << 20,
            read_ahead_blocks: 256,
            busy_share: 0.1,
            strategy: Arc::new(SizeTiered::default()),
            merge_operator: None,
        }
    }
}

impl CompactorOptions {
    /// `Err(why)` if a setting is out of range (checked when a compactor
    /// starts).
    ///
    /// # Errors
    ///
    /// `Err(why)` names the setting that is out of range.
    pub fn validate(&self) -> Result<(), String> {
        if self.poll_interval.is_zero() {
            return Err("compactor poll_interval must be positive".into());
        }
        if self.max_concurrent_jobs == 0 || self.target_table_bytes == 0 {
            return Err("compactor max_concurrent_jobs and target_table_bytes must be positive".into());
        }
        if !(self.busy_share > 0.0 && self.busy_share <= 1.0) {
            return Err(format!(
                "compactor busy_share must be above 0 and at most 1, not {}",
                self.busy_share
            ));
        }
        self.strategy.validate()
    }
}
