//! Clones (`DbBuilder::clone_from`), under the simulator: a clone lists
//! its source's tables without copying them, diverges from it, and both
//! read correctly through compaction and garbage collection with no
//! minimum age on both sides; the checkpoint the clone holds in the source
//! cannot be deleted while the clone needs it, and the clone's collector
//! releases it once compaction has replaced the source's tables.

mod support;

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use talusdb::actors::Runtime;
use talusdb::manifest::{CheckpointOptions, Fenced, Manifest, Role, VersionedOptions, VersionedStore};
use talusdb::store::{Store, Ulid};
use talusdb::{Db, ErrorKind, GcMode};

/// Longer than the compactor keeps a compaction's inputs for readers
/// that hold no checkpoint (15 min).
const PAST_INPUT_PROTECTION: Duration = Duration::from_secs(16 * 60);

use support::{TextModel as Model, check_model, write_model};

fn versions(store: &Arc<dyn Store>, runtime: &Runtime, root: &str) -> VersionedStore<Manifest> {
    VersionedStore::new(
        store.clone(),
        Path::from(root),
        runtime.clone(),
        VersionedOptions::default(),
    )
}

async fn latest(store: &Arc<dyn Store>, runtime: &Runtime, root: &str) -> Manifest {
    versions(store, runtime, root)
        .read_latest()
        .await
        .expect("read")
        .expect("a manifest")
        .1
}

/// Opens `root` with a compactor and a collector with no minimum age;
/// `clone_of` makes it a clone if it does not exist.
async fn open(store: &Arc<dyn Store>, runtime: &Runtime, root: &str, clone_of: Option<(&str, Option<Ulid>)>) -> Db {
    let mut builder = Db::builder(root, store.clone())
        .runtime(runtime.clone())
        // Collections only when the test asks (the interval is a month).
        .options(support::compacting_db_options(8, Duration::from_secs(30 * 24 * 3600)));
    if let Some((source, checkpoint)) = clone_of {
        builder = builder.clone_from(source, checkpoint);
    }
    builder.open().await.expect("open")
}

/// Sorted-table objects under `root`.
async fn objects(store: &Arc<dyn Store>, root: &str) -> Vec<String> {
    let listed = store
        .list(&Path::from(format!("{root}/compacted")))
        .await
        .expect("list");
    listed.into_iter().map(|info| info.path.to_string()).collect()
}

/// Compacts everything, waits past the compactor's protection of its
/// inputs, and collects garbage.
async fn compact_and_collect(db: &Db, runtime: &Runtime) -> talusdb::GcReport {
    db.compact().await.expect("compact");
    runtime.sleep(PAST_INPUT_PROTECTION).await;
    db.collect_garbage(GcMode::Delete).await.expect("collect")
}

