//! The compactor's state protocol: the order in which the compactor reads
//! and writes the manifest and the compactions file, so that the garbage
//! collector never sees a table unreferenced while it is still needed.
//!
//! - Read the compactions file **before** the manifest.
//! - Write the manifest **before** the compactions file, and before the
//!   manifest change that drops a compaction's inputs, write a short-lived
//!   checkpoint pinning a version that still references them (in-flight
//!   reads keep working).
//! - On open (a compactor restart): raise the compactor epoch in the
//!   manifest, mirror it into the compactions file, send running entries
//!   back to submitted and keep only active entries plus the last finished.

// Reachable from outside only through the hidden `internals` module, whose
// callers (fuzz targets, benches, white-box tests) need no error sections.
#![allow(clippy::missing_errors_doc)]

use std::time::Duration;

use super::ManifestError;
use super::checkpoints::CheckpointOptions;
use super::compactions::{CompactionSpec, CompactionStatus, Compactions};
use super::fenced::{Fenced, IfMissing, Role};
use super::model::{Manifest, TableHandle};
use super::versioned::VersionedStore;
use crate::store::Ulid;

/// Lifetime of the checkpoint that protects a compaction's inputs.
pub const PROTECT_INPUTS_FOR: Duration = Duration::from_secs(15 * 60);

/// What the garbage collector reads: compactions first, then the manifest.
#[derive(Clone, Debug)]
pub struct StateView {
    pub compactions: Option<(u64, Compactions)>,
    pub manifest: Option<(u64, Manifest)>,
}

/// Reads a consistent view (compactions before manifest) without fencing
/// anyone.
pub async fn read_view(
    manifests: &VersionedStore<Manifest>,
    compactions: &VersionedStore<Compactions>,
) -> Result<StateView, ManifestError> {
    let compactions = compactions.read_latest().await?;
    let manifest = manifests.read_latest().await?;
    Ok(StateView { compactions, manifest })
}

/// The compactor's fenced handles on both objects.
#[derive(Debug)]
pub struct CompactorState {
    manifest: Fenced<Manifest>,
    compactions: Fenced<Compactions>,
}

impl CompactorState {
    /// Fences every earlier compactor and recovers the compactions file.
    pub async fn open(
        manifests: VersionedStore<Manifest>,
        compactions: VersionedStore<Compactions>,
    ) -> Result<CompactorState, ManifestError> {
        let manifest = Fenced::open(manifests, Role::Compactor, IfMissing::Fail).await?;
        let epoch = manifest.epoch().unwrap_or(0);
        let mut compactions = Fenced::open_with_epoch(compactions, Role::Compactor, epoch, IfMissing::Create).await?;
        compactions
            .update(|state, _| {
                state.recover_after_restart();
                Ok(())
            })
            .await?;
        Ok(CompactorState { manifest, compactions })
    }

    /// The newest manifest version read.
    pub fn manifest(&self) -> &Manifest {
        self.manifest.current()
    }

    /// Its id.
    pub fn manifest_id(&self) -> u64 {
        self.manifest.id()
    }

    /// The id of the newest compactions version read.
    pub fn compactions_id(&self) -> u64 {
        self.compactions.id()
    }

    /// The newest compactions version read.
    pub fn compactions(&self) -> &Compactions {
        self.compactions.current()
    }

    /// The compactor epoch this state holds.
    pub fn epoch(&self) -> u64 {
        self.manifest.epoch().unwrap_or(0)
    }

    /// Catches up: compactions first, then the manifest.
    pub async fn refresh(&mut self) -> Result<(), ManifestError> {
        self.compactions.refresh().await?;
        self.manifest.refresh().await
    }

    /// Records a new submitted compaction.
    pub async fn submit(&mut self, spec: CompactionSpec) -> Result<Ulid, ManifestError> {
        let id = Ulid::generate(self.manifest.store().runtime());
        self.compactions
            .update(|state, _| {
                if state.get(id).is_none() {
                    state.submit(id, spec.clone());
                }
                Ok(())
            })
            .await?;
        Ok(id)
    }

    fn set_status(state: &mut Compactions, id: Ulid, status: CompactionStatus) -> Result<(), ManifestError> {
        if state.set_status(id, status) {
            Ok(())
        } else {
            Err(ManifestError::InvalidChange {
                role: Role::Compactor,
                detail: format!("no compaction {id}"),
            })
        }
    }

    /// Marks a submitted compaction as running.
    pub async fn start(&mut self, id: Ulid) -> Result<(), ManifestError> {
        self.compactions
            .update(|state, _| Self::set_status(state, id, CompactionStatus::Running))
            .await
            .map(drop)
    }

    /// Records a table a running compaction has written (so the garbage
    /// collector keeps it even if the compactor stops before finishing).
    pub async fn add_output(&mut self, id: Ulid, table: TableHandle) -> Result<(), ManifestError> {
        self.compactions
            .update(|state, _| {
                let entry = state.get_mut(id).ok_or_else(|| ManifestError::InvalidChange {
                    role: Role::Compactor,
                    detail: format!("no compaction {id}"),
                })?;
                if !entry.outputs.iter().any(|output| output.id == table.id) {
                    entry.outputs.push(table.clone());
                }
                Ok(())
            })
            .await
            .map(drop)
    }

    /// Finishes a compaction: a checkpoint protecting its inputs, then the
    /// manifest change `apply` (new runs, inputs removed), then the
    /// compactions file (completed, with its outputs).
    pub async fn finish<F>(&mut self, id: Ulid, outputs: Vec<TableHandle>, mut apply: F) -> Result<(), ManifestError>
    where
        F: FnMut(&mut Manifest) -> Result<(), ManifestError>,
    {
        self.manifest
            .create_checkpoint(CheckpointOptions {
                lifetime: Some(PROTECT_INPUTS_FOR),
                name: Some(format!("compaction {id} inputs")),
                pin: None,
            })
            .await?;
        self.manifest.update(|manifest, _| apply(manifest)).await?;
        self.compactions
            .update(|state, _| {
                Self::set_status(state, id, CompactionStatus::Completed)?;
                if let Some(entry) = state.get_mut(id) {
                    entry.outputs = outputs.clone();
                }
                state.retain_active_and_last_finished();
                Ok(())
            })
            .await
            .map(drop)
    }

    /// Marks a compaction completed whose manifest change is already
    /// written (the compactor stopped before recording it here).
    pub async fn complete_applied(&mut self, id: Ulid) -> Result<(), ManifestError> {
        self.record_end(id, CompactionStatus::Completed).await
    }

    /// Marks a compaction failed (its outputs stay listed for the collector
    /// to judge).
    pub async fn fail(&mut self, id: Ulid) -> Result<(), ManifestError> {
        self.record_end(id, CompactionStatus::Failed).await
    }

    /// Records `id`'s final `status` and drops finished entries but the last.
    async fn record_end(&mut self, id: Ulid, status: CompactionStatus) -> Result<(), ManifestError> {
        self.compactions
            .update(|state, _| {
                Self::set_status(state, id, status)?;
                state.retain_active_and_last_finished();
                Ok(())
            })
            .await
            .map(drop)
    }
}
