//! Following the writer: the actor behind a [`DbReader`](super::DbReader)
//! opened with [`DbBuilder::open_reader`](super::DbBuilder::open_reader).
//!
//! Owns: the reader's tail of the WAL (a memtable of the WAL tables its
//! manifest version does not cover yet), the manifest version it reads,
//! and the checkpoints that protect both. Publishes a [`Published`] view
//! that reads load without waiting for the actor. Does not own anything of
//! the writer's: it writes nothing but its own checkpoints.
//!
//! The rules (`docs/scale-out.md`):
//! - Every manifest version the reader reads from is one it wrote itself:
//!   a version that adds a checkpoint pinning that very version. So the
//!   collector keeps that version's tables, and every WAL table above its
//!   replay point, while the checkpoint lives.
//! - A view keeps its checkpoint while any read still holds it: each
//!   manifest write of the reader drops the checkpoints of the views nobody
//!   holds and renews the others.
//! - The tail reads WAL ids in order from the view's replay point, as
//!   recovery replays them. A filler or a missing id is a hole: nothing
//!   above it was acknowledged. A table of a lower writer epoch than one
//!   below it is a fenced writer's upload, which the new writer may still
//!   replace: the tail waits at it until it is replaced, or until a table
//!   of the current epoch above it records it as durable (then it stays as
//!   it is, and is skipped as the next recovery skips it).
//! - Versions that differ from the view's only in checkpoints (other
//!   readers' work) are not moved to.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use talus_actors::{Actor, ActorError, Context, Reply, Ticker};

use super::options::ReaderOptions;
use crate::error::Error;
use crate::format::sst::WalRole;
use crate::manifest::{Checkpoint, Fenced, Manifest};
use crate::mem::Memtable;
use crate::read::ReadView;
use crate::store::{StoreError, TableStore, Ulid, WalTable};

/// WAL tables read at once at most while catching up.
const MAX_WINDOW: u64 = 32;

/// WAL ids above a table of an older epoch read at most to find out
/// whether it stays.
const SETTLE_LOOKAHEAD: u64 = 16;

/// What reads load: a view, the sequence number it is read at, the
/// manifest version it was built from and the checkpoint protecting it.
#[derive(Debug)]
pub(super) struct Published {
    pub view: Arc<ReadView>,
    pub seq: u64,
    pub manifest_id: u64,
    pub checkpoint: Option<Ulid>,
}

/// Where the tail cannot go on by reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stuck {
    /// A filler: the writer that placed it moves the replay point past it.
    Filler(u64),
    /// A table of an older writer epoch that may still be replaced.
    Older(u64),
    /// A table that cannot be read (a salvaging writer moves past it).
    Damaged(u64),
}

/// The WAL tables read above the view's replay point.
#[derive(Debug)]
struct Tail {
    /// The next WAL id to read.
    next: u64,
    /// Writer epochs of the tables applied, by id.
    epochs: BTreeMap<u64, u64>,
    /// Their rows (and range tombstones) newer than the view's L0.
    memtable: Arc<Memtable>,
    /// The highest sequence number seen.
    seq: u64,
    stuck: Option<Stuck>,
}

impl Tail {
    fn new(manifest: &Manifest) -> Tail {
        Tail {
            next: manifest.replay_after_wal_id + 1,
            epochs: BTreeMap::new(),
            memtable: Arc::new(Memtable::new()),
            seq: manifest.last_l0_seq,
            stuck: None,
        }
    }

    /// The epoch of the newest table applied (recovery's rule: a table
    /// below this epoch is a fenced writer's).
    fn epoch(&self) -> u64 {
        self.epochs.values().next_back().copied().unwrap_or(0)
    }

