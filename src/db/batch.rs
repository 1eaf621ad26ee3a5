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
    pub fn new() -> Self {
        WriteBatch::default()
    }

    pub fn put(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> &mut Self {
        self.ops.push((key.into(), RowValue::Value(value.into())));
        self
    }

    pub fn delete(&mut self, key: impl Into<Bytes>) -> &mut Self {
        self.ops.push((key.into(), RowValue::Tombstone));
        self
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}
