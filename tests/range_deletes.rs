//! Range deletes: one range tombstone hides every older version of every
//! key in its range, in the memtable, WAL, L0 and compacted runs, for gets,
//! scans both ways, snapshots and transactions; compaction drops what it
//! covers without changing what a live snapshot reads, and drops the
//! tombstone itself only at the bottom.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use talusdb::actors::runtime::Runtime;
use talusdb::manifest::{Manifest, VersionedOptions, VersionedStore};
use talusdb::store::Store;
use talusdb::{Db, ErrorKind, IsolationLevel, WriteBatch};

async fn open(store: &Arc<dyn Store>, runtime: &Runtime) -> Db {
    open_retaining(store, runtime, Duration::ZERO).await
}

async fn open_retaining(store: &Arc<dyn Store>, runtime: &Runtime, retention: Duration) -> Db {
    let mut options = support::compacting_db_options(8, Duration::from_secs(3600));
    options.retention = retention;
    Db::builder("db", store.clone())
        .runtime(runtime.clone())
        .options(options)
        .open()
        .await
        .expect("open")
}

fn key(n: u64) -> Bytes {
    Bytes::from(format!("k{n:04}"))
}

async fn keys_of(rows: impl futures::Stream<Item = Result<(Bytes, Bytes), talusdb::Error>>) -> Vec<Bytes> {
    rows.map_ok(|(key, _)| key).try_collect().await.expect("scan")
}

/// Every key a scan sees, forwards and (checked to be the mirror image)
/// backwards.
async fn live_keys(db: &Db) -> Vec<Bytes> {
    let forward = keys_of(db.scan::<&str>(..)).await;
    let mut backward = keys_of(db.scan_with_options::<&str>(.., support::scan_order(true))).await;
    backward.reverse();
    assert_eq!(forward, backward, "a reverse scan mirrors the forward one");
    forward
}

#[test]
fn a_range_delete_hides_older_keys_everywhere_and_spares_newer_writes() {
    support::on_sim(11, async |runtime, store| {
        let db = open(&store, &runtime).await;
        for n in 0..100 {
            db.put(key(n), "old").await.expect("put");
        }
        db.flush_memtable().await.expect("flush");
        for n in 0..100 {
            if n % 2 == 0 {
                db.put(key(n), "newer").await.expect("put");
            }
        }
        let before = db.snapshot();
        // One batch: the range delete, then a put inside it that survives.
        let mut batch = WriteBatch::new();
        batch.delete_range(key(20)..key(60)).put(key(30), "after");
        db.write(batch).await.expect("batch");
        db.delete_range(key(90)..).await.expect("open-ended delete");
        db.delete_range(key(5)..=key(7)).await.expect("inclusive delete");
        db.delete_range(key(9)..key(9))
            .await
            .expect("an empty range writes nothing");

        let expected: Vec<Bytes> = (0..100)
            .filter(|n| !(20..60).contains(n) && *n < 90 && !(5..=7).contains(n))
            .map(key)
            .chain([key(30)])
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for stage in ["memtable", "L0", "compacted", "reopened"] {
            match stage {
                "L0" => db.flush_memtable().await.expect("flush"),
                "compacted" => drop(db.compact().await.expect("compact")),
                _ => {}
            }
            let db = if stage == "reopened" {
                db.close().await.expect("close");
                open(&store, &runtime).await
            } else {
                db.clone()
            };
            assert_eq!(live_keys(&db).await, expected, "{stage}");
            assert_eq!(db.get(key(25)).await.expect("get"), None, "{stage}");
            assert_eq!(db.get(key(99)).await.expect("get"), None, "{stage}");
            assert_eq!(
                db.get(key(30)).await.expect("get").as_deref(),
                Some(&b"after"[..]),
                "{stage}"
            );
            assert_eq!(
                db.get(key(60)).await.expect("get").as_deref(),
                Some(&b"newer"[..]),
                "{stage}"
            );
            let inside = keys_of(db.scan(key(15)..key(65))).await;
            let want: Vec<Bytes> = expected
                .iter()
                .filter(|k| **k >= key(15) && **k < key(65))
                .cloned()
                .collect();
            assert_eq!(
                inside, want,
                "{stage}: a scan that starts before and ends after a range"
            );
            let mut seeking = db.scan::<&str>(..);
            seeking.seek(key(21));
            let first = seeking.try_next().await.expect("seek").map(|(key, _)| key);
            assert_eq!(first, Some(key(30)), "{stage}: a seek into the range lands past it");
            if stage != "reopened" {
                assert_eq!(
                    before.get(key(25)).await.expect("get").as_deref(),
                    Some(&b"old"[..]),
                    "{stage}"
                );
                assert_eq!(
                    keys_of(before.scan::<&str>(..)).await.len(),
                    100,
                    "{stage}: the snapshot"
                );
            } else {
                db.close().await.expect("close");
            }
        }
    });
}

