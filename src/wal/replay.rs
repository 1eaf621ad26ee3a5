//! WAL replay at open: rebuild the memtable from the WAL tables the
//! manifest does not cover yet, then fence older writers with an empty WAL
//! table at the next free id.

use std::sync::Arc;

use crate::error::{Error, ErrorKind};
use crate::manifest::Manifest;
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
    /// The highest WAL id in the store (0 if none).
    pub highest_wal_id: u64,
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
        highest_wal_id: ids.last().copied().unwrap_or(0),
    })
}

/// Replays (see [`replay`]), then fences older writers with an empty WAL
/// table at the next free id; if another writer took that id meanwhile,
/// replays again.
pub async fn recover(tables: &TableStore, manifest: &Manifest) -> Result<Recovered, Error> {
    for _ in 0..FENCE_ATTEMPTS {
        let replayed = replay(tables, manifest).await?;
        let fence = replayed
            .highest_wal_id
            .max(manifest.next_wal_id.saturating_sub(1))
            .max(manifest.replay_after_wal_id)
            + 1;
        match tables.write_wal(fence, []).await {
            Ok(_) => {
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
