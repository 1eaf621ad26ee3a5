//! Optimistic transactions: reads at a snapshot with the transaction's own
//! writes on top, and a commit the WAL writer checks in sequence order
//! against every write made after the snapshot (`wal::conflicts`). The
//! rules are in `docs/transactions.md`.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};

use bytes::Bytes;

use super::batch::{BatchOp, half_open};
use super::iterator::OwnWrite;
use super::{Db, DbIterator, ScanOptions, ScanOrder, Ttl, WriteBatch, WriteOptions, bytes_bounds};
use crate::error::Error;
use crate::format::{RangeTombstone, RowValue};
use crate::read::operator::merge_over;
use crate::shared::snapshots::TransactionPin;
use crate::wal::conflicts::{ConflictCheck, starts_before_end};

/// What a transaction's commit is checked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum IsolationLevel {
    /// Snapshot isolation (default): the commit fails if another commit
    /// wrote one of the keys this transaction writes after its snapshot.
    /// Reads see one consistent snapshot; write skew is possible.
    #[default]
    Snapshot,
    /// Serializable snapshot isolation: also fails if a key this
    /// transaction read, or a key in a range it scanned, was written after
    /// its snapshot. Committed transactions then behave as if run one at a
    /// time in commit order.
    Serializable,
}

/// What a write did: the sequence number it was given (a batch's or a
/// transaction's last row's). Later writes have higher numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct WriteReceipt {
    /// The write's sequence number.
    pub seq: u64,
}

/// A transaction: reads at the snapshot it began at, with its own writes on
/// top; writes buffered until [`Transaction::commit`] applies them all
/// atomically, or not at all if another commit got in the way. Dropping it
/// (or [`Transaction::rollback`]) discards the writes. `Send`: it can be
/// held across awaits and moved between tasks.
///
/// ```
/// # smol::block_on(async {
/// # use std::sync::Arc;
/// # use talusdb::store::{ObjectStoreAdapter, Store};
/// use talusdb::{ErrorKind, IsolationLevel};
/// # let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
/// let db = talusdb::Db::open("db", store).await?;
/// db.put("balance", "10").await?;
///
/// let mut txn = db.begin(IsolationLevel::Snapshot);
/// let balance = txn.get("balance").await?.expect("written above");
/// let doubled = std::str::from_utf8(&balance).unwrap().parse::<u64>().unwrap() * 2;
/// txn.put("balance", doubled.to_string());
/// // Someone else writes the key after the transaction's snapshot...
/// db.put("balance", "11").await?;
/// // ...so the commit fails and applies nothing.
/// let error = txn.commit().await.expect_err("conflict");
/// assert_eq!(error.kind(), &ErrorKind::TransactionConflict);
/// assert_eq!(db.get("balance").await?.as_deref(), Some(&b"11"[..]));
/// db.close().await?;
/// # Ok::<(), talusdb::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct Transaction {
    db: Db,
    pin: TransactionPin,
    isolation: IsolationLevel,
    /// What it wrote to each key, with the TTL of its put.
    writes: BTreeMap<Bytes, (OwnWrite, Ttl)>,
    /// Keys read from the snapshot (`Serializable` only).
    reads: Vec<Bytes>,
    /// Ranges scanned (`Serializable` only).
    ranges: Vec<(Bound<Bytes>, Bound<Bytes>)>,
    /// Ranges deleted, as half-open `start..end` (`None`: no end). Every
    /// own write in `writes` inside one of them was made after it.
    deleted_ranges: Vec<RangeTombstone>,
}

impl Db {
    /// Begins a transaction at the current sequence number (every write
    /// acknowledged so far is in its snapshot). Compaction keeps the
    /// versions it reads until it commits or is dropped.
    pub fn begin(&self, isolation: IsolationLevel) -> Transaction {
        Transaction {
            db: self.clone(),
            pin: self.inner.snapshots.pin_transaction(&self.inner.seqs),
            isolation,
            writes: BTreeMap::new(),
            reads: Vec::new(),
            ranges: Vec::new(),
            deleted_ranges: Vec::new(),
        }
    }
}

