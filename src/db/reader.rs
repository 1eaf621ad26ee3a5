//! Read-only handles on a database, opened without fencing anyone (no
//! epoch raised). Three kinds:
//! - [`DbBuilder::open_reader`] follows the writer: it refreshes on an
//!   interval and on [`DbReader::refresh`], and protects what it reads with
//!   checkpoints of its own (`follow`), its only writes;
//! - [`ReaderOptions::at_checkpoint`] stays at a checkpoint and writes
//!   nothing;
//! - [`DbBuilder::open_read_only`] is pinned at the moment it opened and
//!   writes nothing (what the CLI's `get` and `scan` use): nothing protects
//!   its tables from the writer's collector.

use std::ops::RangeBounds;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use bytes::Bytes;
use talus_actors::{Addr, Capacity, System};

use super::follow::{FollowMsg, Follower, Published, closed};
use super::options::ReaderOptions;
use super::{DbBuilder, DbIterator, ScanOptions, get_in, scan_in};
use crate::error::Error;
use crate::manifest::{Fenced, Manifest, ManifestError, Role, VersionedStore};
use crate::read::ReadView;
use crate::read::operator::Operator;
use crate::store::{TableStore, Ulid};
use crate::wal::replay::replay_through;

/// A database opened for reading only: pinned, at a checkpoint, or
/// following the writer (see [`DbBuilder::open_reader`]). Cheap to clone;
/// every clone is the same reader.
#[derive(Clone)]
pub struct DbReader {
    inner: Arc<ReaderInner>,
}

struct ReaderInner {
    published: Arc<ArcSwap<Published>>,
    tables: TableStore,
    merge_operator: Operator,
    closed: AtomicBool,
    /// The follower and its system (`None`: the view never changes).
    follower: Option<(System<Error>, Addr<FollowMsg, Error>)>,
}

impl std::fmt::Debug for DbReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let published = self.inner.published.load();
        f.debug_struct("DbReader")
            .field("root", self.inner.tables.root())
            .field("seq", &published.seq)
            .field("manifest_id", &published.manifest_id)
            .field("following", &self.inner.follower.is_some())
            .finish_non_exhaustive()
    }
}

/// The newest manifest version under `manifests`, or the error for a path
/// that holds no database (or a lost manifest).
async fn latest_manifest(manifests: &VersionedStore<Manifest>, tables: &TableStore) -> Result<(u64, Manifest), Error> {
    match manifests.read_latest().await? {
        Some(latest) => {
            crate::manifest::check_wal_store(&latest.1, tables)?;
            super::clone::adopt_sources(tables, &latest.1);
            Ok(latest)
        }
        None => {
            // Tables without a manifest are a lost manifest, not "no
            // database here".
            crate::manifest::refuse_lost_manifest(manifests, tables).await?;
            Err(ManifestError::Missing {
                path: manifests.root().clone(),
            }
            .into())
        }
    }
}

/// Whether a reader of `manifest` (and WAL rows up to `newest`) reads
/// exactly what was there at `seq`: at or above `retain_seq`, below which
/// compaction may have merged versions away, and at or below `newest`.
fn check_readable_at(seq: u64, manifest: &Manifest, newest: u64) -> Result<(), Error> {
    if seq > newest {
        return Err(Error::invalid(format!(
            "at_seq {seq}: nothing is written at sequence {seq} yet (the newest is {newest})"
        )));
    }
    if seq < manifest.retain_seq {
        return Err(Error::new(
            crate::error::ErrorKind::OutsideRetention,
            format!(
                "at_seq {seq}: sequence {seq} is outside the retention window; the oldest readable is {} \
                 (DbOptions::retention keeps more)",
                manifest.retain_seq
            ),
        ));
    }
    Ok(())
}

impl DbReader {
    fn fixed(
        view: ReadView,
        seq: u64,
        manifest_id: u64,
        checkpoint: Option<Ulid>,
        prepared: super::builder::Prepared,
    ) -> DbReader {
        DbReader {
            inner: Arc::new(ReaderInner {
                published: Arc::new(ArcSwap::from_pointee(Published {
                    view: Arc::new(view),
                    seq,
                    manifest_id,
                    checkpoint,
                })),
                tables: prepared.tables,
                merge_operator: prepared.merge_operator,
                closed: AtomicBool::new(false),
                follower: None,
            }),
        }
    }

