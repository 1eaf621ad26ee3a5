//! Optimistic transaction validation, in the WAL writer: the one place that
//! assigns sequence numbers, so checking a commit against the writes before
//! it needs no lock.
//!
//! Owns: the recent writes (key → the sequence number that last wrote it,
//! and the same in sequence order for range checks) and the rule a commit is
//! checked by. A transaction read at sequence `s`; its commit conflicts if a
//! key it writes (both levels) or a key it read or a range it scanned
//! (`Serializable`) was written with a sequence number above `s`.
//!
//! Bound: at most `max_keys` writes are remembered, and only while a
//! transaction is open (with none open, nothing is recorded at all). Past
//! the bound, writes no open transaction can need are dropped first (those
//! at or below the oldest live snapshot); if that is not enough the oldest
//! are forgotten and `floor` rises to the last one forgotten. A transaction
//! that read below the floor cannot be checked and fails to commit ("too
//! old"); it never commits unchecked.

use std::collections::{HashMap, VecDeque};
use std::ops::Bound;

use bytes::Bytes;

use crate::error::printable;
use crate::format::RangeTombstone;
use crate::shared::snapshots::TransactionPin;

/// What a commit is checked against.
#[derive(Debug)]
pub(crate) struct ConflictCheck {
    /// The sequence number the transaction read at.
    pub(crate) snapshot_seq: u64,
    /// Keys it writes.
    pub(crate) writes: Vec<Bytes>,
    /// Keys it read (empty under `Snapshot` isolation).
    pub(crate) reads: Vec<Bytes>,
    /// Ranges it scanned (empty under `Snapshot` isolation).
    pub(crate) ranges: Vec<(Bound<Bytes>, Bound<Bytes>)>,
    /// Ranges it deletes (checked like the keys it writes).
    pub(crate) deleted_ranges: Vec<(Bound<Bytes>, Bound<Bytes>)>,
    /// Keeps the transaction counted as open until the check has run, so
    /// the writes it is checked against are recorded.
    pub(crate) _open: TransactionPin,
}

/// The recent writes, bounded.
#[derive(Debug)]
pub(crate) struct ConflictTracker {
    last_write: HashMap<Bytes, u64>,
    /// `(seq, write)` in sequence order (a key may appear more than once;
    /// the map has its newest).
    order: VecDeque<(u64, Written)>,
    /// Range deletes among `order`: while there are none, a commit that
    /// scanned or deleted no range is checked by map lookups alone.
    ranges_tracked: usize,
    /// Writes at or below this may have been forgotten.
    floor: u64,
    max_keys: usize,
}

impl ConflictTracker {
    pub(crate) fn new(max_keys: usize) -> Self {
        ConflictTracker {
            last_write: HashMap::new(),
            order: VecDeque::new(),
            ranges_tracked: 0,
            floor: 0,
            max_keys: max_keys.max(1),
        }
    }

    /// Records that `key` was written at `seq` (sequence numbers only grow).
    pub(crate) fn record(&mut self, key: &Bytes, seq: u64) {
        self.last_write.insert(key.clone(), seq);
        self.order.push_back((seq, Written::Key(key.clone())));
    }

    /// Records a range delete: every key in its range was written.
    pub(crate) fn record_range(&mut self, tombstone: &RangeTombstone) {
        self.order
            .push_back((tombstone.seq, Written::Range(tombstone.bounds())));
        self.ranges_tracked += 1;
    }

    /// Whether more writes are remembered than the bound allows.
    pub(crate) fn over_bound(&self) -> bool {
        self.order.len() > self.max_keys
    }

    /// Forgets every write at or below `seq`, which no open transaction
    /// can conflict with (each read above it).
    pub(crate) fn forget_through(&mut self, seq: u64) {
        while self.order.front().is_some_and(|(written, _)| *written <= seq) {
            self.pop_oldest();
        }
    }

