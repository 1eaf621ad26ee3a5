//! The public database: [`Db`], its builder and options, write batches and
//! snapshots. A `Db` is a handle on a set of actors (WAL writer, uploader
//! pool, L0 manifest writer) plus the read view they publish.

mod batch;
mod builder;
mod clone;
mod follow;
mod iterator;
mod options;
mod reader;
mod restore;
mod snapshot;
mod stats;
mod transaction;

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;

use object_store::path::Path;
use talus_actors::System;

use batch::BatchOp;
pub use batch::WriteBatch;
pub use builder::DbBuilder;
pub use iterator::DbIterator;
pub use options::{
    CloseOptions, DbOptions, Durability, ReadOptions, ReaderOptions, ScanOptions, ScanOrder, Ttl, WriteOptions,
};
pub use reader::DbReader;
pub use restore::Restored;
pub use snapshot::Snapshot;
pub use stats::{DbStats, MemoryStats, TreeShape};
pub use transaction::{IsolationLevel, Transaction, WriteReceipt};

use crate::shared::counters::Counters;
use crate::shared::snapshots::Snapshots;

use crate::compactor::actor::CompactorClient;
use crate::compactor::{COMPACTOR, CompactionSummary, SubmitSpec};
use crate::error::Error;
use crate::format::{RangeTombstone, RowValue};
use crate::gc::{Collector, GcMode, GcMsg, GcReport};
use crate::l0::l0_writer::L0Msg;
use crate::manifest::{Checkpoint, CheckpointOptions, WalLoss};
use crate::read::merge::{Merge, ScanBounds, merge_sources};
use crate::read::operator::Operator;
use crate::read::{ReadView, Seqs, sources_for};
use crate::store::{Store, TableStore};
use crate::wal::writer::WalMsg;

const WAL_WRITER: &str = "wal_writer";
const UPLOADER: &str = "uploader";
const L0_WRITER: &str = crate::l0::l0_writer::NAME;
use crate::gc::GC;

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
    snapshots: Arc<Snapshots>,
    compactor: Option<CompactorClient>,
    gc: Option<talus_actors::Addr<GcMsg, Error>>,
    collector: Collector,
    /// What a salvaging open gave up.
    salvaged: Vec<WalLoss>,
    /// [`DbOptions::default_ttl`].
    default_ttl: Option<std::time::Duration>,
    /// [`DbBuilder::merge_operator`].
    merge_operator: Operator,
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

/// The keys that start with `prefix`: from the prefix itself up to the
/// first key above all of them (the prefix with its last byte below 0xff
/// raised by one, trailing 0xff bytes dropped; no end if there is none).
pub(crate) fn prefix_bounds(prefix: &[u8]) -> (Bound<Bytes>, Bound<Bytes>) {
    let start = Bound::Included(Bytes::copy_from_slice(prefix));
    let Some(last) = prefix.iter().rposition(|byte| *byte != 0xff) else {
        return (start, Bound::Unbounded);
    };
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    (start, Bound::Excluded(Bytes::from(end)))
}

fn bytes_bounds<K: AsRef<[u8]>>(range: impl RangeBounds<K>) -> (Bound<Bytes>, Bound<Bytes>) {
    let convert = |bound: Bound<&K>| match bound {
        Bound::Included(key) => Bound::Included(Bytes::copy_from_slice(key.as_ref())),
        Bound::Excluded(key) => Bound::Excluded(Bytes::copy_from_slice(key.as_ref())),
        Bound::Unbounded => Bound::Unbounded,
    };
    (convert(range.start_bound()), convert(range.end_bound()))
}

/// The value of `key` at or below `max_seq` in `view`, as a read now sees
/// it (expired rows hidden, merge operands folded by `operator`).
async fn get_in(
    view: &ReadView,
    tables: &TableStore,
    key: &[u8],
    max_seq: u64,
    operator: &Operator,
) -> Result<Option<Bytes>, Error> {
    let now_ms = tables.runtime().wall_ms();
    view.get_value(tables, key, max_seq, now_ms, operator).await
}

