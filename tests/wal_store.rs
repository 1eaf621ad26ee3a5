//! A WAL store of its own (`DbBuilder::wal_store`), under the simulator:
//! WAL tables go there and nothing else does; recovery, readers (pinned
//! and following), the collector and fencing work across the two stores;
//! opening with the wrong arrangement fails before it fences anyone.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use talusdb::actors::Runtime;
use talusdb::manifest::{Manifest, VersionedOptions, VersionedStore};
use talusdb::store::{ObjectStoreAdapter, Store};
use talusdb::{Db, DbBuilder, DbOptions, ErrorKind, GcMode, ReaderOptions};

fn builder(store: &Arc<dyn Store>, wal: Option<&Arc<dyn Store>>, runtime: &Runtime) -> DbBuilder {
    let builder = Db::builder("db", store.clone())
        .runtime(runtime.clone())
        .options(DbOptions {
            // Collections only when asked.
            ..support::compacting_db_options(8, Duration::from_secs(30 * 24 * 3600))
        });
    match wal {
        Some(wal) => builder.wal_store(wal.clone()),
        None => builder,
    }
}

/// Paths of every object under `db` in `store`.
async fn objects(store: &Arc<dyn Store>) -> Vec<String> {
    let listed = store.list(&Path::from("db")).await.expect("list");
    listed.into_iter().map(|info| info.path.to_string()).collect()
}

async fn latest(store: &Arc<dyn Store>, runtime: &Runtime) -> Manifest {
    let versions: VersionedStore<Manifest> =
        VersionedStore::new(store.clone(), "db".into(), runtime.clone(), VersionedOptions::default());
    versions.read_latest().await.expect("read").expect("a manifest").1
}

fn stores(runtime: &Runtime, memory: Arc<dyn Store>) -> (Arc<dyn Store>, Arc<dyn Store>) {
    // Object ages in simulated time, so that the collector's zero minimum
    // age deletes at once.
    let main: Arc<dyn Store> = Arc::new(support::sim_world::SimClock::new(memory, runtime.clone()));
    let wal: Arc<dyn Store> = Arc::new(support::sim_world::SimClock::new(
        Arc::new(ObjectStoreAdapter::in_memory()),
        runtime.clone(),
    ));
    (main, wal)
}

#[test]
fn wal_tables_live_in_their_own_store_through_recovery_readers_and_collection() {
    support::on_sim(5, async |runtime, memory| {
        let (main, wal) = stores(&runtime, memory);
        let db = builder(&main, Some(&wal), &runtime).open().await.expect("open");
        let mut model = BTreeMap::new();
        for n in 0..400u32 {
            let (key, value) = (format!("k{:03}", n % 150), format!("v{n}"));
            db.put(key.clone(), value.clone()).await.expect("put");
            model.insert(key, value);
        }
        db.flush_memtable().await.expect("into L0");
        db.put("late", "only in the WAL").await.expect("put");
        model.insert("late".into(), "only in the WAL".into());
        assert!(latest(&main, &runtime).await.separate_wal, "recorded in the manifest");
        let in_wal = objects(&wal).await;
        assert!(!in_wal.is_empty());
        assert!(in_wal.iter().all(|path| path.starts_with("db/wal/")), "{in_wal:?}");
        let in_main = objects(&main).await;
        assert!(in_main.iter().all(|path| !path.starts_with("db/wal/")), "{in_main:?}");
        assert!(in_main.iter().any(|path| path.starts_with("db/compacted/")));

        // A following reader, given the WAL store, sees the WAL rows too.
        let reader = builder(&main, Some(&wal), &runtime)
            .open_reader(ReaderOptions {
                refresh_interval: Some(Duration::from_millis(100)),
                ..ReaderOptions::default()
            })
            .await
            .expect("a reader");
        assert_eq!(
            reader.get("late").await.expect("get").as_deref(),
            Some(&b"only in the WAL"[..])
        );
        db.put("later", "followed").await.expect("put");
        model.insert("later".into(), "followed".into());
        runtime.sleep(Duration::from_millis(500)).await;
        assert_eq!(
            reader.get("later").await.expect("get").as_deref(),
            Some(&b"followed"[..])
        );
        reader.close().await.expect("close the reader");

        // The collector deletes WAL tables from the WAL store once they
        // are in L0.
        db.flush_memtable().await.expect("into L0");
        let before = objects(&wal).await.len();
        runtime.sleep(Duration::from_secs(180)).await;
        let report = db.collect_garbage(GcMode::Delete).await.expect("collect");
        assert!(!report.wal.is_empty(), "{report:?}");
        assert!(objects(&wal).await.len() < before);
        db.put("after", "collection").await.expect("put");
        model.insert("after".into(), "collection".into());
        db.close().await.expect("close");

        // Recovery reads the WAL from its store; so does a pinned reader.
        let reopened = builder(&main, Some(&wal), &runtime).open().await.expect("reopen");
        let rows: BTreeMap<String, String> = support::text_rows(reopened.scan::<&str>(..)).await.expect("scan");
        assert_eq!(rows, model);
        let pinned = builder(&main, Some(&wal), &runtime)
            .open_read_only()
            .await
            .expect("a pinned reader");
        assert_eq!(
            pinned.get("after").await.expect("get").as_deref(),
            Some(&b"collection"[..])
        );
        reopened.close().await.expect("close");
    });
}

