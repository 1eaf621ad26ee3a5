//! The WAL writer: sequence numbers, the open WAL buffer, the current
//! memtable and write admission.
//!
//! Owns: assigning sequence numbers; appending writes to the WAL buffer and
//! the memtable; sealing the buffer into numbered WAL tables and uploading
//! them (several in flight); the durable sequence, which advances only over
//! a contiguous prefix of WAL ids; durability waiters; freezing full
//! memtables and handing them to the uploader pool; backpressure.
//!
//! When the buffer is uploaded: at `wal_buffer_bytes`, on `Tick`, on
//! `Flush`, before a memtable is frozen, and — when a durable writer waits
//! for a row in it — at once whenever an upload slot is free (fewer than
//! `max_inflight_wal_uploads` in flight): a lone durable writer waits about
//! one PUT, and under load writes batch up only while every slot is busy,
//! so the request rate stays bounded by the slots. Rows nobody waits for
//! (`await_durable: false`) ride along, or go at the size or the tick: a
//! non-durable fill makes few, large WAL tables.
//!
//! Invariants: rows reach the memtable in sequence order and a batch is
//! visible only when all of it is in; a waiter is answered only when every
//! WAL table up to its write's is durable; a frozen memtable's rows are all
//! in WAL tables with ids at or below its `last_wal_id`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use talus_actors::{Actor, ActorError, Addr, Context, Reply, Ticker};

use crate::error::{Error, ErrorKind};
use crate::format::sst::{WalRole, WalStamp};
use crate::format::{RangeTombstone, Row, RowValue};
use crate::l0::uploader::UploadMsg;
use crate::manifest::{EpochLease, Manifest, VersionedStore};
use crate::mem::Memtable;
use crate::read::{Frozen, ReadView, Seqs};
use crate::shared::counters::Counters;
use crate::shared::snapshots::Snapshots;
use crate::store::{TableStore, WalConflict};
use crate::waiters::SeqWaiters;
use crate::wal::conflicts::{ConflictCheck, ConflictTracker};

/// One operation of a batch, given its own sequence number in batch order.
#[derive(Clone, Debug)]
pub enum WriteOp {
    /// A put, delete or merge; a put may expire `ttl` after it is applied.
    Row {
        key: Bytes,
        value: RowValue,
        ttl: Option<Duration>,
    },
    /// A delete of every key in `start..end` (`None`: no end).
    DeleteRange { start: Bytes, end: Option<Bytes> },
}

impl WriteOp {
    /// The bytes it adds to the memtable.
    fn memtable_bytes(&self) -> usize {
        match self {
            WriteOp::Row { key, value, .. } => Memtable::row_size(key, value),
            WriteOp::DeleteRange { start, end } => RangeTombstone::size_of(start, end.as_deref()),
        }
    }
}

/// A batch to apply; the reply carries its last sequence number.
#[derive(Debug)]
pub struct PendingWrite {
    pub ops: Vec<WriteOp>,
    pub await_durable: bool,
    pub reply: Reply<Result<u64, Error>>,
    /// A transaction's commit: applied only if this check passes when its
    /// turn comes (see [`crate::wal::conflicts`]).
    pub check: Option<ConflictCheck>,
}

impl PendingWrite {
    /// The bytes its rows add to the memtable.
    fn memtable_bytes(&self) -> usize {
        self.ops.iter().map(WriteOp::memtable_bytes).sum()
    }
}

/// Messages to the WAL writer.
#[derive(Debug)]
pub enum WalMsg {
    Write(PendingWrite),
    /// Reply once everything accepted so far is durable.
    Flush {
        reply: Reply<Result<u64, Error>>,
    },
    /// Freeze the memtable now (if it has rows); the reply carries the
    /// highest sequence number that is now in a frozen memtable or L0.
    FreezeMemtable {
        reply: Reply<Result<u64, Error>>,
    },
    Tick,
    /// The group-commit window after a durable write ended: seal now if
    /// a slot is free.
    SealDue,
    /// An upload ended; `Ok(true)`: it replaced a fenced writer's table.
    WalUploaded {
        id: u64,
        result: Result<bool, Error>,
    },
    /// A manifest read that started at `started` found this writer epoch
    /// (`None`: no manifest).
    LeaseChecked {
        started: std::time::Duration,
        result: Result<Option<u64>, Error>,
    },
    /// Memtables holding rows through this sequence are now in L0.
    MemtableRetired {
        through_seq: u64,
    },
}