    fn apply(&mut self, id: u64, table: &WalTable, floor_seq: u64) {
        for row in table.rows.iter().filter(|row| row.seq > floor_seq) {
            self.seq = self.seq.max(row.seq);
            self.memtable.insert(row);
        }
        for tombstone in table.range_tombstones.iter().filter(|t| t.seq > floor_seq) {
            self.seq = self.seq.max(tombstone.seq);
            self.memtable.insert_range_tombstone(tombstone.clone());
        }
        self.epochs.insert(id, table.stamp.writer_epoch);
        self.next = id + 1;
    }

    /// Moves the tail onto `manifest` (a version the reader has pinned):
    /// what its L0 holds leaves the memtable, ids at or below its replay
    /// point are not read.
    fn rebase(&mut self, manifest: &Manifest) {
        let (after, floor) = (manifest.replay_after_wal_id, manifest.last_l0_seq);
        self.epochs = self.epochs.split_off(&(after + 1));
        self.next = self.next.max(after + 1);
        if let Some(Stuck::Filler(id) | Stuck::Older(id) | Stuck::Damaged(id)) = self.stuck
            && id <= after
        {
            self.stuck = None;
        }
        self.seq = self.seq.max(floor);
        if self.memtable.seq_range().is_some_and(|(first, _)| first <= floor) {
            let kept = Memtable::new();
            for row in self.memtable.iter().filter(|row| row.seq > floor) {
                kept.insert(&row);
            }
            for tombstone in self.memtable.range_tombstones() {
                if tombstone.seq > floor {
                    kept.insert_range_tombstone(tombstone);
                }
            }
            self.memtable = Arc::new(kept);
        }
    }

    /// Reads the WAL tables after the tail, in order, as far as they go;
    /// `true` if it applied any. Several ids are read at once while each
    /// read finds a table, so catching up costs few round trips.
    async fn read(&mut self, tables: &TableStore, floor_seq: u64) -> Result<bool, Error> {
        self.stuck = None;
        let mut applied = false;
        let mut window = 1;
        'windows: loop {
            let first = self.next;
            let reads = futures::future::join_all((first..first + window).map(|id| tables.read_wal_table(id))).await;
            let reads: Vec<(u64, Result<WalTable, StoreError>)> = (first..).zip(reads).collect();
            for (index, (id, read)) in reads.iter().enumerate() {
                let table = match read {
                    Ok(table) => table,
                    Err(StoreError::NotFound { .. }) => return Ok(applied),
                    Err(error @ StoreError::Corruption { .. }) => {
                        self.stuck = Some(Stuck::Damaged(*id));
                        return Err(error.clone().into());
                    }
                    Err(error) => return Err(error.clone().into()),
                };
                if table.stamp.role == WalRole::Filler {
                    self.stuck = Some(Stuck::Filler(*id));
                    return Ok(applied);
                }
                if table.stamp.writer_epoch < self.epoch() {
                    if !self.settled(tables, *id, &reads[index + 1..]).await? {
                        self.stuck = Some(Stuck::Older(*id));
                        return Ok(applied);
                    }
                    // Its replacement may have landed after our read.
                    let again = tables.read_wal_table(*id).await?;
                    if again.stamp.writer_epoch >= self.epoch() && again.stamp.role != WalRole::Filler {
                        self.apply(*id, &again, floor_seq);
                        applied = true;
                    } else {
                        self.next = id + 1;
                    }
                    // What was read above it may predate the same moment.
                    window = 1;
                    continue 'windows;
                }
                self.apply(*id, table, floor_seq);
                applied = true;
            }
            window = (window * 2).min(MAX_WINDOW);
        }
    }

    /// Whether the older-epoch table at `id` stays as it is: a table of the
    /// current epoch (or a newer one) above it records every id through
    /// `id` as durable, so whoever was to replace it has done so or never
    /// will. Looks at `read` (reads above `id`), then further ids.
    async fn settled(
        &self,
        tables: &TableStore,
        id: u64,
        read: &[(u64, Result<WalTable, StoreError>)],
    ) -> Result<bool, Error> {
        let proves =
            |table: &WalTable| table.stamp.writer_epoch >= self.epoch() && table.stamp.durable_through_wal_id >= id;
        for (_, above) in read {
            match above {
                Ok(table) if proves(table) => return Ok(true),
                Ok(_) => {}
                Err(_) => return Ok(false),
            }
        }
        let from = read.last().map_or(id + 1, |(last, _)| last + 1);
        for above in from..id + 1 + SETTLE_LOOKAHEAD {
            match tables.read_wal_table(above).await {
                Ok(table) if proves(&table) => return Ok(true),
                Ok(_) => {}
                Err(StoreError::NotFound { .. }) => return Ok(false),
                Err(error) => return Err(error.into()),
            }
        }
        Ok(false)
    }
}

