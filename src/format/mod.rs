//! On-object formats: rows, blocks, bloom filters and the sorted-table (SST)
//! container (WAL tables use the same container). Every byte is described in
//! `docs/format.md`.
//!
//! Owns: encoding and decoding, checksums, and the [`FormatError`] that a
//! damaged object produces. Does not own: object I/O, caching, or naming the
//! object a part came from (the table store adds that).
//!
//! Invariant: decoding untrusted bytes never panics, never reads out of
//! bounds and never allocates a size it has not checked against the input;
//! anything wrong is a [`FormatError::Corrupt`] naming the part.

// Reachable from outside only through the hidden `internals` module, whose
// callers (fuzz targets, benches, white-box tests) need no error sections.
#![allow(clippy::missing_errors_doc)]

pub(crate) mod block;
pub(crate) mod bloom;
pub(crate) mod codec;
pub(crate) mod compression;
pub(crate) mod range;
pub(crate) mod sst;

use std::cmp::Ordering;

use bytes::Bytes;
pub use range::{RangeDeletes, RangeTombstone};

/// What a decoder found wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The bytes are not a valid `part` ("block", "bloom filter", ...).
    #[error("{part} is corrupt: {detail}")]
    Corrupt {
        /// What was being decoded.
        part: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The bytes are valid but need something this build lacks (a
    /// compression feature, say).
    #[error("{part} cannot be read by this build: {detail}")]
    Unsupported {
        /// What was being decoded.
        part: &'static str,
        /// What it needs.
        detail: String,
    },
}

impl FormatError {
    pub(crate) fn corrupt(part: &'static str, detail: impl Into<String>) -> Self {
        FormatError::Corrupt {
            part,
            detail: detail.into(),
        }
    }
}

/// A row's payload: a value, or a tombstone that deletes older versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowValue {
    /// A value.
    Value(Bytes),
    /// A delete.
    Tombstone,
    /// A merge operand: folded by the merge operator over the versions
    /// below it (tables of format version 4 only).
    Merge(Bytes),
}

impl RowValue {
    /// The bytes a value or an operand carries.
    pub fn bytes(&self) -> Option<&Bytes> {
        match self {
            RowValue::Value(bytes) | RowValue::Merge(bytes) => Some(bytes),
            RowValue::Tombstone => None,
        }
    }
}

/// One version of a key. Tables order rows by key ascending, then newest
/// (highest sequence number) first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The user key.
    pub key: Bytes,
    /// The value or tombstone.
    pub value: RowValue,
    /// The write's sequence number; unique per write batch.
    pub seq: u64,
    /// When the row was written, in wall-clock milliseconds, if recorded.
    pub create_ms: Option<u64>,
    /// When the row stops being visible, in wall-clock milliseconds (TTL).
    pub expire_ms: Option<u64>,
}

impl Row {
    /// Whether the row has expired at `now_ms` (its TTL ran out): it then
    /// reads as a tombstone.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expire_ms.is_some_and(|expire_ms| expire_ms <= now_ms)
    }

    /// The value a read at `now_ms` sees: `None` for a tombstone or an
    /// expired row.
    pub fn live_value(&self, now_ms: u64) -> Option<&Bytes> {
        match &self.value {
            RowValue::Value(value) if !self.expired(now_ms) => Some(value),
            _ => None,
        }
    }

    /// A plain value with no timestamps.
    pub fn value(key: impl Into<Bytes>, value: impl Into<Bytes>, seq: u64) -> Self {
        Row {
            key: key.into(),
            value: RowValue::Value(value.into()),
            seq,
            create_ms: None,
            expire_ms: None,
        }
    }

    /// A tombstone with no timestamps.
    pub fn tombstone(key: impl Into<Bytes>, seq: u64) -> Self {
        Row {
            key: key.into(),
            value: RowValue::Tombstone,
            seq,
            create_ms: None,
            expire_ms: None,
        }
    }

    /// Table order: key ascending, then sequence number descending.
    pub fn table_order(&self, other: &Row) -> Ordering {
        self.key.cmp(&other.key).then(other.seq.cmp(&self.seq))
    }
}
