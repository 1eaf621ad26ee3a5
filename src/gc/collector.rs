//! What the garbage collector may delete, and deleting it.
//!
//! Owns: the safety rules (below), planning a collection from one
//! consistent view, and carrying a plan out. Does not own: when to collect
//! (the gc actor's tickers) or any other role's metadata.
//!
//! Rules — an object is deleted only if it is at least its class's minimum
//! age old and:
//! - a WAL table: its id is at or below the lowest `replay_after_wal_id` of
//!   the current manifest and of every live checkpoint's manifest; a table
//!   small enough to be a fence or filler is also at least
//!   `FENCE_MARKER_RETENTION` old (see `manifest::lease`);
//! - a sorted table: neither the current manifest, nor a live checkpoint's
//!   manifest, nor an active compaction (its outputs so far) lists it;
//! - a manifest version: older than the latest and pinned by no live
//!   checkpoint;
//! - a compactions version: older than the latest;
//! - a clone's checkpoint in a source (not an object): no version kept by
//!   the rules above lists any table of that source.
//!
//! Expired checkpoints are removed from the manifest by an ordinary
//! conditional update. The view is read compactions first, then the
//! manifest (the compactor writes in the opposite order), so a table is
//! never seen unreferenced in both; after the listings the manifest is read
//! again and tables this process has in flight ([`crate::store::InFlight`])
//! are kept, so an in-process table is safe whatever the clocks say. A
//! table written by another process and not yet recorded is protected by
//! the minimum age alone. If a live checkpoint's manifest cannot be read,
//! no table or WAL table is deleted in that run. A collector inside a
//! writer stops collecting once either manifest read shows a newer writer
//! epoch: a paused, fenced writer must not judge the new writer's tables.

use std::collections::HashSet;
use std::time::Duration;

use super::{Class, GcMode, GcOptions, GcReport, Released};
use crate::error::{Error, ErrorKind};
use crate::manifest::compactor_state::{StateView, read_view};
use crate::manifest::lease::{FENCE_MARKER_MAX_BYTES, FENCE_MARKER_RETENTION};
use crate::manifest::{Compactions, Fenced, Manifest, ManifestError, Role, VersionedStore};
use crate::metrics as m;
use crate::store::{StoreError, TableId, TableStore, Ulid};

