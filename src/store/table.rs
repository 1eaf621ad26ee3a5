//! The table store: writes tables to object storage and reads them back
//! through the caches.
//!
//! Owns: table object names, conditional creates with retry (and telling our
//! own earlier attempt from another writer's object), multipart upload of
//! large tables, opening a table in at most two reads (the reader it makes,
//! with its lazy index and filter, point lookups and scans, is in
//! [`super::reader`]).
//! Does not own: which tables exist (the manifest) or when they are deleted
//! (the garbage collector).
//!
//! Invariants: a table object is written once and never changes; every
//! error names the object; a conflict on a WAL id is [`StoreError::Fenced`]
//! only when the object there is not byte-for-byte the one we tried to write.

// Reachable from outside only through the hidden `internals` module, whose
// callers (fuzz targets, benches, white-box tests) need no error sections.
#![allow(clippy::missing_errors_doc)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use bytes::Bytes;
use object_store::path::Path;
use talus_actors::Runtime;

use super::cache::{DEFAULT_BLOCK_CACHE_BYTES, DEFAULT_META_CACHE_BYTES, MetaKind, MetaPart, Opened, TableCaches};
use super::error::{Op, StoreError};
use super::in_flight::InFlight;
use super::object::PutMode;
use super::object::{ByteRange, Created, Fetched, ObjectInfo, Store, create_once};
use super::pace::Pace;
use super::paths::{COMPACTED_DIR, TableId, Ulid, WAL_DIR, child};
pub(crate) use super::reader::{ScanOptions, TableReader, TableScan};
use super::reader::{read_extent, slice_of};
use crate::format::sst::{
    Extent, FOOTER_SIZE, Footer, SstBuilder, SstBytes, SstOptions, TableKind, TableMeta, WalStamp,
};
use crate::format::{RangeTombstone, Row};

type Result<T> = std::result::Result<T, StoreError>;

/// How tables are written and read. The defaults suit S3; every field is
/// documented with its default.
#[derive(Clone, Debug)]
pub struct TableStoreOptions {
    /// Block size, restarts, bloom bits, compression.
    pub sst: SstOptions,
    /// Bytes read from the end of a table when opening it (default 64 KiB):
    /// footer, metadata, and usually the index and filter, in one read.
    pub open_read_bytes: u64,
    /// Tables at least this large are sent as a multipart upload (default
    /// 32 MiB); smaller ones in one conditional `put`.
    pub multipart_threshold_bytes: usize,
    /// Size of each multipart part but the last (default 8 MiB; S3's
    /// minimum is 5 MiB).
    pub multipart_part_bytes: usize,
    /// Attempts per write before a retryable error is returned (default 10:
    /// about 9 s of retrying, so a store hiccup does not close a database).
    pub put_attempts: u32,
    /// Wait before the first retry, doubled for each further one up to
    /// 2 s (default 50 ms).
    pub retry_backoff: Duration,
    /// Capacity of the block cache (default 128 MiB).
    pub block_cache_bytes: u64,
    /// Capacity of the index and filter cache (default 256 MiB).
    pub meta_cache_bytes: u64,
}

impl Default for TableStoreOptions {
    fn default() -> Self {
        TableStoreOptions {
            sst: SstOptions::default(),
            open_read_bytes: 64 << 10,
            multipart_threshold_bytes: 32 << 20,
            multipart_part_bytes: 8 << 20,
            put_attempts: 10,
            retry_backoff: Duration::from_millis(50),
            block_cache_bytes: DEFAULT_BLOCK_CACHE_BYTES,
            meta_cache_bytes: DEFAULT_META_CACHE_BYTES,
        }
    }
}

/// The longest wait between two attempts of a table upload.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(2);

