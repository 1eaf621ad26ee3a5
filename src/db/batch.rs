//! Write batches: several puts and deletes applied atomically, with one
//! contiguous range of sequence numbers.

use bytes::Bytes;

use crate::format::RowValue;

/// Puts and deletes applied all together or not at all.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    pub(crate) ops: Vec<(Bytes, RowValue)>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch::default()
    }

    /// Adds a put of `value` under `key` (a later operation on the same key
    /// in the batch wins).
    pub fn put(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> &mut Self {
        self.ops.push((key.into(), RowValue::Value(value.into())));
        self
    }

    /// Adds a delete of `key`.
    pub fn delete(&mut self, key: impl Into<Bytes>) -> &mut Self {
        self.ops.push((key.into(), RowValue::Tombstone));
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
