//! Write batches: several puts and deletes applied atomically, with one
//! contiguous range of sequence numbers.

use std::time::Duration;

use bytes::Bytes;

use super::Ttl;
use crate::format::RowValue;

/// Puts and deletes applied all together or not at all.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    pub(crate) ops: Vec<(Bytes, RowValue, Ttl)>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch::default()
    }

    /// Adds a put of `value` under `key` (a later operation on the same key
    /// in the batch wins).
    pub fn put(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> &mut Self {
        self.ops.push((key.into(), RowValue::Value(value.into()), Ttl::Default));
        self
    }

    /// Adds a put of `value` under `key` that expires `ttl` after the batch
    /// is applied (see [`Ttl`]).
    pub fn put_with_ttl(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>, ttl: Duration) -> &mut Self {
        self.ops
            .push((key.into(), RowValue::Value(value.into()), Ttl::After(ttl)));
        self
    }

    /// Adds a merge of `operand` into `key` (see
    /// [`Db::merge`](crate::Db::merge)).
    pub fn merge(&mut self, key: impl Into<Bytes>, operand: impl Into<Bytes>) -> &mut Self {
        self.ops.push((key.into(), RowValue::Merge(operand.into()), Ttl::Never));
        self
    }

    /// Adds a delete of `key`.
    pub fn delete(&mut self, key: impl Into<Bytes>) -> &mut Self {
        self.ops.push((key.into(), RowValue::Tombstone, Ttl::Never));
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
