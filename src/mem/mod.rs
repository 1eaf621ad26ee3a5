//! The memtable: a lock-free skiplist of rows that the WAL writer inserts
//! into and readers search directly, without messages.
//!
//! Owns: rows not yet in an L0 table, ordered like a table (key ascending,
//! newest sequence first), and their approximate size. Does not own:
//! visibility (readers pass the highest sequence they may see).
//!
//! Invariant: rows are only inserted, never changed or removed; a frozen
//! memtable is never inserted into again.

use std::cmp::Reverse;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;

use crate::format::{RangeDeletes, RangeTombstone, Row, RowValue};

type Key = (Bytes, Reverse<u64>);

/// Per-row bookkeeping counted into the memtable size.
const ROW_OVERHEAD: usize = 48;

#[derive(Debug, Default)]
/// Rows in memory, in table order, readable while written.
pub struct Memtable {
    /// Each row's value and expiry time.
    rows: SkipMap<Key, (RowValue, Option<u64>)>,
    /// Range tombstones, in sequence order, and their fragmented form
    /// (built on the first read after an insert).
    range_tombstones: RwLock<RangeSet>,
    /// Whether any range tombstone is held: reads skip the lock when not.
    has_range_tombstones: AtomicBool,
    bytes: AtomicUsize,
    first_seq: AtomicU64,
    last_seq: AtomicU64,
}

#[derive(Debug, Default)]
struct RangeSet {
    tombstones: Vec<RangeTombstone>,
    fragmented: Option<Arc<RangeDeletes>>,
}

impl Memtable {
    /// An empty memtable.
    pub fn new() -> Self {
        Memtable {
            first_seq: AtomicU64::new(u64::MAX),
            ..Memtable::default()
        }
    }

    /// The bytes a row adds to [`Memtable::size`].
    pub fn row_size(key: &[u8], value: &RowValue) -> usize {
        key.len() + ROW_OVERHEAD + row_value_len(value)
    }

    /// Adds a row.
    pub fn insert(&self, row: &Row) {
        let size = Memtable::row_size(&row.key, &row.value);
        self.rows
            .insert((row.key.clone(), Reverse(row.seq)), (row.value.clone(), row.expire_ms));
        self.bytes.fetch_add(size, Ordering::Relaxed);
        self.first_seq.fetch_min(row.seq, Ordering::Relaxed);
        self.last_seq.fetch_max(row.seq, Ordering::Relaxed);
    }

    /// Adds a range tombstone.
    pub fn insert_range_tombstone(&self, tombstone: RangeTombstone) {
        let (size, seq) = (tombstone.size(), tombstone.seq);
        {
            let mut set = self.range_tombstones.write().unwrap_or_else(PoisonError::into_inner);
            set.tombstones.push(tombstone);
            set.fragmented = None;
        }
        self.has_range_tombstones.store(true, Ordering::Release);
        self.bytes.fetch_add(size, Ordering::Relaxed);
        self.first_seq.fetch_min(seq, Ordering::Relaxed);
        self.last_seq.fetch_max(seq, Ordering::Relaxed);
    }

    /// Its range tombstones, in sequence order (for WAL and L0 tables).
    pub fn range_tombstones(&self) -> Vec<RangeTombstone> {
        if !self.has_range_tombstones.load(Ordering::Acquire) {
            return Vec::new();
        }
        let set = self.range_tombstones.read().unwrap_or_else(PoisonError::into_inner);
        set.tombstones.clone()
    }

    /// Its range tombstones fragmented for lookups (`None`: it has none).
    pub fn range_deletes(&self) -> Option<Arc<RangeDeletes>> {
        if !self.has_range_tombstones.load(Ordering::Acquire) {
            return None;
        }
        {
            let set = self.range_tombstones.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(fragmented) = &set.fragmented {
                return Some(fragmented.clone());
            }
        }
        let mut set = self.range_tombstones.write().unwrap_or_else(PoisonError::into_inner);
        let fragmented = Arc::new(RangeDeletes::new(&set.tombstones));
        set.fragmented = Some(fragmented.clone());
        Some(fragmented)
    }