/// The merge of `range` in `view` at `max_seq` (the `view` may be an
/// error, which the scan yields).
fn merge_in<K: AsRef<[u8]>>(
    view: Result<Arc<ReadView>, Error>,
    tables: TableStore,
    range: impl RangeBounds<K>,
    options: ScanOptions,
    max_seq: u64,
    operator: &Operator,
) -> Result<Merge, Error> {
    let (start, end) = bytes_bounds(range);
    let bounds = ScanBounds {
        start,
        end,
        max_seq,
        now_ms: tables.runtime().wall_ms(),
        operator: operator.clone(),
        options: crate::store::ScanOptions {
            read_ahead_blocks: options.read_ahead_blocks.max(1),
            fill_cache: options.fill_cache,
        },
        reverse: options.order == ScanOrder::Reverse,
        range_deletes: None,
    };
    view.map(|view| merge_sources(tables, bounds, sources_for(&view)))
}

/// Live rows of `range` in `view` at `max_seq`, in the order `options`
/// ask; a `view` that is an error yields that error once.
fn scan_in<K: AsRef<[u8]>>(
    view: Result<Arc<ReadView>, Error>,
    tables: TableStore,
    range: impl RangeBounds<K>,
    options: ScanOptions,
    max_seq: u64,
    operator: &Operator,
) -> DbIterator {
    DbIterator::new(merge_in(view, tables, range, options, max_seq, operator))
}

impl Db {
    /// Opens (or creates) the database under `path` in `store` with the
    /// default options on the default executor.
    ///
    /// # Errors
    ///
    /// As [`DbBuilder::open`].
    pub async fn open(path: impl Into<Path>, store: Arc<dyn Store>) -> Result<Db, Error> {
        Db::builder(path, store).open().await
    }