    /// A reader pinned at the newest manifest version and the WAL above it.
    pub(super) async fn open(builder: DbBuilder) -> Result<DbReader, Error> {
        let prepared = builder.prepare()?;
        let (manifest_id, manifest) = latest_manifest(&prepared.manifests, &prepared.tables).await?;
        super::builder::check_merge_operator(&manifest, &prepared.merge_operator)?;
        let replayed = replay_through(&prepared.tables, &manifest, None).await?;
        let view = ReadView::new(Arc::new(replayed.memtable), &manifest);
        Ok(DbReader::fixed(view, replayed.last_seq, manifest_id, None, prepared))
    }

    /// A reader as `options` say: at a checkpoint, or following the writer.
    pub(super) async fn open_with(builder: DbBuilder, options: ReaderOptions) -> Result<DbReader, Error> {
        options.validate().map_err(Error::invalid)?;
        let prepared = builder.prepare()?;
        let (latest_id, latest) = latest_manifest(&prepared.manifests, &prepared.tables).await?;
        super::builder::check_merge_operator(&latest, &prepared.merge_operator)?;
        if let Some(id) = options.at_checkpoint {
            return DbReader::at_checkpoint(prepared, &latest, id, options.at_seq).await;
        }
        if let Some(seq) = options.at_seq {
            let replayed = replay_through(&prepared.tables, &latest, None).await?;
            check_readable_at(seq, &latest, replayed.last_seq)?;
            let view = ReadView::new(Arc::new(replayed.memtable), &latest);
            return Ok(DbReader::fixed(view, seq, latest_id, None, prepared));
        }
        let manifest = Fenced::load(prepared.manifests.clone(), Role::Admin).await?;
        let (follower, published) = Follower::open(prepared.tables.clone(), manifest, options).await?;
        let system = System::new(prepared.runtime.clone());
        let (addr, mailbox) = system.mailbox::<FollowMsg>("follower", Capacity::Unbounded);
        system.run(mailbox, follower);
        Ok(DbReader {
            inner: Arc::new(ReaderInner {
                published,
                tables: prepared.tables,
                merge_operator: prepared.merge_operator,
                closed: AtomicBool::new(false),
                follower: Some((system, addr)),
            }),
        })
    }

    /// A reader of what checkpoint `id` describes: its manifest version's
    /// tables and the WAL tables below that version's `next_wal_id`.
    async fn at_checkpoint(
        prepared: super::builder::Prepared,
        latest: &Manifest,
        id: Ulid,
        at_seq: Option<u64>,
    ) -> Result<DbReader, Error> {
        let now_ms = prepared.tables.runtime().wall_ms();
        let Some(checkpoint) = latest.live_checkpoints(now_ms).find(|checkpoint| checkpoint.id == id) else {
            return Err(Error::invalid(format!(
                "no live checkpoint {id} in the database at {}",
                prepared.manifests.root()
            )));
        };
        let manifest_id = checkpoint.manifest_id;
        let manifest = prepared.manifests.read(manifest_id).await?;
        super::clone::adopt_sources(&prepared.tables, &manifest);
        let end = manifest.next_wal_id.saturating_sub(1);
        let replayed = replay_through(&prepared.tables, &manifest, Some(end)).await?;
        if let Some(seq) = at_seq {
            check_readable_at(seq, &manifest, replayed.last_seq)?;
        }
        let seq = at_seq.unwrap_or(replayed.last_seq);
        let view = ReadView::new(Arc::new(replayed.memtable), &manifest);
        Ok(DbReader::fixed(view, seq, manifest_id, Some(id), prepared))
    }