/// The WAL writer's part of the database's options (see
/// [`crate::DbOptions`], whose fields these mirror).
#[derive(Clone, Debug)]
pub(crate) struct WalSettings {
    /// A buffer this large is sealed and uploaded.
    pub(crate) wal_buffer_bytes: usize,
    /// How long a buffer may wait for company while a durable writer waits.
    pub(crate) group_commit_window: std::time::Duration,
    /// How often the buffer is looked at for sealing and uploading.
    pub(crate) flush_interval: std::time::Duration,
    /// WAL uploads at once.
    pub(crate) max_inflight_wal_uploads: usize,
    /// A memtable this large is frozen and sent to L0.
    pub(crate) memtable_bytes: usize,
    /// Writes wait while memtables not yet in L0 hold this much.
    pub(crate) max_unflushed_bytes: usize,
    /// Writes remembered for transaction commits.
    pub(crate) transaction_tracking_keys: usize,
}

/// The state the WAL writer shares with the rest of the engine.
#[derive(Clone, Debug)]
pub(crate) struct WalShared {
    /// Where new memtables are published.
    pub(crate) view: Arc<ArcSwap<ReadView>>,
    /// The visible and durable sequence numbers.
    pub(crate) seqs: Arc<Seqs>,
    pub(crate) counters: Arc<Counters>,
    /// Live snapshots and open transactions.
    pub(crate) snapshots: Arc<Snapshots>,
}

/// A WAL table being uploaded.
#[derive(Clone, Copy, Debug)]
struct Upload {
    /// The last sequence number in it.
    last_seq: u64,
    /// Whether the store has it (it counts once every lower id has too).
    done: bool,
}

/// A frozen memtable on its way to L0.
#[derive(Clone, Copy, Debug)]
struct FrozenMemtable {
    /// The last sequence number in it.
    last_seq: u64,
    /// Its size, counted as unflushed until it is retired.
    bytes: usize,
}

/// A sealed WAL buffer waiting for an upload slot.
#[derive(Debug)]
struct Sealed {
    id: u64,
    rows: Arc<Vec<Row>>,
    range_tombstones: Arc<Vec<RangeTombstone>>,
    last_seq: u64,
}

pub struct WalWriter {
    tables: TableStore,
    view: Arc<ArcSwap<ReadView>>,
    seqs: Arc<Seqs>,
    counters: Arc<Counters>,
    options: WalSettings,
    uploader: Addr<UploadMsg, Error>,
    /// The last sequence number assigned.
    last_seq: u64,
    /// The last sequence number a frozen memtable (or L0) holds.
    frozen_through_seq: u64,
    buffer: Vec<Row>,
    /// The buffer's range tombstones, in sequence order.
    buffer_ranges: Vec<RangeTombstone>,
    buffer_bytes: usize,
    next_wal_id: u64,
    sealed: VecDeque<Sealed>,
    /// The WAL tables being uploaded, by id.
    in_flight: BTreeMap<u64, Upload>,
    durable_seq: u64,
    /// Every WAL id at or below this is durable: the contiguous prefix the
    /// durable sequence stands on, stamped into each new WAL table.
    durable_wal_id: u64,
    /// This writer's epoch, stamped into each WAL table.
    writer_epoch: u64,
    lease: Arc<EpochLease>,
    manifests: VersionedStore<Manifest>,
    /// A manifest read confirming the epoch is under way.
    lease_check_running: bool,
    /// An upload replaced a fenced writer's WAL table at this instant:
    /// nothing is acknowledged until a manifest read that started later
    /// confirms the epoch (see [`crate::store::WrittenTable::replaced`]).
    confirm_after: Option<Duration>,
    /// Durable writes and flushes, by the sequence they wait for.
    waiters: SeqWaiters<u64>,
    memtable: Arc<Memtable>,
    /// Frozen memtables not yet retired, oldest first.
    frozen: VecDeque<FrozenMemtable>,
    /// Writes held back by backpressure, in arrival order.
    stalled: VecDeque<PendingWrite>,
    /// A `SealDue` is on its way.
    seal_due: bool,
    /// Recent writes, for transaction commits.
    conflicts: ConflictTracker,
    snapshots: Arc<Snapshots>,
}

