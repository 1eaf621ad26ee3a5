//! What [`crate::Db::stats`] reports, read from the actors' counters
//! ([`crate::shared::counters`]).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::compactor::CompactorStats;
pub use crate::read::TreeShape;
use crate::shared::counters::Counters;

/// What the engine has done since it opened. Every field is a count since
/// open except the byte gauges, `l0_tables`, [`DbStats::shape`] and
/// [`DbStats::memory`], which are read now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DbStats {
    /// Write batches accepted (puts and deletes count one each).
    pub writes: u64,
    /// Writes that had to wait because unflushed memtables were full.
    pub stalled_writes: u64,
    /// Bytes in memtables not yet in L0 (now).
    pub unflushed_bytes: u64,
    /// The most `unflushed_bytes` has been since open.
    pub peak_unflushed_bytes: u64,
    /// WAL tables uploaded.
    pub wal_uploads: u64,
    /// Memtables frozen for upload to L0.
    pub memtables_frozen: u64,
    /// L0 tables in the manifest (now).
    pub l0_tables: u64,
    /// Times an uploaded L0 table waited because L0 was full.
    pub l0_stalls: u64,
    /// Transaction commits refused by the conflict check.
    pub transaction_conflicts: u64,
    /// The embedded compactor's work (zero when it is off).
    pub compactor: CompactorStats,
    /// The tables readers search now.
    pub shape: TreeShape,
    /// What the engine holds in memory now.
    pub memory: MemoryStats,
}

/// The engine's own accounting of its memory (the process holds more:
/// buffers in flight, the allocator's slack).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Decoded data blocks in the block cache.
    pub block_cache_bytes: u64,
    /// Table indexes and bloom filters in the metadata cache.
    pub metadata_bytes: u64,
    /// Memtables (the active one and those on their way to L0).
    pub memtable_bytes: u64,
}

impl DbStats {
    /// Reads the counters now; the compactor, shape and memory fields are
    /// left at their defaults for the caller to fill.
    pub(crate) fn read(counters: &Counters) -> DbStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        DbStats {
            writes: load(&counters.writes),
            stalled_writes: load(&counters.stalled_writes),
            unflushed_bytes: load(&counters.unflushed_bytes),
            peak_unflushed_bytes: load(&counters.peak_unflushed_bytes),
            wal_uploads: load(&counters.wal_uploads),
            memtables_frozen: load(&counters.memtables_frozen),
            l0_tables: load(&counters.l0_tables),
            l0_stalls: load(&counters.l0_stalls),
            transaction_conflicts: load(&counters.transaction_conflicts),
            compactor: CompactorStats::default(),
            shape: TreeShape::default(),
            memory: MemoryStats::default(),
        }
    }
}