/// A table just written: where it is, how big, what it holds.
#[derive(Clone, Debug)]
pub struct WrittenTable {
    /// Its id.
    pub id: TableId,
    /// Its size in bytes.
    pub size: u64,
    /// Its metadata block.
    pub meta: TableMeta,
    /// Whether it replaced a fenced writer's WAL table of a lower epoch
    /// (`WalConflict::ReplaceOlderEpoch`). A writer paused since its last
    /// epoch confirmation may have replaced a table that newer writers
    /// already replayed past: it must read the manifest again, after the
    /// replacement landed, before it acknowledges anything in this table.
    pub replaced: bool,
}

/// A WAL table as read back: its stamp and its rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalTable {
    /// `WalStamp::default()` for a table of format version 1.
    pub stamp: WalStamp,
    /// Its rows, in table order.
    pub rows: Vec<Row>,
    /// Its range tombstones, in sequence order.
    pub range_tombstones: Vec<RangeTombstone>,
}

/// What a WAL write does when its id is already taken by someone else's
/// table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalConflict {
    /// Fail with [`StoreError::Fenced`].
    Fenced,
    /// Replace a table of a lower writer epoch (a fenced writer's upload
    /// that landed above the new writer's fence: never acknowledged, since
    /// its writer could not write the fence below it); fail with
    /// [`StoreError::Fenced`] for any other table.
    ReplaceOlderEpoch,
}

/// Reads and writes the tables of one database (everything under `root`).
#[derive(Clone, Debug)]
pub struct TableStore {
    inner: Arc<StoreInner>,
}

#[derive(Debug)]
struct StoreInner {
    store: Arc<dyn Store>,
    /// Where WAL tables are, when not in `store`.
    wal_store: Option<Arc<dyn Store>>,
    root: Path,
    runtime: Runtime,
    options: TableStoreOptions,
    caches: TableCaches,
    in_flight: InFlight,
    pace: Pace,
    /// Sorted tables of other databases (a clone's sources), by id, with
    /// the root each is under.
    foreign: ArcSwap<HashMap<Ulid, Path>>,
}

impl TableStore {
    /// The tables of the database under `root` in `store`.
    pub fn new(store: Arc<dyn Store>, root: Path, runtime: Runtime, options: TableStoreOptions) -> Self {
        TableStore::with_wal_store(store, None, root, runtime, options)
    }

    /// The tables of the database under `root`: sorted tables in `store`,
    /// WAL tables in `wal_store` (at the same root) if given, else in
    /// `store` too.
    pub fn with_wal_store(
        store: Arc<dyn Store>,
        wal_store: Option<Arc<dyn Store>>,
        root: Path,
        runtime: Runtime,
        options: TableStoreOptions,
    ) -> Self {
        let caches = TableCaches::new(options.block_cache_bytes, options.meta_cache_bytes);
        TableStore {
            inner: Arc::new(StoreInner {
                store,
                wal_store,
                root,
                runtime,
                options,
                caches,
                in_flight: InFlight::default(),
                pace: Pace::default(),
                foreign: ArcSwap::default(),
            }),
        }
    }

    /// The store they are in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Whether WAL tables are in a store of their own.
    pub fn has_wal_store(&self) -> bool {
        self.inner.wal_store.is_some()
    }

    /// The store of their own WAL tables are in, if they are.
    pub fn wal_store(&self) -> Option<&Arc<dyn Store>> {
        self.inner.wal_store.as_ref()
    }

    /// The store table `id` is in.
    fn store_for(&self, id: TableId) -> &Arc<dyn Store> {
        match (id, &self.inner.wal_store) {
            (TableId::Wal(_), Some(wal_store)) => wal_store,
            _ => &self.inner.store,
        }
    }

    /// The database root.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// How tables are written and read.
    pub fn options(&self) -> &TableStoreOptions {
        &self.inner.options
    }

    /// Sorted tables written through this store that no manifest lists
    /// yet (see [`InFlight`]).
    pub fn in_flight(&self) -> &InFlight {
        &self.inner.in_flight
    }

    /// The block and metadata caches.
    pub fn caches(&self) -> &TableCaches {
        &self.inner.caches
    }

    /// The foreground activity background work on this store yields to.
    pub fn pace(&self) -> &Pace {
        &self.inner.pace
    }

