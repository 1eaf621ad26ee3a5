//! Counters the actors keep and [`crate::Db::stats`] reads: cheap relaxed
//! atomics, written by one actor each, read by anyone.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics as m;

/// The live counters behind [`crate::DbStats`], shared by the actors.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) writes: AtomicU64,
    pub(crate) stalled_writes: AtomicU64,
    pub(crate) unflushed_bytes: AtomicU64,
    pub(crate) peak_unflushed_bytes: AtomicU64,
    pub(crate) wal_uploads: AtomicU64,
    pub(crate) memtables_frozen: AtomicU64,
    pub(crate) l0_tables: AtomicU64,
    pub(crate) l0_stalls: AtomicU64,
    pub(crate) transaction_conflicts: AtomicU64,
}

/// Each method updates the count behind [`crate::DbStats`] and the matching
/// metric (see [`crate::metrics`]).
impl Counters {
    pub(crate) fn wrote(&self, bytes: usize) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::WRITES).increment(1);
        metrics::counter!(m::WRITE_BYTES).increment(bytes as u64);
    }

    pub(crate) fn stalled(&self) {
        self.stalled_writes.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::STALLED_WRITES).increment(1);
    }

    pub(crate) fn wal_uploaded(&self) {
        self.wal_uploads.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::WAL_UPLOADS).increment(1);
    }

    pub(crate) fn memtable_frozen(&self) {
        self.memtables_frozen.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::MEMTABLES_FROZEN).increment(1);
    }

    pub(crate) fn l0_stalled(&self) {
        self.l0_stalls.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::L0_STALLS).increment(1);
    }

    pub(crate) fn transaction_conflicted(&self) {
        self.transaction_conflicts.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::TRANSACTION_CONFLICTS).increment(1);
    }

    pub(crate) fn set_l0_tables(&self, tables: usize) {
        self.l0_tables.store(tables as u64, Ordering::Relaxed);
        metrics::gauge!(m::L0_TABLES).set(tables as f64);
    }

    pub(crate) fn set_unflushed(&self, bytes: usize) {
        let bytes = bytes as u64;
        self.unflushed_bytes.store(bytes, Ordering::Relaxed);
        self.peak_unflushed_bytes.fetch_max(bytes, Ordering::Relaxed);
        metrics::gauge!(m::UNFLUSHED_BYTES).set(bytes as f64);
    }
}