/// Whether two versions describe the same data (they may differ in
/// checkpoints).
fn same_tables(a: &Manifest, b: &Manifest) -> bool {
    let unpinned = |manifest: &Manifest| Manifest {
        checkpoints: Vec::new(),
        ..manifest.clone()
    };
    unpinned(a) == unpinned(b)
}

/// Whether `manifest` still holds the reader's checkpoint `current` and
/// describes the data of `pinned` (the view's version): then the view
/// need not move.
fn still_pinned(manifest: &Manifest, current: Option<Ulid>, pinned: &Manifest) -> bool {
    manifest
        .checkpoints
        .iter()
        .any(|checkpoint| Some(checkpoint.id) == current)
        && same_tables(manifest, pinned)
}

/// One of the reader's checkpoints and the view it protects.
#[derive(Debug)]
struct Pin {
    id: Ulid,
    view: Weak<ReadView>,
}

#[derive(Debug)]
pub(super) enum FollowMsg {
    /// Look for new WAL tables (every refresh interval).
    Tick,
    /// Renew the checkpoints if due (when there is no refresh interval).
    Upkeep,
    /// Move to the newest manifest version and read the WAL: the sequence
    /// number then visible.
    Refresh(Reply<Result<u64, Error>>),
    /// Delete the reader's checkpoints; nothing is done after it.
    Close(Reply<Result<(), Error>>),
}

/// The reader's follower.
#[derive(Debug)]
pub(super) struct Follower {
    tables: TableStore,
    manifest: Fenced<Manifest>,
    /// The version the published view was built from.
    pinned: Manifest,
    published: Arc<ArcSwap<Published>>,
    options: ReaderOptions,
    /// The name its checkpoints carry.
    name: String,
    /// Its checkpoints, the current view's last.
    pins: Vec<Pin>,
    tail: Tail,
    /// When it last wrote the manifest (runtime clock).
    wrote_at: Duration,
    /// When it last read the newest manifest version.
    polled_at: Duration,
    closed: bool,
}

impl Follower {
    /// Pins the newest version of `manifest` with a checkpoint of its own
    /// and reads the WAL above it: the follower, and the view reads load.
    ///
    /// # Errors
    ///
    /// `Unavailable` if the store failed; `Corruption` for a damaged
    /// manifest or WAL table.
    pub async fn open(
        tables: TableStore,
        manifest: Fenced<Manifest>,
        options: ReaderOptions,
    ) -> Result<(Follower, Arc<ArcSwap<Published>>), Error> {
        let runtime = tables.runtime().clone();
        let pinned = manifest.current().clone();
        let tail = Tail::new(&pinned);
        let view = Arc::new(ReadView::new(tail.memtable.clone(), &pinned));
        let published = Arc::new(ArcSwap::from_pointee(Published {
            view,
            seq: tail.seq,
            manifest_id: manifest.id(),
            checkpoint: None,
        }));
        let mut follower = Follower {
            name: format!("reader {}", Ulid::generate(&runtime)),
            tables,
            manifest,
            pinned,
            published: published.clone(),
            options,
            pins: Vec::new(),
            tail,
            wrote_at: runtime.now(),
            polled_at: runtime.now(),
            closed: false,
        };
        follower.repin().await?;
        follower.read_tail().await?;
        Ok((follower, published))
    }

