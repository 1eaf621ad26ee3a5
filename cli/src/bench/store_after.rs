//! What the store holds once a benchmark's workloads are done: objects and
//! bytes, after garbage collection and at rest, and the amplifications.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use talusdb::Error;
use talusdb::manifest::{Fenced, Manifest, Role, VersionedOptions, VersionedStore};

use super::Bench;
use crate::CliError;

impl Bench {
    /// Objects and bytes under the benchmark's path (in its WAL store too).
    async fn store_usage(&self) -> Result<(u64, u64), Error> {
        let prefix = self.path.as_str().into();
        let (mut count, mut bytes) = (0, 0);
        for store in std::iter::once(&self.store).chain(&self.wal_store) {
            let objects = store.list(&prefix).await.map_err(Error::from)?;
            count += objects.len() as u64;
            bytes += objects.iter().map(|object| object.size).sum::<u64>();
        }
        Ok((count, bytes))
    }

    /// What the store holds once the workloads are done (the database is
    /// closed): objects and bytes before and after a garbage collection
    /// with no minimum ages, the live table bytes, and the amplifications.
    pub(super) async fn store_report(&self) -> Result<Value, CliError> {
        let (objects, bytes) = self.store_usage().await?;
        // Run once here, so the interval is never used.
        let gc = talusdb::GcOptions::uniform(Duration::from_secs(60), Duration::ZERO);
        let collector = self
            .builder()
            .options(talusdb::DbOptions {
                gc: Some(gc),
                ..talusdb::DbOptions::default()
            })
            .collector()?;
        collector
            .run(&talusdb::gc::Class::ALL, talusdb::gc::GcMode::Delete)
            .await?;
        let (objects_after_gc, bytes_after_gc) = self.store_usage().await?;
        // Each compaction's inputs stay pinned by a checkpoint for 15
        // minutes (for reads still running on them). Nothing reads now: drop
        // those checkpoints and collect again, to see the store at rest.
        let mut manifest = Fenced::<Manifest>::load(
            VersionedStore::new(
                self.store.clone(),
                self.path.as_str().into(),
                self.runtime.clone(),
                VersionedOptions::default(),
            ),
            Role::Admin,
        )
        .await
        .map_err(Error::from)?;
        for checkpoint in manifest.list_checkpoints() {
            if checkpoint
                .name
                .as_deref()
                .is_some_and(|name| name.starts_with("compaction "))
            {
                manifest.delete_checkpoint(checkpoint.id).await.map_err(Error::from)?;
            }
        }
        collector
            .run(&talusdb::gc::Class::ALL, talusdb::gc::GcMode::Delete)
            .await?;
        let (objects_at_rest, bytes_at_rest) = self.store_usage().await?;
        let reader = self.builder().open_read_only().await?;
        let shape = reader.shape();
        let user = self.user_bytes().max(1) as f64;
        let written = self.total_written();
        let put = self.user_written.load(Ordering::Relaxed);
        Ok(json!({
            "objects": objects,
            "bytes": bytes,
            "objects_after_gc": objects_after_gc,
            "bytes_after_gc": bytes_after_gc,
            "objects_at_rest": objects_at_rest,
            "bytes_at_rest": bytes_at_rest,
            "live_table_bytes": shape.table_bytes,
            "l0_tables": shape.l0_tables,
            "sorted_runs": shape.sorted_runs,
            "user_bytes": self.user_bytes(),
            "user_bytes_written": put,
            "bytes_written": written,
            "write_amplification": (put > 0).then(|| written as f64 / put as f64),
            "space_amplification": bytes_at_rest as f64 / user,
        }))
    }
}
