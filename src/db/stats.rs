//! Counters the actors keep and [`crate::Db::stats`] reads: cheap relaxed
//! atomics, written by one actor each, read by anyone.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::compactor::CompactorStats;
use crate::metrics as m;

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
    /// The embedded compactor's work (zero when it is off).
    pub compactor: CompactorStats,
    /// The tables readers search now.
    pub shape: TreeShape,
    /// What the engine holds in memory now.
    pub memory: MemoryStats,
}

/// The tables of the current read view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeShape {
    pub l0_tables: u64,
    pub sorted_runs: u64,
    /// Tables in all sorted runs.
    pub run_tables: u64,
    /// Bytes of every table in L0 and the runs (the live data).
    pub table_bytes: u64,
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

/// The live counters behind [`DbStats`], shared by the actors.
#[derive(Debug, Default)]
pub struct Counters {
    pub writes: AtomicU64,
    pub stalled_writes: AtomicU64,
    pub unflushed_bytes: AtomicU64,
    pub peak_unflushed_bytes: AtomicU64,
    pub wal_uploads: AtomicU64,
    pub memtables_frozen: AtomicU64,
    pub l0_tables: AtomicU64,
    pub l0_stalls: AtomicU64,
}

/// Each method updates the count behind [`DbStats`] and the matching
/// metric (see [`crate::metrics`]).
impl Counters {
    pub fn wrote(&self, bytes: usize) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::WRITES).increment(1);
        metrics::counter!(m::WRITE_BYTES).increment(bytes as u64);
    }

    pub fn stalled(&self) {
        self.stalled_writes.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::STALLED_WRITES).increment(1);
    }

    pub fn wal_uploaded(&self) {
        self.wal_uploads.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::WAL_UPLOADS).increment(1);
    }

    pub fn memtable_frozen(&self) {
        self.memtables_frozen.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::MEMTABLES_FROZEN).increment(1);
    }

    pub fn l0_stalled(&self) {
        self.l0_stalls.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::L0_STALLS).increment(1);
    }

    pub fn set_l0_tables(&self, tables: usize) {
        self.l0_tables.store(tables as u64, Ordering::Relaxed);
        metrics::gauge!(m::L0_TABLES).set(tables as f64);
    }

    pub fn set_unflushed(&self, bytes: usize) {
        let bytes = bytes as u64;
        self.unflushed_bytes.store(bytes, Ordering::Relaxed);
        self.peak_unflushed_bytes.fetch_max(bytes, Ordering::Relaxed);
        metrics::gauge!(m::UNFLUSHED_BYTES).set(bytes as f64);
    }

    pub fn snapshot(&self) -> DbStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        DbStats {
            writes: load(&self.writes),
            stalled_writes: load(&self.stalled_writes),
            unflushed_bytes: load(&self.unflushed_bytes),
            peak_unflushed_bytes: load(&self.peak_unflushed_bytes),
            wal_uploads: load(&self.wal_uploads),
            memtables_frozen: load(&self.memtables_frozen),
            l0_tables: load(&self.l0_tables),
            l0_stalls: load(&self.l0_stalls),
            compactor: CompactorStats::default(),
            shape: TreeShape::default(),
            memory: MemoryStats::default(),
        }
    }
}
