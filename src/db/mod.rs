//! The public database: [`Db`], its builder and options, write batches and
//! snapshots. A `Db` is a handle on a set of actors (WAL writer, uploader
//! pool, L0 manifest writer) plus the read view they publish.

pub mod batch;
pub mod options;
pub mod reader;
pub mod stats;

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures::Stream;
use object_store::path::Path;
use talus_actors::{Capacity, Runtime, System};

pub use batch::WriteBatch;
pub use options::{DbOptions, Durability, ReadOptions, ScanOptions, WriteOptions};
pub use reader::DbReader;
pub use stats::DbStats;

use stats::Counters;

use crate::error::Error;
use crate::flush::l0_writer::{L0Msg, L0Writer};
use crate::flush::uploader::Uploader;
use crate::format::RowValue;
use crate::manifest::{
    Checkpoint, CheckpointOptions, Fenced, IfMissing, Manifest, Role, VersionedOptions, VersionedStore,
};
use crate::read::merge::{ScanBounds, merge_sources};
use crate::read::{KeyValue, ReadView, Seqs, sources_for};
use crate::store::{Store, TableStore, TimeoutStore};
use crate::wal::replay::recover;
use crate::wal::writer::{PendingWrite, WalMsg, WalStart, WalWriter};

const WAL_WRITER: &str = "wal_writer";
const UPLOADER: &str = "uploader";
const L0_WRITER: &str = "l0_writer";

/// An open database. Cheap to clone; every clone is the same database.
#[derive(Clone, Debug)]
pub struct Db {
    inner: Arc<DbInner>,
}

struct DbInner {
    system: System<Error>,
    wal: talus_actors::Addr<WalMsg, Error>,
    l0: talus_actors::Addr<L0Msg, Error>,
    view: Arc<ArcSwap<ReadView>>,
    seqs: Arc<Seqs>,
    counters: Arc<Counters>,
    tables: TableStore,
}

impl std::fmt::Debug for DbInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("root", self.tables.root())
            .field("visible_seq", &self.seqs.visible())
            .field("durable_seq", &self.seqs.durable())
            .finish_non_exhaustive()
    }
}

/// A builder's settings made ready to open with.
struct Prepared {
    root: Path,
    runtime: Runtime,
    options: DbOptions,
    tables: TableStore,
    manifests: VersionedStore<Manifest>,
}

/// Opens a database with non-default settings.
#[derive(Debug)]
pub struct DbBuilder {
    root: Path,
    store: Arc<dyn Store>,
    runtime: Option<Runtime>,
    seed: Option<u64>,
    options: DbOptions,
}

impl DbBuilder {
    /// The executor the actors run on (default: smol's, with the `smol`
    /// feature).
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Seeds the RNG (table ids, jitter) for repeatable runs.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    pub fn options(mut self, options: DbOptions) -> Self {
        self.options = options;
        self
    }

    /// Opens the database for reading only, as it is now: no writer is
    /// fenced and nothing is written. Fails if there is no database.
    pub async fn open_read_only(self) -> Result<DbReader, Error> {
        DbReader::open(self).await
    }

    /// What opening a writer and opening a reader share: checked options,
    /// the executor, and the table and manifest stores behind the
    /// request timeout.
    fn prepare(self) -> Result<Prepared, Error> {
        self.options.validate().map_err(Error::invalid)?;
        let runtime = match self.runtime {
            Some(runtime) => runtime,
            None => default_runtime()?,
        };
        let runtime = match self.seed {
            Some(seed) => runtime.with_seed(seed),
            None => runtime,
        };
        let options = self.options;
        let store: Arc<dyn Store> = Arc::new(TimeoutStore::new(self.store, runtime.clone(), options.request_timeout));
        let tables = TableStore::new(
            store.clone(),
            self.root.clone(),
            runtime.clone(),
            options.tables.clone(),
        );
        let manifests = VersionedStore::new(
            store,
            self.root.clone(),
            runtime.clone(),
            VersionedOptions {
                update_timeout: options.manifest_update_timeout,
                ..VersionedOptions::default()
            },
        );
        Ok(Prepared {
            root: self.root,
            runtime,
            options,
            tables,
            manifests,
        })
    }

