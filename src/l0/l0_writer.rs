//! The L0 manifest writer: records uploaded L0 tables in the manifest
//! strictly in sequence order, and answers flush and checkpoint waiters.
//!
//! Owns: the writer's fenced manifest handle, uploaded tables waiting for an
//! earlier range, flush waiters (`AwaitFlush`), checkpoint requests waiting
//! for their data to reach L0, and publishing the table part of the read
//! view. Does not own: WAL ids or memtables (the WAL writer).
//!
//! Invariants: a table is retired only after every earlier sequence range
//! (a later table waits while an earlier one is missing); L0 never grows
//! past `max_l0_tables` (uploaded tables wait for the compactor, counted
//! as L0 stalls; frozen memtables then pile up until writers stall); every
//! manifest write records `retain_seq` for live snapshots and the
//! retention window, with the time map behind it; a checkpoint
//! request rides on the manifest write that makes its sequence durable in
//! L0, or is written at once if nothing is missing; a higher writer epoch
//! is fatal `Fenced`; on stop every waiter is answered.
//!
//! Manifest writes are awaited inside the handler: this actor's mailbox
//! carries only flush bookkeeping, never a user's write, so waiting there
//! delays nobody's put.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use talus_actors::{Actor, ActorError, Context, Reply, Ticker};

use crate::compactor::actor::OnCommit;
use crate::error::Error;
use crate::manifest::{Checkpoint, CheckpointOptions, Fenced, Manifest, TableHandle};
use crate::read::ReadView;
use crate::shared::counters::Counters;
use crate::shared::snapshots::Snapshots;
use crate::store::{TableStore, Ulid};
use crate::waiters::SeqWaiters;

#[derive(Debug)]
pub enum L0Msg {
    Uploaded {
        first_seq: u64,
        last_seq: u64,
        last_wal_id: u64,
        table: TableHandle,
    },
    /// Reply once every row through `through_seq` is in an L0 table
    /// recorded in the manifest.
    AwaitFlush {
        through_seq: u64,
        reply: Reply<Result<(), Error>>,
    },
    CreateCheckpoint {
        through_seq: u64,
        options: CheckpointOptions,
        reply: Reply<Result<Checkpoint, Error>>,
    },
    Poll,
}

/// The L0 writer's actor name in a database (and in its traces).
pub const NAME: &str = "l0_writer";

/// An uploaded L0 table waiting for its turn in the manifest: the rows of
/// sequence numbers `first_seq..=last_seq`, from WAL tables up to
/// `last_wal_id`.
#[derive(Debug)]
struct Uploaded {
    last_seq: u64,
    last_wal_id: u64,
    table: TableHandle,
}

impl L0Msg {
    /// The message as one line of text that [`L0Msg::decode`] reads back:
    /// what the L0 writer's trace holds, so a recorded mailbox can be
    /// replayed into a fresh writer. Waiters are not written.
    pub fn encode(&self) -> String {
        match self {
            L0Msg::Uploaded {
                first_seq,
                last_seq,
                last_wal_id,
                table,
            } => {
                let mut bytes = Vec::new();
                table.encode(&mut bytes, true);
                format!("Uploaded {first_seq} {last_seq} {last_wal_id} {}", hex(&bytes))
            }
            L0Msg::AwaitFlush { through_seq, .. } => format!("AwaitFlush {through_seq}"),
            L0Msg::CreateCheckpoint {
                through_seq, options, ..
            } => {
                let optional = |value: Option<String>| value.unwrap_or_else(|| "-".into());
                format!(
                    "CreateCheckpoint {through_seq} {} {} {}",
                    optional(options.lifetime.map(|lifetime| lifetime.as_millis().to_string())),
                    optional(options.pin.map(|pin| pin.to_string())),
                    optional(options.name.as_ref().map(|name| hex(name.as_bytes()))),
                )
            }
            L0Msg::Poll => "Poll".into(),
        }
    }

