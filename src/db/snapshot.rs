//! Snapshots: reads pinned at one sequence number, now or in the past
//! (inside the retention window).

use std::ops::RangeBounds;
use std::sync::Arc;

use bytes::Bytes;

use super::{Db, DbIterator, ScanOptions, prefix_bounds};
use crate::error::{Error, ErrorKind};
use crate::shared::snapshots::SnapshotPin;

impl Db {
    /// A read view pinned at the current sequence number. Compaction keeps
    /// the versions it reads until it is dropped (every clone of it).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::pinned(self, self.inner.snapshots.pin(&self.inner.seqs))
    }

    /// A read view at sequence number `seq` of the past, as
    /// [`Db::snapshot`] was then: every write up to `seq` and none after.
    /// Any sequence number from [`Db::oldest_readable_seq`] up to the
    /// newest visible one can be read; how far back that reaches is what
    /// [`DbOptions::retention`](crate::DbOptions::retention) keeps (and what older live snapshots hold).
    /// Compaction keeps what the snapshot reads until it is dropped.
    ///
    /// ```
    /// # smol::block_on(async {
    /// # use std::sync::Arc;
    /// # use talusdb::store::{ObjectStoreAdapter, Store};
    /// use std::time::Duration;
    /// use talusdb::{Db, DbOptions};
    /// # let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
    /// let options = DbOptions { retention: Duration::from_secs(3600), ..DbOptions::default() };
    /// let db = Db::builder("db", store).options(options).open().await?;
    /// let first = db.put("k", "first").await?;
    /// db.put("k", "second").await?;
    /// db.flush_memtable().await?;
    /// db.compact().await?;
    /// let then = db.snapshot_at(first.seq)?;
    /// assert_eq!(then.get("k").await?.as_deref(), Some(&b"first"[..]));
    /// drop(then);
    /// db.close().await?;
    /// # Ok::<(), talusdb::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::OutsideRetention`](crate::ErrorKind::OutsideRetention)
    /// if `seq` is older than what is kept (never an answer from a newer
    /// state); `InvalidArgument` if nothing has been written at `seq` yet;
    /// `Closed` once the database has closed.
    pub fn snapshot_at(&self, seq: u64) -> Result<Snapshot, Error> {
        self.check_open()?;
        let visible = self.inner.seqs.visible();
        if seq > visible {
            return Err(Error::invalid(format!(
                "snapshot_at({seq}): nothing is written at sequence {seq} yet (the newest is {visible})"
            )));
        }
        let pin = self.inner.snapshots.pin_at(seq).map_err(|floor| {
            Error::new(
                ErrorKind::OutsideRetention,
                format!(
                    "snapshot_at({seq}): sequence {seq} is outside the retention window; the oldest readable is \
                     {floor} (DbOptions::retention keeps more)"
                ),
            )
        })?;
        Ok(Snapshot::pinned(self, pin))
    }

    /// A read view of the database as it was at `time`: at the newest
    /// sequence number the writer had recorded by then. The map from times
    /// to sequence numbers has points a second apart (a 256th of the
    /// retention window, if coarser) and lives in the manifest, so the
    /// answer may be up to one point older than `time`, never newer. A
    /// time at or after now is [`Db::snapshot`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::OutsideRetention`](crate::ErrorKind::OutsideRetention)
    /// if `time` is before the retention window or before anything the
    /// map recorded; otherwise as [`Db::snapshot_at`].
    pub fn snapshot_at_time(&self, time: std::time::SystemTime) -> Result<Snapshot, Error> {
        self.check_open()?;
        let time_ms = time
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
        if time_ms >= self.inner.system.runtime().wall_ms() {
            return Ok(self.snapshot());
        }
        let Some(seq) = self.inner.snapshots.seq_at_time(time_ms) else {
            return Err(Error::new(
                ErrorKind::OutsideRetention,
                format!("snapshot_at_time: no write is recorded at or before {time_ms} ms since the epoch"),
            ));
        };
        self.snapshot_at(seq)
    }

    /// The oldest sequence number [`Db::snapshot_at`] reads now (it only
    /// moves up).
    pub fn oldest_readable_seq(&self) -> u64 {
        self.inner.snapshots.floor()
    }
}

/// Reads pinned at one sequence number: nothing written later is seen.
#[derive(Clone, Debug)]
pub struct Snapshot {
    db: Db,
    seq: u64,
    _pin: Arc<SnapshotPin>,
}

impl Snapshot {
    fn pinned(db: &Db, pin: SnapshotPin) -> Snapshot {
        Snapshot {
            db: db.clone(),
            seq: pin.seq(),
            _pin: Arc::new(pin),
        }
    }

    /// The sequence number it reads at.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The value of `key` as of the snapshot.
    ///
    /// ```
    /// # smol::block_on(async {
    /// # use std::sync::Arc;
    /// # use talusdb::store::{ObjectStoreAdapter, Store};
    /// # let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
    /// let db = talusdb::Db::open("db", store).await?;
    /// db.put("k", "old").await?;
    /// let snapshot = db.snapshot();
    /// db.put("k", "new").await?;
    /// assert_eq!(snapshot.get("k").await?.as_deref(), Some(&b"old"[..]));
    /// db.close().await?;
    /// # Ok::<(), talusdb::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Db::get`].
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, Error> {
        self.db.get_at(key.as_ref(), self.seq).await
    }

    /// Live keys in `range` as of the snapshot, in key order.
    ///
    /// # Errors
    ///
    /// As [`Db::scan`].
    pub fn scan<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> DbIterator {
        self.db.scan_at(range, ScanOptions::default(), self.seq)
    }

    /// [`Snapshot::scan`], reading as `options` say (its `durability` is
    /// moot: the snapshot fixes what is seen).
    ///
    /// # Errors
    ///
    /// As [`Db::scan`].
    pub fn scan_with_options<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>, options: ScanOptions) -> DbIterator {
        self.db.scan_at(range, options, self.seq)
    }

    /// Live keys that start with `prefix` as of the snapshot, in key order.
    ///
    /// # Errors
    ///
    /// As [`Db::scan`].
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> DbIterator {
        self.scan(prefix_bounds(prefix.as_ref()))
    }
}