    /// Opens (or creates) the database: fences older writers and replays
    /// the WAL.
    pub async fn open(self) -> Result<Db, Error> {
        let Prepared {
            root,
            runtime,
            options,
            tables,
            manifests,
        } = self.prepare()?;
        let manifest = Fenced::open(manifests, Role::Writer, IfMissing::Create).await?;
        let recovered = recover(&tables, manifest.current()).await?;
        tracing::info!(
            root = %root,
            epoch = manifest.epoch(),
            replayed = recovered.replayed,
            last_seq = recovered.last_seq,
            "opened"
        );
        let view = Arc::new(ArcSwap::from_pointee(ReadView::new(
            recovered.memtable.clone(),
            manifest.current(),
        )));
        let seqs = Arc::new(Seqs::new(recovered.last_seq));
        let counters = Arc::new(Counters::default());
        counters.set_unflushed(recovered.memtable.size());
        counters.set_l0_tables(manifest.current().l0.len());

        let system = System::new(runtime.clone());
        let (wal, wal_box) = system.mailbox::<WalMsg>(WAL_WRITER, Capacity::Bounded(1024));
        let (l0, l0_box) = system.mailbox::<L0Msg>(L0_WRITER, Capacity::Unbounded);
        let (uploader, uploader_box) = system.mailbox(UPLOADER, Capacity::Unbounded);
        let writer = WalWriter::new(
            tables.clone(),
            view.clone(),
            seqs.clone(),
            counters.clone(),
            options.clone(),
            uploader,
            WalStart {
                last_seq: recovered.last_seq,
                next_wal_id: recovered.next_wal_id,
                memtable: recovered.memtable,
            },
        );
        system.run(wal_box, writer);
        system.run_pool(
            uploader_box,
            (0..options.l0_upload_parallelism).map(|_| Uploader::new(tables.clone(), l0.clone())),
        );
        system.run(
            l0_box,
            L0Writer::new(
                manifest,
                view.clone(),
                wal.clone(),
                counters.clone(),
                options.manifest_poll_interval,
            ),
        );
        Ok(Db {
            inner: Arc::new(DbInner {
                system,
                wal,
                l0,
                view,
                seqs,
                counters,
                tables,
            }),
        })
    }
}

#[cfg(feature = "smol")]
fn default_runtime() -> Result<Runtime, Error> {
    Runtime::smol().map_err(|error| Error::internal(format!("cannot start the smol executor: {error}")))
}

#[cfg(not(feature = "smol"))]
fn default_runtime() -> Result<Runtime, Error> {
    Err(Error::invalid(
        "no executor: pass one with DbBuilder::runtime (the `smol` feature is off)",
    ))
}

fn bytes_bounds<K: AsRef<[u8]>>(range: impl RangeBounds<K>) -> (Bound<Bytes>, Bound<Bytes>) {
    let convert = |bound: Bound<&K>| match bound {
        Bound::Included(key) => Bound::Included(Bytes::copy_from_slice(key.as_ref())),
        Bound::Excluded(key) => Bound::Excluded(Bytes::copy_from_slice(key.as_ref())),
        Bound::Unbounded => Bound::Unbounded,
    };
    (convert(range.start_bound()), convert(range.end_bound()))
}

/// The newest value of `key` at or below `max_seq` in `view`.
async fn get_in(view: &ReadView, tables: &TableStore, key: &[u8], max_seq: u64) -> Result<Option<Bytes>, Error> {
    Ok(match view.get(tables, key, max_seq).await? {
        Some(row) => match row.value {
            RowValue::Value(value) => Some(value),
            RowValue::Tombstone => None,
        },
        None => None,
    })
}