    /// Reads a line written by [`L0Msg::encode`]; waiters come back
    /// detached (their answers go nowhere). `None` if it is not one.
    #[cfg(test)]
    pub fn decode(line: &str) -> Option<L0Msg> {
        use crate::format::codec::Cursor;
        let mut words = line.split(' ');
        let kind = words.next()?;
        let mut number = || words.next().and_then(|word| word.parse::<u64>().ok());
        let msg = match kind {
            "Uploaded" => {
                let (first_seq, last_seq, last_wal_id) = (number()?, number()?, number()?);
                let bytes = unhex(words.next()?)?;
                let table = TableHandle::decode(&mut Cursor::new(&bytes, "l0 message"), true).ok()?;
                L0Msg::Uploaded {
                    first_seq,
                    last_seq,
                    last_wal_id,
                    table,
                }
            }
            "AwaitFlush" => L0Msg::AwaitFlush {
                through_seq: number()?,
                reply: Reply::detached(),
            },
            "CreateCheckpoint" => {
                let through_seq = number()?;
                let mut optional = || match words.next()? {
                    "-" => Some(None),
                    word => Some(Some(word)),
                };
                let lifetime = optional()?.map(str::parse::<u64>).transpose().ok()?;
                let pin = optional()?.map(str::parse::<u64>).transpose().ok()?;
                let name = optional()?.map(|name| unhex(name).and_then(|bytes| String::from_utf8(bytes).ok()));
                let name = match name {
                    Some(Some(name)) => Some(name),
                    Some(None) => return None,
                    None => None,
                };
                L0Msg::CreateCheckpoint {
                    through_seq,
                    options: CheckpointOptions {
                        lifetime: lifetime.map(std::time::Duration::from_millis),
                        name,
                        pin,
                    },
                    reply: Reply::detached(),
                }
            }
            "Poll" => L0Msg::Poll,
            _ => return None,
        };
        words.next().is_none().then_some(msg)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

/// A checkpoint request waiting for its sequence to reach L0.
#[derive(Debug)]
struct CheckpointRequest {
    through_seq: u64,
    options: CheckpointOptions,
    reply: Reply<Result<Checkpoint, Error>>,
}

/// The L0 writer's settings and neighbours.
pub struct L0Settings {
    /// Confirmed by every manifest read that finds our epoch current.
    pub lease: Arc<crate::manifest::EpochLease>,
    /// How often the manifest is re-read for the compactor's changes.
    pub poll_interval: std::time::Duration,
    /// Uploaded tables wait while L0 holds this many.
    pub max_l0_tables: usize,
    /// Where uploaded tables were written (their ids leave its in-flight
    /// set once the manifest lists them).
    pub tables: TableStore,
    /// Told when a table lands in L0 (the embedded compactor).
    pub wake_compactor: Option<OnCommit>,
    /// Told the sequence number through which memtables are now in L0 (the
    /// WAL writer, which lets their memory go).
    pub retired: OnRetired,
}

/// What the L0 writer calls with the sequence number now in L0.
pub(crate) type OnRetired = Box<dyn Fn(u64) + Send>;

pub struct L0Writer {
    manifest: Fenced<Manifest>,
    view: Arc<ArcSwap<ReadView>>,
    counters: Arc<Counters>,
    snapshots: Arc<Snapshots>,
    settings: L0Settings,
    /// Whether tables are waiting for room in L0 (a stall is counted once).
    l0_full: bool,
    /// Uploaded tables by first sequence number, waiting for their turn.
    pending: BTreeMap<u64, Uploaded>,
    flush_waiters: SeqWaiters<()>,
    checkpoints: Vec<CheckpointRequest>,
}

impl std::fmt::Debug for L0Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L0Writer")
            .field("manifest_id", &self.manifest.id())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl L0Writer {
    pub fn new(
        manifest: Fenced<Manifest>,
        view: Arc<ArcSwap<ReadView>>,
        counters: Arc<Counters>,
        snapshots: Arc<Snapshots>,
        settings: L0Settings,
    ) -> Self {
        L0Writer {
            manifest,
            view,
            counters,
            snapshots,
            settings,
            l0_full: false,
            pending: BTreeMap::new(),
            flush_waiters: SeqWaiters::default(),
            checkpoints: Vec::new(),
        }
    }

    fn flushed_seq(&self) -> u64 {
        self.manifest.current().last_l0_seq
    }

    /// Publishes the manifest's tables (and drops retired memtables).
    fn publish(&self) {
        let manifest = self.manifest.current().clone();
        self.counters.set_l0_tables(manifest.l0.len());
        let urgent = self.l0_full || manifest.l0.len() * 2 >= self.settings.max_l0_tables;
        self.settings.tables.pace().set_urgent(urgent);
        self.view.rcu(|view| view.with_manifest(&manifest));
    }

    /// Retires every uploaded table whose turn has come, in one manifest
    /// write that also carries the checkpoints it satisfies.
    async fn retire(&mut self) -> Result<(), Error> {
        let batch = self.take_due_tables();
        let Some(through) = batch.last().map(|uploaded| uploaded.last_seq) else {
            return Ok(());
        };
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.checkpoints)
            .into_iter()
            .partition(|request| request.through_seq <= through);
        self.checkpoints = waiting;
        let made = match self.record(&batch, &due).await {
            Ok(made) => made,
            Err(error) => {
                // Back in the queue, so that cleanup answers them with the cause.
                self.checkpoints.extend(due);
                return Err(error);
            }
        };
        self.publish();
        for uploaded in &batch {
            self.settings.tables.in_flight().remove(uploaded.table.id);
        }
        for (request, checkpoint) in due.into_iter().zip(made) {
            request.reply.send(Ok(checkpoint));
        }
        let flushed = self.flushed_seq();
        self.flush_waiters.release_through(flushed, |_| ());
        (self.settings.retired)(flushed);
        if let Some(wake) = &self.settings.wake_compactor {
            wake();
        }
        Ok(())
    }

    /// The uploaded tables that come next in sequence order, as many as L0
    /// has room for; counts a stall when one more is ready but L0 is full.
    /// Tables of ranges already retired (a retried upload) are dropped.
    fn take_due_tables(&mut self) -> Vec<Uploaded> {
        let mut next = self.flushed_seq() + 1;
        let in_flight = self.settings.tables.in_flight();
        self.pending.retain(|first, uploaded| {
            let keep = *first >= next;
            if !keep {
                in_flight.remove(uploaded.table.id);
            }
            keep
        });
        let room = self
            .settings
            .max_l0_tables
            .saturating_sub(self.manifest.current().l0.len());
        let mut batch = Vec::new();
        while batch.len() < room
            && let Some(uploaded) = self.pending.remove(&next)
        {
            next = uploaded.last_seq + 1;
            batch.push(uploaded);
        }
        let full = self.pending.contains_key(&next) && batch.len() == room;
        if full && !self.l0_full {
            self.counters.l0_stalled();
            tracing::warn!(
                max_l0_tables = self.settings.max_l0_tables,
                waiting = self.pending.len(),
                "L0 is full: flushes wait for the compactor"
            );
        }
        self.l0_full = full;
        batch
    }

    /// Writes the manifest version that adds `batch` to L0 and the
    /// checkpoints `due` asks for; returns those checkpoints as written.
    async fn record(&mut self, batch: &[Uploaded], due: &[CheckpointRequest]) -> Result<Vec<Checkpoint>, Error> {
        let snapshots = self.snapshots.clone();
        let runtime = self.manifest.store().runtime().clone();
        let now_ms = runtime.wall_ms();
        let ids: Vec<Ulid> = due.iter().map(|_| Ulid::generate(&runtime)).collect();
        let mut made: Vec<Checkpoint> = Vec::new();
        self.manifest
            .update(|manifest, next_id| {
                for uploaded in batch {
                    manifest.l0.insert(0, uploaded.table.clone());
                    manifest.last_l0_seq = manifest.last_l0_seq.max(uploaded.last_seq);
                    manifest.replay_after_wal_id = manifest.replay_after_wal_id.max(uploaded.last_wal_id);
                    manifest.next_wal_id = manifest.next_wal_id.max(uploaded.last_wal_id + 1);
                }
                manifest.retain_seq = snapshots.retain_seq(manifest.last_l0_seq, now_ms);
                manifest.seq_times = snapshots.seq_times(manifest.last_l0_seq);
                made = due
                    .iter()
                    .zip(&ids)
                    .map(|(request, id)| request.options.checkpoint(*id, next_id, now_ms))
                    .collect();
                manifest.checkpoints.extend(made.iter().cloned());
                Ok(())
            })
            .await?;
        Ok(made)
    }

    /// Records a higher `retain_seq` once snapshots that held it back are
    /// gone (only a change is written).
    async fn release_snapshots(&mut self) -> Result<(), Error> {
        let current = self.manifest.current();
        let now_ms = self.manifest.store().runtime().wall_ms();
        if self.snapshots.retain_seq(current.last_l0_seq, now_ms) <= current.retain_seq {
            return Ok(());
        }
        let snapshots = self.snapshots.clone();
        self.manifest
            .update(|manifest, _| {
                manifest.retain_seq = snapshots.retain_seq(manifest.last_l0_seq, now_ms);
                manifest.seq_times = snapshots.seq_times(manifest.last_l0_seq);
                Ok(())
            })
            .await?;
        Ok(())
    }
}

impl Actor for L0Writer {
    type Msg = L0Msg;
    type Error = Error;

