//! Restoring a checkpoint in place (`DbBuilder::restore_checkpoint`), under
//! the simulator: the restored database reads exactly what the checkpoint
//! saw, through compaction, garbage collection with no minimum age and
//! reopening; the writer and compactor that were running are fenced and
//! nothing they write afterwards lands; what cannot be restored is
//! refused and changes nothing.

mod support;

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use talusdb::actors::Runtime;
use talusdb::compactor::SubmitSpec;
use talusdb::manifest::{
    CheckpointOptions, CompactionSpec, CompactionStatus, Compactions, Fenced, Manifest, Role, Source, Versioned,
    VersionedOptions, VersionedStore,
};
use talusdb::store::{Store, Ulid};
use talusdb::{Db, DbBuilder, ErrorKind, GcMode};

/// Longer than the compactor keeps a compaction's inputs for readers that
/// hold no checkpoint (15 min).
const PAST_INPUT_PROTECTION: Duration = Duration::from_secs(16 * 60);

use support::{TextModel as Model, check_model, write_model};

fn builder(store: &Arc<dyn Store>, runtime: &Runtime) -> DbBuilder {
    Db::builder("db", store.clone())
        .runtime(runtime.clone())
        // Collections only when the test asks (the interval is a month).
        .options(support::compacting_db_options(8, Duration::from_secs(30 * 24 * 3600)))
}

/// The stored versions of the manifest or the compactions file of `db`.
fn versions<P: Versioned>(store: &Arc<dyn Store>, runtime: &Runtime) -> VersionedStore<P> {
    VersionedStore::new(
        store.clone(),
        Path::from("db"),
        runtime.clone(),
        VersionedOptions::default(),
    )
}

/// Reopens the database and checks that it reads `model`, before and
/// after a compaction of everything.
async fn reopened_reads(store: &Arc<dyn Store>, runtime: &Runtime, model: &Model, what: &str) {
    let db = builder(store, runtime).open().await.expect("reopen");
    check_model(&db, model, what).await;
    db.compact().await.expect("compact");
    check_model(&db, model, &format!("{what}, compacted")).await;
    db.close().await.expect("close");
}

async fn latest(store: &Arc<dyn Store>, runtime: &Runtime) -> (u64, Manifest) {
    versions::<Manifest>(store, runtime)
        .read_latest()
        .await
        .expect("read")
        .expect("a manifest")
}

#[test]
fn a_restore_brings_back_the_checkpoint_and_fences_the_writer_that_ran() {
    for seed in 1..=3 {
        support::on_sim(seed, async |runtime, memory| {
            let store: Arc<dyn Store> = Arc::new(support::sim_world::SimClock::new(memory, runtime.clone()));
            let mut random = support::Gen(seed);
            let db = builder(&store, &runtime).open().await.expect("open");
            let mut model = Model::new();
            write_model(&db, &mut model, &mut random, "first", 300).await;
            db.compact().await.expect("a sorted run");
            write_model(&db, &mut model, &mut random, "second", 100).await;
            let checkpoint = db
                .create_checkpoint(CheckpointOptions::default())
                .await
                .expect("checkpoint");
            let at_checkpoint = model.clone();
            // After it: compaction replaces the tables it lists, and the
            // last writes stay only in the WAL.
            write_model(&db, &mut model, &mut random, "third", 300).await;
            db.compact().await.expect("compact after the checkpoint");
            write_model(&db, &mut model, &mut random, "fourth", 40).await;
            let (before, _) = latest(&store, &runtime).await;

            let restored = builder(&store, &runtime)
                .restore_checkpoint(checkpoint.id)
                .await
                .expect("restore");
            assert_eq!(restored.checkpoint, checkpoint.id);
            assert_eq!(restored.pinned_version, checkpoint.manifest_id);
            assert!(restored.version > before, "a new version: {restored:?}");
            assert!(
                restored.dropped_wal_rows > 0,
                "the WAL-only rows are dropped: {restored:?}"
            );
            let (_, manifest) = latest(&store, &runtime).await;
            assert!(manifest.checkpoint(checkpoint.id).is_some(), "the checkpoint stays");

            // The writer that ran is fenced: its next durable write fails
            // and nothing it tries lands.
            let late = db.put("k999", "after the restore").await;
            let error = late.expect_err("the fenced writer's put");
            assert!(error.is_fenced(), "{error}");
            let _ = db.close().await;

            let db = builder(&store, &runtime).open().await.expect("reopen");
            let mut model = at_checkpoint;
            check_model(&db, &model, "after the restore").await;
            // New writes build on the restored state; compaction and a
            // collection with no minimum age keep it.
            write_model(&db, &mut model, &mut random, "fifth", 200).await;
            db.compact().await.expect("compact after the restore");
            runtime.sleep(PAST_INPUT_PROTECTION).await;
            db.collect_garbage(GcMode::Delete).await.expect("collect");
            check_model(&db, &model, "after compaction and collection").await;
            db.close().await.expect("close");
            let db = builder(&store, &runtime).open().await.expect("reopen again");
            check_model(&db, &model, "reopened: no dropped WAL row comes back").await;
            db.close().await.expect("close");
        });
    }
}

