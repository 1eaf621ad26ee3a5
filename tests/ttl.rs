//! Time to live, on virtual time: an expired put reads as deleted in every
//! read from the moment it expires, still hides what it overwrote (in the
//! memtable, in tables, after compaction and after a reopen), and the
//! defaults, batches and transactions set it as documented. Compaction
//! with a live snapshot changes nothing the snapshot reads.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use talusdb::actors::runtime::Runtime;
use talusdb::store::Store;
use talusdb::{Db, DbOptions, IsolationLevel, Ttl, WriteBatch, WriteOptions};

fn options(default_ttl: Option<Duration>) -> DbOptions {
    let mut options = support::compacting_db_options(8, Duration::from_secs(3600));
    options.default_ttl = default_ttl;
    options
}

async fn open(store: &Arc<dyn Store>, runtime: &Runtime, default_ttl: Option<Duration>) -> Db {
    Db::builder("db", store.clone())
        .runtime(runtime.clone())
        .options(options(default_ttl))
        .open()
        .await
        .expect("open")
}

fn with_ttl(ttl: Duration) -> WriteOptions {
    WriteOptions {
        ttl: Ttl::After(ttl),
        ..WriteOptions::default()
    }
}

async fn keys(db: &Db, reverse: bool) -> Vec<Bytes> {
    let options = support::scan_order(reverse);
    let rows: Vec<_> = db
        .scan_with_options::<&str>(.., options)
        .try_collect()
        .await
        .expect("scan");
    rows.into_iter().map(|(key, _)| key).collect()
}

async fn get(db: &Db, key: &str) -> Option<Bytes> {
    db.get(key).await.expect("get")
}

#[test]
fn an_expired_put_reads_as_deleted_and_still_hides_what_it_overwrote() {
    support::on_sim(1, async |runtime, store| {
        let db = open(&store, &runtime, None).await;
        db.put("a", "forever").await.expect("put");
        db.put("b", "old").await.expect("put");
        db.put_with_options("b", "new", with_ttl(Duration::from_secs(10)))
            .await
            .expect("put");
        db.put_with_options("c", "brief", with_ttl(Duration::from_secs(10)))
            .await
            .expect("put");
        assert_eq!(get(&db, "b").await.as_deref(), Some(&b"new"[..]));
        assert_eq!(keys(&db, false).await, ["a", "b", "c"]);
        runtime.sleep(Duration::from_secs(11)).await;
        // Expired in the memtable.
        assert_eq!(get(&db, "b").await, None, "the expired put hides the old value");
        assert_eq!(get(&db, "c").await, None);
        assert_eq!(keys(&db, false).await, ["a"]);
        assert_eq!(keys(&db, true).await, ["a"]);
        // In L0, then compacted (expired rows become tombstones, and at the
        // bottom go with what they hid), then after a reopen.
        db.flush_memtable().await.expect("flush");
        assert_eq!(
            (get(&db, "b").await, keys(&db, true).await),
            (None, vec![Bytes::from("a")])
        );
        let summary = db.compact().await.expect("compact").expect("something to compact");
        assert_eq!(summary.rows_out, 1, "only a survives: {summary:?}");
        assert_eq!(
            (get(&db, "b").await, keys(&db, false).await),
            (None, vec![Bytes::from("a")])
        );
        db.close().await.expect("close");
        let db = open(&store, &runtime, None).await;
        assert_eq!(
            (get(&db, "b").await, keys(&db, false).await),
            (None, vec![Bytes::from("a")])
        );
        db.close().await.expect("close");
    });
}

