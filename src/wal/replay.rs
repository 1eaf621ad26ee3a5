//! WAL replay at open: rebuild the memtable from the WAL tables the
//! manifest does not cover yet, then fence older writers with an empty WAL
//! table at the next free id.

use std::sync::Arc;

use crate::error::{Error, ErrorKind};
use crate::format::Row;
use crate::manifest::{Fenced, Manifest};
use crate::mem::Memtable;
use crate::store::{StoreError, TableStore};

/// Attempts at placing the fencing table before giving up: each failed
/// attempt means another writer wrote a WAL table meanwhile.
const FENCE_ATTEMPTS: usize = 16;

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
}

/// Rows of the WAL tables the manifest does not cover yet.
#[derive(Debug)]
pub struct Replayed {
    pub memtable: Memtable,
    /// The highest sequence number seen (the manifest's if no row).
    pub last_seq: u64,
    /// WAL tables replayed.
    pub replayed: usize,
    /// The WAL ids in the store when replay listed them, ascending.
    pub wal_ids: Vec<u64>,
}

/// Replays WAL tables with ids above `replay_after_wal_id`, in order, up to
/// the first gap (nothing past a gap was ever acknowledged: durability
/// advances over a contiguous prefix). Writes nothing: readers use it as is.
pub async fn replay(tables: &TableStore, manifest: &Manifest) -> Result<Replayed, Error> {
    let ids = tables.list_wal_ids().await?;
    let memtable = Memtable::new();
    let mut last_seq = manifest.last_l0_seq;
    let mut replayed = 0;
    let after = ids.iter().filter(|id| **id > manifest.replay_after_wal_id);
    for (expected, &id) in (manifest.replay_after_wal_id + 1..).zip(after) {
        if id != expected {
            tracing::warn!(missing = expected, found = id, "WAL gap: replay stops");
            break;
        }
        for row in tables.read_wal(id).await? {
            if row.seq > manifest.last_l0_seq {
                last_seq = last_seq.max(row.seq);
                memtable.insert(&row);
            }
        }
        replayed += 1;
    }
    Ok(Replayed {
        memtable,
        last_seq,
        replayed,
        wal_ids: ids,
    })
}

/// Replays (see [`replay`]), then fences older writers with a WAL table at
/// the next free id; if another writer took an id meanwhile, replays again.
///
/// A crash with several WAL uploads in flight can leave a gap followed by
/// tables nobody acknowledged (`46, 48` with `47` lost). Replay stops at the
/// gap, so this writer's own tables, numbered after `48`, would be skipped
/// by every later replay. When that happens, the missing ids are filled
/// with empty tables (an old writer still uploading one is fenced there
/// instead of acknowledging it), the replayed rows are written again into
/// the fencing table, and the manifest records that everything before the
/// fence is replayed, all before the writer accepts a write.
pub async fn recover(tables: &TableStore, fenced: &mut Fenced<Manifest>) -> Result<Recovered, Error> {
    'attempt: for _ in 0..FENCE_ATTEMPTS {
        let manifest = fenced.current();
        let replayed = replay(tables, manifest).await?;
        let end = manifest.replay_after_wal_id + replayed.replayed as u64;
        let highest = replayed
            .wal_ids
            .last()
            .copied()
            .unwrap_or(0)
            .max(manifest.next_wal_id.saturating_sub(1))
            .max(manifest.replay_after_wal_id);
        let fence = highest + 1;
        let gap = highest > end;
        if gap {
            let present = &replayed.wal_ids;
            for id in (end + 1..=highest).filter(|id| present.binary_search(id).is_err()) {
                match tables.write_wal(id, []).await {
                    Ok(_) => {}
                    Err(StoreError::Fenced { path }) => {
                        tracing::info!(%path, "a writer filled a WAL gap meanwhile; replaying again");
                        continue 'attempt;
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            tracing::warn!(
                replayed_through = end,
                fence,
                "WAL gap after a crash: replayed rows move to the fence"
            );
        }
        let mut rows: Vec<Row> = if gap {
            replayed.memtable.iter().collect()
        } else {
            Vec::new()
        };
        rows.sort_by_key(|row| row.seq);
        match tables.write_wal(fence, &rows).await {
            Ok(_) => {
                if gap {
                    fenced
                        .update(|manifest, _| {
                            manifest.replay_after_wal_id = manifest.replay_after_wal_id.max(highest);
                            manifest.next_wal_id = manifest.next_wal_id.max(fence + 1);
                            Ok(())
                        })
                        .await?;
                }
                return Ok(Recovered {
                    memtable: Arc::new(replayed.memtable),
                    last_seq: replayed.last_seq,
                    next_wal_id: fence + 1,
                    replayed: replayed.replayed,
                });
            }
            Err(StoreError::Fenced { path }) => {
                tracing::info!(%path, "another writer wrote the fencing id; replaying again");
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::new(
        ErrorKind::Fenced,
        "could not place the fencing WAL table: another writer keeps writing",
    ))
}
