//! Transactions: a bank whose total never changes under concurrent
//! transfers and readers (on sim, smol and tokio), write skew and phantoms
//! under both isolation levels, crashes around commits, own writes in reads,
//! and the bound on conflict tracking.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::TryStreamExt;
use talusdb::actors::Runtime;
use talusdb::actors::runtime::Sim;
use talusdb::store::{ObjectStoreAdapter, Store};
use talusdb::{Db, DbOptions, Error, ErrorKind, IsolationLevel, ScanOptions, ScanOrder, Transaction, WriteOptions};

const ACCOUNTS: u64 = 8;
const START_BALANCE: u64 = 100;

fn account(index: u64) -> String {
    format!("account/{index:02}")
}

fn amount(value: Option<Bytes>) -> u64 {
    let value = value.expect("every account exists");
    std::str::from_utf8(&value).expect("utf-8").parse().expect("a number")
}

async fn open(store: &Arc<dyn Store>, runtime: &Runtime) -> Db {
    support::open_db("db", store, runtime).await
}

async fn open_bank(db: &Db) {
    let mut batch = talusdb::WriteBatch::new();
    for index in 0..ACCOUNTS {
        batch.put(account(index), START_BALANCE.to_string());
    }
    db.write(batch).await.expect("open the accounts");
}

/// The sum of every account as `scan` sees it.
async fn total_of(rows: Vec<(Bytes, Bytes)>) -> u64 {
    assert_eq!(rows.len() as u64, ACCOUNTS, "every account, once");
    rows.into_iter().map(|(_, value)| amount(Some(value))).sum()
}

/// Moves up to 10 from one account to another in one transaction; retried
/// on conflict. Returns how many attempts conflicted.
async fn transfer(db: &Db, isolation: IsolationLevel, from: u64, to: u64) -> u64 {
    let mut conflicts = 0;
    loop {
        let mut txn = db.begin(isolation);
        let from_balance = amount(txn.get(account(from)).await.expect("read from"));
        let to_balance = amount(txn.get(account(to)).await.expect("read to"));
        let moved = from_balance.min(10);
        txn.put(account(from), (from_balance - moved).to_string());
        txn.put(account(to), (to_balance + moved).to_string());
        match txn.commit().await {
            Ok(_) => return conflicts,
            Err(error) if error.kind() == &ErrorKind::TransactionConflict => conflicts += 1,
            Err(error) => panic!("transfer failed: {error}"),
        }
    }
}