impl std::fmt::Debug for WalWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalWriter")
            .field("last_seq", &self.last_seq)
            .field("durable_seq", &self.durable_seq)
            .field("next_wal_id", &self.next_wal_id)
            .finish_non_exhaustive()
    }
}

/// Where recovery left the writer.
#[derive(Debug)]
pub struct WalStart {
    pub last_seq: u64,
    /// The highest sequence number already in L0: the first memtable frozen
    /// holds the ones after it.
    pub flushed_seq: u64,
    pub next_wal_id: u64,
    pub writer_epoch: u64,
    /// When the writer last confirmed its epoch (see [`EpochLease`]).
    pub lease: Arc<EpochLease>,
    /// Where to confirm it again when the lease has run out.
    pub manifests: VersionedStore<Manifest>,
    pub memtable: Arc<Memtable>,
}

impl WalWriter {
    pub fn new(
        tables: TableStore,
        shared: WalShared,
        options: WalSettings,
        uploader: Addr<UploadMsg, Error>,
        start: WalStart,
    ) -> Self {
        WalWriter {
            tables,
            view: shared.view,
            seqs: shared.seqs,
            counters: shared.counters,
            conflicts: ConflictTracker::new(options.transaction_tracking_keys),
            snapshots: shared.snapshots,
            options,
            uploader,
            last_seq: start.last_seq,
            frozen_through_seq: start.flushed_seq,
            buffer: Vec::new(),
            buffer_ranges: Vec::new(),
            buffer_bytes: 0,
            next_wal_id: start.next_wal_id,
            sealed: VecDeque::new(),
            in_flight: BTreeMap::new(),
            durable_seq: start.last_seq,
            durable_wal_id: start.next_wal_id.saturating_sub(1),
            writer_epoch: start.writer_epoch,
            lease: start.lease,
            manifests: start.manifests,
            lease_check_running: false,
            confirm_after: None,
            waiters: SeqWaiters::default(),
            memtable: start.memtable,
            frozen: VecDeque::new(),
            stalled: VecDeque::new(),
            seal_due: false,
        }
    }

    /// Whether a buffer sealed now would start uploading at once: then
    /// there is no reason to keep a write waiting for more company.
    fn upload_slot_free(&self) -> bool {
        self.sealed.is_empty() && self.in_flight.len() < self.options.max_inflight_wal_uploads
    }

    fn unflushed_bytes(&self) -> usize {
        self.memtable.size() + self.frozen.iter().map(|frozen| frozen.bytes).sum::<usize>()
    }

    /// Whether a durable writer waits for a write still in the buffer.
    fn buffer_awaited(&self) -> bool {
        let first_row = self.buffer.first().map(|row| row.seq);
        let first_range = self.buffer_ranges.first().map(|tombstone| tombstone.seq);
        let first = match (first_row, first_range) {
            (Some(row), Some(range)) => Some(row.min(range)),
            (row, range) => row.or(range),
        };
        match (first, self.waiters.highest()) {
            (Some(first), Some(highest)) => highest >= first,
            _ => false,
        }
    }

    fn buffer_is_empty(&self) -> bool {
        self.buffer.is_empty() && self.buffer_ranges.is_empty()
    }