#[test]
fn a_clone_diverges_from_its_source_and_both_survive_compaction_and_collection_on_both_sides() {
    for seed in 1..=2 {
        support::on_sim(seed, async |runtime, memory| {
            let store: Arc<dyn Store> = Arc::new(support::sim_world::SimClock::new(memory, runtime.clone()));
            let mut random = support::Gen(seed);
            let source = open(&store, &runtime, "src", None).await;
            let mut source_model = Model::new();
            write_model(&source, &mut source_model, &mut random, "first", 400).await;
            source.compact().await.expect("a sorted run");
            write_model(&source, &mut source_model, &mut random, "second", 100).await;
            let named = source
                .create_checkpoint(CheckpointOptions {
                    name: Some("for the copy".into()),
                    ..CheckpointOptions::default()
                })
                .await
                .expect("checkpoint");
            let at_checkpoint = source_model.clone();
            // Durable writes after the checkpoint, still in the WAL: the
            // clone at the checkpoint has none of them, the clone of the
            // newest state has them all.
            write_model(&source, &mut source_model, &mut random, "third", 50).await;
            let copy = open(&store, &runtime, "copy", Some(("src", Some(named.id)))).await;
            let now = open(&store, &runtime, "now", Some(("src", None))).await;
            let mut copy_model = at_checkpoint;
            let mut now_model = source_model.clone();
            check_model(&copy, &copy_model, "the clone at the checkpoint").await;
            check_model(&now, &now_model, "the clone of the newest state").await;

            let copy_manifest = latest(&store, &runtime, "copy").await;
            assert_eq!(copy_manifest.sources.len(), 1, "{:?}", copy_manifest.sources);
            let held = copy_manifest.sources[0].clone();
            assert_eq!(held.root, "src");
            assert!(!held.tables.is_empty(), "it lists the source's tables");
            assert!(
                objects(&store, "copy").await.is_empty(),
                "nothing was copied: the checkpoint's memtable was already in L0"
            );
            let source_manifest = latest(&store, &runtime, "src").await;
            let pin = source_manifest
                .checkpoint(held.checkpoint)
                .expect("the clone's checkpoint");
            assert_eq!(pin.name.as_deref(), Some("clone copy"));
            assert_eq!(pin.expire_ms, None);
            assert_eq!(
                pin.manifest_id, named.manifest_id,
                "it pins the named checkpoint's version"
            );

            // The user's checkpoint may go: the clone holds its own. The
            // clone's is refused while the clone needs it.
            let mut admin = Fenced::load(versions(&store, &runtime, "src"), Role::Admin)
                .await
                .expect("admin");
            admin
                .delete_checkpoint(named.id)
                .await
                .expect("delete the named checkpoint");
            let refused = talusdb::Error::from(
                admin
                    .delete_checkpoint(held.checkpoint)
                    .await
                    .expect_err("the clone still needs it"),
            );
            assert_eq!(refused.kind(), &ErrorKind::InvalidArgument);
            assert!(
                refused.message().contains("clone at copy"),
                "names the clone: {refused}"
            );

            // Both diverge, compact and collect with no minimum age.
            for round in 0..3 {
                write_model(&source, &mut source_model, &mut random, &format!("src {round}"), 150).await;
                write_model(&copy, &mut copy_model, &mut random, &format!("copy {round}"), 150).await;
                write_model(&now, &mut now_model, &mut random, &format!("now {round}"), 30).await;
                let source_report = compact_and_collect(&source, &runtime).await;
                assert!(source_report.released.is_empty());
                check_model(&source, &source_model, &format!("round {round}: the source")).await;
                check_model(&copy, &copy_model, &format!("round {round}: the clone")).await;
                check_model(&now, &now_model, &format!("round {round}: the second clone")).await;
            }
            // The source's collector kept what the clones list.
            let kept = objects(&store, "src").await;
            for table in &held.tables {
                assert!(
                    kept.contains(&format!("src/compacted/{table}.sst")),
                    "seed {seed}: {table} is kept for the clone"
                );
            }

            // The clone's compaction replaces every source table; then its
            // collector lets the checkpoint go.
            let report = compact_and_collect(&copy, &runtime).await;
            assert_eq!(
                report.released,
                vec![talusdb::gc::Released {
                    source: "src".into(),
                    checkpoint: held.checkpoint,
                }],
                "seed {seed}"
            );
            let copy_manifest = latest(&store, &runtime, "copy").await;
            assert!(copy_manifest.sources[0].tables.is_empty(), "released");
            assert_eq!(copy_manifest.sources[0].root, "src", "the record of the origin stays");
            assert!(
                latest(&store, &runtime, "src")
                    .await
                    .checkpoint(held.checkpoint)
                    .is_none(),
                "the checkpoint is gone from the source"
            );
            let report = compact_and_collect(&now, &runtime).await;
            assert_eq!(report.released.len(), 1, "seed {seed}: {report:?}");
            // Now the source's collector deletes what only the clones
            // kept, and none of them notices.
            let before = objects(&store, "src").await.len();
            compact_and_collect(&source, &runtime).await;
            assert!(
                objects(&store, "src").await.len() < before,
                "seed {seed}: the source collected the tables the clone let go"
            );
            check_model(&source, &source_model, "the source at the end").await;
            check_model(&copy, &copy_model, "the clone at the end").await;
            check_model(&now, &now_model, "the second clone at the end").await;
            for db in [&copy, &now, &source] {
                db.close().await.expect("close");
            }
            // Reopened, the clone is the clone (`clone_from` again is a
            // no-op for a clone of that source).
            let copy = open(&store, &runtime, "copy", Some(("src", None))).await;
            check_model(&copy, &copy_model, "the clone reopened").await;
            copy.close().await.expect("close");
        });
    }
}

