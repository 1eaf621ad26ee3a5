//! The table store: writes tables to object storage and reads them back
//! through the caches.
//!
//! Owns: table object names, conditional creates with retry (and telling our
//! own earlier attempt from another writer's object), multipart upload of
//! large tables, opening a table in at most two reads, lazy index and filter
//! loads, point lookups, and scans that read several blocks per request.
//! Does not own: which tables exist (the manifest) or when they are deleted
//! (the garbage collector).
//!
//! Invariants: a table object is written once and never changes; every
//! error names the object; a conflict on a WAL id is [`StoreError::Fenced`]
//! only when the object there is not byte-for-byte the one we tried to write.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use talus_actors::Runtime;

use super::cache::{DEFAULT_BLOCK_CACHE_BYTES, DEFAULT_META_CACHE_BYTES, MetaKind, MetaPart, Opened, TableCaches};
use super::error::StoreError;
use super::in_flight::InFlight;
use super::object::PutMode;
use super::object::{ByteRange, Created, Fetched, ObjectInfo, Store, create_once};
use super::pace::Pace;
use super::paths::{COMPACTED_DIR, TableId, Ulid, WAL_DIR, child};
use crate::format::Row;
use crate::format::block::{Block, BlockIter};
use crate::format::bloom::BloomFilter;
use crate::format::sst::{
    FOOTER_SIZE, Footer, Handle, Index, SstBuilder, SstBytes, SstOptions, TableKind, TableMeta, WalStamp,
};

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
    /// Data blocks a scan fetches per request (default 8).
    pub read_ahead_blocks: usize,
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
            read_ahead_blocks: 8,
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
    pub id: TableId,
    pub size: u64,
    pub meta: TableMeta,
}

/// A WAL table as read back: its stamp and its rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalTable {
    /// `WalStamp::default()` for a table of format version 1.
    pub stamp: WalStamp,
    pub rows: Vec<Row>,
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
    root: Path,
    runtime: Runtime,
    options: TableStoreOptions,
    caches: TableCaches,
    in_flight: InFlight,
    pace: Pace,
}

impl TableStore {
    pub fn new(store: Arc<dyn Store>, root: Path, runtime: Runtime, options: TableStoreOptions) -> Self {
        let caches = TableCaches::new(options.block_cache_bytes, options.meta_cache_bytes);
        TableStore {
            inner: Arc::new(StoreInner {
                store,
                root,
                runtime,
                options,
                caches,
                in_flight: InFlight::default(),
                pace: Pace::default(),
            }),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    pub fn options(&self) -> &TableStoreOptions {
        &self.inner.options
    }

    /// Sorted tables written through this store that no manifest lists
    /// yet (see [`InFlight`]).
    pub fn in_flight(&self) -> &InFlight {
        &self.inner.in_flight
    }

    pub fn caches(&self) -> &TableCaches {
        &self.inner.caches
    }

    /// The foreground activity background work on this store yields to.
    pub fn pace(&self) -> &Pace {
        &self.inner.pace
    }

    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    pub fn path(&self, id: TableId) -> Path {
        id.path(&self.inner.root)
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
        self.write_wal_stamped(wal_id, WalStamp::default(), rows, WalConflict::Fenced)
            .await
    }

    /// Writes WAL table `wal_id` with `stamp`; a conflict is handled as
    /// `conflict` says.
    pub async fn write_wal_stamped<'a>(
        &self,
        wal_id: u64,
        stamp: WalStamp,
        rows: impl IntoIterator<Item = &'a Row>,
        conflict: WalConflict,
    ) -> Result<WrittenTable> {
        let mut builder = self.builder(TableKind::Wal);
        builder.set_wal_stamp(stamp);
        for row in rows {
            builder.add(row);
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
                self.with_retries(&path, || self.inner.store.put(&path, bytes.clone(), PutMode::Overwrite))
                    .await?;
            }
            (outcome, _) => outcome?,
        }
        if let TableId::Compacted(_) = id {
            self.seed_written(id, &bytes, &meta);
        }
        Ok(WrittenTable { id, size, meta })
    }

