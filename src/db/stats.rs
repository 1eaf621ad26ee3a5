//! Counters the actors keep and [`crate::Db::stats`] reads: cheap relaxed
//! atomics, written by one actor each, read by anyone.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the engine has done since it opened. Every field is a count since
/// open except the two byte gauges and `l0_tables`.
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
}

impl Counters {
    pub fn add(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    pub fn set_unflushed(&self, bytes: usize) {
        let bytes = bytes as u64;
        self.unflushed_bytes.store(bytes, Ordering::Relaxed);
        self.peak_unflushed_bytes.fetch_max(bytes, Ordering::Relaxed);
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
        }
    }
}