/// Runs the bank on `runtime`: transfer tasks and reader tasks at once;
/// every snapshot a reader takes, and the end, holds the whole total.
async fn run_bank(runtime: Runtime, db: Db, isolation: IsolationLevel) -> u64 {
    open_bank(&db).await;
    let total = ACCOUNTS * START_BALANCE;
    let conflicts = Arc::new(AtomicU64::new(0));
    let transfers: Vec<_> = (0..4u64)
        .map(|task| {
            let (db, conflicts) = (db.clone(), conflicts.clone());
            runtime.spawn(async move {
                for round in 0..25u64 {
                    let from = (task + round) % ACCOUNTS;
                    let to = (task * 3 + round * 5 + 1) % ACCOUNTS;
                    if from != to {
                        let conflicted = transfer(&db, isolation, from, to).await;
                        conflicts.fetch_add(conflicted, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let db = db.clone();
            runtime.spawn(async move {
                for _ in 0..20 {
                    let snapshot = db.snapshot();
                    let rows: Vec<_> = snapshot.scan("account/".."account0").try_collect().await.expect("scan");
                    assert_eq!(total_of(rows).await, total, "a snapshot holds the whole total");
                    // A read-only transaction sees one snapshot too.
                    let mut txn = db.begin(IsolationLevel::Serializable);
                    let rows: Vec<_> = txn.scan("account/".."account0").try_collect().await.expect("scan");
                    assert_eq!(total_of(rows).await, total, "a transaction holds the whole total");
                    txn.commit().await.expect("a read-only transaction commits");
                }
            })
        })
        .collect();
    for task in transfers.into_iter().chain(readers) {
        task.await.expect("task");
    }
    let rows: Vec<_> = db.scan("account/".."account0").try_collect().await.expect("scan");
    assert_eq!(total_of(rows).await, total, "the total at the end");
    db.close().await.expect("close");
    conflicts.load(Ordering::Relaxed)
}

#[test]
fn the_bank_total_never_changes_under_concurrent_transfers_on_sim() {
    for (seed, isolation) in [(1, IsolationLevel::Snapshot), (2, IsolationLevel::Serializable)] {
        let sim = Sim::new(seed);
        let runtime = sim.runtime();
        let conflicts = sim.block_on(async move {
            let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
            let db = open(&store, &runtime).await;
            run_bank(runtime, db, isolation).await
        });
        assert!(
            conflicts > 0,
            "{isolation:?}: concurrent transfers over 8 accounts conflicted"
        );
    }
}

#[test]
fn the_bank_total_never_changes_on_smol() {
    let dir = support::TempDir::new("bank-smol");
    support::on_smol(|runtime| async move {
        let store: Arc<dyn Store> =
            Arc::new(ObjectStoreAdapter::local_dir(dir.path(), runtime.clone()).expect("local store"));
        let db = open(&store, &runtime).await;
        run_bank(runtime, db, IsolationLevel::Serializable).await;
    });
}

#[test]
fn the_bank_total_never_changes_on_tokio() {
    support::on_tokio(|runtime| async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let db = open(&store, &runtime).await;
        run_bank(runtime, db, IsolationLevel::Snapshot).await;
    });
}

/// Two doctors on call: each may go off call if the other stays on. Each
/// transaction reads both and writes only its own key.
async fn write_skew(db: &Db, isolation: IsolationLevel) -> (Result<(), Error>, Result<(), Error>) {
    db.put("oncall/alice", "yes").await.expect("put");
    db.put("oncall/bob", "yes").await.expect("put");
    let mut alice = db.begin(isolation);
    let mut bob = db.begin(isolation);
    for txn in [&mut alice, &mut bob] {
        assert!(txn.get("oncall/alice").await.expect("get").is_some());
        assert!(txn.get("oncall/bob").await.expect("get").is_some());
    }
    alice.delete("oncall/alice");
    bob.delete("oncall/bob");
    let first = alice.commit().await.map(drop);
    let second = bob.commit().await.map(drop);
    (first, second)
}

#[test]
fn write_skew_commits_under_snapshot_and_fails_under_serializable() {
    let sim = Sim::new(3);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let db = open(&store, &runtime).await;

        let (first, second) = write_skew(&db, IsolationLevel::Snapshot).await;
        assert!(first.is_ok() && second.is_ok(), "snapshot isolation allows write skew");
        assert_eq!(db.get("oncall/alice").await.expect("get"), None);
        assert_eq!(db.get("oncall/bob").await.expect("get"), None);

        let (first, second) = write_skew(&db, IsolationLevel::Serializable).await;
        first.expect("the first commit wins");
        let error = second.expect_err("the second read a key the first wrote");
        assert_eq!(error.kind(), &ErrorKind::TransactionConflict);
        assert!(error.message().contains("read-write conflict"), "{error}");
        assert!(
            db.get("oncall/bob").await.expect("get").is_some(),
            "someone stays on call"
        );
        db.close().await.expect("close");
    });
}

/// A transaction counts the rows of a range and records the count; another
/// inserts into the range and commits first.
async fn phantom(db: &Db, isolation: IsolationLevel, round: u32) -> Result<(), Error> {
    let range = format!("phantom{round}/");
    let end = format!("phantom{round}0");
    db.put(format!("{range}a"), "1").await.expect("put");
    let mut counter = db.begin(isolation);
    let rows: Vec<_> = counter
        .scan(range.as_str()..end.as_str())
        .try_collect()
        .await
        .expect("scan");
    counter.put(format!("count{round}"), rows.len().to_string());
    let mut inserter = db.begin(isolation);
    inserter.put(format!("{range}b"), "1");
    inserter.commit().await.expect("the insert commits");
    counter.commit().await.map(drop)
}

#[test]
fn a_phantom_fails_only_under_serializable() {
    let sim = Sim::new(4);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let db = open(&store, &runtime).await;
        phantom(&db, IsolationLevel::Snapshot, 0)
            .await
            .expect("snapshot isolation does not track scans");
        let error = phantom(&db, IsolationLevel::Serializable, 1)
            .await
            .expect_err("a row appeared in the scanned range");
        assert_eq!(error.kind(), &ErrorKind::TransactionConflict);
        assert!(error.message().contains("range this transaction scanned"), "{error}");
        assert_eq!(db.get("count1").await.expect("get"), None, "nothing of it applied");
        db.close().await.expect("close");
    });
}