    fn load(&self) -> Result<Arc<Published>, Error> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        if let Some((system, _)) = &self.inner.follower
            && let Some(result) = system.closed_result()
        {
            return Err(Error::from_closed_result(&result));
        }
        // A full clone, not a guard: the follower sees which views reads
        // still hold by their reference counts.
        Ok(self.inner.published.load_full())
    }

    /// The sequence number reads see now.
    pub fn seq(&self) -> u64 {
        self.inner.published.load().seq
    }

    /// The manifest version the view is built from (for a following
    /// reader, a version it wrote itself, pinning itself).
    pub fn manifest_id(&self) -> u64 {
        self.inner.published.load().manifest_id
    }

    /// The checkpoint that protects the view's tables: the reader's own
    /// (following), the one it was opened at, or `None` (pinned by
    /// [`DbBuilder::open_read_only`]).
    pub fn checkpoint(&self) -> Option<Ulid> {
        self.inner.published.load().checkpoint
    }

    /// Whether the reader follows the writer.
    pub fn is_following(&self) -> bool {
        self.inner.follower.is_some()
    }

    /// The tables the view searches.
    pub fn shape(&self) -> super::TreeShape {
        self.inner.published.load().view.shape()
    }

    /// Catches up now: moves to the newest manifest version (if its tables
    /// differ) and reads every WAL table the writer has written since.
    /// Returns the sequence number reads then see. A reader that does not
    /// follow returns its fixed one.
    ///
    /// ```
    /// # smol::block_on(async {
    /// use std::sync::Arc;
    /// use talusdb::store::ObjectStoreAdapter;
    /// use talusdb::{Db, ReaderOptions};
    ///
    /// let store = Arc::new(ObjectStoreAdapter::in_memory());
    /// let writer = Db::builder("db", store.clone()).open().await?;
    /// let reader = Db::builder("db", store)
    ///     .open_reader(ReaderOptions::default())
    ///     .await?;
    /// writer.put("k", "v").await?; // durable when it returns
    /// reader.refresh().await?; // or wait for the next refresh interval
    /// assert_eq!(reader.get("k").await?.as_deref(), Some(&b"v"[..]));
    /// reader.close().await?; // deletes the reader's checkpoint
    /// writer.close().await?;
    /// # Ok::<(), talusdb::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) if the
    /// store failed; [`ErrorKind::Corruption`](crate::ErrorKind::Corruption)
    /// naming a damaged manifest or WAL table;
    /// [`ErrorKind::Closed`](crate::ErrorKind::Closed) after `close`. The
    /// view stays as it was.
    pub async fn refresh(&self) -> Result<u64, Error> {
        let published = self.load()?;
        match &self.inner.follower {
            Some((_, addr)) => addr.ask(FollowMsg::Refresh).await.map_err(Error::from)?,
            None => Ok(published.seq),
        }
    }

    /// Stops following and deletes the reader's checkpoints (a reader that
    /// is dropped instead leaves them to expire). Later calls fail with
    /// [`ErrorKind::Closed`](crate::ErrorKind::Closed).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) if the
    /// checkpoints could not be deleted (they expire on their own).
    pub async fn close(&self) -> Result<(), Error> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let Some((system, addr)) = &self.inner.follower else {
            return Ok(());
        };
        let released = addr.ask(FollowMsg::Close).await.map_err(Error::from);
        let stopped = system.shutdown().await.map_err(Error::from);
        released??;
        stopped
    }

    /// The value of `key` as of the view, `None` if absent or deleted.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) if the
    /// store failed reading a table;
    /// [`ErrorKind::Corruption`](crate::ErrorKind::Corruption) if a table
    /// is damaged (the error names it). A reader opened with
    /// [`DbBuilder::open_read_only`] holds no checkpoint: a table the
    /// writer's collector has deleted since it opened is
    /// [`ErrorKind::Corruption`](crate::ErrorKind::Corruption) naming the
    /// missing object (open the reader again).
    /// [`ErrorKind::Closed`](crate::ErrorKind::Closed) after `close`.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, Error> {
        let published = self.load()?;
        get_in(
            &published.view,
            &self.inner.tables,
            key.as_ref(),
            published.seq,
            &self.inner.merge_operator,
        )
        .await
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
    /// a reader sees only durable writes).
    ///
    /// # Errors
    ///
    /// As [`DbReader::scan`].
    pub fn scan_with_options<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>, options: ScanOptions) -> DbIterator {
        let published = match self.load() {
            Ok(published) => published,
            Err(error) => return DbIterator::new(Err(error)),
        };
        scan_in(
            Ok(published.view.clone()),
            self.inner.tables.clone(),
            range,
            options,
            published.seq,
            &self.inner.merge_operator,
        )
        .holding(published.view.clone())
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