#[test]
fn snapshot_at_sees_a_range_delete_only_from_its_sequence_number() {
    support::on_sim(12, async |runtime, store| {
        let db = open_retaining(&store, &runtime, Duration::from_secs(3600)).await;
        let put = db.put("m", "1").await.expect("put");
        let deleted = db.delete_range("a".."z").await.expect("delete range");
        db.put("n", "2").await.expect("put");
        db.flush_memtable().await.expect("flush");
        let at_put = db.snapshot_at(put.seq).expect("snapshot at the put");
        let at_delete = db.snapshot_at(deleted.seq).expect("snapshot at the delete");
        assert_eq!(at_put.get("m").await.expect("get").as_deref(), Some(&b"1"[..]));
        assert_eq!(at_delete.get("m").await.expect("get"), None);
        assert_eq!(keys_of(at_delete.scan::<&str>(..)).await, Vec::<Bytes>::new());
        assert_eq!(keys_of(db.scan::<&str>(..)).await, [Bytes::from("n")]);
        db.compact().await.expect("compact");
        assert_eq!(
            at_put.get("m").await.expect("get").as_deref(),
            Some(&b"1"[..]),
            "compaction keeps what the retention window reads"
        );
        assert_eq!(at_delete.get("m").await.expect("get"), None);
        db.close().await.expect("close");
    });
}

/// The compaction a live snapshot watches: the covered rows the snapshot
/// reads stay; once it is gone, a full compaction to the bottom drops the
/// covered rows and the tombstone itself.
#[test]
fn compaction_keeps_what_a_live_snapshot_reads_and_drops_the_rest() {
    support::on_sim(13, async |runtime, store| {
        let db = open(&store, &runtime).await;
        for n in 0..200 {
            db.put(key(n), "v").await.expect("put");
        }
        db.flush_memtable().await.expect("flush");
        db.compact().await.expect("compact");
        let snapshot = db.snapshot();
        db.delete_range(key(50)..key(150)).await.expect("delete range");
        db.flush_memtable().await.expect("flush");
        let summary = db.compact().await.expect("compact").expect("work");
        assert_eq!(
            keys_of(snapshot.scan::<&str>(..)).await.len(),
            200,
            "the snapshot reads everything"
        );
        assert_eq!(snapshot.get(key(99)).await.expect("get").as_deref(), Some(&b"v"[..]));
        assert_eq!(live_keys(&db).await.len(), 100);
        assert_eq!(
            summary.rows_out, 200,
            "the snapshot keeps the covered rows: {summary:?}"
        );
        drop(snapshot);
        // Compaction runs once more with nothing pinned: the covered rows go,
        // and with nothing below the bottom run the tombstone goes too.
        db.put(key(0), "w").await.expect("put");
        db.flush_memtable().await.expect("flush");
        let summary = db.compact().await.expect("compact").expect("work");
        assert_eq!(summary.rows_out, 100, "covered rows dropped: {summary:?}");
        assert_eq!(live_keys(&db).await.len(), 100);
        let manifests =
            VersionedStore::<Manifest>::new(store.clone(), "db".into(), runtime.clone(), VersionedOptions::default());
        let (_, manifest) = manifests.read_latest().await.expect("read").expect("a manifest");
        assert!(manifest.l0.is_empty(), "{manifest:?}");
        assert!(
            manifest.tables().all(|table| table.range_deletes == 0),
            "the tombstone went at the bottom: {manifest:?}"
        );
        db.close().await.expect("close");
    });
}