#[test]
fn reads_see_own_writes_on_the_snapshot_and_a_dropped_transaction_leaves_nothing() {
    let sim = Sim::new(5);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let db = open(&store, &runtime).await;
        for key in ["k1", "k2", "k3"] {
            db.put(key, "old").await.expect("put");
        }
        let mut txn = db.begin(IsolationLevel::Snapshot);
        db.put("k4", "after").await.expect("a write after the snapshot");
        txn.put("k2", "mine");
        txn.delete("k3");
        txn.put("k0", "new");
        assert_eq!(txn.get("k2").await.expect("get").as_deref(), Some(&b"mine"[..]));
        assert_eq!(txn.get("k3").await.expect("get"), None);
        assert_eq!(txn.get("k4").await.expect("get"), None, "written after the snapshot");
        let rows: Vec<_> = txn.scan("k".."l").try_collect().await.expect("scan");
        let seen: Vec<(&[u8], &[u8])> = rows.iter().map(|(key, value)| (&key[..], &value[..])).collect();
        assert_eq!(
            seen,
            [(&b"k0"[..], &b"new"[..]), (b"k1", b"old"), (b"k2", b"mine")],
            "own writes over the snapshot, own delete hides k3"
        );
        let reversed: Vec<_> = txn.scan("l".."k").try_collect().await.expect("an empty range");
        assert!(reversed.is_empty());
        let prefixed: Vec<_> = txn.scan_prefix("k").try_collect().await.expect("scan");
        assert_eq!(prefixed, rows, "the prefix k covers the same keys");
        let reverse = ScanOptions {
            order: ScanOrder::Reverse,
            ..ScanOptions::default()
        };
        let backwards: Vec<_> = txn
            .scan_with_options("k".."l", reverse)
            .try_collect()
            .await
            .expect("scan");
        let mut forwards = rows.clone();
        forwards.reverse();
        assert_eq!(
            backwards, forwards,
            "a reverse scan lays own writes over the snapshot too"
        );
        let committed: Vec<_> = db.scan_prefix("k").try_collect().await.expect("scan");
        assert_eq!(committed.len(), 4, "k1..k4 outside the transaction");
        drop(txn);
        assert_eq!(db.get("k2").await.expect("get").as_deref(), Some(&b"old"[..]));
        assert_eq!(db.get("k0").await.expect("get"), None);

        let mut txn = db.begin(IsolationLevel::Snapshot);
        txn.put("k1", "committed");
        let receipt = txn.commit().await.expect("commit");
        let later = db.put("k9", "v").await.expect("put");
        assert!(later.seq > receipt.seq, "receipts carry increasing sequence numbers");
        let mut rolled_back: Transaction = db.begin(IsolationLevel::Serializable);
        rolled_back.put("k1", "never");
        rolled_back.rollback();
        assert_eq!(db.get("k1").await.expect("get").as_deref(), Some(&b"committed"[..]));
        db.close().await.expect("close");
    });
}

#[test]
fn a_conflicting_commit_leaves_no_trace_after_a_crash_and_a_durable_one_survives() {
    let sim = Sim::new(6);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let db = open(&store, &runtime).await;
        db.put("x", "0").await.expect("put");
        let mut loser = db.begin(IsolationLevel::Snapshot);
        loser.put("x", "loser");
        loser.put("y", "loser");
        let mut winner = db.begin(IsolationLevel::Snapshot);
        winner.put("x", "winner");
        winner.put("z", "winner");
        winner.commit().await.expect("first commit");
        let error = loser.commit().await.expect_err("x was written after its snapshot");
        assert_eq!(error.kind(), &ErrorKind::TransactionConflict);
        assert_eq!(db.stats().transaction_conflicts, 1);
        // A crash: the database is dropped without closing.
        drop(db);

        let db = open(&store, &runtime).await;
        assert_eq!(db.get("x").await.expect("get").as_deref(), Some(&b"winner"[..]));
        assert_eq!(db.get("z").await.expect("get").as_deref(), Some(&b"winner"[..]));
        assert_eq!(db.get("y").await.expect("get"), None, "nothing of the loser");
        assert_eq!(db.stats().transaction_conflicts, 0, "counted since this open");
        db.close().await.expect("close");
    });
}

#[test]
fn a_transaction_older_than_conflict_tracking_fails_as_too_old() {
    let sim = Sim::new(7);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let db = Db::builder("db", store)
            .runtime(runtime)
            .options(DbOptions {
                transaction_tracking_keys: 16,
                ..support::small_db_options()
            })
            .open()
            .await
            .expect("open");
        let mut old = db.begin(IsolationLevel::Snapshot);
        old.put("untouched", "v");
        let young = db.begin(IsolationLevel::Snapshot);
        drop(young);
        let no_wait = WriteOptions {
            await_durable: false,
            ..WriteOptions::default()
        };
        for n in 0..100 {
            db.put_with_options(format!("other{n:03}"), "v", no_wait)
                .await
                .expect("put");
        }
        let error = old.commit().await.expect_err("its snapshot is no longer tracked");
        assert_eq!(error.kind(), &ErrorKind::TransactionConflict);
        assert!(error.message().contains("too old"), "{error}");
        assert_eq!(db.get("untouched").await.expect("get"), None);

        // A transaction that begins now is checked as usual.
        let mut fresh = db.begin(IsolationLevel::Snapshot);
        fresh.put("untouched", "v");
        fresh.commit().await.expect("a young transaction commits");
        db.close().await.expect("close");
    });
}