    /// Approximate bytes held.
    pub fn size(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Whether it holds no row and no range tombstone.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && !self.has_range_tombstones.load(Ordering::Acquire)
    }

    /// Rows in it (range tombstones not counted).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// The sequence range held, if any rows or range tombstones are.
    pub fn seq_range(&self) -> Option<(u64, u64)> {
        (!self.is_empty()).then(|| {
            (
                self.first_seq.load(Ordering::Relaxed),
                self.last_seq.load(Ordering::Relaxed),
            )
        })
    }

    /// The newest version of `key` with sequence `<= max_seq`.
    pub fn get(&self, key: &[u8], max_seq: u64) -> Option<Row> {
        self.key_rows(key, max_seq).next()
    }

    /// Every version of `key` with sequence `<= max_seq`, newest first.
    pub fn versions(&self, key: &[u8], max_seq: u64) -> Vec<Row> {
        self.key_rows(key, max_seq).collect()
    }

    fn key_rows(&self, key: &[u8], max_seq: u64) -> impl Iterator<Item = Row> + '_ {
        let key = Bytes::copy_from_slice(key);
        let from = (key.clone(), Reverse(max_seq));
        let to = (key, Reverse(0));
        self.rows
            .range(from..=to)
            .map(|entry| to_row(entry.key(), entry.value()))
    }

    /// Up to `limit` rows after `after` (exclusive; `None` starts at
    /// `start`), in table order, stopping at `end`.
    pub fn rows_after(
        &self,
        after: Option<(&Bytes, u64)>,
        start: &Bound<Bytes>,
        end: &Bound<Bytes>,
        limit: usize,
    ) -> Vec<Row> {
        let lower: Bound<Key> = match after {
            Some((key, seq)) => Bound::Excluded((key.clone(), Reverse(seq))),
            None => match start {
                Bound::Included(key) => Bound::Included((key.clone(), Reverse(u64::MAX))),
                Bound::Excluded(key) => Bound::Excluded((key.clone(), Reverse(0))),
                Bound::Unbounded => Bound::Unbounded,
            },
        };
        let upper: Bound<Key> = match end {
            Bound::Included(key) => Bound::Included((key.clone(), Reverse(0))),
            Bound::Excluded(key) => Bound::Excluded((key.clone(), Reverse(u64::MAX))),
            Bound::Unbounded => Bound::Unbounded,
        };
        if range_is_empty(&lower, &upper) {
            return Vec::new();
        }
        self.rows
            .range((lower, upper))
            .take(limit)
            .map(|entry| to_row(entry.key(), entry.value()))
            .collect()
    }

    /// Up to `limit` rows in `start..end` before `before` (the last row
    /// returned so far), in reverse table order: keys descending, and the
    /// versions of a key oldest first.
    pub fn rows_before(
        &self,
        before: Option<(&Bytes, u64)>,
        start: &Bound<Bytes>,
        end: &Bound<Bytes>,
        limit: usize,
    ) -> Vec<Row> {
        let lower: Bound<Key> = match start {
            Bound::Included(key) => Bound::Included((key.clone(), Reverse(u64::MAX))),
            Bound::Excluded(key) => Bound::Excluded((key.clone(), Reverse(0))),
            Bound::Unbounded => Bound::Unbounded,
        };
        let upper: Bound<Key> = match before {
            Some((key, seq)) => Bound::Excluded((key.clone(), Reverse(seq))),
            None => match end {
                Bound::Included(key) => Bound::Included((key.clone(), Reverse(0))),
                Bound::Excluded(key) => Bound::Excluded((key.clone(), Reverse(u64::MAX))),
                Bound::Unbounded => Bound::Unbounded,
            },
        };
        if range_is_empty(&lower, &upper) {
            return Vec::new();
        }
        self.rows
            .range((lower, upper))
            .rev()
            .take(limit)
            .map(|entry| to_row(entry.key(), entry.value()))
            .collect()
    }

    /// Every row, in table order (for building the L0 table).
    pub fn iter(&self) -> impl Iterator<Item = Row> + '_ {
        self.rows.iter().map(|entry| to_row(entry.key(), entry.value()))
    }
}