    /// The runtime whose clock times retries.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The object of table `id`: under the root of the database it
    /// belongs to ([`TableStore::add_foreign`]), by default this one.
    pub fn path(&self, id: TableId) -> Path {
        if let TableId::Compacted(ulid) = id {
            let foreign = self.inner.foreign.load();
            if let Some(root) = foreign.get(&ulid) {
                return id.path(root);
            }
        }
        id.path(&self.inner.root)
    }

    /// Records that the sorted tables `ids` belong to the database under
    /// `root` in the same store (a clone lists its source's tables): they
    /// are read from there and never deleted through this store.
    pub fn add_foreign(&self, root: &Path, ids: impl IntoIterator<Item = Ulid>) {
        let mut ids = ids.into_iter().peekable();
        if ids.peek().is_none() {
            return;
        }
        let mut foreign = HashMap::clone(&self.inner.foreign.load());
        foreign.extend(ids.map(|id| (id, root.clone())));
        self.inner.foreign.store(Arc::new(foreign));
    }

    /// Whether sorted table `id` belongs to another database.
    pub fn is_foreign(&self, id: Ulid) -> bool {
        self.inner.foreign.load().contains_key(&id)
    }

    /// A fresh id for a sorted table, from the runtime's clock and RNG.
    pub fn new_sorted_id(&self) -> TableId {
        TableId::Compacted(Ulid::generate(&self.inner.runtime))
    }

    /// A builder for a table of `kind`, stamped with a fresh put id.
    pub fn builder(&self, kind: TableKind) -> SstBuilder {
        let mut builder = SstBuilder::new(kind, self.inner.options.sst.clone());
        builder.set_put_id(Ulid::generate(&self.inner.runtime).0);
        builder
    }