/// Live rows of `range` in `view` at `max_seq`, in key order; a `view`
/// that is an error yields that error once.
fn scan_in<K: AsRef<[u8]>>(
    view: Result<Arc<ReadView>, Error>,
    tables: TableStore,
    range: impl RangeBounds<K>,
    options: ScanOptions,
    max_seq: u64,
) -> impl Stream<Item = Result<KeyValue, Error>> + Send + 'static {
    let (start, end) = bytes_bounds(range);
    let bounds = ScanBounds {
        start,
        end,
        max_seq,
        options: crate::store::ScanOptions {
            read_ahead_blocks: options.read_ahead_blocks.max(1),
            fill_cache: options.fill_cache,
        },
    };
    let merge = view.map(|view| merge_sources(tables, bounds, sources_for(&view)));
    // The state is `None` once the stream has ended or failed.
    futures::stream::unfold(Some(merge), |state| async move {
        let mut merge = match state? {
            Ok(merge) => merge,
            Err(error) => return Some((Err(error), None)),
        };
        match merge.next().await {
            Ok(Some(pair)) => Some((Ok(pair), Some(Ok(merge)))),
            Ok(None) => None,
            Err(error) => Some((Err(error), None)),
        }
    })
}

impl Db {
    /// Opens (or creates) the database under `path` in `store` with the
    /// default options on the default executor.
    pub async fn open(path: impl Into<Path>, store: Arc<dyn Store>) -> Result<Db, Error> {
        Db::builder(path, store).open().await
    }

    pub fn builder(path: impl Into<Path>, store: Arc<dyn Store>) -> DbBuilder {
        DbBuilder {
            root: path.into(),
            store,
            runtime: None,
            seed: None,
            options: DbOptions::default(),
        }
    }

    fn check_open(&self) -> Result<(), Error> {
        match self.inner.system.closed_result() {
            None => Ok(()),
            Some(result) => Err(Error::from_closed_result(&result)),
        }
    }