    /// A builder for the database under `path` in `store`, to set the
    /// options, the executor or the seed before opening.
    ///
    /// ```
    /// # smol::block_on(async {
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use talusdb::store::{ObjectStoreAdapter, Store};
    /// use talusdb::{Db, DbOptions};
    ///
    /// let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
    /// let options = DbOptions {
    ///     group_commit_window: Duration::from_millis(2),
    ///     ..DbOptions::default()
    /// };
    /// let db = Db::builder("db", store).options(options).open().await?;
    /// db.close().await?;
    /// # Ok::<(), talusdb::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn builder(path: impl Into<Path>, store: Arc<dyn Store>) -> DbBuilder {
        DbBuilder::new(path.into(), store)
    }

    fn check_open(&self) -> Result<(), Error> {
        match self.inner.system.closed_result() {
            None => Ok(()),
            Some(result) => Err(Error::from_closed_result(&result)),
        }
    }

    /// Writes `value` under `key` and returns once the write is durable in
    /// the object store (see [`WriteOptions`] to return sooner). Concurrent
    /// writes share WAL uploads (group commit).
    ///
    /// ```
    /// # smol::block_on(async {
    /// # use std::sync::Arc;
    /// # use talusdb::store::{ObjectStoreAdapter, Store};
    /// # let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
    /// let db = talusdb::Db::open("db", store).await?;
    /// db.put("user/1", "ada").await?;
    /// assert_eq!(db.get("user/1").await?.as_deref(), Some(&b"ada"[..]));
    /// db.close().await?;
    /// # Ok::<(), talusdb::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Closed`](crate::ErrorKind::Closed) once the database
    /// has closed (its cause says why);
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) for
    /// an empty key; [`ErrorKind::Fenced`](crate::ErrorKind::Fenced) if a
    /// newer writer opened the database;
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) if the
    /// store kept failing while a durable write waited (the database then
    /// closes with that cause: a write is never acknowledged unless it is
    /// durable).
    pub async fn put(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<WriteReceipt, Error> {
        self.put_with_options(key, value, WriteOptions::default()).await
    }

    /// [`Db::put`], acknowledged as `options` say.
    ///
    /// # Errors
    ///
    /// As [`Db::put`].
    pub async fn put_with_options(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
        options: WriteOptions,
    ) -> Result<WriteReceipt, Error> {
        self.apply(
            vec![BatchOp::Row(key.into(), RowValue::Value(value.into()), Ttl::Default)],
            options,
            None,
        )
        .await
    }

    /// Merges `operand` into `key`: a blind write that the database's
    /// [`MergeOperator`](crate::MergeOperator) folds over the value below
    /// it when the key is read (and in compaction). Returns once it is
    /// durable.
    ///
    /// ```
    /// # smol::block_on(async {
    /// # use std::sync::Arc;
    /// # use talusdb::store::{ObjectStoreAdapter, Store};
    /// use bytes::Bytes;
    /// use talusdb::{Db, MergeError, MergeOperator};
    ///
    /// /// Appends each operand to the value.
    /// #[derive(Debug)]
    /// struct Append;
    ///
    /// impl MergeOperator for Append {
    ///     fn name(&self) -> &str {
    ///         "append"
    ///     }
    ///
    ///     fn full_merge(&self, _key: &[u8], base: Option<&[u8]>, operands: &[&[u8]]) -> Result<Bytes, MergeError> {
    ///         let mut value = base.unwrap_or_default().to_vec();
    ///         operands.iter().for_each(|operand| value.extend_from_slice(operand));
    ///         Ok(Bytes::from(value))
    ///     }
    /// }
    ///
    /// # let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
    /// let db = Db::builder("db", store).merge_operator(Arc::new(Append)).open().await?;
    /// db.put("log", "a").await?;
    /// db.merge("log", "b").await?;
    /// db.merge("log", "c").await?;
    /// assert_eq!(db.get("log").await?.as_deref(), Some(&b"abc"[..]));
    /// db.close().await?;
    /// # Ok::<(), talusdb::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidArgument` if the database was opened without a merge
    /// operator; otherwise as [`Db::put`].
    pub async fn merge(&self, key: impl Into<Bytes>, operand: impl Into<Bytes>) -> Result<WriteReceipt, Error> {
        self.merge_with_options(key, operand, WriteOptions::default()).await
    }

    /// [`Db::merge`], acknowledged as `options` say (operands have no
    /// TTL: `options.ttl` is ignored).
    ///
    /// # Errors
    ///
    /// As [`Db::merge`].
    pub async fn merge_with_options(
        &self,
        key: impl Into<Bytes>,
        operand: impl Into<Bytes>,
        options: WriteOptions,
    ) -> Result<WriteReceipt, Error> {
        self.apply(
            vec![BatchOp::Row(key.into(), RowValue::Merge(operand.into()), Ttl::Never)],
            options,
            None,
        )
        .await
    }

    /// Deletes `key` (a tombstone hides every older version), returning
    /// once the delete is durable.
    ///
    /// # Errors
    ///
    /// As [`Db::put`].
    pub async fn delete(&self, key: impl Into<Bytes>) -> Result<WriteReceipt, Error> {
        self.delete_with_options(key, WriteOptions::default()).await
    }

    /// [`Db::delete`], acknowledged as `options` say.
    ///
    /// # Errors
    ///
    /// As [`Db::put`].
    pub async fn delete_with_options(
        &self,
        key: impl Into<Bytes>,
        options: WriteOptions,
    ) -> Result<WriteReceipt, Error> {
        self.apply(
            vec![BatchOp::Row(key.into(), RowValue::Tombstone, Ttl::Never)],
            options,
            None,
        )
        .await
    }

    /// Applies every operation of `batch` atomically: a read, a snapshot or
    /// a recovery sees all of them or none.
    ///
    /// ```
    /// # smol::block_on(async {
    /// # use std::sync::Arc;
    /// # use talusdb::store::{ObjectStoreAdapter, Store};
    /// use talusdb::WriteBatch;
    /// # let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
    /// let db = talusdb::Db::open("db", store).await?;
    /// let mut batch = WriteBatch::new();
    /// batch.put("from", "0").put("to", "100").delete("pending");
    /// db.write(batch).await?;
    /// db.close().await?;
    /// # Ok::<(), talusdb::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Db::put`]; nothing of the batch is applied when it fails
    /// before the WAL writer accepted it.
    pub async fn write(&self, batch: WriteBatch) -> Result<WriteReceipt, Error> {
        self.write_with_options(batch, WriteOptions::default()).await
    }

    /// [`Db::write`], acknowledged as `options` say.
    ///
    /// # Errors
    ///
    /// As [`Db::write`].
    pub async fn write_with_options(&self, batch: WriteBatch, options: WriteOptions) -> Result<WriteReceipt, Error> {
        self.apply(batch.ops, options, None).await
    }

    fn read_seq(&self, durability: Durability) -> u64 {
        match durability {
            Durability::Memory => self.inner.seqs.visible(),
            Durability::Durable => self.inner.seqs.durable(),
        }
    }

    /// The newest value of `key`, `None` if it was never written or was
    /// deleted. Sees every acknowledged write, durable or not yet (see
    /// [`ReadOptions`]).
    ///
    /// ```
    /// # smol::block_on(async {
    /// # use std::sync::Arc;
    /// # use talusdb::store::{ObjectStoreAdapter, Store};
    /// # let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
    /// let db = talusdb::Db::open("db", store).await?;
    /// assert_eq!(db.get("missing").await?, None);
    /// db.close().await?;
    /// # Ok::<(), talusdb::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Closed`](crate::ErrorKind::Closed) once the database
    /// has closed (its cause says why);
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) if the
    /// store failed or timed out reading a table;
    /// [`ErrorKind::Corruption`](crate::ErrorKind::Corruption) if a table
    /// it read is damaged (the error names it).
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, Error> {
        self.get_with_options(key, ReadOptions::default()).await
    }

    /// [`Db::get`], seeing the writes `options` allow.
    ///
    /// # Errors
    ///
    /// As [`Db::get`].
    pub async fn get_with_options(&self, key: impl AsRef<[u8]>, options: ReadOptions) -> Result<Option<Bytes>, Error> {
        self.get_at(key.as_ref(), self.read_seq(options.durability)).await
    }

    async fn get_at(&self, key: &[u8], max_seq: u64) -> Result<Option<Bytes>, Error> {
        self.check_open()?;
        self.inner.tables.pace().read();
        let view = self.inner.view.load_full();
        get_in(&view, &self.inner.tables, key, max_seq, &self.inner.merge_operator).await
    }

    /// Live keys in `range`, in key order, with their newest values, as a
    /// stream. The scan reads at the sequence number current when it was
    /// created: writes made while it runs are not seen.
    ///
    /// ```
    /// # smol::block_on(async {
    /// # use std::sync::Arc;
    /// # use talusdb::store::{ObjectStoreAdapter, Store};
    /// use futures::TryStreamExt;
    /// # let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
    /// let db = talusdb::Db::open("db", store).await?;
    /// for key in ["a", "b", "c"] {
    ///     db.put(key, "1").await?;
    /// }
    /// let rows: Vec<_> = db.scan("a".."c").try_collect().await?;
    /// assert_eq!(rows.len(), 2);
    /// db.close().await?;
    /// # Ok::<(), talusdb::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// The stream yields one error and ends: [`ErrorKind::Closed`](crate::ErrorKind::Closed) once the database
    /// has closed (its cause says why);
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) or
    /// [`ErrorKind::Corruption`](crate::ErrorKind::Corruption) if a table
    /// could not be read.
    pub fn scan<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> DbIterator {
        self.scan_with_options(range, ScanOptions::default())
    }

    /// Live keys that start with `prefix`, in key order (see [`Db::scan`]).
    ///
    /// ```
    /// # smol::block_on(async {
    /// # use std::sync::Arc;
    /// # use talusdb::store::{ObjectStoreAdapter, Store};
    /// use futures::TryStreamExt;
    /// # let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
    /// let db = talusdb::Db::open("db", store).await?;
    /// for key in ["user/1", "user/2", "users", "video/1"] {
    ///     db.put(key, "x").await?;
    /// }
    /// let users: Vec<_> = db.scan_prefix("user/").try_collect().await?;
    /// assert_eq!(users.len(), 2);
    /// db.close().await?;
    /// # Ok::<(), talusdb::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Db::scan`].
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> DbIterator {
        self.scan(prefix_bounds(prefix.as_ref()))
    }

    /// [`Db::scan`], reading as `options` say.
    ///
    /// # Errors
    ///
    /// As [`Db::scan`].
    pub fn scan_with_options<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>, options: ScanOptions) -> DbIterator {
        let max_seq = self.read_seq(options.durability);
        self.scan_at(range, options, max_seq)
    }

    fn scan_at<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>, options: ScanOptions, max_seq: u64) -> DbIterator {
        DbIterator::new(self.merge_at(range, options, max_seq))
    }

    /// [`Db::scan_at`] with a transaction's writes `own` (in the scan's
    /// order) laid over the rows.
    fn overlay_at<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        options: ScanOptions,
        max_seq: u64,
        own: Vec<(Bytes, iterator::OwnWrite)>,
        own_range_deletes: Vec<RangeTombstone>,
    ) -> DbIterator {
        let merge = self
            .merge_at(range, options, max_seq)
            .map(|merge| merge.with_range_tombstones(own_range_deletes));
        DbIterator::overlaid(merge, own, self.inner.merge_operator.clone())
    }

    /// The merge a scan of the current view reads.
    fn merge_at<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        options: ScanOptions,
        max_seq: u64,
    ) -> Result<Merge, Error> {
        self.inner.tables.pace().read();
        let view = self.check_open().map(|()| self.inner.view.load_full());
        merge_in(
            view,
            self.inner.tables.clone(),
            range,
            options,
            max_seq,
            &self.inner.merge_operator,
        )
    }

    /// Compacts all of L0 and every sorted run into one run now, through
    /// the embedded compactor, and waits until it is committed. `None` if
    /// there was nothing to compact.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` if the embedded compactor is off; otherwise as
    /// [`Compactor::submit`](crate::Compactor::submit).
    pub async fn compact(&self) -> Result<Option<CompactionSummary>, Error> {
        self.check_open()?;
        let Some(compactor) = &self.inner.compactor else {
            return Err(Error::invalid("the embedded compactor is off (DbOptions::compactor)"));
        };
        compactor.submit(SubmitSpec::Everything).await
    }

    /// Waits until the embedded compactor has nothing left to do: no job
    /// running and none its strategy would start now (a database whose
    /// writes have stopped has then settled into its steady shape).
    /// Returns at once when the compactor is off.
    ///
    /// ```
    /// # smol::block_on(async {
    /// use std::sync::Arc;
    /// use talusdb::Db;
    /// use talusdb::store::{ObjectStoreAdapter, Store};
    ///
    /// let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
    /// let db = Db::open("db", store).await?;
    /// db.put("k", "v").await?;
    /// db.flush_memtable().await?;
    /// db.wait_for_compactions().await?;
    /// assert!(db.stats().shape.l0_tables < 4, "below the L0 trigger");
    /// db.close().await?;
    /// # Ok::<(), talusdb::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// `Closed` if the database closed while waiting.
    pub async fn wait_for_compactions(&self) -> Result<(), Error> {
        self.check_open()?;
        match &self.inner.compactor {
            Some(compactor) => compactor.await_idle().await,
            None => Ok(()),
        }
    }

    /// Collects garbage of every class now (see [`crate::gc`]); a
    /// [`GcMode::DryRun`] only reports what it would delete.
    ///
    /// # Errors
    ///
    /// As [`Collector::run`]; `Closed` once the database has closed.
    pub async fn collect_garbage(&self, mode: GcMode) -> Result<GcReport, Error> {
        self.check_open()?;
        match &self.inner.gc {
            Some(gc) => gc.ask(|reply| GcMsg::RunOnce { mode, reply }).await?,
            None => self.inner.collector.run(&crate::gc::Class::ALL, mode).await,
        }
    }

    /// Waits until every write accepted so far is durable.
    ///
    /// # Errors
    ///
    /// `Closed` once the database has closed (it closes when a WAL upload
    /// keeps failing: its cause is the store's error).
    pub async fn flush(&self) -> Result<(), Error> {
        self.inner.wal.ask(|reply| WalMsg::Flush { reply }).await??;
        Ok(())
    }

    /// Freezes the memtable and waits until it is an L0 table in the
    /// manifest.
    ///
    /// # Errors
    ///
    /// `Closed` once the database has closed, with the cause that closed
    /// it (a failed L0 upload or manifest write, say).
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
    ///
    /// # Errors
    ///
    /// As [`Db::flush_memtable`].
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
    ///
    /// # Errors
    ///
    /// `Closed` if it had closed already (with the cause, if it failed);
    /// the store's error if making the last writes durable failed.
    pub async fn close(&self) -> Result<(), Error> {
        self.close_with(CloseOptions::default()).await
    }

    /// [`Db::close`], as `options` say.
    ///
    /// # Errors
    ///
    /// As [`Db::close`].
    pub async fn close_with(&self, options: CloseOptions) -> Result<(), Error> {
        self.check_open()?;
        if options.flush_memtable {
            self.flush_memtable().await?;
        } else {
            self.flush().await?;
        }
        if let Some(compactor) = &self.inner.compactor {
            compactor.cancel_jobs();
        }
        self.inner
            .system
            .shutdown_in_order(&[GC, COMPACTOR, WAL_WRITER, UPLOADER, L0_WRITER])
            .await
            .map_err(Error::from)
    }

    /// Completes when the database has closed: `Ok` after `close`, the
    /// cause otherwise.
    ///
    /// # Errors
    ///
    /// The first fatal error, which closed the database.
    pub async fn closed(&self) -> Result<(), Error> {
        self.inner.system.closed().await.map_err(Error::from)
    }

    /// The damaged WAL tables this open moved aside and gave up (only with
    /// [`DbBuilder::salvage`]; empty otherwise). Every loss ever recorded is
    /// in the manifest's `losses`.
    pub fn salvaged(&self) -> &[WalLoss] {
        &self.inner.salvaged
    }

    /// What the engine has done since it opened (writes, stalls, uploads,
    /// unflushed bytes, L0 tables).
    pub fn stats(&self) -> DbStats {
        let mut stats = DbStats::read(&self.inner.counters);
        if let Some(compactor) = &self.inner.compactor {
            stats.compactor = compactor.stats();
        }
        let view = self.inner.view.load();
        stats.shape = view.shape();
        let (block_cache_bytes, metadata_bytes) = self.inner.tables.caches().weighted_sizes();
        stats.memory = MemoryStats {
            block_cache_bytes,
            metadata_bytes,
            memtable_bytes: view.memtable_bytes(),
        };
        stats
    }

    /// The closed result, if the database has closed.
    pub fn status(&self) -> Option<Result<(), Error>> {
        self.inner
            .system
            .closed_result()
            .map(|result| result.map_err(Error::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_ends_just_above_every_key_that_starts_with_it() {
        let excluded = |end: &[u8]| Bound::Excluded(Bytes::copy_from_slice(end));
        assert_eq!(prefix_bounds(b"user/").1, excluded(b"user0"));
        assert_eq!(prefix_bounds(b"a\xff\xff").1, excluded(b"b"), "trailing 0xff bytes go");
        assert_eq!(
            prefix_bounds(b"\xff\xff").1,
            Bound::Unbounded,
            "nothing sorts above them"
        );
        assert_eq!(prefix_bounds(b"").1, Bound::Unbounded, "the empty prefix is everything");
        assert_eq!(prefix_bounds(b"ab").0, Bound::Included(Bytes::from_static(b"ab")));
    }
}