    /// Forgets the oldest writes until the bound holds, raising the floor.
    pub(crate) fn enforce_bound(&mut self) {
        while self.order.len() > self.max_keys {
            if let Some(seq) = self.pop_oldest() {
                self.floor = self.floor.max(seq);
            }
        }
    }

    /// Forgets everything (no transaction is open). Called on every write
    /// while none is, so it costs nothing when there is nothing to forget,
    /// and gives back the memory a long transaction made it hold.
    pub(crate) fn clear(&mut self) {
        if !self.order.is_empty() {
            self.last_write = HashMap::new();
            self.order = VecDeque::new();
            self.ranges_tracked = 0;
        }
    }

    fn pop_oldest(&mut self) -> Option<u64> {
        let (seq, written) = self.order.pop_front()?;
        match written {
            Written::Key(key) => {
                if self.last_write.get(&key) == Some(&seq) {
                    self.last_write.remove(&key);
                }
            }
            Written::Range(_) => self.ranges_tracked -= 1,
        }
        Some(seq)
    }

    /// `Err(why)` if the commit described by `check` conflicts with a
    /// write after its snapshot, or cannot be checked.
    pub(crate) fn check(&self, check: &ConflictCheck) -> Result<(), String> {
        let snapshot = check.snapshot_seq;
        if snapshot < self.floor {
            return Err(format!(
                "transaction too old: it read at sequence {snapshot}, but writes up to {} are no longer tracked \
                 (DbOptions::transaction_tracking_keys); retry it",
                self.floor
            ));
        }
        let newer = |key: &Bytes| self.last_write.get(key).is_some_and(|seq| *seq > snapshot);
        if let Some(key) = check.writes.iter().find(|key| newer(key)) {
            return Err(format!(
                "write-write conflict on key {}: written by another commit after this transaction's snapshot \
                 (sequence {snapshot}); retry it",
                printable(key)
            ));
        }
        if let Some(key) = check.reads.iter().find(|key| newer(key)) {
            return Err(format!(
                "read-write conflict on key {}: it changed after this transaction read it (sequence {snapshot}); \
                 retry it",
                printable(key)
            ));
        }
        if check.ranges.is_empty() && check.deleted_ranges.is_empty() && self.ranges_tracked == 0 {
            return Ok(());
        }
        let after_snapshot = self.order.iter().rev().take_while(|(seq, _)| *seq > snapshot);
        for (_, written) in after_snapshot {
            let touches = |range: &(Bound<Bytes>, Bound<Bytes>)| match written {
                Written::Key(key) => contains(range, key),
                Written::Range(written) => overlaps(range, written),
            };
            // Only a conflict's message needs it.
            let what = || match written {
                Written::Key(key) => format!("key {}", printable(key)),
                Written::Range((Bound::Included(start), _)) => {
                    format!("a range delete from key {}", printable(start))
                }
                Written::Range(_) => "a range delete".to_string(),
            };
            if let Written::Range(range) = written {
                let hit = check.writes.iter().chain(&check.reads).find(|key| contains(range, key));
                if let Some(key) = hit {
                    return Err(format!(
                        "conflict on key {}: {} by another commit after this transaction's snapshot \
                         (sequence {snapshot}) covers it; retry it",
                        printable(key),
                        what()
                    ));
                }
            }
            if check.deleted_ranges.iter().any(touches) {
                return Err(format!(
                    "write-write conflict: {} was written into a range this transaction deletes \
                     (sequence {snapshot}); retry it",
                    what()
                ));
            }
            if check.ranges.iter().any(touches) {
                return Err(format!(
                    "read-write conflict: {} was written into a range this transaction scanned \
                     (sequence {snapshot}); retry it",
                    what()
                ));
            }
        }
        Ok(())
    }
}

/// One recorded write.
#[derive(Debug)]
enum Written {
    Key(Bytes),
    /// A range delete's range.
    Range((Bound<Bytes>, Bound<Bytes>)),
}

