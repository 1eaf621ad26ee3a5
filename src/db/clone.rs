//! Clones: a new database made from a checkpoint of another in the same
//! store, listing the other's tables instead of copying them
//! (`docs/scale-out.md`, "Clones").
//!
//! Owns: creating a clone's first manifest, and telling a table store
//! where a clone's foreign tables are. Does not own: releasing the
//! checkpoints a clone holds in its sources (the collector does, see
//! `gc::collector`), or refusing to delete them (`manifest::checkpoints`).
//!
//! Rules:
//! - the clone holds a checkpoint without expiry in every database whose
//!   tables its first manifest lists, named `clone <clone root>`; it is
//!   made before the version it pins is read, so nothing the clone lists
//!   can be collected from under it;
//! - a source that is itself a clone passes its own sources on: the new
//!   clone pins, in each of them, the version the source's checkpoint
//!   there pins (which the source keeps while it lists those tables);
//! - WAL rows the pinned version has not moved to L0 are written into one
//!   L0 table of the clone, which starts with an empty WAL; the clone
//!   never reads or writes its source's WAL afterwards.

use object_store::path::Path;

use super::builder::{Prepared, check_merge_operator};
use crate::error::{Error, ErrorKind};
use crate::format::sst::TableKind;
use crate::manifest::{
    CLONE_CHECKPOINT_PREFIX, Checkpoint, CheckpointOptions, CloneSource, Created, Fenced, Manifest, Role, TableHandle,
    VersionedStore,
};
use crate::store::{TableId, TableStore, Ulid};
use crate::wal::replay::replay_through;

/// Tells `tables` where the tables `manifest` lists from other databases
/// are.
pub(super) fn adopt_sources(tables: &TableStore, manifest: &Manifest) {
    for source in &manifest.sources {
        tables.add_foreign(&Path::from(source.root.as_str()), source.tables.iter().copied());
    }
}

/// The name of the checkpoint the clone at `clone_root` holds in a source.
pub(crate) fn checkpoint_name(clone_root: &Path) -> String {
    format!("{CLONE_CHECKPOINT_PREFIX}{clone_root}")
}

fn nested(a: &Path, b: &Path) -> bool {
    a == b || a.prefix_matches(b) || b.prefix_matches(a)
}

/// Creates the clone of the database at `source_root` (at live checkpoint
/// `checkpoint`, or at its newest version and every WAL table above it)
/// under `prepared`'s root, which holds nothing yet.
pub(super) async fn create(prepared: &Prepared, source_root: &Path, checkpoint: Option<Ulid>) -> Result<(), Error> {
    let root = prepared.manifests.root().clone();
    if nested(&root, source_root) {
        return Err(Error::invalid(format!(
            "cannot clone {source_root} into {root}: one is inside the other"
        )));
    }
    crate::manifest::refuse_lost_manifest(&prepared.manifests, &prepared.tables).await?;
    let store = prepared.tables.store().clone();
    let runtime = prepared.runtime.clone();
    let source_manifests = VersionedStore::<Manifest>::new(
        store.clone(),
        source_root.clone(),
        runtime.clone(),
        prepared.manifests.options().clone(),
    );
    let tables_at = |wal_store: Option<_>| {
        TableStore::with_wal_store(
            store.clone(),
            wal_store,
            source_root.clone(),
            runtime.clone(),
            prepared.tables.options().clone(),
        )
    };
    let mut source = match Fenced::load(source_manifests.clone(), Role::Admin).await {
        Ok(source) => source,
        Err(crate::manifest::ManifestError::Missing { .. }) => {
            crate::manifest::refuse_lost_manifest(&source_manifests, &tables_at(None)).await?;
            return Err(Error::invalid(format!("no database at {source_root} to clone")));
        }
        Err(error) => return Err(error.into()),
    };
    // The source's WAL is read from the WAL store the clone is given.
    let source_wal = match (source.current().separate_wal, prepared.tables.wal_store()) {
        (false, _) => None,
        (true, Some(wal_store)) => Some(wal_store.clone()),
        (true, None) => {
            return Err(Error::invalid(format!(
                "the database at {source_root} keeps its WAL tables in a store of their own: \
                 give the clone that store (DbBuilder::wal_store)"
            )));
        }
    };
    let source_tables = tables_at(source_wal);
    let pin = match checkpoint {
        Some(id) => {
            let now_ms = runtime.wall_ms();
            let Some(named) = source.current().live_checkpoints(now_ms).find(|live| live.id == id) else {
                return Err(Error::invalid(format!(
                    "no live checkpoint {id} in the database at {source_root}"
                )));
            };
            Some(named.manifest_id)
        }
        None => None,
    };
    let held = source
        .create_checkpoint(CheckpointOptions {
            lifetime: None,
            name: Some(checkpoint_name(&root)),
            pin,
        })
        .await?;
    let (first, wal_rows) = match write(prepared, &source_tables, &source_manifests, &held, checkpoint.is_some()).await
    {
        Ok(written) => written,
        Err(error) => {
            // Nothing refers to the checkpoint: give it back.
            if let Err(release) = source.release_checkpoint(held.id).await {
                tracing::warn!(%source_root, checkpoint = %held.id, %release, "could not delete the checkpoint of a failed clone");
            }
            return Err(error);
        }
    };
    // A source none of whose tables the clone lists needs no pin.
    if first
        .sources
        .iter()
        .any(|entry| entry.checkpoint == held.id && entry.tables.is_empty())
        && let Err(release) = source.release_checkpoint(held.id).await
    {
        tracing::warn!(%source_root, checkpoint = %held.id, %release, "could not delete an unneeded clone checkpoint");
    }
    tracing::info!(
        %root,
        source = %source_root,
        checkpoint = %held.id,
        version = held.manifest_id,
        wal_rows,
        "cloned"
    );
    Ok(())
}

