//! WAL replay at open: rebuild the memtable from the WAL tables the
//! manifest does not cover yet, after fencing older writers.
//!
//! Owns: reading the log above `replay_after_wal_id`, telling a table that
//! was never written (a crash) from one lost after it was acknowledged,
//! placing the fence, and filling the ids nobody wrote. Does not own: the
//! manifest's epochs (`Fenced::open` raised ours before recovery starts).
//!
//! The rules (`docs/protocol.md`, "WAL recovery"):
//! - Replay reads ids `replay_after + 1 ..` in order and stops at the first
//!   *hole*: an id that is missing or holds a filler. Nothing above a hole
//!   was acknowledged, because a writer acknowledges over a contiguous
//!   prefix of ids.
//! - A hole at or below some table's `durable_through_wal_id` is data loss
//!   (that writer had the table durable, so it may have acknowledged it):
//!   recovery fails with `Corruption` instead of reading past it.
//! - A table whose writer epoch is below the epoch of a table at a lower id
//!   is a fenced writer's upload that landed above the new writer's fence:
//!   it holds nothing anyone acknowledged and is skipped, and so are the
//!   new writer's own tables above it (its log has a hole there). A
//!   recovery that skipped a table moves the replay point above its fence,
//!   like one that met a hole: a paused writer may still replace the
//!   skipped table, and no later replay may read it.
//! - The fence goes above everything listed; when that id is taken the next
//!   attempts jump ahead (1, 2, 4, 8, ... ids further), so a new writer
//!   takes over in a few requests however fast the old one writes. Every id
//!   between the replay point and the fence is then either a table or a
//!   filler we created, and the old writer is fenced at the first of those
//!   it tries to write.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Error, ErrorKind};
use crate::format::Row;
use crate::format::sst::{WalRole, WalStamp};
use crate::manifest::{Fenced, Manifest, WalLoss};
use crate::mem::Memtable;
use crate::store::{StoreError, TableStore, WalConflict, WalTable};

/// Attempts at placing the fencing table; attempt `n` tries `2^n - 1` ids
/// above the first candidate, so the last ones are far beyond any writer.
const FENCE_ATTEMPTS: u32 = 24;

/// What replay rebuilt.
#[derive(Debug)]
pub struct Recovered {
    pub memtable: Arc<Memtable>,
    /// The highest sequence number in the database.
    pub last_seq: u64,
    /// The id the writer's first WAL table gets.
    pub next_wal_id: u64,
    /// WAL tables replayed.
    pub replayed: usize,
    /// Damaged WAL tables a salvaging open moved aside.
    pub salvaged: Vec<WalLoss>,
}

/// Rows of the WAL tables the manifest does not cover yet.
#[derive(Debug)]
pub struct Replayed {
    pub memtable: Memtable,
    /// The highest sequence number seen (the manifest's if no row).
    pub last_seq: u64,
    /// WAL tables replayed.
    pub replayed: usize,
    /// Fenced writers' tables skipped (a lower epoch above a higher one).
    pub skipped: usize,
}

/// The WAL tables above the replay point, as far as they have been read.
#[derive(Debug)]
struct Log {
    after: u64,
    tables: BTreeMap<u64, WalTable>,
    /// Tables that could not be read, with why (a salvaging open only;
    /// otherwise the first one fails the open).
    damaged: BTreeMap<u64, String>,
}

/// How a WAL table that cannot be read is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDamage {
    /// Fail with `Corruption` naming it (the default: nothing is skipped
    /// silently).
    Fail,
    /// Move it aside, record the loss in the manifest and go on.
    Salvage,
}