#[test]
fn transactions_delete_ranges_see_them_and_conflict_on_them() {
    support::on_sim(14, async |runtime, store| {
        let db = open(&store, &runtime).await;
        for n in 0..10 {
            db.put(key(n), "v").await.expect("put");
        }
        let mut txn = db.begin(IsolationLevel::Snapshot);
        txn.put(key(3), "early");
        txn.delete_range(key(2)..key(6));
        txn.put(key(4), "late");
        assert_eq!(
            txn.get(key(3)).await.expect("get"),
            None,
            "its earlier write went with the range"
        );
        assert_eq!(
            txn.get(key(2)).await.expect("get"),
            None,
            "the snapshot's key is hidden"
        );
        assert_eq!(txn.get(key(4)).await.expect("get").as_deref(), Some(&b"late"[..]));
        let seen = keys_of(txn.scan::<&str>(..)).await;
        let want: Vec<Bytes> = [0, 1, 4, 6, 7, 8, 9].into_iter().map(key).collect();
        assert_eq!(seen, want);
        txn.commit().await.expect("commit");
        assert_eq!(live_keys(&db).await, want);

        // A key written into the range after the snapshot fails the commit,
        // and so does a key the transaction writes when someone else's range
        // delete came after its snapshot.
        let mut deleting = db.begin(IsolationLevel::Snapshot);
        deleting.delete_range(key(6)..key(8));
        db.put(key(7), "racer").await.expect("put");
        let error = deleting.commit().await.expect_err("conflict");
        assert_eq!(error.kind(), &ErrorKind::TransactionConflict, "{error}");
        let mut writing = db.begin(IsolationLevel::Snapshot);
        writing.put(key(8), "mine");
        db.delete_range(key(8)..key(9)).await.expect("delete range");
        let error = writing.commit().await.expect_err("conflict");
        assert_eq!(error.kind(), &ErrorKind::TransactionConflict, "{error}");
        assert_eq!(db.get(key(7)).await.expect("get").as_deref(), Some(&b"racer"[..]));
        assert_eq!(db.get(key(8)).await.expect("get"), None);
        db.close().await.expect("close");
    });
}

/// A model check: random puts, deletes and range deletes (alone and in
/// batches), flushes, compactions and reopens; every get and every scan
/// agrees with a map.
#[test]
fn random_range_deletes_agree_with_a_model() {
    support::on_sim(15, async |runtime, store| {
        let mut db = open(&store, &runtime).await;
        let mut model: BTreeMap<Bytes, Bytes> = BTreeMap::new();
        let mut rng = support::Gen(15);
        for step in 0..600u64 {
            let a = rng.next(300);
            match rng.next(10) {
                0..=4 => {
                    let value = Bytes::from(format!("v{step}"));
                    db.put(key(a), value.clone()).await.expect("put");
                    model.insert(key(a), value);
                }
                5 => {
                    db.delete(key(a)).await.expect("delete");
                    model.remove(&key(a));
                }
                6 | 7 => {
                    let end = a + rng.next(40);
                    db.delete_range(key(a)..key(end)).await.expect("delete range");
                    model.retain(|k, _| !(*k >= key(a) && *k < key(end)));
                }
                8 => {
                    let end = a + rng.next(20);
                    let mut batch = WriteBatch::new();
                    batch
                        .put(key(a + 1), "b1")
                        .delete_range(key(a)..key(end))
                        .put(key(a + 2), "b2");
                    db.write(batch).await.expect("batch");
                    model.insert(key(a + 1), Bytes::from("b1"));
                    model.retain(|k, _| !(*k >= key(a) && *k < key(end)));
                    model.insert(key(a + 2), Bytes::from("b2"));
                }
                _ => match step % 3 {
                    0 => db.flush_memtable().await.expect("flush"),
                    1 => drop(db.compact().await.expect("compact")),
                    _ => {
                        db.close().await.expect("close");
                        db = open(&store, &runtime).await;
                    }
                },
            }
            if step % 50 == 49 {
                let want: Vec<Bytes> = model.keys().cloned().collect();
                assert_eq!(live_keys(&db).await, want, "step {step}");
                for n in 0..310 {
                    assert_eq!(
                        db.get(key(n)).await.expect("get"),
                        model.get(&key(n)).cloned(),
                        "step {step}: {n}"
                    );
                }
            }
        }
        db.close().await.expect("close");
    });
}