#[test]
fn a_ttl_survives_the_wal_and_a_reopen_before_it_expires() {
    support::on_sim(2, async |runtime, store| {
        let db = open(&store, &runtime, None).await;
        db.put_with_options("k", "v", with_ttl(Duration::from_secs(30)))
            .await
            .expect("put");
        // Closed with the row only in the WAL: replay keeps its expiry.
        db.close().await.expect("close");
        let db = open(&store, &runtime, None).await;
        assert_eq!(get(&db, "k").await.as_deref(), Some(&b"v"[..]));
        runtime.sleep(Duration::from_secs(31)).await;
        assert_eq!(get(&db, "k").await, None, "expired after a reopen");
        db.close().await.expect("close");
    });
}

#[test]
fn defaults_batches_and_transactions_set_the_ttl_as_documented() {
    support::on_sim(3, async |runtime, store| {
        let db = open(&store, &runtime, Some(Duration::from_secs(5))).await;
        db.put("default", "v").await.expect("put");
        let never = WriteOptions {
            ttl: Ttl::Never,
            ..WriteOptions::default()
        };
        db.put_with_options("never", "v", never).await.expect("put");
        let mut batch = WriteBatch::new();
        batch.put("batch-default", "v");
        batch.put_with_ttl("batch-20s", "v", Duration::from_secs(20));
        // The write's TTL applies to the batch's puts without one of their own.
        db.write_with_options(batch, with_ttl(Duration::from_secs(60)))
            .await
            .expect("batch");
        let mut txn = db.begin(IsolationLevel::Snapshot);
        txn.put_with_ttl("txn-20s", "v", Duration::from_secs(20));
        txn.put("txn-default", "v");
        assert_eq!(txn.get("txn-20s").await.expect("get").as_deref(), Some(&b"v"[..]));
        txn.commit().await.expect("commit");
        let all = [
            "batch-20s",
            "batch-default",
            "default",
            "never",
            "txn-20s",
            "txn-default",
        ];
        assert_eq!(keys(&db, false).await, all);
        runtime.sleep(Duration::from_secs(6)).await;
        let after_6 = ["batch-20s", "batch-default", "never", "txn-20s"];
        assert_eq!(keys(&db, false).await, after_6, "the default (5 s) expired");
        runtime.sleep(Duration::from_secs(15)).await;
        let after_21 = ["batch-default", "never"];
        assert_eq!(keys(&db, false).await, after_21, "the 20 s ones expired");
        runtime.sleep(Duration::from_secs(40)).await;
        assert_eq!(keys(&db, false).await, ["never"], "the write's 60 s expired");
        db.close().await.expect("close");
    });
}

#[test]
fn compaction_with_a_live_snapshot_changes_nothing_it_reads_about_expiry() {
    support::on_sim(4, async |runtime, store| {
        let db = open(&store, &runtime, None).await;
        for n in 0..50u32 {
            db.put(format!("k{n:02}"), "old").await.expect("put");
        }
        for n in (0..50u32).step_by(2) {
            db.put_with_options(format!("k{n:02}"), "brief", with_ttl(Duration::from_secs(10)))
                .await
                .expect("put");
        }
        let snapshot = db.snapshot();
        let read = |snapshot: &talusdb::Snapshot| {
            let snapshot = snapshot.clone();
            async move {
                let rows: Vec<_> = snapshot.scan::<&str>(..).try_collect().await.expect("scan");
                let mut gets = Vec::new();
                for n in 0..50u32 {
                    gets.push(snapshot.get(format!("k{n:02}")).await.expect("get"));
                }
                (rows, gets)
            }
        };
        let before = read(&snapshot).await;
        assert_eq!(before.0.len(), 50);
        runtime.sleep(Duration::from_secs(11)).await;
        // Expired for the snapshot too, as for every read now.
        let expired = read(&snapshot).await;
        assert_eq!(expired.0.len(), 25, "the brief puts expired and hide the old values");
        db.flush_memtable().await.expect("flush");
        db.compact().await.expect("compact");
        assert_eq!(
            read(&snapshot).await,
            expired,
            "compaction changed what the snapshot reads"
        );
        drop(snapshot);
        db.close().await.expect("close");
    });
}