    /// Uploads `bytes` with retries: a conditional create, or a multipart
    /// upload for a large sorted table (its ULID name cannot collide).
    async fn put_table(&self, id: TableId, path: &Path, bytes: Bytes) -> Result<()> {
        let options = &self.inner.options;
        let multipart = matches!(id, TableId::Compacted(_)) && bytes.len() >= options.multipart_threshold_bytes;
        let created = self
            .with_retries(path, || async {
                if multipart {
                    let parts = split_parts(&bytes, options.multipart_part_bytes);
                    self.inner
                        .store
                        .put_multipart(path, parts)
                        .await
                        .map(|()| Created::Written)
                } else {
                    // The put id in the metadata makes our bytes unique.
                    create_once(&*self.inner.store, path, bytes.clone()).await
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
            .with_retries(&path, || self.inner.store.get(&path, ByteRange::All))
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
        })
    }

    /// Moves WAL table `wal_id` to `lost/wal/<id:020>-<label>.sst` (a copy,
    /// then the original removed: its bytes are never just deleted), each
    /// step retried like any table request. Returns where it went.
    pub async fn move_wal_aside(&self, wal_id: u64, label: &str) -> Result<Path> {
        let id = TableId::Wal(wal_id);
        let from = self.path(id);
        let to = child(&self.inner.root, &format!("lost/{WAL_DIR}/{wal_id:020}-{label}.sst"));
        let store = &self.inner.store;
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
        let objects = self.with_retries(&prefix, || self.inner.store.list(&prefix)).await?;
        Ok(objects
            .into_iter()
            .filter_map(|info| TableId::parse(&self.inner.root, &info.path).map(|id| (id, info)))
            .collect())
    }

    /// Deletes a table and forgets its cached metadata.
    pub async fn delete(&self, id: TableId) -> Result<()> {
        self.inner.caches.forget(id);
        self.inner.store.delete(&self.path(id)).await
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
        let store = &self.inner.store;
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
            None => read_handle(store, &path, footer.meta).await?,
        };
        let meta =
            TableMeta::decode(&meta_bytes, footer.meta.offset).map_err(|error| StoreError::format(&path, error))?;
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
                let missed = Handle {
                    offset: opened.meta.index.offset,
                    len: tail.offset - opened.meta.index.offset,
                };
                let head = read_handle(store, reader.path(), missed).await?;
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
        TableReader {
            inner: Arc::new(ReaderInner {
                id,
                path,
                size: opened.size,
                footer: opened.footer,
                meta: opened.meta.clone(),
                store: self.inner.store.clone(),
                caches: self.inner.caches.clone(),
                read_ahead_blocks: self.inner.options.read_ahead_blocks,
            }),
        }
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

/// The bytes of `handle` if `fetched` holds all of them.
fn slice_of(fetched: &Fetched, handle: Handle) -> Option<Bytes> {
    let start = handle.offset.checked_sub(fetched.offset)?;
    let end = start.checked_add(handle.len)?;
    (end <= fetched.bytes.len() as u64).then(|| fetched.bytes.slice(start as usize..end as usize))
}

/// Reads exactly the bytes of `handle`.
async fn read_handle(store: &Arc<dyn Store>, path: &Path, handle: Handle) -> Result<Bytes> {
    if handle.len == 0 {
        return Ok(Bytes::new());
    }
    let end = handle.offset.saturating_add(handle.len);
    let fetched = store.get(path, ByteRange::Range(handle.offset..end)).await?;
    if fetched.bytes.len() as u64 != handle.len {
        return Err(StoreError::Corruption {
            path: path.clone(),
            part: "object",
            detail: format!(
                "asked for {} bytes at {}, got {}",
                handle.len,
                handle.offset,
                fetched.bytes.len()
            ),
        });
    }
    Ok(fetched.bytes)
}

/// An open table. Cheap to clone; readers on any thread share it.
#[derive(Clone, Debug)]
pub struct TableReader {
    inner: Arc<ReaderInner>,
}

#[derive(Debug)]
struct ReaderInner {
    id: TableId,
    path: Path,
    size: u64,
    footer: Footer,
    meta: TableMeta,
    store: Arc<dyn Store>,
    caches: TableCaches,
    read_ahead_blocks: usize,
}

/// How a scan reads.
#[derive(Clone, Copy, Debug)]
pub struct ScanOptions {
    /// Blocks fetched per request (at least 1).
    pub read_ahead_blocks: usize,
    /// Whether blocks read by the scan enter the block cache (off by
    /// default, so one long scan does not evict the hot set).
    pub fill_cache: bool,
}

impl TableReader {
    pub fn id(&self) -> TableId {
        self.inner.id
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn size(&self) -> u64 {
        self.inner.size
    }

    pub fn kind(&self) -> TableKind {
        self.inner.footer.kind
    }

    pub fn meta(&self) -> &TableMeta {
        &self.inner.meta
    }

    /// The default scan options of this table store.
    pub fn scan_options(&self) -> ScanOptions {
        ScanOptions {
            read_ahead_blocks: self.inner.read_ahead_blocks,
            fill_cache: false,
        }
    }

    fn format_error(&self, error: crate::format::FormatError) -> StoreError {
        StoreError::format(&self.inner.path, error)
    }

    /// Puts the index and filter into the cache if `tail` covers them.
    fn seed_from(&self, tail: &Fetched) -> Result<()> {
        let meta = &self.inner.meta;
        if let Some(bytes) = slice_of(tail, meta.index) {
            self.decode_index(&bytes)?;
        }
        if let Some(bytes) = meta.filter.and_then(|filter| slice_of(tail, filter)) {
            // A copy: a slice would keep the whole opening read alive.
            self.decode_filter(Bytes::copy_from_slice(&bytes))?;
        }
        Ok(())
    }

    fn decode_index(&self, bytes: &[u8]) -> Result<Arc<Index>> {
        let index = Arc::new(Index::decode(bytes, self.inner.meta.index.offset).map_err(|e| self.format_error(e))?);
        self.inner
            .caches
            .insert_meta(self.inner.id, MetaPart::Index(index.clone()));
        Ok(index)
    }

    fn decode_filter(&self, bytes: Bytes) -> Result<Arc<BloomFilter>> {
        let filter =
            Arc::new(BloomFilter::decode(bytes, self.inner.footer.filter_layout()).map_err(|e| self.format_error(e))?);
        self.inner
            .caches
            .insert_meta(self.inner.id, MetaPart::Filter(filter.clone()));
        Ok(filter)
    }

    /// The block index, from the cache or one read.
    pub async fn index(&self) -> Result<Arc<Index>> {
        if let Some(MetaPart::Index(index)) = self.inner.caches.meta(self.inner.id, MetaKind::Index) {
            return Ok(index);
        }
        let bytes = read_handle(&self.inner.store, &self.inner.path, self.inner.meta.index).await?;
        self.decode_index(&bytes)
    }

    /// The bloom filter (`None` if the table has none), from the cache or
    /// one read.
    pub async fn filter(&self) -> Result<Option<Arc<BloomFilter>>> {
        let Some(handle) = self.inner.meta.filter else {
            return Ok(None);
        };
        if let Some(MetaPart::Filter(filter)) = self.inner.caches.meta(self.inner.id, MetaKind::Filter) {
            return Ok(Some(filter));
        }
        let bytes = read_handle(&self.inner.store, &self.inner.path, handle).await?;
        self.decode_filter(bytes).map(Some)
    }

    /// False only if the table certainly has no row for `key`.
    pub async fn may_contain(&self, key: &[u8]) -> Result<bool> {
        let stats = &self.inner.meta.stats;
        if self.inner.meta.stats.rows == 0 || key < stats.first_key.as_ref() || key > stats.last_key.as_ref() {
            return Ok(false);
        }
        Ok(self.filter().await?.is_none_or(|filter| filter.may_contain(key)))
    }

    /// The newest version of `key` with sequence number `<= max_seq`.
    pub async fn get(&self, key: &[u8], max_seq: u64) -> Result<Option<Row>> {
        if !self.may_contain(key).await? {
            return Ok(None);
        }
        let key = Bytes::copy_from_slice(key);
        let options = ScanOptions {
            read_ahead_blocks: 1,
            fill_cache: true,
        };
        let mut rows = self.scan((Bound::Included(key.clone()), Bound::Included(key)), options);
        while let Some(row) = rows.next().await? {
            if row.seq <= max_seq {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }

    /// Rows with keys in `range`, in table order.
    pub fn scan(&self, range: (Bound<Bytes>, Bound<Bytes>), options: ScanOptions) -> TableScan {
        TableScan {
            reader: self.clone(),
            index: None,
            start: range.0,
            end: range.1,
            options,
            next_block: None,
            pending: VecDeque::new(),
            current: None,
            done: false,
        }
    }

    /// Loads the blocks `first..` (up to `count` of them, stopping at the
    /// first cached one after the first) with as few reads as possible.
    async fn load_blocks(&self, index: &Index, first: usize, count: usize, fill_cache: bool) -> Result<Vec<Block>> {
        let id = self.inner.id;
        let caches = &self.inner.caches;
        if let Some(block) = caches.block(id, first as u64) {
            return Ok(vec![block]);
        }
        let handle_of = |number: usize| {
            index.handle(number).ok_or_else(|| {
                self.format_error(crate::format::FormatError::corrupt(
                    "index",
                    format!("no block {number}"),
                ))
            })
        };
        let mut handles = vec![handle_of(first)?];
        while handles.len() < count.max(1) {
            let number = first + handles.len();
            let Some(next) = index.handle(number) else { break };
            let previous = handles[handles.len() - 1];
            if next.offset != previous.offset + previous.len || caches.block(id, number as u64).is_some() {
                break;
            }
            handles.push(next);
        }
        let run = Handle {
            offset: handles[0].offset,
            len: handles.iter().map(|handle| handle.len).sum(),
        };
        let bytes = read_handle(&self.inner.store, &self.inner.path, run).await?;
        let mut blocks = Vec::with_capacity(handles.len());
        let mut at = 0;
        for (number, handle) in (first..).zip(&handles) {
            // The handles are consecutive, so each block follows the last.
            let end = at + handle.len as usize;
            let block = Block::decode(bytes.slice(at..end)).map_err(|e| self.format_error(e))?;
            at = end;
            if fill_cache {
                caches.insert_block(id, number as u64, block.clone());
            }
            blocks.push(block);
        }
        Ok(blocks)
    }
}

/// A forward scan over one table. `next` reads blocks as it goes,
/// `read_ahead_blocks` per request.
#[derive(Debug)]
pub struct TableScan {
    reader: TableReader,
    index: Option<Arc<Index>>,
    start: Bound<Bytes>,
    end: Bound<Bytes>,
    options: ScanOptions,
    /// The next block to load; `None` until positioned.
    next_block: Option<usize>,
    pending: VecDeque<Block>,
    current: Option<BlockIter>,
    done: bool,
}

impl TableScan {
    /// Moves the scan to the first row with key `>= key` (keeping the end
    /// bound). A scan may seek forwards or backwards.
    pub fn seek(&mut self, key: &[u8]) {
        self.start = Bound::Included(Bytes::copy_from_slice(key));
        self.next_block = None;
        self.pending.clear();
        self.current = None;
        self.done = false;
    }

    fn before_start(&self, key: &[u8]) -> bool {
        match &self.start {
            Bound::Included(start) => key < start.as_ref(),
            Bound::Excluded(start) => key <= start.as_ref(),
            Bound::Unbounded => false,
        }
    }

    fn after_end(&self, key: &[u8]) -> bool {
        match &self.end {
            Bound::Included(end) => key > end.as_ref(),
            Bound::Excluded(end) => key >= end.as_ref(),
            Bound::Unbounded => false,
        }
    }

    /// The next row in range, or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Row>> {
        loop {
            if let Some(rows) = &mut self.current {
                match rows.next() {
                    Some(Ok(row)) if self.before_start(&row.key) => continue,
                    Some(Ok(row)) if self.after_end(&row.key) => {
                        self.finish();
                        return Ok(None);
                    }
                    Some(Ok(row)) => return Ok(Some(row)),
                    Some(Err(error)) => {
                        self.finish();
                        return Err(self.reader.format_error(error));
                    }
                    None => self.current = None,
                }
            }
            if self.done {
                return Ok(None);
            }
            if let Some(block) = self.pending.pop_front() {
                let mut rows = block.iter();
                if let Bound::Included(start) | Bound::Excluded(start) = &self.start
                    && let Err(error) = rows.seek(start)
                {
                    self.finish();
                    return Err(self.reader.format_error(error));
                }
                self.current = Some(rows);
                continue;
            }
            if let Err(error) = self.load_more().await {
                self.finish();
                return Err(error);
            }
        }
    }

    fn finish(&mut self) {
        self.done = true;
        self.current = None;
        self.pending.clear();
    }

    async fn load_more(&mut self) -> Result<()> {
        let index = match &self.index {
            Some(index) => index.clone(),
            None => {
                let index = self.reader.index().await?;
                self.index = Some(index.clone());
                index
            }
        };
        let next = match self.next_block {
            Some(next) => next,
            None => match &self.start {
                Bound::Included(start) | Bound::Excluded(start) => index.seek_block(start),
                Bound::Unbounded => 0,
            },
        };
        if next >= index.len() {
            self.finish();
            return Ok(());
        }
        let blocks = self
            .reader
            .load_blocks(&index, next, self.options.read_ahead_blocks, self.options.fill_cache)
            .await?;
        self.next_block = Some(next + blocks.len());
        self.pending.extend(blocks);
        Ok(())
    }
}
