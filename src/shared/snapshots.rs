//! Live snapshots, so compaction keeps the versions they read.
//!
//! The L0 writer records `retain_seq = min(oldest live snapshot, last L0
//! sequence)` with every manifest write, and the compactor keeps every
//! version above `retain_seq` plus the newest at or below it. A snapshot
//! taken after a manifest write reads at a sequence at or above that
//! write's last L0 sequence (everything in L0 was visible before it got
//! there), so it never needs a version that write let go.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::read::Seqs;

/// The sequence numbers of live snapshots, with how many hold each.
#[derive(Debug, Default)]
pub(crate) struct Snapshots {
    live: Mutex<BTreeMap<u64, usize>>,
    /// Open transactions (each also holds a snapshot pin).
    transactions: AtomicUsize,
}

/// Holds one snapshot's sequence in the registry until dropped.
#[derive(Debug)]
pub(crate) struct SnapshotPin {
    registry: Arc<Snapshots>,
    seq: u64,
}

impl SnapshotPin {
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }
}

impl Snapshots {
    fn live(&self) -> MutexGuard<'_, BTreeMap<u64, usize>> {
        // Every critical section leaves the map consistent.
        self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a snapshot at the visible sequence. Reading the sequence
    /// under the lock orders it against `oldest`.
    pub(crate) fn pin(self: &Arc<Self>, seqs: &Seqs) -> SnapshotPin {
        let mut live = self.live();
        let seq = seqs.visible();
        *live.entry(seq).or_default() += 1;
        SnapshotPin {
            registry: self.clone(),
            seq,
        }
    }

    /// The oldest live snapshot's sequence.
    pub(crate) fn oldest(&self) -> Option<u64> {
        self.live().keys().next().copied()
    }

    /// What the manifest's `retain_seq` should be with `last_l0_seq` in L0.
    pub(crate) fn retain_seq(&self, last_l0_seq: u64) -> u64 {
        self.oldest().map_or(last_l0_seq, |oldest| oldest.min(last_l0_seq))
    }
}

/// A transaction's snapshot, counted as an open transaction until dropped:
/// while one is open, the WAL writer records what it writes so that commits
/// can be checked (`wal::conflicts`).
#[derive(Debug)]
pub(crate) struct TransactionPin {
    pin: SnapshotPin,
}

impl TransactionPin {
    pub(crate) fn seq(&self) -> u64 {
        self.pin.seq
    }
}

impl Snapshots {
    /// Opens a transaction at the visible sequence. The count goes up
    /// before the sequence is read, and the WAL writer publishes a write's
    /// sequence before it reads the count (both behind a `SeqCst` fence):
    /// so either the writer sees this transaction and records the write, or
    /// the write is at or below this transaction's snapshot.
    pub(crate) fn pin_transaction(self: &Arc<Self>, seqs: &Seqs) -> TransactionPin {
        self.transactions.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        TransactionPin { pin: self.pin(seqs) }
    }

    /// Whether a transaction is open; the caller has just published a
    /// write's sequence (see [`Snapshots::pin_transaction`]).
    pub(crate) fn transactions_open(&self) -> bool {
        fence(Ordering::SeqCst);
        self.transactions.load(Ordering::SeqCst) > 0
    }
}

impl Drop for TransactionPin {
    fn drop(&mut self) {
        self.pin.registry.transactions.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for SnapshotPin {
    fn drop(&mut self) {
        let mut live = self.registry.live();
        if let Some(count) = live.get_mut(&self.seq) {
            *count -= 1;
            if *count == 0 {
                live.remove(&self.seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_pin_bounds_retention_until_dropped() {
        let registry = Arc::new(Snapshots::default());
        let seqs = Seqs::new(10);
        let first = registry.pin(&seqs);
        seqs.visible.store(20, std::sync::atomic::Ordering::Release);
        let second = registry.pin(&seqs);
        let twin = registry.pin(&seqs);
        assert_eq!((first.seq(), second.seq()), (10, 20));
        assert_eq!(registry.retain_seq(15), 10);
        drop(first);
        assert_eq!(registry.retain_seq(25), 20);
        drop(second);
        assert_eq!(registry.oldest(), Some(20), "the twin still holds 20");
        drop(twin);
        assert_eq!(registry.retain_seq(25), 25);
    }
}