/// Plans and carries out collections. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Collector {
    tables: TableStore,
    manifests: VersionedStore<Manifest>,
    compactions: VersionedStore<Compactions>,
    options: GcOptions,
    /// The epoch of the writer this collector runs in, if it runs in one.
    writer_epoch: Option<u64>,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Collector {
    /// A collector of the database its arguments describe (see
    /// [`crate::DbBuilder::collector`]).
    pub fn new(
        tables: TableStore,
        manifests: VersionedStore<Manifest>,
        compactions: VersionedStore<Compactions>,
        options: GcOptions,
    ) -> Self {
        Collector {
            tables,
            manifests,
            compactions,
            options,
            writer_epoch: None,
        }
    }

    /// This collector as part of the writer at `epoch`: it collects nothing
    /// once a newer writer owns the database. The newer writer's tables in
    /// flight are protected only by the minimum age from any other process,
    /// and a paused, fenced writer has no reason to judge them.
    pub fn for_writer(mut self, epoch: u64) -> Self {
        self.writer_epoch = Some(epoch);
        self
    }

    /// `Fenced` if `manifest` shows a newer writer than ours.
    fn check_owner(&self, manifest: &Manifest) -> Result<(), Error> {
        match self.writer_epoch {
            Some(ours) if manifest.writer_epoch > ours => Err(Error::new(
                ErrorKind::Fenced,
                format!(
                    "garbage collection stopped: writer epoch {ours} was fenced by epoch {}",
                    manifest.writer_epoch
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The settings it collects with.
    pub fn options(&self) -> &GcOptions {
        &self.options
    }

    /// Plans `classes` and, in [`GcMode::Delete`], deletes what the plan
    /// lists. The report is the plan: a dry run reports what a real run at
    /// the same moment deletes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`] if the store failed listing or deleting
    /// (what was deleted stays deleted; the next run finishes the rest);
    /// [`ErrorKind::Fenced`] if a newer writer owns the database;
    /// [`ErrorKind::Corruption`] if the manifest is missing while tables
    /// remain (nothing is deleted then).
    pub async fn run(&self, classes: &[Class], mode: GcMode) -> Result<GcReport, Error> {
        let mut report = self.plan(classes).await?;
        report.dry_run = mode == GcMode::DryRun;
        if mode == GcMode::Delete {
            self.execute(&report).await?;
        }
        Ok(report)
    }

    /// Adds to `held` the manifest versions in `pinned` it lacks. `false`
    /// if one is missing.
    async fn read_pinned(&self, pinned: &HashSet<u64>, held: &mut Vec<(u64, Manifest)>) -> Result<bool, Error> {
        let mut complete = true;
        for id in pinned {
            if held.iter().any(|(known, _)| known == id) {
                continue;
            }
            match self.manifests.read(*id).await {
                Ok(version) => held.push((*id, version)),
                Err(ManifestError::Store(StoreError::NotFound { path })) => {
                    tracing::warn!(%path, "a live checkpoint's manifest is missing; keeping every table this run");
                    complete = false;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(complete)
    }

    /// What a collection of `classes` would delete now.
    ///
    /// For WAL tables and sorted tables two reads of the metadata bracket
    /// the listings: the first (the compactions file, then the manifest)
    /// decides what is old; the second (this process's in-flight tables,
    /// then the manifest again) catches tables that became referenced while
    /// we listed.
    ///
    /// # Errors
    ///
    /// As [`Collector::run`].
    pub async fn plan(&self, classes: &[Class]) -> Result<GcReport, Error> {
        let mut report = GcReport::default();
        let view = read_view(&self.manifests, &self.compactions).await?;
        let Some((manifest_id, manifest)) = &view.manifest else {
            // No manifest, nothing to judge by: a lost manifest is an error,
            // an empty path has nothing to collect.
            crate::manifest::refuse_lost_manifest(&self.manifests, &self.tables).await?;
            return Ok(report);
        };
        self.check_owner(manifest)?;
        crate::manifest::check_wal_store(manifest, &self.tables)?;
        let now_ms = self.manifests.runtime().wall_ms();
        let mut pinned_ids: HashSet<u64> = manifest
            .live_checkpoints(now_ms)
            .map(|checkpoint| checkpoint.manifest_id)
            .collect();
        if classes.contains(&Class::Wal) || classes.contains(&Class::Tables) {
            self.plan_tables(classes, &view, now_ms, &mut pinned_ids, &mut report)
                .await?;
        }
        if classes.contains(&Class::Manifests) {
            for (id, info) in self.manifests.list().await? {
                if id < *manifest_id
                    && !pinned_ids.contains(&id)
                    && old_enough(info.modified_ms, self.options.manifests.min_age, now_ms)
                {
                    report.manifests.push(id);
                }
            }
        }
        if classes.contains(&Class::Compactions)
            && let Some((latest, _)) = &view.compactions
        {
            for (id, info) in self.compactions.list().await? {
                if id < *latest && old_enough(info.modified_ms, self.options.compactions.min_age, now_ms) {
                    report.compactions.push(id);
                }
            }
        }
        if classes.contains(&Class::Checkpoints) {
            report.checkpoints = manifest
                .checkpoints
                .iter()
                .filter(|checkpoint| !checkpoint.is_live(now_ms))
                .map(|checkpoint| checkpoint.id)
                .collect();
        }
        Ok(report)
    }

    /// Plans the WAL and sorted tables of `classes`: what no version that
    /// may still be read (the current one, a newer one written meanwhile,
    /// every checkpoint's) references, nor a running job or an upload in
    /// flight. Adds the newer version's checkpoints to `pinned_ids`.
    async fn plan_tables(
        &self,
        classes: &[Class],
        view: &StateView,
        now_ms: u64,
        pinned_ids: &mut HashSet<u64>,
        report: &mut GcReport,
    ) -> Result<(), Error> {
        let Some((manifest_id, manifest)) = &view.manifest else {
            return Ok(());
        };
        let wal = if classes.contains(&Class::Wal) {
            self.tables.list_wal().await?
        } else {
            Vec::new()
        };
        let sorted = if classes.contains(&Class::Tables) {
            self.tables.list_sorted().await?
        } else {
            Vec::new()
        };
        let in_flight = self.tables.in_flight().snapshot();
        let mut held = vec![(*manifest_id, manifest.clone())];
        if let Some((latest_id, latest)) = self.manifests.read_latest().await?
            && latest_id != *manifest_id
        {
            self.check_owner(&latest)?;
            pinned_ids.extend(latest.live_checkpoints(now_ms).map(|checkpoint| checkpoint.manifest_id));
            held.push((latest_id, latest));
        }
        if !self.read_pinned(pinned_ids, &mut held).await? {
            return Ok(());
        }
        let versions = || held.iter().map(|(_, version)| version);
        let floor = versions().map(|version| version.replay_after_wal_id).min().unwrap_or(0);
        for (id, info) in wal {
            // A fence or filler is what stops a paused, fenced writer's
            // upload at its id: kept for the retention whatever the minimum
            // age (`manifest::lease`).
            let marker_kept =
                info.size <= FENCE_MARKER_MAX_BYTES && !old_enough(info.modified_ms, FENCE_MARKER_RETENTION, now_ms);
            if id <= floor && old_enough(info.modified_ms, self.options.wal.min_age, now_ms) && !marker_kept {
                report.wal.push(id);
            }
        }
        let mut referenced: HashSet<Ulid> = versions().flat_map(|version| version.tables()).map(|t| t.id).collect();
        referenced.extend(in_flight);
        if let Some((_, compactions)) = &view.compactions {
            for entry in compactions.active() {
                referenced.extend(entry.outputs.iter().map(|table| table.id));
            }
        }
        for (id, info) in sorted {
            if let TableId::Compacted(ulid) = id
                && !referenced.contains(&ulid)
                && old_enough(info.modified_ms, self.options.tables.min_age, now_ms)
            {
                report.tables.push(ulid);
            }
        }
        if classes.contains(&Class::Tables) {
            // A clone's sources: once no version it keeps lists any of a
            // source's tables, none ever will again (a clone adds only
            // tables of its own), and the checkpoint holding them can go.
            let newest = held.iter().max_by_key(|(id, _)| *id).map(|(_, version)| version);
            for source in newest.into_iter().flat_map(|version| &version.sources) {
                if !source.tables.is_empty() && !source.tables.iter().any(|id| referenced.contains(id)) {
                    report.released.push(Released {
                        source: source.root.clone(),
                        checkpoint: source.checkpoint,
                    });
                }
            }
        }
        Ok(())
    }

    /// Deletes what `plan` lists.
    ///
    /// # Errors
    ///
    /// As [`Collector::run`].
    pub async fn execute(&self, plan: &GcReport) -> Result<(), Error> {
        for id in &plan.wal {
            self.tables.delete(TableId::Wal(*id)).await?;
        }
        metrics::counter!(m::GC_DELETED, "class" => "wal").increment(plan.wal.len() as u64);
        for id in &plan.tables {
            self.tables.delete(TableId::Compacted(*id)).await?;
        }
        metrics::counter!(m::GC_DELETED, "class" => "table").increment(plan.tables.len() as u64);
        for id in &plan.manifests {
            self.manifests.delete(*id).await?;
        }
        metrics::counter!(m::GC_DELETED, "class" => "manifest").increment(plan.manifests.len() as u64);
        for id in &plan.compactions {
            self.compactions.delete(*id).await?;
        }
        metrics::counter!(m::GC_DELETED, "class" => "compactions").increment(plan.compactions.len() as u64);
        for released in &plan.released {
            self.release(released).await?;
        }
        if !plan.checkpoints.is_empty() {
            let expired: HashSet<Ulid> = plan.checkpoints.iter().copied().collect();
            let now_ms = self.manifests.runtime().wall_ms();
            let mut manifest = Fenced::load(self.manifests.clone(), Role::Admin).await?;
            manifest
                .update(|current, _| {
                    // One refreshed since the plan lives on.
                    current
                        .checkpoints
                        .retain(|checkpoint| !expired.contains(&checkpoint.id) || checkpoint.is_live(now_ms));
                    Ok(())
                })
                .await?;
            metrics::counter!(m::GC_DELETED, "class" => "checkpoint").increment(plan.checkpoints.len() as u64);
        }
        if plan.total() > 0 {
            tracing::info!(
                wal = plan.wal.len(),
                tables = plan.tables.len(),
                manifests = plan.manifests.len(),
                compactions = plan.compactions.len(),
                checkpoints = plan.checkpoints.len(),
                released = plan.released.len(),
                "garbage collected"
            );
        }
        Ok(())
    }

    /// Deletes the checkpoint a clone held in a source, then records in
    /// the clone's manifest that it lists nothing from there any more (in
    /// this order: a crash between leaves an entry whose checkpoint is
    /// gone, which the next run releases again, never a checkpoint no one
    /// will release).
    async fn release(&self, released: &Released) -> Result<(), Error> {
        let source = VersionedStore::<Manifest>::new(
            self.manifests.object_store().clone(),
            object_store::path::Path::from(released.source.as_str()),
            self.manifests.runtime().clone(),
            self.manifests.options().clone(),
        );
        match Fenced::load(source, Role::Admin).await {
            Ok(mut source) => source.release_checkpoint(released.checkpoint).await?,
            // The source is gone: nothing holds anything there.
            Err(ManifestError::Missing { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        let mut manifest = Fenced::load(self.manifests.clone(), Role::Admin).await?;
        manifest
            .update(|current, _| {
                for source in &mut current.sources {
                    if source.checkpoint == released.checkpoint {
                        source.tables.clear();
                    }
                }
                Ok(())
            })
            .await?;
        metrics::counter!(m::GC_DELETED, "class" => "clone_checkpoint").increment(1);
        tracing::info!(source = %released.source, checkpoint = %released.checkpoint, "released a clone's checkpoint in its source");
        Ok(())
    }
}

/// Whether an object last modified at `modified_ms` is at least `min_age`
/// old at `now_ms`.
fn old_enough(modified_ms: u64, min_age: Duration, now_ms: u64) -> bool {
    modified_ms.saturating_add(millis(min_age)) <= now_ms
}
