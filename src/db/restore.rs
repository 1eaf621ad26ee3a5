//! Restore: making a live checkpoint's state the database's current state,
//! in place, as a new manifest version (`docs/protocol.md`, "Restoring a
//! checkpoint").
//!
//! Owns: fencing the writer and the compactor for a restore, and writing
//! the restored version. Does not own: the checkpoint itself (it stays, and
//! keeps pinning its version), or collecting what the restore drops (the
//! collector judges the tables and WAL tables no version references any
//! more, by their age).
//!
//! Rules:
//! - the writer is fenced first, as a writer open fences it (an epoch bump,
//!   then a fence in the WAL), so no write the old writer makes after the
//!   restore can land; its WAL is read only to learn the highest sequence
//!   number used, and everything in it is dropped;
//! - the compactor is fenced next, and every unfinished compaction is
//!   failed: none may apply inputs that the restored version no longer
//!   lists, or reuse a sorted run id for a run that is no longer there;
//! - the restored version lists exactly the checkpoint version's L0 tables
//!   and sorted runs, plus one L0 table of the rows the checkpoint holds in
//!   WAL tables its version had not moved to L0; WAL ids and the last L0
//!   sequence only move forward (every WAL table up to our fence counts as
//!   applied), so sequence numbers written after the restore are above
//!   every one written before;
//! - checkpoints, losses, clone sources and where the WAL is stay as they
//!   are.

use super::builder::Prepared;
use crate::error::Error;
use crate::l0::uploader::write_l0_table;
use crate::manifest::compactor_state::CompactorState;
use crate::manifest::{Fenced, IfMissing, Manifest, ManifestError, Role};
use crate::store::Ulid;
use crate::wal::replay::{OnDamage, recover, replay_through};

/// What [`DbBuilder::restore_checkpoint`](crate::DbBuilder::restore_checkpoint)
/// did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Restored {
    /// The checkpoint restored (it stays live).
    pub checkpoint: Ulid,
    /// The manifest version it pins, whose tables are current again.
    pub pinned_version: u64,
    /// The new manifest version the restore wrote.
    pub version: u64,
    /// The version that was current before the restore.
    pub replaced_version: u64,
    /// L0 tables in the restored state.
    pub l0_tables: usize,
    /// Sorted runs in the restored state.
    pub sorted_runs: usize,
    /// Rows the checkpoint holds in WAL tables that were not in L0 at its
    /// version (a checkpoint taken by an admin while a writer ran); the
    /// restore writes them into one new L0 table, counted in `l0_tables`.
    pub held_wal_rows: u64,
    /// Rows that were only in the WAL (written after the last move to L0)
    /// and are dropped with everything else written after the checkpoint.
    pub dropped_wal_rows: u64,
    /// The WAL tables that held them.
    pub dropped_wal_tables: u64,
    /// Unfinished compactions that were failed.
    pub failed_compactions: usize,
}

/// Restores live checkpoint `id` of the database `prepared` opens.
pub(super) async fn restore(prepared: &Prepared, id: Ulid) -> Result<Restored, Error> {
    let (manifests, tables) = (&prepared.manifests, &prepared.tables);
    let Some((_, latest)) = manifests.read_latest().await? else {
        crate::manifest::refuse_lost_manifest(manifests, tables).await?;
        return Err(Error::invalid(format!("no database at {}", manifests.root())));
    };
    crate::manifest::check_wal_store(&latest, tables)?;
    let now_ms = prepared.runtime.wall_ms();
    let Some(checkpoint) = latest.live_checkpoints(now_ms).find(|live| live.id == id) else {
        return Err(Error::invalid(format!(
            "no live checkpoint {id} in the database at {}",
            manifests.root()
        )));
    };
    let pinned_version = checkpoint.manifest_id;
    // The checkpoint keeps this version, and every table it lists, from
    // the collector while it is live.
    let pinned = manifests.read(pinned_version).await?;
    super::clone::adopt_sources(tables, &latest);
    if let Some(table) = pinned
        .tables()
        .find(|table| pinned.source_of(table.id).is_some() && latest.source_of(table.id).is_none())
    {
        return Err(Error::invalid(format!(
            "checkpoint {id} lists table {} of a clone source this database has released",
            table.id
        )));
    }
    // WAL tables the checkpoint holds that were not in L0 at its version
    // (an admin checkpoint taken while a writer ran): their rows go into
    // one new L0 table, above the pinned version's L0 tables.
    let held = replay_through(tables, &pinned, Some(pinned.next_wal_id.saturating_sub(1))).await?;
    let mut restored_l0 = pinned.l0.clone();
    if !held.memtable.is_empty() {
        restored_l0.insert(0, write_l0_table(tables, &held.memtable).await?);
    }
    let mut writer = Fenced::open(manifests.clone(), Role::Writer, IfMissing::Fail).await?;
    let recovered = recover(tables, &mut writer, OnDamage::Fail).await?;
    let mut compactor = CompactorState::open(manifests.clone(), prepared.compactions.clone()).await?;
    let unfinished: Vec<Ulid> = compactor.compactions().active().map(|entry| entry.id).collect();
    for compaction in &unfinished {
        compactor.fail(*compaction).await?;
    }
    writer.refresh().await?;
    let replaced_version = writer.id();
    let version = writer
        .update_checked(
            |manifest: &mut Manifest, _| {
                if !manifest.live_checkpoints(now_ms).any(|live| live.id == id) {
                    return Err(ManifestError::CheckpointNotFound { id });
                }
                manifest.l0.clone_from(&restored_l0);
                manifest.sorted_runs.clone_from(&pinned.sorted_runs);
                manifest.next_wal_id = manifest.next_wal_id.max(recovered.next_wal_id);
                manifest.replay_after_wal_id = manifest.next_wal_id - 1;
                manifest.last_l0_seq = manifest.last_l0_seq.max(recovered.last_seq);
                Ok(())
            },
            crate::manifest::rules::check_restore,
        )
        .await?;
    tracing::info!(
        root = %manifests.root(),
        checkpoint = %id,
        pinned_version,
        version,
        dropped_wal_tables = recovered.replayed,
        "restored a checkpoint"
    );
    Ok(Restored {
        checkpoint: id,
        pinned_version,
        version,
        replaced_version,
        l0_tables: restored_l0.len(),
        held_wal_rows: held.memtable.len() as u64,
        sorted_runs: pinned.sorted_runs.len(),
        dropped_wal_rows: recovered.memtable.len() as u64,
        dropped_wal_tables: recovered.replayed as u64,
        failed_compactions: unfinished.len(),
    })
}