    async fn handle(&mut self, msg: L0Msg, ctx: &mut Context<Self>) -> Result<(), Error> {
        match msg {
            L0Msg::Uploaded {
                first_seq,
                last_seq,
                last_wal_id,
                table,
            } => {
                let uploaded = Uploaded {
                    last_seq,
                    last_wal_id,
                    table,
                };
                self.pending.insert(first_seq, uploaded);
                self.retire().await?;
            }
            L0Msg::AwaitFlush { through_seq, reply } => {
                if through_seq <= self.flushed_seq() {
                    reply.send(Ok(()));
                } else {
                    self.flush_waiters.wait(through_seq, reply);
                }
            }
            L0Msg::CreateCheckpoint {
                through_seq,
                options,
                reply,
            } => {
                if through_seq <= self.flushed_seq() {
                    let made = self.manifest.create_checkpoint(options).await?;
                    reply.send(Ok(made));
                } else {
                    self.checkpoints.push(CheckpointRequest {
                        through_seq,
                        options,
                        reply,
                    });
                }
            }
            L0Msg::Poll => {
                let before = self.manifest.id();
                let started = ctx.now();
                self.manifest.refresh().await?;
                self.settings.lease.confirm(started);
                if self.manifest.id() != before {
                    self.publish();
                }
                // The compactor may have made room in L0.
                self.retire().await?;
                self.release_snapshots().await?;
            }
        }
        Ok(())
    }

