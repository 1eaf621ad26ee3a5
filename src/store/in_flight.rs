//! Sorted tables this process has written (or is about to write) that no
//! manifest lists yet: L0 tables waiting for their turn or for room in L0,
//! compaction outputs before their commit. The embedded garbage collector
//! keeps them whatever their age, so its safety does not rest on clocks.
//!
//! An id is added before its table is written and removed once a manifest
//! write references it (or it is known to be garbage). The collector reads
//! this set *after* listing tables and re-reads the manifest then too: a
//! listed table is therefore either still here or already in that manifest.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use crate::store::Ulid;

#[derive(Debug, Default)]
/// Tables written but not yet in a manifest: the collector leaves them.
pub struct InFlight {
    tables: Mutex<HashSet<Ulid>>,
}

impl InFlight {
    fn tables(&self) -> MutexGuard<'_, HashSet<Ulid>> {
        // Every critical section leaves the set consistent.
        self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks `id` as being written.
    pub fn add(&self, id: Ulid) {
        self.tables().insert(id);
    }

    /// `id` is in a manifest (or abandoned).
    pub fn remove(&self, id: Ulid) {
        self.tables().remove(&id);
    }

    /// Whether `id` is being written.
    pub fn contains(&self, id: Ulid) -> bool {
        self.tables().contains(&id)
    }

    /// Every id being written now.
    pub fn snapshot(&self) -> HashSet<Ulid> {
        self.tables().clone()
    }
}