    fn now(&self) -> Duration {
        self.tables.runtime().now()
    }

    fn renewal_due(&self) -> bool {
        self.now().saturating_sub(self.wrote_at) >= self.options.checkpoint_lifetime / 2
    }

    /// Publishes the tail's sequence number over the current view.
    fn publish_seq(&self) {
        let current = self.published.load();
        if current.seq == self.tail.seq {
            return;
        }
        self.published.store(Arc::new(Published {
            view: current.view.clone(),
            seq: self.tail.seq,
            manifest_id: current.manifest_id,
            checkpoint: current.checkpoint,
        }));
    }

    async fn read_tail(&mut self) -> Result<bool, Error> {
        let read = self.tail.read(&self.tables, self.pinned.last_l0_seq).await;
        self.publish_seq();
        read
    }

    /// Writes a version of the newest manifest that drops the checkpoints
    /// of views no read holds and renews the others. If that version's
    /// data differs from the view's (or the view's checkpoint is gone), it
    /// also pins itself with a new checkpoint and the reader moves to it.
    /// The update reads the newest version first (`Fenced::update`).
    async fn repin(&mut self) -> Result<(), Error> {
        let runtime = self.tables.runtime().clone();
        let now_ms = runtime.wall_ms();
        let lifetime_ms = u64::try_from(self.options.checkpoint_lifetime.as_millis()).unwrap_or(u64::MAX);
        let expire_ms = now_ms.saturating_add(lifetime_ms);
        let new_id = Ulid::generate(&runtime);
        let ours: HashSet<Ulid> = self.pins.iter().map(|pin| pin.id).collect();
        let held: HashSet<Ulid> = self
            .pins
            .iter()
            .filter(|pin| pin.view.strong_count() > 0)
            .map(|pin| pin.id)
            .collect();
        let current = self.pins.last().map(|pin| pin.id);
        let (name, pinned) = (self.name.clone(), &self.pinned);
        let mut moved = false;
        self.manifest
            .update(|manifest, next_id| {
                manifest.checkpoints.retain(|checkpoint| {
                    checkpoint.id != new_id && (!ours.contains(&checkpoint.id) || held.contains(&checkpoint.id))
                });
                for checkpoint in &mut manifest.checkpoints {
                    if held.contains(&checkpoint.id) {
                        checkpoint.expire_ms = Some(expire_ms);
                    }
                }
                moved = !still_pinned(manifest, current, pinned);
                if moved {
                    manifest.checkpoints.push(Checkpoint {
                        id: new_id,
                        manifest_id: next_id,
                        create_ms: now_ms,
                        expire_ms: Some(expire_ms),
                        name: Some(name.clone()),
                    });
                }
                Ok(())
            })
            .await?;
        self.wrote_at = self.now();
        self.polled_at = self.wrote_at;
        self.pins.retain(|pin| held.contains(&pin.id));
        if !moved {
            return Ok(());
        }
        let manifest = self.manifest.current().clone();
        self.tail.rebase(&manifest);
        let mut view = self.published.load().view.with_manifest(&manifest);
        view.memtable = self.tail.memtable.clone();
        let view = Arc::new(view);
        self.pins.push(Pin {
            id: new_id,
            view: Arc::downgrade(&view),
        });
        self.published.store(Arc::new(Published {
            view,
            seq: self.tail.seq,
            manifest_id: self.manifest.id(),
            checkpoint: Some(new_id),
        }));
        self.pinned = manifest;
        Ok(())
    }

    /// Reads the newest manifest version.
    async fn catch_up(&mut self) -> Result<(), Error> {
        self.manifest.refresh().await?;
        self.polled_at = self.now();
        Ok(())
    }

