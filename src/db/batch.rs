//! Write batches: several puts, deletes, merges and range deletes applied
//! atomically, with one contiguous range of sequence numbers; range
//! deletes; and handing every write to the WAL writer.

use std::ops::{Bound, RangeBounds};
use std::time::Duration;

use bytes::Bytes;

use super::{Db, Ttl, WriteOptions, WriteReceipt};
use crate::error::Error;
use crate::format::RowValue;
use crate::wal::conflicts::ConflictCheck;
use crate::wal::writer::{PendingWrite, WalMsg, WriteOp};

/// Puts, deletes, merges and range deletes applied all together or not
/// at all, each after the ones added before it.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    pub(crate) ops: Vec<BatchOp>,
}

/// One operation of a batch.
#[derive(Clone, Debug)]
pub(crate) enum BatchOp {
    Row(Bytes, RowValue, Ttl),
    /// Deletes `start..end` (`None`: every key from `start` on).
    DeleteRange(Bytes, Option<Bytes>),
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch::default()
    }

    /// Adds a put of `value` under `key` (a later operation on the same key
    /// in the batch wins).
    pub fn put(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> &mut Self {
        self.ops
            .push(BatchOp::Row(key.into(), RowValue::Value(value.into()), Ttl::Default));
        self
    }

    /// Adds a put of `value` under `key` that expires `ttl` after the batch
    /// is applied (see [`Ttl`]).
    pub fn put_with_ttl(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>, ttl: Duration) -> &mut Self {
        self.ops
            .push(BatchOp::Row(key.into(), RowValue::Value(value.into()), Ttl::After(ttl)));
        self
    }

    /// Adds a merge of `operand` into `key` (see
    /// [`Db::merge`](crate::Db::merge)).
    pub fn merge(&mut self, key: impl Into<Bytes>, operand: impl Into<Bytes>) -> &mut Self {
        self.ops
            .push(BatchOp::Row(key.into(), RowValue::Merge(operand.into()), Ttl::Never));
        self
    }

    /// Adds a delete of `key`.
    pub fn delete(&mut self, key: impl Into<Bytes>) -> &mut Self {
        self.ops.push(BatchOp::Row(key.into(), RowValue::Tombstone, Ttl::Never));
        self
    }

    /// Adds a delete of every key in `range` (see
    /// [`Db::delete_range`](crate::Db::delete_range)); an empty range adds
    /// nothing. Operations added after it in the batch are not deleted by
    /// it.
    pub fn delete_range<K: AsRef<[u8]>>(&mut self, range: impl RangeBounds<K>) -> &mut Self {
        if let Some((start, end)) = half_open(range) {
            self.ops.push(BatchOp::DeleteRange(start, end));
        }
        self
    }

    /// Operations in the batch.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl Db {
    /// Deletes every key in `range` with one write, a range tombstone,
    /// whatever the number of keys (a put after it, even in the same
    /// batch, is not deleted). Returns once the delete is durable. Reads,
    /// scans in both directions and snapshots taken after it see none of
    /// the keys; snapshots taken before still see them all, and compaction
    /// removes the covered rows (and the tombstone, once nothing older can
    /// remain below it). An empty range writes nothing.
    ///
    /// ```
    /// # smol::block_on(async {
    /// # use std::sync::Arc;
    /// # use talusdb::store::{ObjectStoreAdapter, Store};
    /// use futures::TryStreamExt;
    /// # let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
    /// let db = talusdb::Db::open("db", store).await?;
    /// for user in ["ann", "bob", "cid", "dot"] {
    ///     db.put(format!("user/{user}"), "x").await?;
    /// }
    /// let before = db.snapshot();
    /// db.delete_range("user/b".."user/d").await?;
    /// assert_eq!(db.get("user/bob").await?, None);
    /// let left: Vec<_> = db.scan::<&str>(..).map_ok(|(key, _)| key).try_collect().await?;
    /// assert_eq!(left, ["user/ann", "user/dot"]);
    /// assert!(before.get("user/cid").await?.is_some(), "a snapshot from before keeps it");
    /// db.close().await?;
    /// # Ok::<(), talusdb::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Db::put`].
    pub async fn delete_range<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Result<WriteReceipt, Error> {
        self.delete_range_with_options(range, WriteOptions::default()).await
    }

    /// [`Db::delete_range`], acknowledged as `options` say.
    ///
    /// # Errors
    ///
    /// As [`Db::put`].
    pub async fn delete_range_with_options<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        options: WriteOptions,
    ) -> Result<WriteReceipt, Error> {
        let mut batch = WriteBatch::new();
        batch.delete_range(range);
        self.write_with_options(batch, options).await
    }

    /// Hands `ops` to the WAL writer, which applies them as one batch (if
    /// `check` passes, for a transaction's commit) and answers once they
    /// are durable or, without `await_durable`, in the memtable.
    pub(super) async fn apply(
        &self,
        ops: Vec<BatchOp>,
        options: WriteOptions,
        check: Option<ConflictCheck>,
    ) -> Result<WriteReceipt, Error> {
        let empty_key = ops
            .iter()
            .any(|op| matches!(op, BatchOp::Row(key, _, _) if key.is_empty()));
        if empty_key {
            return Err(Error::invalid("keys must not be empty"));
        }
        let merge = ops
            .iter()
            .any(|op| matches!(op, BatchOp::Row(_, RowValue::Merge(_), _)));
        if self.inner.merge_operator.is_none() && merge {
            return Err(Error::invalid(
                "a merge needs a merge operator: open the database with DbBuilder::merge_operator",
            ));
        }
        let default_ttl = self.inner.default_ttl;
        let ops = ops
            .into_iter()
            .map(|op| match op {
                BatchOp::Row(key, value, ttl) => WriteOp::Row {
                    ttl: match value {
                        RowValue::Value(_) => ttl.or(options.ttl).resolve(default_ttl),
                        RowValue::Tombstone | RowValue::Merge(_) => None,
                    },
                    key,
                    value,
                },
                BatchOp::DeleteRange(start, end) => WriteOp::DeleteRange { start, end },
            })
            .collect();
        let seq = self
            .inner
            .wal
            .ask(|reply| {
                WalMsg::Write(PendingWrite {
                    ops,
                    await_durable: options.await_durable,
                    reply,
                    check,
                })
            })
            .await??;
        Ok(WriteReceipt { seq })
    }
}