impl Log {
    /// Reads every listed table above `after`.
    async fn read(tables: &TableStore, after: u64, ids: &[u64], on_damage: OnDamage) -> Result<Log, Error> {
        let mut log = Log {
            after,
            tables: BTreeMap::new(),
            damaged: BTreeMap::new(),
        };
        for &id in ids.iter().filter(|id| **id > after) {
            match tables.read_wal_table(id).await {
                Ok(table) => {
                    log.tables.insert(id, table);
                }
                Err(error @ StoreError::Corruption { .. }) if on_damage == OnDamage::Salvage => {
                    log.damaged.insert(id, error.to_string());
                }
                Err(error @ StoreError::Corruption { .. }) => {
                    return Err(Error::new(
                        ErrorKind::Corruption,
                        format!(
                            "{error}; the database does not open. To give up what that WAL table held and \
                             open anyway, open with DbBuilder::salvage (or run `talus repair`): it moves the \
                             table aside and records the loss"
                        ),
                    ));
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(log)
    }

    fn highest(&self) -> u64 {
        let read = self.tables.keys().next_back().copied().unwrap_or(self.after);
        read.max(self.damaged.keys().next_back().copied().unwrap_or(self.after))
    }

    /// Whether `id` is missing or a filler. A damaged table being salvaged
    /// is no hole: its loss is known and recorded, replay goes past it.
    fn is_hole(&self, id: u64) -> bool {
        !self.damaged.contains_key(&id)
            && self
                .tables
                .get(&id)
                .is_none_or(|table| table.stamp.role == WalRole::Filler)
    }

    /// The sequence numbers a damaged table `id` may have held: after the
    /// highest below it (or `floor`), before the lowest above it.
    fn lost_range(&self, id: u64, floor: u64) -> (u64, Option<u64>) {
        // A table's rows are in sequence order.
        let below = self
            .tables
            .range(..id)
            .rev()
            .find_map(|(_, table)| table.rows.last().map(|row| row.seq));
        let above = self
            .tables
            .range(id + 1..)
            .find_map(|(_, table)| table.rows.first().map(|row| row.seq));
        (below.unwrap_or(floor) + 1, above.map(|seq| seq.saturating_sub(1)))
    }

    /// The first hole above the replay point, at or below `end`.
    fn first_hole(&self, end: u64) -> Option<u64> {
        (self.after + 1..=end).find(|id| self.is_hole(*id))
    }

    /// Fails if a hole at or below `end` lies under some table's durable
    /// watermark: acknowledged writes are gone, and reading past the hole
    /// would answer with older values.
    fn check_losses(&self, tables: &TableStore, end: u64) -> Result<(), Error> {
        let Some((claimant, claimed)) = self
            .tables
            .iter()
            .map(|(id, table)| (*id, table.stamp.durable_through_wal_id))
            .max_by_key(|(_, claimed)| *claimed)
        else {
            return Ok(());
        };
        let Some(lost) = self.first_hole(end.min(claimed)) else {
            return Ok(());
        };
        let how = if self.tables.contains_key(&lost) {
            "was replaced by an empty filler"
        } else {
            "is missing"
        };
        Err(Error::new(
            ErrorKind::Corruption,
            format!(
                "WAL table {} {how}, but WAL table {} records every id through {claimed} as durable: \
                 acknowledged writes would be lost, so the database does not open",
                tables.path(crate::store::TableId::Wal(lost)),
                tables.path(crate::store::TableId::Wal(claimant)),
            ),
        ))
    }

    /// The last id of the contiguous run of written tables above the
    /// replay point (the replay point itself if none).
    fn written_through(&self) -> u64 {
        // `highest + 1` is always a hole, so there is a first one.
        self.first_hole(self.highest() + 1)
            .map_or(self.highest(), |hole| hole - 1)
    }

    /// Replays the tables below the first hole (at or below `end`),
    /// skipping fenced writers' tables, into a memtable.
    fn replay(&self, manifest: &Manifest, end: u64) -> Replayed {
        let memtable = Memtable::new();
        let mut last_seq = manifest.last_l0_seq;
        let mut replayed = 0;
        let mut skipped = 0;
        let mut epoch = 0;
        // The epoch whose log a skipped table broke.
        let mut broken: Option<u64> = None;
        let stop = self.first_hole(end).unwrap_or(end + 1);
        for (id, table) in self.tables.range(self.after + 1..stop) {
            // A salvaged table's id holds our filler now: no rows, and its
            // epoch says nothing about the tables above it.
            if self.damaged.contains_key(id) {
                continue;
            }
            // A fenced writer's table landed where the writer of `epoch`
            // meant to write next: that writer's log has a hole there, and
            // nothing of its own above it was acknowledged (it acknowledges
            // a contiguous prefix). Replaying its later tables would bring
            // back later writes without an earlier one. A newer writer's
            // tables (its fence first) go on.
            if table.stamp.writer_epoch < epoch || Some(table.stamp.writer_epoch) == broken {
                broken = Some(epoch);
                skipped += 1;
                continue;
            }
            broken = None;
            epoch = table.stamp.writer_epoch;
            for row in &table.rows {
                if row.seq > manifest.last_l0_seq {
                    last_seq = last_seq.max(row.seq);
                    memtable.insert(row);
                }
            }
            for tombstone in &table.range_tombstones {
                if tombstone.seq > manifest.last_l0_seq {
                    last_seq = last_seq.max(tombstone.seq);
                    memtable.insert_range_tombstone(tombstone.clone());
                }
            }
            replayed += 1;
        }
        Replayed {
            memtable,
            last_seq,
            replayed,
            skipped,
        }
    }
}

/// Replays the WAL tables above `replay_after_wal_id` up to the first hole
/// (see the module rules), and not above `end` if given. Writes nothing:
/// readers use it as is.
pub async fn replay_through(tables: &TableStore, manifest: &Manifest, end: Option<u64>) -> Result<Replayed, Error> {
    let mut ids = tables.list_wal_ids().await?;
    if let Some(end) = end {
        ids.retain(|id| *id <= end);
    }
    let log = Log::read(tables, manifest.replay_after_wal_id, &ids, OnDamage::Fail).await?;
    let end = log.highest();
    log.check_losses(tables, end)?;
    Ok(log.replay(manifest, end))
}

/// Places an empty fencing table at `first` or, if taken, further up
/// (doubling the distance each time). Returns its id.
async fn place_fence(tables: &TableStore, first: u64, stamp: WalStamp) -> Result<u64, Error> {
    for attempt in 0..FENCE_ATTEMPTS {
        let id = first + (1u64 << attempt) - 1;
        match tables.write_wal_stamped(id, stamp, [], &[], WalConflict::Fenced).await {
            Ok(_) => return Ok(id),
            Err(StoreError::Fenced { path }) => {
                tracing::info!(%path, "a writer took the fencing id; trying further up");
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::new(
        ErrorKind::Fenced,
        format!("could not place the fencing WAL table in {FENCE_ATTEMPTS} attempts above WAL id {first}"),
    ))
}

/// Replays the WAL and fences older writers (the module rules), before the
/// writer accepts a write.
///
/// When replay stopped at a hole below the fence (a crash left `46, 48`
/// with `47` never written), later replays would stop there too and skip
/// this writer's tables: the replayed rows are then written again into the
/// table after the fence, and the manifest records that everything through
/// the fence is replayed.
pub async fn recover(
    tables: &TableStore,
    fenced: &mut Fenced<Manifest>,
    on_damage: OnDamage,
) -> Result<Recovered, Error> {
    let epoch = fenced.epoch().unwrap_or(0);
    let manifest = fenced.current().clone();
    let ids = tables.list_wal_ids().await?;
    let mut log = Log::read(tables, manifest.replay_after_wal_id, &ids, on_damage).await?;
    let salvaged = move_aside(tables, fenced, &log, epoch).await?;
    let highest = log
        .highest()
        .max(manifest.next_wal_id.saturating_sub(1))
        .max(manifest.replay_after_wal_id);
    // Before anything is written: a lost acknowledged table stays visible
    // as a missing id.
    log.check_losses(tables, highest)?;
    let written_through = log.written_through();
    let stamp = |role| WalStamp {
        role,
        writer_epoch: epoch,
        durable_through_wal_id: written_through,
    };
    let fence = place_fence(tables, highest + 1, stamp(WalRole::Fence)).await?;
    fill_gaps(
        tables,
        &mut log,
        manifest.replay_after_wal_id + 1..fence,
        stamp(WalRole::Filler),
    )
    .await?;
    log.check_losses(tables, fence - 1)?;
    // A writer that opened after our epoch bump but listed before our fence
    // landed would be writing too: a current epoch after the fence rules
    // that out (a later writer lists after its bump, so it sees our fence).
    fenced.refresh().await?;
    let replayed = log.replay(&manifest, fence - 1);
    // A hole, or a salvaged table (now a filler), would stop the next
    // replay short of this writer's tables. A skipped fenced writer's table
    // would be read again by the next replay, and the writer whose fence
    // lies below it may still replace it (see `WrittenTable::replaced`):
    // the next replay must not see what this one skipped.
    let stop = match log.first_hole(fence - 1) {
        Some(hole) => Some(hole),
        None if !salvaged.is_empty() || replayed.skipped > 0 => Some(fence),
        None => None,
    };
    let next_wal_id = match stop {
        None => fence + 1,
        Some(hole) => {
            let carried = Carried {
                memtable: &replayed.memtable,
                fence,
                durable_through_wal_id: hole - 1,
                epoch,
            };
            carry_above_fence(tables, fenced, carried, &salvaged).await?
        }
    };
    Ok(Recovered {
        memtable: Arc::new(replayed.memtable),
        last_seq: replayed.last_seq,
        next_wal_id,
        replayed: replayed.replayed,
        salvaged,
    })
}

/// Writes an empty filler table at every id of `ids` the log lacks, so that
/// a paused old writer's upload there fails; a table that writer got in
/// first (after our listing, before it met a filler or the fence) is read
/// into the log instead.
async fn fill_gaps(
    tables: &TableStore,
    log: &mut Log,
    ids: std::ops::Range<u64>,
    filler: WalStamp,
) -> Result<(), Error> {
    for id in ids {
        if log.tables.contains_key(&id) {
            continue;
        }
        let table = match tables.write_wal_stamped(id, filler, [], &[], WalConflict::Fenced).await {
            Ok(_) => WalTable {
                stamp: filler,
                rows: Vec::new(),
                range_tombstones: Vec::new(),
            },
            Err(StoreError::Fenced { .. }) => tables.read_wal_table(id).await?,
            Err(error) => return Err(error.into()),
        };
        log.tables.insert(id, table);
    }
    Ok(())
}

/// Replayed rows that must move above the fence: a hole (or a salvaged
/// table) below it would stop the next replay short of them.
struct Carried<'a> {
    memtable: &'a Memtable,
    fence: u64,
    /// The last WAL id of the contiguous log below the hole.
    durable_through_wal_id: u64,
    epoch: u64,
}

/// Writes `carried`'s rows as the WAL table just above the fence and records
/// in the manifest that replay starts above the fence (with the salvaged
/// losses); returns the writer's first WAL id.
async fn carry_above_fence(
    tables: &TableStore,
    fenced: &mut Fenced<Manifest>,
    carried: Carried<'_>,
    salvaged: &[WalLoss],
) -> Result<u64, Error> {
    let fence = carried.fence;
    let mut rows: Vec<Row> = carried.memtable.iter().collect();
    rows.sort_by_key(|row| row.seq);
    let stamp = WalStamp {
        role: WalRole::Data,
        writer_epoch: carried.epoch,
        durable_through_wal_id: carried.durable_through_wal_id,
    };
    let range_tombstones = carried.memtable.range_tombstones();
    tables
        .write_wal_stamped(
            fence + 1,
            stamp,
            &rows,
            &range_tombstones,
            WalConflict::ReplaceOlderEpoch,
        )
        .await?;
    fenced
        .update(|manifest, _| {
            manifest.replay_after_wal_id = manifest.replay_after_wal_id.max(fence);
            manifest.next_wal_id = manifest.next_wal_id.max(fence + 2);
            for loss in salvaged {
                if !manifest.losses.contains(loss) {
                    manifest.losses.push(loss.clone());
                }
            }
            Ok(())
        })
        .await?;
    tracing::warn!(
        replayed_through = carried.durable_through_wal_id,
        fence,
        salvaged = salvaged.len(),
        "WAL hole, salvaged or skipped tables: replayed rows move above the fence"
    );
    Ok(fence + 2)
}

/// Moves every damaged table of `log` aside (to `lost/wal/<id>-epoch<epoch>.sst`,
/// see [`TableStore::move_wal_aside`]) and describes what each may have held.
async fn move_aside(
    tables: &TableStore,
    fenced: &Fenced<Manifest>,
    log: &Log,
    epoch: u64,
) -> Result<Vec<WalLoss>, Error> {
    let mut losses = Vec::new();
    let floor = fenced.current().last_l0_seq;
    let now_ms = fenced.store().runtime().wall_ms();
    for (&id, reason) in &log.damaged {
        let to = tables.move_wal_aside(id, &format!("epoch{epoch}")).await?;
        let (first_seq, last_seq) = log.lost_range(id, floor);
        tracing::warn!(wal_id = id, %to, first_seq, ?last_seq, %reason, "salvage: a damaged WAL table moved aside");
        losses.push(WalLoss {
            wal_id: id,
            first_seq,
            last_seq,
            found_ms: now_ms,
            moved_to: to.to_string(),
            reason: reason.clone(),
        });
    }
    Ok(losses)
}
