//! A read-only view of a database: the latest manifest plus the WAL tables
//! it does not cover yet, opened without fencing anyone (no epoch raised,
//! nothing written). What the CLI's `get` and `scan` use, so that reading a
//! live database never stops its writer. The view is fixed at open: later
//! writes are not seen; open again to see them.

use std::ops::RangeBounds;
use std::sync::Arc;

use bytes::Bytes;

use super::{DbBuilder, DbIterator, ScanOptions, get_in, scan_in};
use crate::error::Error;
use crate::manifest::ManifestError;
use crate::read::ReadView;
use crate::read::operator::Operator;
use crate::store::TableStore;
use crate::wal::replay::replay;

/// A database opened for reading only, pinned at the moment it opened.
#[derive(Clone, Debug)]
pub struct DbReader {
    view: Arc<ReadView>,
    tables: TableStore,
    seq: u64,
    manifest_id: u64,
    merge_operator: Operator,
}

impl DbReader {
    pub(super) async fn open(builder: DbBuilder) -> Result<DbReader, Error> {
        let prepared = builder.prepare()?;
        let manifests = prepared.manifests;
        let Some((manifest_id, manifest)) = manifests.read_latest().await? else {
            // Tables without a manifest are a lost manifest, not "no
            // database here".
            crate::manifest::refuse_lost_manifest(&manifests, &prepared.tables).await?;
            return Err(ManifestError::Missing {
                path: manifests.root().clone(),
            }
            .into());
        };
        super::builder::check_merge_operator(&manifest, &prepared.merge_operator)?;
        let replayed = replay(&prepared.tables, &manifest).await?;
        Ok(DbReader {
            merge_operator: prepared.merge_operator,
            view: Arc::new(ReadView::new(Arc::new(replayed.memtable), &manifest)),
            tables: prepared.tables,
            seq: replayed.last_seq,
            manifest_id,
        })
    }

    /// The sequence number the view is pinned at.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The manifest version the view was built from.
    pub fn manifest_id(&self) -> u64 {
        self.manifest_id
    }

    /// The tables the view searches.
    pub fn shape(&self) -> super::TreeShape {
        self.view.shape()
    }

    /// The value of `key` as of the view, `None` if absent or deleted.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) if the
    /// store failed reading a table;
    /// [`ErrorKind::Corruption`](crate::ErrorKind::Corruption) if a table
    /// is damaged (the error names it). A table the writer's collector has
    /// deleted since the view opened is
    /// [`ErrorKind::Corruption`](crate::ErrorKind::Corruption) naming the
    /// missing object: open the reader again.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, Error> {
        get_in(&self.view, &self.tables, key.as_ref(), self.seq, &self.merge_operator).await
    }

    /// Live keys in `range` as of the view, in key order.
    ///
    /// # Errors
    ///
    /// The stream yields one error and ends, for the reasons
    /// [`DbReader::get`] gives.
    pub fn scan<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> DbIterator {
        self.scan_with_options(range, ScanOptions::default())
    }

    /// [`DbReader::scan`], reading as `options` say (`durability` is moot:
    /// the view fixes what is seen).
    ///
    /// # Errors
    ///
    /// As [`DbReader::scan`].
    pub fn scan_with_options<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>, options: ScanOptions) -> DbIterator {
        scan_in(
            Ok(self.view.clone()),
            self.tables.clone(),
            range,
            options,
            self.seq,
            &self.merge_operator,
        )
    }

    /// Live keys that start with `prefix` as of the view, in key order.
    ///
    /// # Errors
    ///
    /// As [`DbReader::scan`].
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> DbIterator {
        self.scan(super::prefix_bounds(prefix.as_ref()))
    }
}