    /// Reads the newest manifest version and moves to it if its data
    /// differs from the view's (or the view's checkpoint is gone); `true`
    /// if it moved.
    async fn poll_manifest(&mut self) -> Result<bool, Error> {
        self.catch_up().await?;
        let current = self.pins.last().map(|pin| pin.id);
        if still_pinned(self.manifest.current(), current, &self.pinned) {
            return Ok(false);
        }
        self.repin().await?;
        Ok(true)
    }

    /// One refresh interval: renew the checkpoints if due (in place of the
    /// interval's WAL read), else read the WAL, and look at the
    /// manifest when the tail is stuck or has moved for a while.
    async fn tick(&mut self) -> Result<(), Error> {
        if self.renewal_due() {
            return self.repin().await;
        }
        let applied = self.read_tail().await;
        let stale = self.now().saturating_sub(self.polled_at) >= self.options.manifest_interval;
        if self.tail.stuck.is_some() || (matches!(applied, Ok(true)) && stale) {
            if self.poll_manifest().await? {
                self.read_tail().await?;
            }
            return Ok(());
        }
        applied.map(drop)
    }

    /// What [`FollowMsg::Refresh`] does.
    async fn refresh(&mut self) -> Result<u64, Error> {
        self.poll_manifest().await?;
        self.read_tail().await?;
        Ok(self.tail.seq)
    }

    /// Deletes every checkpoint of the reader.
    async fn release(&mut self) -> Result<(), Error> {
        let ours: HashSet<Ulid> = self.pins.iter().map(|pin| pin.id).collect();
        self.manifest
            .update(|manifest, _| {
                manifest.checkpoints.retain(|checkpoint| !ours.contains(&checkpoint.id));
                Ok(())
            })
            .await?;
        self.pins.clear();
        Ok(())
    }
}

impl Actor for Follower {
    type Msg = FollowMsg;
    type Error = Error;

    async fn handle(&mut self, msg: FollowMsg, _ctx: &mut Context<Self>) -> Result<(), Error> {
        if self.closed {
            match msg {
                FollowMsg::Refresh(reply) => reply.send(Err(closed())),
                FollowMsg::Close(reply) => reply.send(Ok(())),
                FollowMsg::Tick | FollowMsg::Upkeep => {}
            }
            return Ok(());
        }
        match msg {
            FollowMsg::Tick => {
                if let Err(error) = self.tick().await {
                    tracing::warn!(%error, "the reader could not refresh; trying again at the next tick");
                }
            }
            FollowMsg::Upkeep => {
                if self.renewal_due()
                    && let Err(error) = self.repin().await
                {
                    tracing::warn!(%error, "the reader could not renew its checkpoint; trying again soon");
                }
            }
            FollowMsg::Refresh(reply) => reply.send(self.refresh().await),
            FollowMsg::Close(reply) => {
                self.closed = true;
                reply.send(self.release().await);
            }
        }
        Ok(())
    }

    fn tickers(&mut self) -> Vec<Ticker<FollowMsg>> {
        match self.options.refresh_interval {
            Some(interval) => vec![Ticker::every(interval, || FollowMsg::Tick)],
            None => vec![Ticker::every(self.options.checkpoint_lifetime / 4, || {
                FollowMsg::Upkeep
            })],
        }
    }

    fn cleanup(&mut self, leftover: Vec<FollowMsg>, result: &Result<(), ActorError<Error>>) {
        let error = Error::from_closed_result(result);
        for msg in leftover {
            match msg {
                FollowMsg::Refresh(reply) => reply.send(Err(error.clone())),
                FollowMsg::Close(reply) => reply.send(Err(error.clone())),
                FollowMsg::Tick | FollowMsg::Upkeep => {}
            }
        }
    }
}

/// The error of a call on a closed reader.
pub(super) fn closed() -> Error {
    Error::new(crate::error::ErrorKind::Closed { cause: None }, "the reader is closed")
}