/// A scan across a wide deleted range reads almost nothing beneath it:
/// a run table wholly under the range is not opened, and one it only
/// partly covers is jumped past the range instead of read through. The
/// same rows deleted one by one are all read (each with its tombstone).
#[test]
fn a_scan_skips_the_tables_and_blocks_under_a_deleted_range() {
    support::on_sim(16, async |runtime, memory| {
        let mut reads = Vec::new();
        for ranged in [true, false] {
            let counting = talusdb::store::LatencyStore::new(memory.clone(), runtime.clone(), Duration::ZERO);
            let counts = counting.counts();
            let store: Arc<dyn Store> = Arc::new(counting);
            let mut options = support::compacting_db_options(8, Duration::from_secs(3600));
            if let Some(compactor) = options.compactor.as_mut() {
                // Tables of about 600 rows: the range buries some whole
                // and cuts into two.
                compactor.target_table_bytes = 64 << 10;
            }
            let root = if ranged { "ranged" } else { "per-key" };
            let open = || {
                Db::builder(root, store.clone())
                    .runtime(runtime.clone())
                    .options(options.clone())
                    .open()
            };
            let db = open().await.expect("open");
            let value = Bytes::from(vec![b'v'; 100]);
            for n in 0..6000 {
                db.put_with_options(
                    key(n),
                    value.clone(),
                    talusdb::WriteOptions {
                        await_durable: false,
                        ..talusdb::WriteOptions::default()
                    },
                )
                .await
                .expect("put");
            }
            db.flush_memtable().await.expect("flush");
            db.compact().await.expect("compact");
            if ranged {
                db.delete_range(key(300)..key(5700)).await.expect("delete range");
            } else {
                for n in 300..5700 {
                    db.delete(key(n)).await.expect("delete");
                }
            }
            db.flush_memtable().await.expect("flush");
            db.close().await.expect("close");
            let db = open().await.expect("reopen");
            counts.reset();
            let options = talusdb::ScanOptions {
                read_ahead_blocks: 1,
                ..talusdb::ScanOptions::default()
            };
            let rows = keys_of(db.scan_with_options::<&str>(.., options)).await;
            assert_eq!(rows.len(), 600, "{root}");
            let backwards = keys_of(db.scan_with_options::<&str>(.., support::scan_order(true))).await;
            assert_eq!(backwards.len(), 600, "{root}: reverse");
            reads.push(counts.reads());
            db.close().await.expect("close");
        }
        let (ranged, per_key) = (reads[0], reads[1]);
        eprintln!("scan reads: ranged {ranged}, per key {per_key}");
        assert!(
            ranged * 4 < per_key,
            "a ranged delete's scans read {ranged} times, per-key deletes' {per_key}"
        );
    });
}

/// A read-only opening sees range deletes from the WAL and from tables.
#[test]
fn a_reader_sees_range_deletes_in_the_wal_and_in_tables() {
    support::on_sim(17, async |runtime, store| {
        let db = open(&store, &runtime).await;
        for n in 0..20 {
            db.put(key(n), "v").await.expect("put");
        }
        db.delete_range(key(2)..key(5)).await.expect("delete range");
        db.flush_memtable().await.expect("flush");
        db.delete_range(key(10)..).await.expect("delete range in the WAL");
        db.flush().await.expect("flush");
        let reader = Db::builder("db", store.clone())
            .runtime(runtime.clone())
            .open_read_only()
            .await
            .expect("open read-only");
        let seen = keys_of(reader.scan::<&str>(..)).await;
        let want: Vec<Bytes> = [0, 1, 5, 6, 7, 8, 9].into_iter().map(key).collect();
        assert_eq!(seen, want);
        assert_eq!(reader.get(key(3)).await.expect("get"), None);
        assert_eq!(reader.get(key(12)).await.expect("get"), None);
        assert_eq!(reader.get(key(6)).await.expect("get").as_deref(), Some(&b"v"[..]));
        db.close().await.expect("close");
    });
}