fn row_value_len(value: &RowValue) -> usize {
    match value {
        RowValue::Value(bytes) | RowValue::Merge(bytes) => bytes.len(),
        RowValue::Tombstone => 0,
    }
}

/// Whether no key lies between `lower` and `upper`.
fn range_is_empty(lower: &Bound<Key>, upper: &Bound<Key>) -> bool {
    match (lower, upper) {
        (Bound::Included(lower), Bound::Included(upper)) => lower > upper,
        (Bound::Included(lower) | Bound::Excluded(lower), Bound::Excluded(upper))
        | (Bound::Excluded(lower), Bound::Included(upper)) => lower >= upper,
        _ => false,
    }
}

fn to_row(key: &Key, (value, expire_ms): &(RowValue, Option<u64>)) -> Row {
    Row {
        key: key.0.clone(),
        value: value.clone(),
        seq: key.1.0,
        create_ms: None,
        expire_ms: *expire_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_before_walk_the_range_backwards_in_batches() {
        let table = Memtable::new();
        table.insert(&Row::value("a", "1", 1));
        table.insert(&Row::value("a", "2", 5));
        table.insert(&Row::value("b", "x", 3));
        table.insert(&Row::value("c", "y", 4));
        let pairs = |rows: Vec<Row>| -> Vec<(Bytes, u64)> { rows.into_iter().map(|row| (row.key, row.seq)).collect() };
        let (a, b, c) = (Bytes::from("a"), Bytes::from("b"), Bytes::from("c"));
        let first = table.rows_before(None, &Bound::Unbounded, &Bound::Included(b.clone()), 2);
        assert_eq!(
            pairs(first),
            vec![(b.clone(), 3), (a.clone(), 1)],
            "the end bound holds, oldest first"
        );
        let rest = table.rows_before(Some((&a, 1)), &Bound::Unbounded, &Bound::Included(b.clone()), 2);
        assert_eq!(pairs(rest), vec![(a.clone(), 5)]);
        let above_a = table.rows_before(None, &Bound::Excluded(a.clone()), &Bound::Unbounded, 10);
        assert_eq!(pairs(above_a), vec![(c.clone(), 4), (b.clone(), 3)]);
        assert!(
            table
                .rows_before(None, &Bound::Included(c), &Bound::Excluded(b), 10)
                .is_empty(),
            "an inverted range is empty"
        );
    }

    #[test]
    fn versions_are_found_newest_first_below_a_sequence() {
        let table = Memtable::new();
        table.insert(&Row::value("a", "1", 1));
        table.insert(&Row::value("a", "2", 5));
        table.insert(&Row::tombstone("a", 9));
        table.insert(&Row::value("b", "x", 3));
        assert_eq!(table.get(b"a", u64::MAX).map(|row| row.seq), Some(9));
        assert_eq!(table.get(b"a", 8).map(|row| row.seq), Some(5));
        assert_eq!(table.get(b"a", 0), None);
        assert_eq!(table.get(b"c", u64::MAX), None);
        assert_eq!(table.seq_range(), Some((1, 9)));
        let all = table.rows_after(None, &Bound::Unbounded, &Bound::Unbounded, 10);
        let order: Vec<(Bytes, u64)> = all.iter().map(|row| (row.key.clone(), row.seq)).collect();
        assert_eq!(
            order,
            vec![
                (Bytes::from("a"), 9),
                (Bytes::from("a"), 5),
                (Bytes::from("a"), 1),
                (Bytes::from("b"), 3)
            ]
        );
        let after = table.rows_after(
            Some((&Bytes::from("a"), 5)),
            &Bound::Unbounded,
            &Bound::Excluded(Bytes::from("b")),
            10,
        );
        assert_eq!(after.iter().map(|row| row.seq).collect::<Vec<_>>(), vec![1]);
        let from_b = table.rows_after(None, &Bound::Excluded(Bytes::from("a")), &Bound::Unbounded, 10);
        assert_eq!(from_b.len(), 1);
    }
}