    fn tickers(&mut self) -> Vec<Ticker<L0Msg>> {
        vec![Ticker::every(self.settings.poll_interval, || L0Msg::Poll)]
    }

    fn encode(msg: &L0Msg) -> String {
        msg.encode()
    }

    fn cleanup(&mut self, leftover: Vec<L0Msg>, result: &Result<(), ActorError<Error>>) {
        let error = Error::from_closed_result(result);
        self.flush_waiters.fail_all(&error);
        for CheckpointRequest { reply, .. } in self.checkpoints.drain(..) {
            reply.send(Err(error.clone()));
        }
        for msg in leftover {
            match msg {
                L0Msg::AwaitFlush { reply, .. } => reply.send(Err(error.clone())),
                L0Msg::CreateCheckpoint { reply, .. } => reply.send(Err(error.clone())),
                L0Msg::Uploaded { .. } | L0Msg::Poll => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use talus_actors::runtime::Sim;
    use talus_actors::{Capacity, System};

    use super::*;
    use crate::error::ErrorKind;
    use crate::manifest::{IfMissing, Role, VersionedOptions, VersionedStore};
    use crate::mem::Memtable;
    use crate::store::{ObjectStoreAdapter, Store};

    /// An L0 writer on a new database in `store` (nobody hears what it
    /// retires).
    async fn fresh_writer(store: Arc<dyn Store>, system: &System<Error>, max_l0_tables: usize) -> L0Writer {
        let runtime = system.runtime().clone();
        let versions = VersionedStore::new(store.clone(), "db".into(), runtime.clone(), VersionedOptions::default());
        let manifest = Fenced::open(versions, Role::Writer, IfMissing::Create)
            .await
            .expect("manifest");
        let view = Arc::new(ArcSwap::from_pointee(ReadView::new(
            Arc::new(Memtable::new()),
            manifest.current(),
        )));
        let settings = L0Settings {
            lease: Arc::new(crate::manifest::EpochLease::new(Duration::ZERO)),
            poll_interval: Duration::from_secs(1),
            max_l0_tables,
            tables: TableStore::new(store, "db".into(), runtime, Default::default()),
            wake_compactor: None,
            retired: Box::new(|_| ()),
        };
        L0Writer::new(manifest, view, Arc::default(), Arc::default(), settings)
    }

    /// Waiters whose data never reached L0 when the system shuts down
    /// cleanly hear `Closed` with no cause (nothing failed).
    #[test]
    fn a_clean_shutdown_answers_pending_waiters_with_closed() {
        let sim = Sim::new(5);
        let runtime = sim.runtime();
        sim.block_on(async move {
            let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
            let system = System::<Error>::new(runtime.clone());
            let (l0, l0_box) = system.mailbox::<L0Msg>("l0", Capacity::Unbounded);
            // The WAL writer's mailbox exists but no one reads it here.
            let writer = fresh_writer(store, &system, 8).await;
            system.run(l0_box, writer);

            let flush = runtime.spawn({
                let l0 = l0.clone();
                async move { l0.ask(|reply| L0Msg::AwaitFlush { through_seq: 7, reply }).await }
            });
            let checkpoint = runtime.spawn({
                let l0 = l0.clone();
                async move {
                    l0.ask(|reply| L0Msg::CreateCheckpoint {
                        through_seq: 7,
                        options: CheckpointOptions::default(),
                        reply,
                    })
                    .await
                }
            });
            // Under sim this lets both requests reach the actor first.
            runtime.sleep(Duration::from_millis(10)).await;
            system.shutdown_in_order(&[]).await.expect("clean shutdown");

            let closed = ErrorKind::Closed { cause: None };
            let flushed = flush.await.expect("task").expect("answered, not dropped");
            assert_eq!(flushed.expect_err("never flushed").kind(), &closed);
            let made = checkpoint.await.expect("task").expect("answered, not dropped");
            assert_eq!(made.expect_err("never made").kind(), &closed);
        });
    }

    /// Every message kind survives encode → decode.
    #[test]
    fn messages_read_back_from_their_trace_form() {
        let table = TableHandle {
            id: Ulid(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
            size: 4096,
            first_key: bytes::Bytes::from_static(b"a key"),
            last_key: bytes::Bytes::from_static(b"z\tkey"),
            min_seq: 3,
            max_seq: 9,
            rows: 7,
            tombstones: 1,
            range_deletes: 0,
        };
        let messages = [
            L0Msg::Uploaded {
                first_seq: 3,
                last_seq: 9,
                last_wal_id: 4,
                table,
            },
            L0Msg::AwaitFlush {
                through_seq: 12,
                reply: Reply::detached(),
            },
            L0Msg::CreateCheckpoint {
                through_seq: 12,
                options: CheckpointOptions {
                    lifetime: Some(Duration::from_millis(90_500)),
                    name: Some("nightly é".into()),
                    pin: Some(3),
                },
                reply: Reply::detached(),
            },
            L0Msg::CreateCheckpoint {
                through_seq: 0,
                options: CheckpointOptions::default(),
                reply: Reply::detached(),
            },
            L0Msg::Poll,
        ];
        for msg in &messages {
            let line = msg.encode();
            let decoded = L0Msg::decode(&line).unwrap_or_else(|| panic!("{line:?} decodes"));
            assert_eq!(decoded.encode(), line);
        }
        for bad in [
            "",
            "Poll extra",
            "Uploaded 1 2",
            "Uploaded 1 2 3 zz",
            "AwaitFlush x",
            "Nope",
        ] {
            assert!(L0Msg::decode(bad).is_none(), "{bad:?}");
        }
    }

    /// The L0 writer's mailbox recorded from a whole database under sim,
    /// fed to a fresh writer on an empty store, ends in the same manifest.
    #[test]
    fn a_recorded_mailbox_replayed_into_a_fresh_writer_ends_in_the_same_manifest() {
        use crate::db::{Db, DbOptions};

        let sim = Sim::new(11);
        let runtime = sim.runtime();
        sim.block_on(async move {
            let recorder = talus_actors::Recorder::new();
            let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
            let options = DbOptions {
                memtable_bytes: 2 << 10,
                wal_buffer_bytes: 512,
                max_unflushed_bytes: 16 << 10,
                // No compactor: L0 must have room for every flush.
                max_l0_tables: 1000,
                compactor: None,
                gc: None,
                ..DbOptions::default()
            };
            let db = Db::builder("db", store.clone())
                .runtime(runtime.clone())
                .options(options)
                .recorder(recorder.clone())
                .open()
                .await
                .expect("open");
            for n in 0..400u32 {
                db.put(
                    format!("key{:03}", n % 150),
                    format!("value {n} {}", "x".repeat(n as usize % 40)),
                )
                .await
                .expect("put");
                if n % 97 == 0 {
                    let lifetime = Some(Duration::from_secs(600 + u64::from(n)));
                    db.create_checkpoint(CheckpointOptions {
                        lifetime,
                        name: Some(format!("at {n}")),
                        pin: None,
                    })
                    .await
                    .expect("checkpoint");
                }
            }
            db.close().await.expect("close");
            let versions =
                VersionedStore::<Manifest>::new(store, "db".into(), runtime.clone(), VersionedOptions::default());
            let (recorded_id, recorded) = versions.read_latest().await.expect("read").expect("a manifest");
            let entries = recorder.entries_for(NAME);
            assert!(
                entries
                    .iter()
                    .filter(|entry| entry.message.starts_with("Uploaded"))
                    .count()
                    >= 5,
                "the run flushed memtables: {} entries",
                entries.len()
            );

            let system = System::<Error>::new(runtime.clone());
            let mut writer = fresh_writer(Arc::new(ObjectStoreAdapter::in_memory()), &system, 1000).await;
            let handled = talus_actors::replay(runtime.clone(), &mut writer, NAME, entries.clone(), L0Msg::decode)
                .await
                .expect("replay");
            assert_eq!(handled, entries.len());

            let replayed = writer.manifest.current().clone();
            assert_eq!(writer.manifest.id(), recorded_id, "as many manifest writes");
            // Checkpoint ids and times come from the clock and RNG, which
            // the replay does not share; what they pin and for how long does.
            let pins = |manifest: &Manifest| -> Vec<(u64, Option<u64>, Option<String>)> {
                manifest
                    .checkpoints
                    .iter()
                    .map(|c| {
                        (
                            c.manifest_id,
                            c.expire_ms.map(|expire| expire - c.create_ms),
                            c.name.clone(),
                        )
                    })
                    .collect()
            };
            assert_eq!(pins(&replayed), pins(&recorded));
            assert_eq!(recorded.checkpoints.len(), 5);
            let without_checkpoints = |manifest: &Manifest| Manifest {
                checkpoints: Vec::new(),
                ..manifest.clone()
            };
            assert_eq!(without_checkpoints(&replayed), without_checkpoints(&recorded));
        });
    }
}