/// `range` as a start key and an exclusive end (`None`: unbounded), or
/// `None` if it holds no key. An excluded start or an included end becomes
/// the key followed by a zero byte, the next key in byte order.
pub(crate) fn half_open<K: AsRef<[u8]>>(range: impl RangeBounds<K>) -> Option<(Bytes, Option<Bytes>)> {
    let successor = |key: &[u8]| {
        let mut next = Vec::with_capacity(key.len() + 1);
        next.extend_from_slice(key);
        next.push(0);
        Bytes::from(next)
    };
    let start = match range.start_bound() {
        Bound::Included(key) => Bytes::copy_from_slice(key.as_ref()),
        Bound::Excluded(key) => successor(key.as_ref()),
        Bound::Unbounded => Bytes::new(),
    };
    let end = match range.end_bound() {
        Bound::Included(key) => Some(successor(key.as_ref())),
        Bound::Excluded(key) => Some(Bytes::copy_from_slice(key.as_ref())),
        Bound::Unbounded => None,
    };
    match &end {
        Some(end) if *end <= start => None,
        _ => Some((start, end)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_become_half_open_and_empty_ones_vanish() {
        let bytes = |key: &[u8]| Bytes::copy_from_slice(key);
        assert_eq!(half_open(b"a".as_slice()..b"c"), Some((bytes(b"a"), Some(bytes(b"c")))));
        assert_eq!(
            half_open(b"a".as_slice()..=b"c"),
            Some((bytes(b"a"), Some(bytes(b"c\0"))))
        );
        assert_eq!(half_open::<&[u8]>(..), Some((Bytes::new(), None)));
        let excluded = (Bound::Excluded(b"a".as_slice()), Bound::<&[u8]>::Unbounded);
        assert_eq!(half_open::<&[u8]>(excluded), Some((bytes(b"a\0"), None)));
        assert_eq!(half_open(b"c".as_slice()..b"a"), None);
        assert_eq!(half_open(b"c".as_slice()..b"c"), None);
        assert_eq!(
            half_open(b"c".as_slice()..=b"c"),
            Some((bytes(b"c"), Some(bytes(b"c\0"))))
        );
    }
}
