//! A read-only view of a database: the latest manifest plus the WAL tables
//! it does not cover yet, opened without fencing anyone (no epoch raised,
//! nothing written). What the CLI's `get` and `scan` use, so that reading a
//! live database never stops its writer. The view is fixed at open: later
//! writes are not seen; open again to see them.

use std::ops::RangeBounds;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;

use super::{DbBuilder, ScanOptions, default_runtime, get_in, scan_in};
use crate::error::Error;
use crate::manifest::{Manifest, ManifestError, VersionedOptions, VersionedStore};
use crate::read::{KeyValue, ReadView};
use crate::store::{TableStore, TimeoutStore};
use crate::wal::replay::replay;

/// A database opened for reading only, pinned at the moment it opened.
#[derive(Clone, Debug)]
pub struct DbReader {
    view: Arc<ReadView>,
    tables: TableStore,
    seq: u64,
    manifest_id: u64,
}

impl DbReader {
    pub(super) async fn open(builder: DbBuilder) -> Result<DbReader, Error> {
        builder.options.validate().map_err(Error::invalid)?;
        let runtime = match builder.runtime {
            Some(runtime) => runtime,
            None => default_runtime()?,
        };
        let options = builder.options;
        let store: Arc<dyn crate::store::Store> = Arc::new(TimeoutStore::new(
            builder.store,
            runtime.clone(),
            options.request_timeout,
        ));
        let tables = TableStore::new(store.clone(), builder.root.clone(), runtime.clone(), options.tables);
        let manifests = VersionedStore::<Manifest>::new(store, builder.root, runtime, VersionedOptions::default());
        let (manifest_id, manifest) = manifests.read_latest().await?.ok_or_else(|| ManifestError::Missing {
            path: manifests.root().clone(),
        })?;
        let replayed = replay(&tables, &manifest).await?;
        let empty = ReadView {
            memtable: Arc::new(replayed.memtable),
            frozen: Vec::new(),
            l0: Vec::new(),
            runs: Vec::new(),
        };
        Ok(DbReader {
            view: Arc::new(empty.with_manifest(&manifest)),
            tables,
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

    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, Error> {
        get_in(&self.view, &self.tables, key.as_ref(), self.seq).await
    }

    pub fn scan<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        options: ScanOptions,
    ) -> impl Stream<Item = Result<KeyValue, Error>> + Send + 'static {
        scan_in(Ok(self.view.clone()), self.tables.clone(), range, options, self.seq)
    }
}