/// Whether two ranges share a key.
fn overlaps(a: &(Bound<Bytes>, Bound<Bytes>), b: &(Bound<Bytes>, Bound<Bytes>)) -> bool {
    // `a` starts before `b` ends and `b` starts before `a` ends.
    starts_before_end(&a.0, &b.1) && starts_before_end(&b.0, &a.1)
}

/// Whether a key can lie at or after `start` and before (at) `end`.
pub(crate) fn starts_before_end(start: &Bound<Bytes>, end: &Bound<Bytes>) -> bool {
    match (start, end) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => true,
        (Bound::Included(start), Bound::Included(end)) => start <= end,
        (Bound::Included(start) | Bound::Excluded(start), Bound::Excluded(end))
        | (Bound::Excluded(start), Bound::Included(end)) => start < end,
    }
}

fn contains((start, end): &(Bound<Bytes>, Bound<Bytes>), key: &Bytes) -> bool {
    let after_start = match start {
        Bound::Included(start) => key >= start,
        Bound::Excluded(start) => key > start,
        Bound::Unbounded => true,
    };
    let before_end = match end {
        Bound::Included(end) => key <= end,
        Bound::Excluded(end) => key < end,
        Bound::Unbounded => true,
    };
    after_start && before_end
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::read::Seqs;
    use crate::shared::snapshots::Snapshots;

    fn check(snapshot_seq: u64, writes: &[&str], reads: &[&str], ranges: &[(&str, &str)]) -> ConflictCheck {
        let registry = Arc::new(Snapshots::default());
        ConflictCheck {
            snapshot_seq,
            writes: writes
                .iter()
                .map(|key| Bytes::copy_from_slice(key.as_bytes()))
                .collect(),
            reads: reads.iter().map(|key| Bytes::copy_from_slice(key.as_bytes())).collect(),
            ranges: ranges
                .iter()
                .map(|(start, end)| {
                    (
                        Bound::Included(Bytes::copy_from_slice(start.as_bytes())),
                        Bound::Excluded(Bytes::copy_from_slice(end.as_bytes())),
                    )
                })
                .collect(),
            deleted_ranges: Vec::new(),
            _open: registry.pin_transaction(&Seqs::new(snapshot_seq)),
        }
    }

    fn range(start: &str, end: Option<&str>) -> (Bound<Bytes>, Bound<Bytes>) {
        (
            Bound::Included(Bytes::copy_from_slice(start.as_bytes())),
            end.map_or(Bound::Unbounded, |end| {
                Bound::Excluded(Bytes::copy_from_slice(end.as_bytes()))
            }),
        )
    }

    /// A range delete after the snapshot conflicts with a key written or
    /// read inside it and with a range scanned or deleted across it; a
    /// transaction's own range delete conflicts with later writes inside
    /// it. Outside the ranges nothing conflicts.
    #[test]
    fn range_deletes_conflict_with_what_they_cover() {
        let mut tracker = tracker_with(&[("a", 3)], 100);
        tracker.record_range(&RangeTombstone {
            start: Bytes::from_static(b"m"),
            end: Some(Bytes::from_static(b"p")),
            seq: 5,
        });
        assert!(tracker.check(&check(4, &["n"], &[], &[])).is_err(), "a write inside");
        assert!(
            tracker.check(&check(5, &["n"], &[], &[])).is_ok(),
            "the delete is in the snapshot"
        );
        assert!(tracker.check(&check(4, &["p"], &[], &[])).is_ok(), "the end is outside");
        assert!(
            tracker.check(&check(4, &[], &["m"], &[])).is_err(),
            "a read of its start"
        );
        assert!(
            tracker.check(&check(4, &[], &[], &[("o", "z")])).is_err(),
            "a scan across it"
        );
        assert!(
            tracker.check(&check(4, &[], &[], &[("p", "z")])).is_ok(),
            "a scan past it"
        );
        let mut deleting = check(4, &[], &[], &[]);
        deleting.deleted_ranges = vec![range("a", Some("b"))];
        assert!(tracker.check(&deleting).is_ok(), "a key written before the snapshot");
        deleting.snapshot_seq = 2;
        assert!(tracker.check(&deleting).is_err(), "a key written after the snapshot");
        deleting.deleted_ranges = vec![range("o", None)];
        deleting.snapshot_seq = 4;
        assert!(tracker.check(&deleting).is_err(), "two range deletes overlap");
        tracker.forget_through(5);
        assert!(
            tracker.check(&check(4, &["n"], &[], &[])).is_ok(),
            "forgotten with its seq"
        );
        assert_eq!(tracker.ranges_tracked, 0);
    }

    fn tracker_with(writes: &[(&str, u64)], max_keys: usize) -> ConflictTracker {
        let mut tracker = ConflictTracker::new(max_keys);
        for (key, seq) in writes {
            tracker.record(&Bytes::copy_from_slice(key.as_bytes()), *seq);
        }
        tracker
    }

    #[test]
    fn a_write_after_the_snapshot_conflicts_with_a_write_or_read_of_its_key() {
        let tracker = tracker_with(&[("a", 5), ("b", 9)], 100);
        assert!(
            tracker.check(&check(9, &["b"], &[], &[])).is_ok(),
            "written at the snapshot"
        );
        let why = tracker.check(&check(8, &["b"], &[], &[])).expect_err("b at 9 > 8");
        assert!(why.contains("write-write conflict on key \"b\""), "{why}");
        assert!(tracker.check(&check(8, &["c"], &["a"], &[])).is_ok());
        let why = tracker.check(&check(4, &["c"], &["a"], &[])).expect_err("a at 5 > 4");
        assert!(why.contains("read-write conflict on key \"a\""), "{why}");
    }

    #[test]
    fn a_write_into_a_scanned_range_conflicts() {
        let tracker = tracker_with(&[("k05", 3), ("z", 7)], 100);
        assert!(
            tracker.check(&check(2, &["x"], &[], &[("k00", "k05")])).is_ok(),
            "end excluded"
        );
        let why = tracker
            .check(&check(2, &["x"], &[], &[("k00", "k10")]))
            .expect_err("k05 landed in the range");
        assert!(why.contains("\"k05\""), "{why}");
        assert!(
            tracker.check(&check(3, &["x"], &[], &[("k00", "k10")])).is_ok(),
            "before the snapshot"
        );
    }

    #[test]
    fn past_the_bound_an_old_snapshot_fails_as_too_old_never_unchecked() {
        let mut tracker = tracker_with(&[("a", 1), ("b", 2), ("c", 3), ("d", 4)], 2);
        assert!(tracker.over_bound());
        tracker.forget_through(1);
        assert!(tracker.over_bound());
        tracker.enforce_bound();
        assert!(!tracker.over_bound());
        // "b" at 2 was forgotten: a transaction that read at 1 cannot know
        // whether it conflicts, so it fails.
        let why = tracker.check(&check(1, &["b"], &[], &[])).expect_err("too old");
        assert!(why.contains("too old"), "{why}");
        assert!(tracker.check(&check(2, &["b"], &[], &[])).is_ok());
        assert!(
            tracker.check(&check(2, &["d"], &[], &[])).is_err(),
            "d at 4 is still known"
        );
    }

    #[test]
    fn a_rewritten_key_keeps_its_newest_sequence_when_the_old_entry_goes() {
        let mut tracker = tracker_with(&[("a", 1), ("a", 5)], 100);
        tracker.forget_through(1);
        assert!(
            tracker.check(&check(4, &["a"], &[], &[])).is_err(),
            "a at 5 is remembered"
        );
    }

    #[test]
    fn keys_are_printed_as_text_or_hex() {
        assert_eq!(printable(b"user/1"), "\"user/1\"");
        assert_eq!(printable(&[0, 255]), "0x00ff");
    }
}
