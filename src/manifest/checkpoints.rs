//! Checkpoints: create, refresh, delete, list. A checkpoint pins one
//! manifest version; the garbage collector keeps everything that version
//! references until the checkpoint expires or is deleted. Any role may
//! manage checkpoints.

use std::time::Duration;

use object_store::path::Path;

use super::ManifestError;
use super::fenced::Fenced;
use super::model::{CLONE_CHECKPOINT_PREFIX, Checkpoint, Manifest};
use super::versioned::VersionedStore;
use crate::store::Ulid;

/// How to create a checkpoint.
#[derive(Clone, Debug, Default)]
pub struct CheckpointOptions {
    /// How long it lives; `None` until deleted.
    pub lifetime: Option<Duration>,
    /// A name to find it by (`talus checkpoint list` shows it).
    pub name: Option<String>,
    /// The manifest version to pin; `None` pins the version that records
    /// the checkpoint (the current table set).
    pub pin: Option<u64>,
}

fn expiry(now_ms: u64, lifetime: Duration) -> u64 {
    now_ms.saturating_add(u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX))
}

impl CheckpointOptions {
    /// The checkpoint these options describe, recorded at `now_ms` in the
    /// manifest version `next_id`.
    pub fn checkpoint(&self, id: Ulid, next_id: u64, now_ms: u64) -> Checkpoint {
        Checkpoint {
            id,
            manifest_id: self.pin.unwrap_or(next_id),
            create_ms: now_ms,
            expire_ms: self.lifetime.map(|lifetime| expiry(now_ms, lifetime)),
            name: self.name.clone(),
        }
    }
}

impl Fenced<Manifest> {
    fn wall_ms(&self) -> u64 {
        self.store().runtime().wall_ms()
    }

    /// Adds a checkpoint and returns it as written.
    ///
    /// # Errors
    ///
    /// A [`ManifestError`]: `Store` if the store failed or a version is corrupt;
    /// `Fenced` if a newer handle of the same role took over; `Timeout` if the write kept failing.
    pub async fn create_checkpoint(&mut self, options: CheckpointOptions) -> Result<Checkpoint, ManifestError> {
        let id = Ulid::generate(self.store().runtime());
        let now_ms = self.wall_ms();
        let mut written = None;
        self.update(|manifest, next_id| {
            let checkpoint = options.checkpoint(id, next_id, now_ms);
            manifest.checkpoints.retain(|existing| existing.id != id);
            manifest.checkpoints.push(checkpoint.clone());
            written = Some(checkpoint);
            Ok(())
        })
        .await?;
        written.ok_or(ManifestError::CheckpointNotFound { id })
    }

    /// Moves a checkpoint's expiry to `lifetime` from now.
    ///
    /// # Errors
    ///
    /// A [`ManifestError`]: `Store` if the store failed or a version is corrupt;
    /// `Fenced` if a newer handle of the same role took over; `CheckpointNotFound` for an unknown id.
    pub async fn refresh_checkpoint(&mut self, id: Ulid, lifetime: Duration) -> Result<Checkpoint, ManifestError> {
        let expire_ms = expiry(self.wall_ms(), lifetime);
        let mut refreshed = None;
        self.update(|manifest, _| {
            let checkpoint = manifest
                .checkpoints
                .iter_mut()
                .find(|checkpoint| checkpoint.id == id)
                .ok_or(ManifestError::CheckpointNotFound { id })?;
            checkpoint.expire_ms = Some(expire_ms);
            refreshed = Some(checkpoint.clone());
            Ok(())
        })
        .await?;
        refreshed.ok_or(ManifestError::CheckpointNotFound { id })
    }

    /// Removes a checkpoint. One a clone holds in this database (named
    /// `clone <root>`) is refused while that clone still lists tables
    /// through it: its collector releases it once it no longer does. If
    /// the clone is gone, or lists nothing through it, it is deleted.
    ///
    /// # Errors
    ///
    /// A [`ManifestError`]: `Store` if the store failed or a version is corrupt;
    /// `Fenced` if a newer handle of the same role took over; `CheckpointNotFound` for an unknown id;
    /// `CheckpointHeld` for a checkpoint a clone still needs.
    pub async fn delete_checkpoint(&mut self, id: Ulid) -> Result<(), ManifestError> {
        let clone = self
            .current()
            .checkpoint(id)
            .and_then(|checkpoint| checkpoint.name.as_deref())
            .and_then(|name| name.strip_prefix(CLONE_CHECKPOINT_PREFIX))
            .map(str::to_string);
        if let Some(clone) = clone {
            let ours = self.store();
            let clone_manifests = VersionedStore::<Manifest>::new(
                ours.object_store().clone(),
                Path::from(clone.as_str()),
                ours.runtime().clone(),
                ours.options().clone(),
            );
            if let Some((_, manifest)) = clone_manifests.read_latest().await?
                && manifest.sources.iter().any(|source| {
                    source.checkpoint == id && !source.tables.is_empty() && source.root == ours.root().as_ref()
                })
            {
                return Err(ManifestError::CheckpointHeld { id, clone });
            }
        }
        self.remove_checkpoint(id).await
    }

    /// Removes a checkpoint with no questions asked; one already gone is
    /// not an error (a clone's collector releasing what it holds).
    ///
    /// # Errors
    ///
    /// A [`ManifestError`]: `Store` if the store failed or a version is corrupt;
    /// `Fenced` if a newer handle of the same role took over.
    pub async fn release_checkpoint(&mut self, id: Ulid) -> Result<(), ManifestError> {
        match self.remove_checkpoint(id).await {
            Err(ManifestError::CheckpointNotFound { .. }) => Ok(()),
            result => result,
        }
    }

    async fn remove_checkpoint(&mut self, id: Ulid) -> Result<(), ManifestError> {
        self.update(|manifest, _| {
            let before = manifest.checkpoints.len();
            manifest.checkpoints.retain(|checkpoint| checkpoint.id != id);
            if manifest.checkpoints.len() == before {
                return Err(ManifestError::CheckpointNotFound { id });
            }
            Ok(())
        })
        .await
        .map(drop)
    }

    /// The checkpoints that have not expired, as of the newest version we
    /// know (call `refresh` first for others' changes).
    pub fn list_checkpoints(&self) -> Vec<Checkpoint> {
        let now_ms = self.wall_ms();
        self.current().live_checkpoints(now_ms).cloned().collect()
    }
}