    pub async fn put(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<(), Error> {
        self.put_with_options(key, value, WriteOptions::default()).await
    }

    pub async fn put_with_options(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
        options: WriteOptions,
    ) -> Result<(), Error> {
        self.apply(vec![(key.into(), RowValue::Value(value.into()))], options)
            .await
    }

    pub async fn delete(&self, key: impl Into<Bytes>) -> Result<(), Error> {
        self.delete_with_options(key, WriteOptions::default()).await
    }

    pub async fn delete_with_options(&self, key: impl Into<Bytes>, options: WriteOptions) -> Result<(), Error> {
        self.apply(vec![(key.into(), RowValue::Tombstone)], options).await
    }

    /// Applies every operation of `batch` atomically.
    pub async fn write(&self, batch: WriteBatch) -> Result<(), Error> {
        self.write_with_options(batch, WriteOptions::default()).await
    }

    pub async fn write_with_options(&self, batch: WriteBatch, options: WriteOptions) -> Result<(), Error> {
        self.apply(batch.ops, options).await
    }

    async fn apply(&self, ops: Vec<(Bytes, RowValue)>, options: WriteOptions) -> Result<(), Error> {
        if ops.iter().any(|(key, _)| key.is_empty()) {
            return Err(Error::invalid("keys must not be empty"));
        }
        self.inner
            .wal
            .ask(|reply| {
                WalMsg::Write(PendingWrite {
                    ops,
                    await_durable: options.await_durable,
                    reply,
                })
            })
            .await??;
        Ok(())
    }

    fn read_seq(&self, durability: Durability) -> u64 {
        match durability {
            Durability::Memory => self.inner.seqs.visible(),
            Durability::Durable => self.inner.seqs.durable(),
        }
    }

    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, Error> {
        self.get_with_options(key, ReadOptions::default()).await
    }

    pub async fn get_with_options(&self, key: impl AsRef<[u8]>, options: ReadOptions) -> Result<Option<Bytes>, Error> {
        self.get_at(key.as_ref(), self.read_seq(options.durability)).await
    }

    async fn get_at(&self, key: &[u8], max_seq: u64) -> Result<Option<Bytes>, Error> {
        self.check_open()?;
        let view = self.inner.view.load_full();
        get_in(&view, &self.inner.tables, key, max_seq).await
    }

    /// Live keys in `range`, in key order, with their newest values.
    pub fn scan<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
    ) -> impl Stream<Item = Result<KeyValue, Error>> + Send + 'static {
        self.scan_with_options(range, ScanOptions::default())
    }

    pub fn scan_with_options<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        options: ScanOptions,
    ) -> impl Stream<Item = Result<KeyValue, Error>> + Send + 'static {
        let max_seq = self.read_seq(options.durability);
        self.scan_at(range, options, max_seq)
    }

    fn scan_at<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        options: ScanOptions,
        max_seq: u64,
    ) -> impl Stream<Item = Result<KeyValue, Error>> + Send + 'static {
        let view = self.check_open().map(|()| self.inner.view.load_full());
        scan_in(view, self.inner.tables.clone(), range, options, max_seq)
    }

    /// A read view pinned at the current sequence number.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            db: self.clone(),
            seq: self.inner.seqs.visible(),
        }
    }

    /// Waits until every write accepted so far is durable.
    pub async fn flush(&self) -> Result<(), Error> {
        self.inner.wal.ask(|reply| WalMsg::Flush { reply }).await??;
        Ok(())
    }

    /// Freezes the memtable and waits until it is an L0 table in the
    /// manifest.
    pub async fn flush_memtable(&self) -> Result<(), Error> {
        let through_seq = self.inner.wal.ask(|reply| WalMsg::FreezeMemtable { reply }).await??;
        self.inner
            .l0
            .ask(|reply| L0Msg::AwaitFlush { through_seq, reply })
            .await??;
        Ok(())
    }

    /// A checkpoint of everything written so far: the memtable is flushed
    /// to L0 and the checkpoint rides on the manifest write that records it.
    pub async fn create_checkpoint(&self, options: CheckpointOptions) -> Result<Checkpoint, Error> {
        let through_seq = self.inner.wal.ask(|reply| WalMsg::FreezeMemtable { reply }).await??;
        self.inner
            .l0
            .ask(|reply| L0Msg::CreateCheckpoint {
                through_seq,
                options,
                reply,
            })
            .await?
    }

    /// Closes gracefully: makes accepted writes durable, uploads frozen
    /// memtables, stops the actors in order. Later calls get `Closed`.
    pub async fn close(&self) -> Result<(), Error> {
        self.close_with(false).await
    }

    /// [`Db::close`], first moving the memtable into L0 if
    /// `flush_memtable` (the next open then replays nothing).
    pub async fn close_with(&self, flush_memtable: bool) -> Result<(), Error> {
        self.check_open()?;
        if flush_memtable {
            self.flush_memtable().await?;
        } else {
            self.flush().await?;
        }
        self.inner
            .system
            .shutdown_in_order(&[WAL_WRITER, UPLOADER, L0_WRITER])
            .await
            .map_err(Error::from)
    }

    /// Completes when the database has closed: `Ok` after `close`, the
    /// cause otherwise.
    pub async fn closed(&self) -> Result<(), Error> {
        self.inner.system.closed().await.map_err(Error::from)
    }

    /// What the engine has done since it opened (writes, stalls, uploads,
    /// unflushed bytes, L0 tables).
    pub fn stats(&self) -> DbStats {
        self.inner.counters.snapshot()
    }

    /// The closed result, if the database has closed.
    pub fn status(&self) -> Option<Result<(), Error>> {
        self.inner
            .system
            .closed_result()
            .map(|result| result.map_err(Error::from))
    }
}

/// Reads pinned at one sequence number: nothing written later is seen.
#[derive(Clone, Debug)]
pub struct Snapshot {
    db: Db,
    seq: u64,
}

impl Snapshot {
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, Error> {
        self.db.get_at(key.as_ref(), self.seq).await
    }

    pub fn scan<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
    ) -> impl Stream<Item = Result<KeyValue, Error>> + Send + 'static {
        self.db.scan_at(range, ScanOptions::default(), self.seq)
    }
}
