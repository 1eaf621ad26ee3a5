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
//! manifest write records `retain_seq` for live snapshots; a checkpoint
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
use talus_actors::{Actor, ActorError, Addr, Context, Reply, Ticker};

use crate::compactor::actor::OnCommit;
use crate::db::snapshots::Snapshots;
use crate::db::stats::Counters;
use crate::error::Error;
use crate::manifest::{Checkpoint, CheckpointOptions, Fenced, Manifest, TableHandle};
use crate::read::ReadView;
use crate::store::{TableStore, Ulid};
use crate::waiters::SeqWaiters;
use crate::wal::writer::WalMsg;

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

type Uploaded = (u64, u64, u64, TableHandle);

/// A checkpoint request waiting for its sequence to reach L0.
type CheckpointRequest = (u64, CheckpointOptions, Reply<Result<Checkpoint, Error>>);

/// The L0 writer's settings and neighbours.
pub struct L0Settings {
    /// How often the manifest is re-read for the compactor's changes.
    pub poll_interval: std::time::Duration,
    /// Uploaded tables wait while L0 holds this many.
    pub max_l0_tables: usize,
    /// Where uploaded tables were written (their ids leave its in-flight
    /// set once the manifest lists them).
    pub tables: TableStore,
    /// Told when a table lands in L0 (the embedded compactor).
    pub wake_compactor: Option<OnCommit>,
}

pub struct L0Writer {
    manifest: Fenced<Manifest>,
    view: Arc<ArcSwap<ReadView>>,
    wal: Addr<WalMsg, Error>,
    counters: Arc<Counters>,
    snapshots: Arc<Snapshots>,
    settings: L0Settings,
    /// Whether tables are waiting for room in L0 (a stall is counted once).
    l0_full: bool,
    /// Uploaded tables by first sequence, waiting for their turn.
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
        wal: Addr<WalMsg, Error>,
        counters: Arc<Counters>,
        snapshots: Arc<Snapshots>,
        settings: L0Settings,
    ) -> Self {
        L0Writer {
            manifest,
            view,
            wal,
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
        self.view.rcu(|view| view.with_manifest(&manifest));
    }

    /// Retires every uploaded table whose turn has come, in one manifest
    /// write that also carries the checkpoints it satisfies.
    async fn retire(&mut self) -> Result<(), Error> {
        let mut batch: Vec<Uploaded> = Vec::new();
        let mut next = self.flushed_seq() + 1;
        // Tables of ranges already retired (a retried upload) are dropped.
        let in_flight = self.settings.tables.in_flight();
        self.pending.retain(|first, (_, _, _, table)| {
            let keep = *first >= next;
            if !keep {
                in_flight.remove(table.id);
            }
            keep
        });
        let room = self
            .settings
            .max_l0_tables
            .saturating_sub(self.manifest.current().l0.len());
        while batch.len() < room
            && let Some(entry) = self.pending.remove(&next)
        {
            next = entry.1 + 1;
            batch.push(entry);
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
        let Some(through) = batch.last().map(|(_, last_seq, _, _)| *last_seq) else {
            return Ok(());
        };
        let snapshots = self.snapshots.clone();
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.checkpoints)
            .into_iter()
            .partition(|(seq, _, _)| *seq <= through);
        self.checkpoints = waiting;
        let runtime = self.manifest.store().runtime().clone();
        let now_ms = runtime.wall_ms();
        let ids: Vec<Ulid> = due.iter().map(|_| Ulid::generate(&runtime)).collect();
        let mut made: Vec<Checkpoint> = Vec::new();
        let updated = self
            .manifest
            .update(|manifest, next_id| {
                for (_, last_seq, last_wal_id, table) in &batch {
                    manifest.l0.insert(0, table.clone());
                    manifest.last_l0_seq = manifest.last_l0_seq.max(*last_seq);
                    manifest.replay_after_wal_id = manifest.replay_after_wal_id.max(*last_wal_id);
                    manifest.next_wal_id = manifest.next_wal_id.max(*last_wal_id + 1);
                }
                manifest.retain_seq = snapshots.retain_seq(manifest.last_l0_seq);
                made = due
                    .iter()
                    .zip(&ids)
                    .map(|((_, options, _), id)| options.checkpoint(*id, next_id, now_ms))
                    .collect();
                manifest.checkpoints.extend(made.iter().cloned());
                Ok(())
            })
            .await;
        if let Err(error) = updated {
            // Back in the queue, so that cleanup answers them with the cause.
            self.checkpoints.extend(due);
            return Err(error.into());
        }
        self.publish();
        for (_, _, _, table) in &batch {
            self.settings.tables.in_flight().remove(table.id);
        }
        for ((_, _, reply), checkpoint) in due.into_iter().zip(made) {
            reply.send(Ok(checkpoint));
        }
        let flushed = self.flushed_seq();
        self.flush_waiters.release_through(flushed, |_| ());
        let _ = self.wal.try_send(WalMsg::MemtableRetired { through_seq: flushed });
        if let Some(wake) = &self.settings.wake_compactor {
            wake();
        }
        Ok(())
    }

    /// Records a higher `retain_seq` once snapshots that held it back are
    /// gone (only a change is written).
    async fn release_snapshots(&mut self) -> Result<(), Error> {
        let current = self.manifest.current();
        if self.snapshots.retain_seq(current.last_l0_seq) <= current.retain_seq {
            return Ok(());
        }
        let snapshots = self.snapshots.clone();
        self.manifest
            .update(|manifest, _| {
                manifest.retain_seq = snapshots.retain_seq(manifest.last_l0_seq);
                Ok(())
            })
            .await?;
        Ok(())
    }
}