#[test]
fn the_wrong_arrangement_is_refused_before_anyone_is_fenced() {
    support::on_sim(6, async |runtime, memory| {
        let (main, wal) = stores(&runtime, memory);
        let db = builder(&main, Some(&wal), &runtime).open().await.expect("open");
        db.put("k", "v").await.expect("put");
        let epoch = latest(&main, &runtime).await.writer_epoch;
        let without = builder(&main, None, &runtime).open().await.expect_err("no WAL store");
        assert_eq!(without.kind(), &ErrorKind::InvalidArgument);
        assert!(without.to_string().contains("store of their own"), "{without}");
        let reader = builder(&main, None, &runtime)
            .open_read_only()
            .await
            .expect_err("no WAL store");
        assert_eq!(reader.kind(), &ErrorKind::InvalidArgument);
        let collector = builder(&main, None, &runtime).collector().expect("a collector");
        let refused = collector
            .run(&talusdb::gc::Class::ALL, GcMode::Delete)
            .await
            .expect_err("no WAL store");
        assert_eq!(refused.kind(), &ErrorKind::InvalidArgument);
        assert_eq!(latest(&main, &runtime).await.writer_epoch, epoch, "no one was fenced");
        db.put("still", "writable").await.expect("the writer was not fenced");

        // A compactor needs no WAL store.
        for n in 0..200u32 {
            db.put(format!("c{n:03}"), "x".repeat(64)).await.expect("put");
        }
        db.flush_memtable().await.expect("into L0");
        db.close().await.expect("close");
        let compactor = builder(&main, None, &runtime)
            .open_compactor()
            .await
            .expect("a compactor");
        compactor
            .submit(talusdb::compactor::SubmitSpec::Everything)
            .await
            .expect("compact");
        compactor.close().await.expect("close");

        // A database whose WAL is in its main store refuses one.
        let plain = Db::builder("plain", main.clone())
            .runtime(runtime.clone())
            .open()
            .await
            .expect("open");
        plain.put("k", "v").await.expect("put");
        plain.close().await.expect("close");
        let with = Db::builder("plain", main.clone())
            .runtime(runtime.clone())
            .wal_store(wal.clone())
            .open()
            .await
            .expect_err("a WAL store it never had");
        assert_eq!(with.kind(), &ErrorKind::InvalidArgument);
        assert!(with.to_string().contains("main store"), "{with}");
    });
}

#[test]
fn a_second_writer_fences_the_first_across_the_two_stores() {
    support::on_sim(7, async |runtime, memory| {
        let (main, wal) = stores(&runtime, memory);
        let first = builder(&main, Some(&wal), &runtime).open().await.expect("open");
        first.put("k", "first").await.expect("put");
        let second = builder(&main, Some(&wal), &runtime).open().await.expect("open");
        assert_eq!(second.get("k").await.expect("get").as_deref(), Some(&b"first"[..]));
        let fenced = first.put("k", "stale").await.expect_err("fenced");
        assert!(fenced.is_fenced() || fenced.is_closed(), "{fenced}");
        second.put("k", "second").await.expect("put");
        second.close().await.expect("close");
        let reader = builder(&main, Some(&wal), &runtime)
            .open_read_only()
            .await
            .expect("a reader");
        assert_eq!(reader.get("k").await.expect("get").as_deref(), Some(&b"second"[..]));
    });
}