    fn apply(&mut self, ops: Vec<WriteOp>, await_durable: bool, ctx: &mut Context<Self>) -> u64 {
        let (rows_before, ranges_before) = (self.buffer.len(), self.buffer_ranges.len());
        let now_ms = ctx.runtime().wall_ms();
        for op in ops {
            self.last_seq += 1;
            let (key, value, ttl) = match op {
                WriteOp::Row { key, value, ttl } => (key, value, ttl),
                WriteOp::DeleteRange { start, end } => {
                    let tombstone = RangeTombstone {
                        start,
                        end,
                        seq: self.last_seq,
                    };
                    self.buffer_bytes += tombstone.size();
                    self.memtable.insert_range_tombstone(tombstone.clone());
                    self.buffer_ranges.push(tombstone);
                    continue;
                }
            };
            let expire_ms = ttl.map(|ttl| now_ms.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)));
            let row = Row {
                key,
                value,
                seq: self.last_seq,
                create_ms: None,
                expire_ms,
            };
            self.buffer_bytes += row.key.len()
                + 16
                + match &row.value {
                    RowValue::Value(value) | RowValue::Merge(value) => value.len(),
                    RowValue::Tombstone => 0,
                };
            self.memtable.insert(&row);
            self.buffer.push(row);
        }
        self.seqs.visible.store(self.last_seq, Ordering::Release);
        self.snapshots.record_time(now_ms, self.last_seq);
        self.track(rows_before, ranges_before);
        if self.buffer_bytes >= self.options.wal_buffer_bytes {
            self.seal(ctx);
        } else if await_durable && self.upload_slot_free() {
            self.seal_soon(ctx);
        }
        if self.memtable.size() >= self.options.memtable_bytes {
            self.freeze(ctx);
        }
        self.last_seq
    }

    /// Records the keys and ranges the batch just applied wrote (the
    /// buffer's rows from `rows_before` on, its range tombstones from
    /// `ranges_before` on) while a transaction is open; forgets everything
    /// while none is. Called after the batch's sequence is published (see
    /// [`Snapshots::pin_transaction`] for why that order matters).
    fn track(&mut self, rows_before: usize, ranges_before: usize) {
        if !self.snapshots.transactions_open() {
            self.conflicts.clear();
            return;
        }
        for row in &self.buffer[rows_before..] {
            self.conflicts.record(&row.key, row.seq);
        }
        for tombstone in &self.buffer_ranges[ranges_before..] {
            self.conflicts.record_range(tombstone);
        }
        if self.conflicts.over_bound() {
            // Writes at or below the oldest snapshot cannot conflict with
            // any open transaction; past that, the oldest are forgotten.
            self.conflicts
                .forget_through(self.snapshots.oldest().unwrap_or(self.last_seq));
            self.conflicts.enforce_bound();
        }
    }

    fn write(&mut self, write: PendingWrite, ctx: &mut Context<Self>) {
        let bytes = write.memtable_bytes();
        let PendingWrite {
            ops,
            await_durable,
            reply,
            check,
        } = write;
        if let Some(check) = check
            && let Err(why) = self.conflicts.check(&check)
        {
            self.counters.transaction_conflicted();
            reply.send(Err(Error::new(ErrorKind::TransactionConflict, why)));
            return;
        }
        if ops.is_empty() {
            reply.send(Ok(self.last_seq));
            return;
        }
        self.counters.wrote(bytes);
        let seq = self.apply(ops, await_durable, ctx);
        self.counters.set_unflushed(self.unflushed_bytes());
        if await_durable && seq > self.durable_seq {
            self.waiters.wait(seq, reply);
        } else {
            reply.send(Ok(seq));
        }
    }

    /// Seals after the group-commit window, so that writers woken together
    /// by the last upload (who come back within microseconds of each
    /// other) share the next WAL table instead of the first taking a slot
    /// alone.
    fn seal_soon(&mut self, ctx: &mut Context<Self>) {
        let window = self.options.group_commit_window;
        if window.is_zero() {
            self.seal(ctx);
        } else if !self.seal_due {
            self.seal_due = true;
            let sleep = ctx.runtime().sleep(window);
            ctx.spawn_then(sleep, |()| WalMsg::SealDue);
        }
    }

    /// Starts queued uploads, first sealing the buffer if a slot is free
    /// and a durable writer waits for a row in it.
    fn seal_if_awaited(&mut self, ctx: &mut Context<Self>) {
        if self.upload_slot_free() && self.buffer_awaited() {
            self.seal(ctx);
        } else {
            self.start_uploads(ctx);
        }
    }

    /// Turns the buffer into the next WAL table and starts uploads.
    fn seal(&mut self, ctx: &mut Context<Self>) {
        if !self.buffer_is_empty() {
            let rows = std::mem::take(&mut self.buffer);
            let range_tombstones = std::mem::take(&mut self.buffer_ranges);
            self.buffer_bytes = 0;
            let id = self.next_wal_id;
            self.next_wal_id += 1;
            self.sealed.push_back(Sealed {
                id,
                rows: Arc::new(rows),
                range_tombstones: Arc::new(range_tombstones),
                last_seq: self.last_seq,
            });
        }
        self.start_uploads(ctx);
    }

    fn start_uploads(&mut self, ctx: &mut Context<Self>) {
        while self.in_flight.len() < self.options.max_inflight_wal_uploads {
            let Some(sealed) = self.sealed.pop_front() else { break };
            self.in_flight.insert(
                sealed.id,
                Upload {
                    last_seq: sealed.last_seq,
                    done: false,
                },
            );
            let tables = self.tables.clone();
            let id = sealed.id;
            let clock = ctx.runtime().clone();
            let stamp = WalStamp {
                role: WalRole::Data,
                writer_epoch: self.writer_epoch,
                durable_through_wal_id: self.durable_wal_id,
            };
            ctx.spawn_then(
                async move {
                    let started = clock.now();
                    let written = tables
                        .write_wal_stamped(
                            id,
                            stamp,
                            sealed.rows.iter(),
                            &sealed.range_tombstones,
                            WalConflict::ReplaceOlderEpoch,
                        )
                        .await;
                    metrics::histogram!(crate::metrics::WAL_UPLOAD_SECONDS)
                        .record((clock.now() - started).as_secs_f64());
                    written.map(|written| written.replaced).map_err(Error::from)
                },
                move |result| WalMsg::WalUploaded { id, result },
            );
        }
    }

    fn uploaded(&mut self, id: u64, ctx: &mut Context<Self>) {
        self.counters.wal_uploaded();
        if let Some(upload) = self.in_flight.get_mut(&id) {
            upload.done = true;
        }
        self.release_durable(ctx);
    }

    /// Moves the durable sequence over the uploaded prefix and answers its
    /// waiters, once the epoch lease is fresh and confirmed since any
    /// replacement (else confirms it first).
    fn release_durable(&mut self, ctx: &mut Context<Self>) {
        let releasable = self.in_flight.values().next().is_some_and(|upload| upload.done);
        if let Some(at) = self.confirm_after
            && self.lease.confirmed_since(at)
        {
            self.confirm_after = None;
        }
        if releasable && (self.confirm_after.is_some() || !self.lease.is_fresh(ctx.now())) {
            self.check_lease(ctx);
            self.seal_if_awaited(ctx);
            return;
        }
        // The durable sequence only moves over a contiguous prefix of ids.
        while let Some((&first, &upload)) = self.in_flight.iter().next() {
            if !upload.done {
                break;
            }
            self.in_flight.remove(&first);
            self.durable_seq = self.durable_seq.max(upload.last_seq);
            self.durable_wal_id = first;
        }
        self.seqs.durable.store(self.durable_seq, Ordering::Release);
        self.waiters.release_through(self.durable_seq, |seq| seq);
        self.seal_if_awaited(ctx);
    }

    /// Reads the manifest to confirm no newer writer opened; the answer
    /// comes back as `LeaseChecked`.
    fn check_lease(&mut self, ctx: &mut Context<Self>) {
        if self.lease_check_running {
            return;
        }
        self.lease_check_running = true;
        let started = ctx.now();
        let manifests = self.manifests.clone();
        ctx.spawn_then(
            async move {
                let latest = manifests.read_latest().await.map_err(Error::from)?;
                Ok(latest.map(|(_, manifest)| manifest.writer_epoch))
            },
            move |result| WalMsg::LeaseChecked { started, result },
        );
    }

    /// Freezes the memtable: seals the buffer so the memtable ends on a WAL
    /// table boundary, publishes a fresh memtable and hands the frozen one
    /// to the uploader pool.
    fn freeze(&mut self, ctx: &mut Context<Self>) {
        if self.memtable.is_empty() {
            return;
        }
        self.seal(ctx);
        let frozen = std::mem::replace(&mut self.memtable, Arc::new(Memtable::new()));
        let last_wal_id = self.next_wal_id - 1;
        let last_seq = self.last_seq;
        let seqs = (self.frozen_through_seq + 1, last_seq);
        self.frozen_through_seq = last_seq;
        self.frozen.push_back(FrozenMemtable {
            last_seq,
            bytes: frozen.size(),
        });
        self.counters.memtable_frozen();
        let fresh = self.memtable.clone();
        let entry = Frozen {
            table: frozen.clone(),
            last_seq,
        };
        self.view.rcu(|view| {
            let mut next = ReadView::clone(view);
            next.memtable = fresh.clone();
            next.frozen.insert(0, entry.clone());
            next
        });
        // The pool's mailbox is unbounded: this never waits.
        let _ = self.uploader.try_send(UploadMsg::Upload {
            memtable: frozen,
            seqs,
            last_wal_id,
        });
    }

    /// Whether `write` fits under the unflushed-bytes maximum now. A write
    /// larger than the maximum is let in alone once nothing is unflushed,
    /// so it waits but is never refused.
    fn fits(&self, write: &PendingWrite) -> bool {
        let unflushed = self.unflushed_bytes();
        unflushed == 0 || unflushed + write.memtable_bytes() <= self.options.max_unflushed_bytes
    }

    /// Admits held-back writes in arrival order while they fit. If the
    /// first still does not fit and no frozen memtable is on its way to L0
    /// (whose retirement would free room), the memtable is frozen now, so
    /// a stall always ends.
    fn admit_stalled(&mut self, ctx: &mut Context<Self>) {
        while self.stalled.front().is_some_and(|write| self.fits(write)) {
            let Some(write) = self.stalled.pop_front() else { break };
            self.write(write, ctx);
        }
        if !self.stalled.is_empty() && self.frozen.is_empty() {
            self.freeze(ctx);
        }
    }
}