#[test]
fn an_admin_checkpoint_restores_what_a_reader_at_it_sees() {
    support::on_sim(11, async |runtime, store| {
        let mut random = support::Gen(11);
        let db = builder(&store, &runtime).open().await.expect("open");
        let mut model = Model::new();
        write_model(&db, &mut model, &mut random, "first", 250).await;
        // Taken from outside while the writer runs (as `talus checkpoint
        // create` does): the writer's latest rows are only in WAL tables.
        let mut admin = Fenced::load(versions::<Manifest>(&store, &runtime), Role::Admin)
            .await
            .expect("manifest");
        let checkpoint = admin
            .create_checkpoint(CheckpointOptions::default())
            .await
            .expect("admin checkpoint");
        // What it holds is what a reader at it sees: the tables of its
        // version and the WAL tables below that version's next WAL id.
        let reader = builder(&store, &runtime)
            .open_reader(talusdb::ReaderOptions {
                at_checkpoint: Some(checkpoint.id),
                ..talusdb::ReaderOptions::default()
            })
            .await
            .expect("reader at the checkpoint");
        let held = support::text_rows(reader.scan::<&str>(..)).await.expect("scan");
        reader.close().await.expect("close the reader");
        assert!(!held.is_empty());
        write_model(&db, &mut model, &mut random, "second", 250).await;
        db.compact().await.expect("compact after the checkpoint");
        let restored = builder(&store, &runtime)
            .restore_checkpoint(checkpoint.id)
            .await
            .expect("restore");
        assert_eq!(restored.pinned_version, checkpoint.manifest_id);
        let _ = db.close().await;
        reopened_reads(&store, &runtime, &held, "after restoring an admin checkpoint").await;
    });
}

#[test]
fn a_restore_fails_the_unfinished_compactions_and_fences_the_compactor() {
    support::on_sim(7, async |runtime, store| {
        let mut random = support::Gen(7);
        let no_compactor = || {
            builder(&store, &runtime).options(talusdb::DbOptions {
                compactor: None,
                ..support::compacting_db_options(64, Duration::from_secs(30 * 24 * 3600))
            })
        };
        let db = no_compactor().open().await.expect("open");
        let mut model = Model::new();
        write_model(&db, &mut model, &mut random, "first", 200).await;
        let checkpoint = db
            .create_checkpoint(CheckpointOptions::default())
            .await
            .expect("checkpoint");
        let at_checkpoint = model.clone();
        write_model(&db, &mut model, &mut random, "second", 200).await;
        db.flush_memtable().await.expect("to L0");
        db.close().await.expect("close");
        // A compactor merges the tables written after the checkpoint with
        // those the checkpoint lists; the restore must undo that too.
        let compactor = builder(&store, &runtime).open_compactor().await.expect("compactor");
        compactor.await_idle().await.expect("it compacts L0");
        let (_, compacted) = latest(&store, &runtime).await;
        assert!(!compacted.sorted_runs.is_empty(), "the compactor made a sorted run");
        let compactions = versions::<Compactions>(&store, &runtime);
        let mut admin = Fenced::load(compactions.clone(), Role::Admin)
            .await
            .expect("compactions");
        let restored = builder(&store, &runtime)
            .restore_checkpoint(checkpoint.id)
            .await
            .expect("restore");
        assert_eq!(restored.failed_compactions, 0, "{restored:?}");
        // The compactor that ran is fenced.
        let late = compactor.submit(SubmitSpec::Everything).await;
        let error = late.expect_err("the fenced compactor's submission");
        assert!(error.is_fenced(), "{error}");
        let _ = compactor.close().await;

        // A submission left unfinished when the restore comes is failed.
        let (_, manifest) = latest(&store, &runtime).await;
        let unfinished = Ulid(8);
        admin
            .update(|state, _| {
                state.submit(
                    unfinished,
                    CompactionSpec {
                        sources: manifest.l0.iter().map(|table| Source::L0(table.id)).collect(),
                        destination: manifest.next_run_id(),
                    },
                );
                Ok(())
            })
            .await
            .expect("submit");
        let restored = builder(&store, &runtime)
            .restore_checkpoint(checkpoint.id)
            .await
            .expect("restore again");
        assert_eq!(restored.failed_compactions, 1, "{restored:?}");
        admin.refresh().await.expect("refresh");
        assert_eq!(
            admin.current().get(unfinished).map(|entry| entry.status),
            Some(CompactionStatus::Failed)
        );
        let (_, manifest) = latest(&store, &runtime).await;
        assert_eq!(manifest.l0.len(), restored.l0_tables);
        assert_eq!(manifest.sorted_runs.len(), restored.sorted_runs);
        reopened_reads(&store, &runtime, &at_checkpoint, "after the restore").await;
    });
}

#[test]
fn what_cannot_be_restored_is_refused_and_changes_nothing() {
    support::on_sim(5, async |runtime, store| {
        let missing = builder(&store, &runtime).restore_checkpoint(Ulid(42)).await;
        let error = missing.expect_err("no database");
        assert_eq!(*error.kind(), ErrorKind::InvalidArgument, "{error}");
        assert!(error.to_string().contains("no database at db"), "{error}");
        assert!(support::listing(&store).await.is_empty(), "nothing is created");

        let db = builder(&store, &runtime).open().await.expect("open");
        db.put("k", "v").await.expect("put");
        let expiring = db
            .create_checkpoint(CheckpointOptions {
                lifetime: Some(Duration::from_secs(60)),
                ..CheckpointOptions::default()
            })
            .await
            .expect("checkpoint");
        db.close().await.expect("close");
        let (before, _) = latest(&store, &runtime).await;
        for (id, what) in [(Ulid(42), "an unknown id"), (expiring.id, "an expired checkpoint")] {
            if id == expiring.id {
                runtime.sleep(Duration::from_secs(61)).await;
            }
            let error = builder(&store, &runtime).restore_checkpoint(id).await.expect_err(what);
            assert_eq!(*error.kind(), ErrorKind::InvalidArgument, "{what}: {error}");
            assert!(error.to_string().contains(&id.to_string()), "{what}: {error}");
            assert_eq!(
                latest(&store, &runtime).await.0,
                before,
                "{what}: no version is written"
            );
        }
    });
}