impl Actor for L0Writer {
    type Msg = L0Msg;
    type Error = Error;

    async fn handle(&mut self, msg: L0Msg, _ctx: &mut Context<Self>) -> Result<(), Error> {
        match msg {
            L0Msg::Uploaded {
                first_seq,
                last_seq,
                last_wal_id,
                table,
            } => {
                self.pending
                    .insert(first_seq, (first_seq, last_seq, last_wal_id, table));
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
                    self.checkpoints.push((through_seq, options, reply));
                }
            }
            L0Msg::Poll => {
                let before = self.manifest.id();
                self.manifest.refresh().await?;
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

    fn cleanup(&mut self, leftover: Vec<L0Msg>, result: &Result<(), ActorError<Error>>) {
        let error = Error::from_closed_result(result);
        self.flush_waiters.fail_all(&error);
        for (_, _, reply) in self.checkpoints.drain(..) {
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

    /// Waiters whose data never reached L0 when the system shuts down
    /// cleanly hear `Closed` with no cause (nothing failed).
    #[test]
    fn a_clean_shutdown_answers_pending_waiters_with_closed() {
        let sim = Sim::new(5);
        let runtime = sim.runtime();
        sim.block_on(async move {
            let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
            let versions =
                VersionedStore::new(store.clone(), "db".into(), runtime.clone(), VersionedOptions::default());
            let manifest = Fenced::open(versions, Role::Writer, IfMissing::Create)
                .await
                .expect("manifest");
            let view = Arc::new(ArcSwap::from_pointee(ReadView::new(
                Arc::new(Memtable::new()),
                manifest.current(),
            )));
            let system = System::<Error>::new(runtime.clone());
            // The WAL writer's mailbox exists but no one reads it here.
            let (wal, _wal_box) = system.mailbox::<WalMsg>("wal", Capacity::Unbounded);
            let (l0, l0_box) = system.mailbox::<L0Msg>("l0", Capacity::Unbounded);
            let settings = L0Settings {
                poll_interval: Duration::from_secs(1),
                max_l0_tables: 8,
                tables: TableStore::new(store.clone(), "db".into(), runtime.clone(), Default::default()),
                wake_compactor: None,
            };
            let writer = L0Writer::new(manifest, view, wal, Arc::default(), Arc::default(), settings);
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
}