/// Writes the clone's first manifest, and returns it with the number of
/// WAL rows it moved to L0; on failure deletes the L0 table it wrote.
async fn write(
    prepared: &Prepared,
    source_tables: &TableStore,
    source_manifests: &VersionedStore<Manifest>,
    held: &Checkpoint,
    at_checkpoint: bool,
) -> Result<(Manifest, usize), Error> {
    let root = prepared.manifests.root();
    let (first, fresh, wal_rows) = build(prepared, source_tables, source_manifests, held, at_checkpoint).await?;
    let deadline = prepared.runtime.now() + prepared.manifests.options().update_timeout;
    let error = match prepared.manifests.create(1, &first, deadline).await {
        Ok(Created::Written) => return Ok((first, wal_rows)),
        Ok(Created::Conflict) => Error::invalid(format!(
            "a database was created at {root} while it was being cloned from {}",
            source_manifests.root()
        )),
        Err(error) => error.into(),
    };
    if let Some(fresh) = fresh
        && let Err(delete) = prepared.tables.delete(TableId::Compacted(fresh)).await
    {
        tracing::warn!(%root, table = %fresh, %delete, "could not delete the L0 table of a failed clone");
    }
    Err(error)
}

/// The clone's first manifest, the id of the L0 table it wrote for the WAL
/// rows above the version `held` pins (if there were any), and how many
/// rows that table holds.
async fn build(
    prepared: &Prepared,
    source_tables: &TableStore,
    source_manifests: &VersionedStore<Manifest>,
    held: &Checkpoint,
    at_checkpoint: bool,
) -> Result<(Manifest, Option<Ulid>, usize), Error> {
    let root = prepared.manifests.root();
    let version = source_manifests.read(held.manifest_id).await?;
    check_merge_operator(&version, &prepared.merge_operator)?;
    // A checkpoint's state ends where its version's WAL did; the newest
    // version's goes on to every WAL table written since.
    let end = at_checkpoint.then(|| version.next_wal_id.saturating_sub(1));
    let replayed = replay_through(source_tables, &version, end).await?;
    let mut sources = vec![CloneSource {
        root: source_manifests.root().to_string(),
        checkpoint: held.id,
        tables: version
            .tables()
            .map(|table| table.id)
            .filter(|id| version.source_of(*id).is_none())
            .collect(),
    }];
    for inherited in version.sources.iter().filter(|inherited| !inherited.tables.is_empty()) {
        let listed: Vec<Ulid> = version
            .tables()
            .map(|table| table.id)
            .filter(|id| inherited.tables.contains(id))
            .collect();
        if listed.is_empty() {
            continue;
        }
        sources.push(pin_inherited(prepared, root, inherited, listed).await?);
    }
    let mut l0 = Vec::with_capacity(version.l0.len() + 1);
    let mut fresh = None;
    if !replayed.memtable.is_empty() {
        let mut builder = prepared.tables.builder(TableKind::Sorted);
        for row in replayed.memtable.iter() {
            builder.add(&row);
        }
        for tombstone in replayed.memtable.range_tombstones() {
            builder.add_range_tombstone(tombstone);
        }
        let written = prepared.tables.write_sorted(builder).await?;
        let table =
            TableHandle::from_written(&written).ok_or_else(|| Error::internal("a clone's L0 table got a WAL id"))?;
        fresh = Some(table.id);
        l0.push(table);
    }
    l0.extend(version.l0.iter().cloned());
    let first = Manifest {
        last_l0_seq: replayed.last_seq.max(version.last_l0_seq),
        l0,
        sorted_runs: version.sorted_runs.clone(),
        retain_seq: version.retain_seq,
        losses: version.losses.clone(),
        seq_times: version.seq_times.clone(),
        merge_operator: version.merge_operator.clone(),
        sources,
        separate_wal: prepared.tables.has_wal_store(),
        ..Manifest::default()
    };
    Ok((first, fresh, replayed.memtable.len()))
}

/// Pins, for the clone at `root`, the tables `listed` that its source
/// lists from `inherited`'s database: a checkpoint there on the version the
/// source's own checkpoint pins.
async fn pin_inherited(
    prepared: &Prepared,
    root: &Path,
    inherited: &CloneSource,
    listed: Vec<Ulid>,
) -> Result<CloneSource, Error> {
    let origin_root = Path::from(inherited.root.as_str());
    let origin = VersionedStore::<Manifest>::new(
        prepared.tables.store().clone(),
        origin_root.clone(),
        prepared.runtime.clone(),
        prepared.manifests.options().clone(),
    );
    let mut origin = Fenced::load(origin, Role::Admin).await?;
    let Some(theirs) = origin.current().checkpoint(inherited.checkpoint) else {
        return Err(Error::new(
            ErrorKind::Corruption,
            format!(
                "the source's checkpoint {} in {origin_root}, which keeps the tables it lists from there, is gone",
                inherited.checkpoint
            ),
        ));
    };
    let held = origin
        .create_checkpoint(CheckpointOptions {
            lifetime: None,
            name: Some(checkpoint_name(root)),
            pin: Some(theirs.manifest_id),
        })
        .await?;
    Ok(CloneSource {
        root: inherited.root.clone(),
        checkpoint: held.id,
        tables: listed,
    })
}