    /// Writes WAL table `wal_id` holding `rows` (in sequence order). Fails
    /// with [`StoreError::Fenced`] if another writer holds that id.
    pub async fn write_wal<'a>(&self, wal_id: u64, rows: impl IntoIterator<Item = &'a Row>) -> Result<WrittenTable> {
        self.write_wal_stamped(wal_id, WalStamp::default(), rows, &[], WalConflict::Fenced)
            .await
    }

    /// Writes WAL table `wal_id` with `stamp`, `rows` and `range_tombstones`;
    /// a conflict is handled as `conflict` says.
    pub async fn write_wal_stamped<'a>(
        &self,
        wal_id: u64,
        stamp: WalStamp,
        rows: impl IntoIterator<Item = &'a Row>,
        range_tombstones: &[RangeTombstone],
        conflict: WalConflict,
    ) -> Result<WrittenTable> {
        let mut builder = self.builder(TableKind::Wal);
        builder.set_wal_stamp(stamp);
        for row in rows {
            builder.add(row);
        }
        for tombstone in range_tombstones {
            builder.add_range_tombstone(tombstone.clone());
        }
        let (bytes, meta) = builder.finish_with_meta();
        self.put_finished(TableId::Wal(wal_id), bytes, meta, conflict).await
    }

    /// Writes a finished sorted table under a fresh id, which stays in
    /// [`TableStore::in_flight`] until the caller removes it (once a
    /// manifest lists it, or it is known to be garbage).
    pub async fn write_sorted(&self, builder: SstBuilder) -> Result<WrittenTable> {
        let id = self.new_sorted_id();
        if let TableId::Compacted(ulid) = id {
            self.inner.in_flight.add(ulid);
        }
        self.write(id, builder).await
    }

    /// Writes `builder`'s table as `id`.
    pub async fn write(&self, id: TableId, builder: SstBuilder) -> Result<WrittenTable> {
        let (bytes, meta) = builder.finish_with_meta();
        self.put_finished(id, bytes, meta, WalConflict::Fenced).await
    }

    /// Uploads a finished table as `id`; a WAL id taken by someone else's
    /// table is handled as `conflict` says.
    async fn put_finished(
        &self,
        id: TableId,
        bytes: Bytes,
        meta: TableMeta,
        conflict: WalConflict,
    ) -> Result<WrittenTable> {
        let size = bytes.len() as u64;
        let path = self.path(id);
        let mut replaced = false;
        match (self.put_table(id, &path, bytes.clone()).await, id) {
            (Err(StoreError::Fenced { path }), TableId::Wal(wal_id)) if conflict == WalConflict::ReplaceOlderEpoch => {
                let (theirs, ours) = (
                    self.read_wal_table(wal_id).await?.stamp,
                    meta.wal_stamp.unwrap_or_default(),
                );
                if theirs.writer_epoch >= ours.writer_epoch {
                    return Err(StoreError::Fenced { path });
                }
                tracing::info!(%path, theirs = theirs.writer_epoch, ours = ours.writer_epoch,
                    "replacing a fenced writer's WAL table above our fence");
                let store = self.store_for(id);
                self.with_retries(&path, || store.put(&path, bytes.clone(), PutMode::Overwrite))
                    .await?;
                replaced = true;
            }
            (outcome, _) => outcome?,
        }
        if let TableId::Compacted(_) = id {
            self.seed_written(id, &bytes, &meta);
        }
        Ok(WrittenTable {
            id,
            size,
            meta,
            replaced,
        })
    }

    /// Uploads `bytes` with retries: a conditional create, or a multipart
    /// upload for a large sorted table (its ULID name cannot collide).
    async fn put_table(&self, id: TableId, path: &Path, bytes: Bytes) -> Result<()> {
        let options = &self.inner.options;
        let multipart = matches!(id, TableId::Compacted(_)) && bytes.len() >= options.multipart_threshold_bytes;
        let store = self.store_for(id);
        let created = self
            .with_retries(path, || async {
                if multipart {
                    let parts = split_parts(&bytes, options.multipart_part_bytes);
                    store.put_multipart(path, parts).await.map(|()| Created::Written)
                } else {
                    // The put id in the metadata makes our bytes unique.
                    create_once(&**store, path, bytes.clone()).await
                }
            })
            .await?;
        match created {
            Created::Written => Ok(()),
            Created::Conflict => Err(match id {
                TableId::Wal(_) => StoreError::Fenced { path: path.clone() },
                TableId::Compacted(_) => StoreError::AlreadyExists { path: path.clone() },
            }),
        }
    }

    /// Runs `request` (an upload, a WAL table read, a listing) again after
    /// each retryable error, with doubling pauses, for up to `put_attempts`
    /// attempts.
    async fn with_retries<T, Fut>(&self, path: &Path, mut request: impl FnMut() -> Fut) -> Result<T>
    where
        Fut: std::future::Future<Output = Result<T>>,
    {
        let options = &self.inner.options;
        let mut backoff = options.retry_backoff;
        let mut attempt = 1;
        loop {
            match request().await {
                Err(error) if error.is_retryable() && attempt < options.put_attempts => {
                    tracing::debug!(%path, attempt, %error, "retrying a table request");
                    self.inner.runtime.sleep(backoff).await;
                    backoff = backoff.saturating_mul(2).min(MAX_RETRY_BACKOFF);
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// Every row of WAL table `wal_id`, in sequence order (one read).
    pub async fn read_wal(&self, wal_id: u64) -> Result<Vec<Row>> {
        Ok(self.read_wal_table(wal_id).await?.rows)
    }

    /// WAL table `wal_id`: its stamp and rows (one read).
    pub async fn read_wal_table(&self, wal_id: u64) -> Result<WalTable> {
        let path = self.path(TableId::Wal(wal_id));
        // Recovery reads every WAL table above the replay point: one failed
        // request must not fail the open.
        let fetched = self
            .with_retries(&path, || {
                self.store_for(TableId::Wal(wal_id)).get(&path, ByteRange::All)
            })
            .await?;
        let table = SstBytes::open(fetched.bytes).map_err(|error| StoreError::format(&path, error))?;
        if table.footer.kind != TableKind::Wal {
            return Err(StoreError::Corruption {
                path,
                part: "footer",
                detail: "a sorted table where a WAL table belongs".into(),
            });
        }
        let rows = table
            .wal_rows_from(0)
            .collect::<std::result::Result<_, _>>()
            .map_err(|error| StoreError::format(&path, error))?;
        Ok(WalTable {
            stamp: table.meta.wal_stamp.unwrap_or_default(),
            rows,
            range_tombstones: table.meta.range_tombstones,
        })
    }

    /// Moves WAL table `wal_id` to `lost/wal/<id:020>-<label>.sst` (a copy,
    /// then the original removed: its bytes are never just deleted), each
    /// step retried like any table request. Returns where it went.
    pub async fn move_wal_aside(&self, wal_id: u64, label: &str) -> Result<Path> {
        let id = TableId::Wal(wal_id);
        let from = self.path(id);
        let to = child(&self.inner.root, &format!("lost/{WAL_DIR}/{wal_id:020}-{label}.sst"));
        let store = self.store_for(id);
        let fetched = self.with_retries(&from, || store.get(&from, ByteRange::All)).await?;
        self.with_retries(&to, || store.put(&to, fetched.bytes.clone(), PutMode::Overwrite))
            .await?;
        self.inner.caches.forget(id);
        self.with_retries(&from, || store.delete(&from)).await?;
        Ok(to)
    }

    /// The WAL table ids present, ascending.
    pub async fn list_wal_ids(&self) -> Result<Vec<u64>> {
        Ok(self
            .list_dir(WAL_DIR)
            .await?
            .into_iter()
            .filter_map(|(id, _)| match id {
                TableId::Wal(id) => Some(id),
                TableId::Compacted(_) => None,
            })
            .collect())
    }

    /// The WAL tables present, ascending, with size and age.
    pub async fn list_wal(&self) -> Result<Vec<(u64, ObjectInfo)>> {
        Ok(self
            .list_dir(WAL_DIR)
            .await?
            .into_iter()
            .filter_map(|(id, info)| match id {
                TableId::Wal(id) => Some((id, info)),
                TableId::Compacted(_) => None,
            })
            .collect())
    }

    /// The sorted tables present, by id, with size and age.
    pub async fn list_sorted(&self) -> Result<Vec<(TableId, ObjectInfo)>> {
        self.list_dir(COMPACTED_DIR).await
    }

    async fn list_dir(&self, dir: &str) -> Result<Vec<(TableId, ObjectInfo)>> {
        let prefix = child(&self.inner.root, dir);
        // Listing a kind of table is a request to where that kind is.
        let store = if dir == WAL_DIR {
            self.store_for(TableId::Wal(0))
        } else {
            &self.inner.store
        };
        let objects = self.with_retries(&prefix, || store.list(&prefix)).await?;
        Ok(objects
            .into_iter()
            .filter_map(|info| TableId::parse(&self.inner.root, &info.path).map(|id| (id, info)))
            .collect())
    }

    /// Deletes a table and forgets its cached metadata. A table of another
    /// database ([`TableStore::add_foreign`]) is refused: it is not ours.
    pub async fn delete(&self, id: TableId) -> Result<()> {
        if let TableId::Compacted(ulid) = id
            && self.is_foreign(ulid)
        {
            return Err(StoreError::InvalidRequest {
                op: Op::Delete,
                path: self.path(id),
                detail: format!("table {ulid} belongs to the database this one was cloned from"),
            });
        }
        self.inner.caches.forget(id);
        self.store_for(id).delete(&self.path(id)).await
    }

    /// Opens table `id` (of `size` bytes, when the caller knows): footer
    /// and metadata, index and filter. Nothing is read when the metadata
    /// cache holds them (a table this store wrote, or opened before);
    /// otherwise one read of the table's end, and one more only when the
    /// index and filter do not fit in it.
    pub async fn open(&self, id: TableId, size: Option<u64>) -> Result<TableReader> {
        let path = self.path(id);
        let caches = &self.inner.caches;
        if let Some(MetaPart::Opened(opened)) = caches.meta(id, MetaKind::Opened)
            && size.is_none_or(|size| size == opened.size)
        {
            return Ok(self.reader(id, path, &opened));
        }
        let store = self.store_for(id);
        let want = self.inner.options.open_read_bytes.max(FOOTER_SIZE as u64);
        let range = match size {
            Some(size) if size > want => ByteRange::Range(size - want..size),
            Some(_) | None => ByteRange::Suffix(want),
        };
        let tail = store.get(&path, range).await?;
        if let Some(size) = size
            && size != tail.object_size
        {
            return Err(StoreError::Corruption {
                path,
                part: "object",
                detail: format!("expected {size} bytes, the object has {}", tail.object_size),
            });
        }
        let footer = Footer::decode(&tail.bytes, tail.object_size).map_err(|error| StoreError::format(&path, error))?;
        let meta_bytes = match slice_of(&tail, footer.meta) {
            Some(bytes) => bytes,
            None => read_extent(store, &path, footer.meta).await?,
        };
        let meta = TableMeta::decode(&meta_bytes, footer.meta.offset, footer.version)
            .map_err(|error| StoreError::format(&path, error))?;
        let opened = Opened {
            size: tail.object_size,
            footer,
            meta,
        };
        let reader = self.reader(id, path, &opened);
        // The index and filter lie just before the metadata: what the
        // opening read missed of them comes in one more read (unless both
        // are cached), so a table opens in at most two.
        let cached = |kind| caches.meta(id, kind).is_some();
        let parts = match opened.meta.index.offset.checked_sub(tail.offset) {
            Some(_) => tail,
            None if cached(MetaKind::Index) && (opened.meta.filter.is_none() || cached(MetaKind::Filter)) => tail,
            None => {
                let missed = Extent {
                    offset: opened.meta.index.offset,
                    len: tail.offset - opened.meta.index.offset,
                };
                let head = read_extent(store, reader.path(), missed).await?;
                let mut joined = Vec::with_capacity(head.len() + tail.bytes.len());
                joined.extend_from_slice(&head);
                joined.extend_from_slice(&tail.bytes);
                Fetched {
                    bytes: Bytes::from(joined),
                    offset: opened.meta.index.offset,
                    object_size: tail.object_size,
                }
            }
        };
        reader.seed_from(&parts)?;
        caches.insert_meta(id, MetaPart::Opened(Arc::new(opened)));
        Ok(reader)
    }

    fn reader(&self, id: TableId, path: Path, opened: &Opened) -> TableReader {
        TableReader::new(id, path, opened, self.store_for(id).clone(), self.inner.caches.clone())
    }

    /// Puts the metadata of sorted table `id`, just written as `bytes`
    /// with `meta`, into the cache, so that reading it (a new L0 table, a
    /// compaction's output) starts with no metadata reads. A table that
    /// does not decode is left alone: the first read reports it.
    fn seed_written(&self, id: TableId, bytes: &Bytes, meta: &TableMeta) {
        let Ok(footer) = Footer::decode(bytes, bytes.len() as u64) else {
            return;
        };
        let opened = Opened {
            size: bytes.len() as u64,
            footer,
            meta: meta.clone(),
        };
        let whole = Fetched {
            bytes: bytes.clone(),
            offset: 0,
            object_size: opened.size,
        };
        let reader = self.reader(id, self.path(id), &opened);
        if reader.seed_from(&whole).is_ok() {
            self.inner.caches.insert_meta(id, MetaPart::Opened(Arc::new(opened)));
        }
    }
}

fn split_parts(bytes: &Bytes, part_bytes: usize) -> Vec<Bytes> {
    let part_bytes = part_bytes.max(1);
    (0..bytes.len())
        .step_by(part_bytes)
        .map(|start| bytes.slice(start..(start + part_bytes).min(bytes.len())))
        .collect()
}