impl Transaction {
    /// The sequence number its reads see.
    pub fn seq(&self) -> u64 {
        self.pin.seq()
    }

    /// Its isolation level.
    pub fn isolation(&self) -> IsolationLevel {
        self.isolation
    }

    /// The value of `key`: this transaction's own write if it made one,
    /// else the snapshot's.
    ///
    /// # Errors
    ///
    /// As [`Db::get`].
    pub async fn get(&mut self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, Error> {
        let key = key.as_ref();
        let own = self.writes.get(key).map(|(write, _)| write.clone());
        let base = match own.as_ref().and_then(|own| own.base.as_ref()) {
            Some(RowValue::Value(value)) => Some(value.clone()),
            Some(_) => None,
            None if self.deleted_ranges.iter().any(|range| range.contains(key)) => None,
            None => {
                if self.isolation == IsolationLevel::Serializable {
                    self.reads.push(Bytes::copy_from_slice(key));
                }
                self.db.get_at(key, self.seq()).await?
            }
        };
        match own {
            Some(own) if !own.operands.is_empty() => {
                let operands: Vec<&[u8]> = own.operands.iter().map(|operand| operand.as_ref()).collect();
                merge_over(key, base.as_deref(), &operands, &self.db.inner.merge_operator).map(Some)
            }
            _ => Ok(base),
        }
    }

    /// Live keys in `range` in key order: the snapshot's, with this
    /// transaction's writes (made before the call) on top.
    ///
    /// # Errors
    ///
    /// As [`Db::scan`].
    pub fn scan<K: AsRef<[u8]>>(&mut self, range: impl RangeBounds<K>) -> DbIterator {
        self.scan_with_options(range, ScanOptions::default())
    }

    /// [`Transaction::scan`], reading as `options` say (in reverse with
    /// [`ScanOrder::Reverse`](crate::ScanOrder::Reverse); `durability` is
    /// moot: the snapshot fixes what is seen).
    ///
    /// # Errors
    ///
    /// As [`Db::scan`].
    pub fn scan_with_options<K: AsRef<[u8]>>(
        &mut self,
        range: impl RangeBounds<K>,
        options: ScanOptions,
    ) -> DbIterator {
        let bounds = bytes_bounds(range);
        if self.isolation == IsolationLevel::Serializable {
            self.ranges.push(bounds.clone());
        }
        let reverse = options.order == ScanOrder::Reverse;
        let mut own: Vec<(Bytes, OwnWrite)> = if is_empty(&bounds) {
            Vec::new()
        } else {
            self.writes
                .range(bounds.clone())
                .map(|(key, (write, _))| (key.clone(), write.clone()))
                .collect()
        };
        if reverse {
            own.reverse();
        }
        let max_seq = self.seq();
        self.db
            .overlay_at(bounds, options, max_seq, own, self.deleted_ranges.clone())
    }

    /// Live keys that start with `prefix`, with this transaction's writes on
    /// top (see [`Transaction::scan`]).
    ///
    /// # Errors
    ///
    /// As [`Db::scan`].
    pub fn scan_prefix(&mut self, prefix: impl AsRef<[u8]>) -> DbIterator {
        self.scan(super::prefix_bounds(prefix.as_ref()))
    }

    /// Writes `value` under `key` when the transaction commits.
    pub fn put(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.set(key.into(), RowValue::Value(value.into()), Ttl::Default);
    }

    /// A put or delete replaces everything the transaction wrote before.
    fn set(&mut self, key: Bytes, value: RowValue, ttl: Ttl) {
        match value {
            RowValue::Merge(operand) => self.writes.entry(key).or_default().0.operands.push(operand),
            value => {
                let write = OwnWrite {
                    base: Some(value),
                    operands: Vec::new(),
                };
                self.writes.insert(key, (write, ttl));
            }
        }
    }

    /// Merges `operand` into `key` when the transaction commits (see
    /// [`Db::merge`]); the transaction's reads see it folded at once.
    pub fn merge(&mut self, key: impl Into<Bytes>, operand: impl Into<Bytes>) {
        self.set(key.into(), RowValue::Merge(operand.into()), Ttl::Never);
    }

    /// Writes `value` under `key` when the transaction commits, to expire
    /// `ttl` after the commit (see [`Ttl`]; the transaction's own reads see
    /// it until then).
    pub fn put_with_ttl(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>, ttl: std::time::Duration) {
        self.set(key.into(), RowValue::Value(value.into()), Ttl::After(ttl));
    }

    /// Deletes `key` when the transaction commits.
    pub fn delete(&mut self, key: impl Into<Bytes>) {
        self.set(key.into(), RowValue::Tombstone, Ttl::Never);
    }

    /// Deletes every key in `range` when the transaction commits (see
    /// [`Db::delete_range`]): its own earlier writes there are dropped,
    /// its later ones kept, and its reads no longer see the snapshot's keys
    /// there. A commit conflicts with any key written into the range after
    /// the snapshot.
    pub fn delete_range<K: AsRef<[u8]>>(&mut self, range: impl RangeBounds<K>) {
        if let Some((start, end)) = half_open(range) {
            self.delete_half_open(start, end);
        }
    }

    fn delete_half_open(&mut self, start: Bytes, end: Option<Bytes>) {
        // Own tombstones cover every version of the snapshot: the highest
        // sequence number stands for "after all of it".
        let tombstone = RangeTombstone {
            start,
            end,
            seq: u64::MAX,
        };
        let doomed: Vec<Bytes> = self
            .writes
            .range(tombstone.bounds())
            .map(|(key, _)| key.clone())
            .collect();
        for key in doomed {
            self.writes.remove(&key);
        }
        self.deleted_ranges.push(tombstone);
    }

    /// Adds every operation of `batch` (later ones win).
    pub fn write(&mut self, batch: WriteBatch) {
        for op in batch.ops {
            match op {
                BatchOp::Row(key, value, ttl) => self.set(key, value, ttl),
                BatchOp::DeleteRange(start, end) => self.delete_half_open(start, end),
            }
        }
    }

    /// Applies the writes atomically if no conflicting commit came after
    /// the snapshot, and returns once they are durable. A transaction that
    /// wrote nothing commits at once (its reads were of one snapshot).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TransactionConflict`](crate::ErrorKind::TransactionConflict)
    /// if it conflicts (nothing is applied; run it again); otherwise as
    /// [`Db::write`].
    pub async fn commit(self) -> Result<WriteReceipt, Error> {
        self.commit_with_options(WriteOptions::default()).await
    }

    /// [`Transaction::commit`], acknowledged as `options` say.
    ///
    /// # Errors
    ///
    /// As [`Transaction::commit`].
    pub async fn commit_with_options(self, options: WriteOptions) -> Result<WriteReceipt, Error> {
        if self.writes.is_empty() && self.deleted_ranges.is_empty() {
            return Ok(WriteReceipt { seq: self.seq() });
        }
        let check = ConflictCheck {
            snapshot_seq: self.pin.seq(),
            writes: self.writes.keys().cloned().collect(),
            reads: self.reads,
            ranges: self.ranges,
            deleted_ranges: self.deleted_ranges.iter().map(RangeTombstone::bounds).collect(),
            _open: self.pin,
        };
        // Range deletes first (every own write inside one came after it),
        // then each key's put or delete and its operands: one batch, in
        // order.
        let mut ops: Vec<BatchOp> = self
            .deleted_ranges
            .into_iter()
            .map(|range| BatchOp::DeleteRange(range.start, range.end))
            .collect();
        for (key, (write, ttl)) in self.writes {
            if let Some(value) = write.base {
                ops.push(BatchOp::Row(key.clone(), value, ttl));
            }
            for operand in write.operands {
                ops.push(BatchOp::Row(key.clone(), RowValue::Merge(operand), Ttl::Never));
            }
        }
        self.db.apply(ops, options, Some(check)).await
    }

    /// Discards the writes (what dropping the transaction does too).
    pub fn rollback(self) {}
}

/// Whether no key lies between the bounds (`BTreeMap::range` would panic
/// on some of these).
fn is_empty((start, end): &(Bound<Bytes>, Bound<Bytes>)) -> bool {
    !starts_before_end(start, end)
}