impl Actor for WalWriter {
    type Msg = WalMsg;
    type Error = Error;

    async fn handle(&mut self, msg: WalMsg, ctx: &mut Context<Self>) -> Result<(), Error> {
        match msg {
            WalMsg::Write(write) => {
                if !self.stalled.is_empty() || !self.fits(&write) {
                    tracing::debug!(unflushed = self.unflushed_bytes(), "write stalled");
                    self.counters.stalled();
                    self.stalled.push_back(write);
                    self.admit_stalled(ctx);
                } else {
                    self.write(write, ctx);
                }
            }
            WalMsg::Flush { reply } => {
                self.seal(ctx);
                if self.last_seq <= self.durable_seq {
                    reply.send(Ok(self.last_seq));
                } else {
                    self.waiters.wait(self.last_seq, reply);
                }
            }
            WalMsg::FreezeMemtable { reply } => {
                self.freeze(ctx);
                reply.send(Ok(self.last_seq));
            }
            WalMsg::SealDue => {
                self.seal_due = false;
                self.seal_if_awaited(ctx);
            }
            WalMsg::Tick => {
                if !self.buffer_is_empty() {
                    self.seal(ctx);
                }
            }
            WalMsg::WalUploaded { id, result } => {
                if result? {
                    // A paused writer's lease may still look fresh, but the
                    // table it replaced may be one that newer writers
                    // already replayed past: no fence stops it there.
                    self.confirm_after = Some(ctx.now());
                }
                self.uploaded(id, ctx);
            }
            WalMsg::LeaseChecked { started, result } => {
                self.lease_check_running = false;
                if let Some(stored) = result?
                    && stored > self.writer_epoch
                {
                    return Err(Error::new(
                        ErrorKind::Fenced,
                        format!(
                            "writer epoch {} was fenced by epoch {stored} while its WAL uploads waited",
                            self.writer_epoch
                        ),
                    ));
                }
                self.lease.confirm(started);
                self.release_durable(ctx);
            }
            WalMsg::MemtableRetired { through_seq } => {
                while self.frozen.front().is_some_and(|frozen| frozen.last_seq <= through_seq) {
                    self.frozen.pop_front();
                }
                self.counters.set_unflushed(self.unflushed_bytes());
                self.admit_stalled(ctx);
            }
        }
        Ok(())
    }

    fn tickers(&mut self) -> Vec<Ticker<WalMsg>> {
        vec![Ticker::every(self.options.flush_interval, || WalMsg::Tick)]
    }

    fn cleanup(&mut self, leftover: Vec<WalMsg>, result: &Result<(), ActorError<Error>>) {
        let error = Error::from_closed_result(result);
        self.waiters.fail_all(&error);
        let stalled = self.stalled.drain(..).map(|write| write.reply);
        let queued = leftover.into_iter().filter_map(|msg| match msg {
            WalMsg::Write(PendingWrite { reply, .. }) | WalMsg::Flush { reply } | WalMsg::FreezeMemtable { reply } => {
                Some(reply)
            }
            _ => None,
        });
        for reply in stalled.chain(queued).collect::<Vec<_>>() {
            reply.send(Err(error.clone()));
        }
    }
}