#[test]
fn a_clone_of_a_clone_pins_every_database_it_lists_tables_from() {
    support::on_sim(11, async |runtime, memory| {
        let store: Arc<dyn Store> = Arc::new(support::sim_world::SimClock::new(memory, runtime.clone()));
        let mut random = support::Gen(11);
        let source = open(&store, &runtime, "a", None).await;
        let mut model = Model::new();
        write_model(&source, &mut model, &mut random, "in a", 300).await;
        source.compact().await.expect("compact");
        let middle = open(&store, &runtime, "b", Some(("a", None))).await;
        write_model(&middle, &mut model, &mut random, "in b", 60).await;
        middle.flush_memtable().await.expect("b's own L0 table");
        let last = open(&store, &runtime, "c", Some(("b", None))).await;
        check_model(&last, &model, "the clone of the clone").await;
        let sources = latest(&store, &runtime, "c").await.sources;
        let roots: Vec<&str> = sources.iter().map(|source| source.root.as_str()).collect();
        assert_eq!(roots, ["b", "a"], "{sources:?}");
        for held in &sources {
            assert!(!held.tables.is_empty());
            let pin = latest(&store, &runtime, &held.root)
                .await
                .checkpoint(held.checkpoint)
                .cloned()
                .expect("a checkpoint in each");
            assert_eq!(pin.name.as_deref(), Some("clone c"));
        }
        // b's compaction replaces a's tables, but b keeps its checkpoint
        // in a: the version of b that c pins lists them.
        let released = compact_and_collect(&middle, &runtime).await.released;
        assert_eq!(released, [], "c's version of b still lists a's tables");
        write_model(&source, &mut Model::new(), &mut random, "later in a", 300).await;
        compact_and_collect(&source, &runtime).await;
        check_model(&last, &model, "the clone of the clone after b and a collected").await;
        // c lets go of both; then b of a; then a collects what they
        // kept, and c still reads everything.
        let released = compact_and_collect(&last, &runtime).await.released;
        assert_eq!(released.len(), 2, "{released:?}");
        let released = compact_and_collect(&middle, &runtime).await.released;
        assert_eq!(released.len(), 1, "{released:?}");
        let before = objects(&store, "a").await.len();
        compact_and_collect(&source, &runtime).await;
        assert!(
            objects(&store, "a").await.len() < before,
            "a collected what the clones let go"
        );
        check_model(&last, &model, "the clone of the clone at the end").await;
        for db in [&last, &middle, &source] {
            db.close().await.expect("close");
        }
    });
}

#[test]
fn cloning_refuses_what_it_cannot_do_with_a_clear_error() {
    support::on_sim(3, async |runtime, store| {
        let source = open(&store, &runtime, "src", None).await;
        source.put("k", "v").await.expect("put");
        source.flush_memtable().await.expect("a table to share");
        let other = open(&store, &runtime, "other", None).await;
        other.close().await.expect("close");
        let cases: [(&str, &str, Option<Ulid>, &str); 4] = [
            ("missing", "nowhere", None, "no database at nowhere"),
            ("bad-checkpoint", "src", Some(Ulid(7)), "no live checkpoint"),
            ("other", "src", None, "not a clone of src"),
            ("src/inner", "src", None, "inside the other"),
        ];
        for (root, from, checkpoint, says) in cases {
            let error = Db::builder(root, store.clone())
                .runtime(runtime.clone())
                .clone_from(from, checkpoint)
                .open()
                .await
                .expect_err(root);
            assert_eq!(error.kind(), &ErrorKind::InvalidArgument, "{root}: {error}");
            assert!(error.to_string().contains(says), "{root}: {error}");
        }
        // A failed clone leaves no checkpoint behind in the source.
        let manifest = latest(&store, &runtime, "src").await;
        assert!(manifest.checkpoints.is_empty(), "{:?}", manifest.checkpoints);

        // A clone that is gone no longer holds its checkpoint.
        let clone = open(&store, &runtime, "gone", Some(("src", None))).await;
        clone.close().await.expect("close");
        let held = latest(&store, &runtime, "gone").await.sources[0].checkpoint;
        for object in store.list(&Path::from("gone")).await.expect("list") {
            store.delete(&object.path).await.expect("delete the clone");
        }
        let mut admin = Fenced::load(versions(&store, &runtime, "src"), Role::Admin)
            .await
            .expect("admin");
        admin.delete_checkpoint(held).await.expect("nothing needs it now");
        source.close().await.expect("close");
    });
}
