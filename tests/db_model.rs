//! Model-based: long random sequences of puts, deletes, batches, gets,
//! scans (forwards and backwards, with seeks, by prefix), transactions,
//! snapshots, reads at past sequence numbers, flushes and reopens against
//! a `BTreeMap`, on InMemory under the simulator and on the local file
//! system under smol.

mod support;

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use talusdb::actors::Runtime;
use talusdb::actors::runtime::Sim;
use talusdb::store::{ObjectStoreAdapter, Store};
use talusdb::{Db, DbIterator, ErrorKind, IsolationLevel, ScanOptions, ScanOrder, WriteBatch, WriteOptions};

use support::{Gen, TempDir, on_smol};

type Model = BTreeMap<Bytes, Bytes>;

async fn open(store: &Arc<dyn Store>, runtime: &Runtime) -> Db {
    support::open_db("model", store, runtime).await
}

fn rows(model: &Model, range: (Bound<Bytes>, Bound<Bytes>), reverse: bool) -> Vec<(Bytes, Bytes)> {
    let rows = model.range(range).map(|(k, v)| (k.clone(), v.clone()));
    if reverse { rows.rev().collect() } else { rows.collect() }
}

/// Reads all of `scan`, seeking once after `before_seek` rows if `seek`
/// says where; returns the rows read before and after.
async fn read_with_seek(
    scan: &mut DbIterator,
    before_seek: usize,
    seek: Option<&Bytes>,
) -> (Vec<(Bytes, Bytes)>, Vec<(Bytes, Bytes)>) {
    let mut first = Vec::new();
    if let Some(to) = seek {
        while first.len() < before_seek {
            match scan.try_next().await.expect("scan") {
                Some(row) => first.push(row),
                None => break,
            }
        }
        scan.seek(to);
    }
    let rest: Vec<_> = scan.try_collect().await.expect("scan");
    (first, rest)
}

/// A scan of a random range of `db` in a random order, maybe with a seek,
/// against `model`.
async fn check_scan(db: &Db, model: &Model, generator: &mut Gen, step: usize) {
    let (a, b) = (generator.key(), generator.key());
    let (from, to) = if a <= b { (a, b) } else { (b, a) };
    let reverse = generator.next(2) == 0;
    let options = ScanOptions {
        order: if reverse {
            ScanOrder::Reverse
        } else {
            ScanOrder::Forward
        },
        read_ahead_blocks: 1 + generator.next(4) as usize,
        ..ScanOptions::default()
    };
    // A seek to a key in the model and the range, mostly; sometimes to any.
    let inside: Vec<&Bytes> = model.range(from.clone()..to.clone()).map(|(key, _)| key).collect();
    let seek = match generator.next(4) {
        0 => None,
        1 => Some(generator.key()),
        _ if inside.is_empty() => Some(generator.key()),
        _ => Some(inside[generator.next(inside.len() as u64) as usize].clone()),
    };
    let before_seek = generator.next(5) as usize;
    let range = (Bound::Included(from.clone()), Bound::Excluded(to.clone()));
    let mut scan = db.scan_with_options(from.clone()..to.clone(), options);
    let (first, rest) = read_with_seek(&mut scan, before_seek, seek.as_ref()).await;
    let all = rows(model, range.clone(), reverse);
    let Some(seek) = seek else {
        assert_eq!(rest, all, "step {step}: scan {from:?}..{to:?} reverse {reverse}");
        return;
    };
    assert_eq!(first, all[..first.len()], "step {step}: before the seek");
    let mut after = all;
    after.retain(|(key, _)| if reverse { *key <= seek } else { *key >= seek });
    assert_eq!(
        rest, after,
        "step {step}: scan {from:?}..{to:?} reverse {reverse} after a seek to {seek:?}"
    );
}

/// A transaction of random reads and writes, each read checked against
/// `model` with the transaction's writes on top; commits (applying its
/// writes to `model`, returning the commit's sequence) or rolls back.
async fn run_transaction(db: &Db, model: &mut Model, generator: &mut Gen, step: usize) -> Option<u64> {
    let isolation = if generator.next(2) == 0 {
        IsolationLevel::Snapshot
    } else {
        IsolationLevel::Serializable
    };
    let mut txn = db.begin(isolation);
    let mut own = model.clone();
    for n in 0..1 + generator.next(6) {
        let key = generator.key();
        match generator.next(5) {
            0 => {
                txn.delete(key.clone());
                own.remove(&key);
            }
            1 | 2 => {
                let value = Bytes::from(format!("t{step}-{n}"));
                txn.put(key.clone(), value.clone());
                own.insert(key, value);
            }
            3 => assert_eq!(
                txn.get(&key).await.expect("get"),
                own.get(&key).cloned(),
                "step {step}: txn get"
            ),
            _ => {
                let prefix = key.slice(..6);
                let reverse = generator.next(2) == 0;
                let got: Vec<_> = if reverse {
                    let options = ScanOptions {
                        order: ScanOrder::Reverse,
                        ..ScanOptions::default()
                    };
                    txn.scan_with_options(prefix.clone()..prefix_end(&prefix), options)
                        .try_collect()
                        .await
                        .expect("scan")
                } else {
                    txn.scan_prefix(&prefix).try_collect().await.expect("scan")
                };
                let range = (Bound::Included(prefix.clone()), Bound::Excluded(prefix_end(&prefix)));
                assert_eq!(got, rows(&own, range, reverse), "step {step}: txn scan of {prefix:?}");
            }
        }
    }
    if generator.next(4) == 0 {
        txn.rollback();
        return None;
    }
    // Nothing else writes while it runs: a commit cannot conflict.
    let receipt = txn.commit().await.expect("commit");
    let changed = own != *model;
    *model = own;
    changed.then_some(receipt.seq)
}

/// The first key after every key that starts with `prefix` (its last byte
/// is an ASCII digit here, never 0xff).
fn prefix_end(prefix: &Bytes) -> Bytes {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    Bytes::from(end)
}

async fn run_model(store: Arc<dyn Store>, runtime: Runtime, seed: u64, steps: usize) {
    let mut db = open(&store, &runtime).await;
    let mut model = Model::new();
    let mut generator = Gen(seed);
    let mut snapshot: Option<(talusdb::Snapshot, Model)> = None;
    // Recent states: the sequence of a write and the model after it.
    let mut history: VecDeque<(u64, Model)> = VecDeque::new();
    let (mut past_read, mut past_refused) = (0, 0);
    for step in 0..steps {
        let durable = WriteOptions {
            await_durable: generator.next(4) == 0,
            ..WriteOptions::default()
        };
        match generator.next(100) {
            0..=29 => {
                let (key, value) = (
                    generator.key(),
                    Bytes::from(format!("v{step}-{}", "x".repeat(step % 50))),
                );
                let seq = db
                    .put_with_options(key.clone(), value.clone(), durable)
                    .await
                    .expect("put")
                    .seq;
                model.insert(key, value);
                remember(&mut history, seq, &model);
            }
            30..=37 => {
                let key = generator.key();
                let seq = db.delete_with_options(key.clone(), durable).await.expect("delete").seq;
                model.remove(&key);
                remember(&mut history, seq, &model);
            }
            38..=44 => {
                let mut batch = WriteBatch::new();
                for n in 0..generator.next(8) {
                    let key = generator.key();
                    if generator.next(3) == 0 {
                        batch.delete(key.clone());
                        model.remove(&key);
                    } else {
                        let value = Bytes::from(format!("b{step}-{n}"));
                        batch.put(key.clone(), value.clone());
                        model.insert(key, value);
                    }
                }
                let seq = db.write_with_options(batch, durable).await.expect("batch").seq;
                remember(&mut history, seq, &model);
            }
            45..=64 => {
                let key = generator.key();
                assert_eq!(
                    db.get(&key).await.expect("get"),
                    model.get(&key).cloned(),
                    "step {step}: {key:?}"
                );
            }
            65..=71 => check_scan(&db, &model, &mut generator, step).await,
            72..=73 => {
                let prefix = generator.key().slice(..5 + generator.next(3) as usize);
                let got: Vec<_> = db.scan_prefix(&prefix).try_collect().await.expect("scan");
                let range = (Bound::Included(prefix.clone()), Bound::Excluded(prefix_end(&prefix)));
                assert_eq!(got, rows(&model, range, false), "step {step}: prefix {prefix:?}");
            }
            74..=78 => {
                if let Some(seq) = run_transaction(&db, &mut model, &mut generator, step).await {
                    remember(&mut history, seq, &model);
                }
            }
            79..=81 => {
                let Some((seq, then)) = history.get(generator.next(history.len().max(1) as u64) as usize) else {
                    continue;
                };
                match db.snapshot_at(*seq) {
                    Ok(past) => {
                        let all: Vec<_> = past.scan::<&[u8]>(..).try_collect().await.expect("scan");
                        assert_eq!(
                            all,
                            rows(then, (Bound::Unbounded, Bound::Unbounded), false),
                            "step {step}: at {seq}"
                        );
                        past_read += 1;
                    }
                    Err(error) => {
                        assert_eq!(error.kind(), &ErrorKind::OutsideRetention, "step {step}: {error}");
                        assert!(*seq < db.oldest_readable_seq(), "step {step}: {error}");
                        past_refused += 1;
                    }
                }
            }
            82..=86 => match snapshot.take() {
                None => snapshot = Some((db.snapshot(), model.clone())),
                Some((pinned, frozen)) => {
                    for _ in 0..5 {
                        let key = generator.key();
                        assert_eq!(
                            pinned.get(&key).await.expect("get"),
                            frozen.get(&key).cloned(),
                            "step {step}"
                        );
                    }
                    let all: Vec<(Bytes, Bytes)> = pinned.scan::<&[u8]>(..).try_collect().await.expect("scan");
                    assert_eq!(all.len(), frozen.len(), "step {step}: snapshot scan");
                }
            },
            87..=90 => db.flush().await.expect("flush"),
            91..=95 => db.flush_memtable().await.expect("flush memtable"),
            _ => {
                snapshot = None;
                db.close().await.expect("close");
                assert!(db.get("key0001").await.expect_err("closed").is_closed());
                db = open(&store, &runtime).await;
            }
        }
    }
    assert!(
        past_read > 0 && past_refused > 0,
        "past reads: {past_read} read, {past_refused} refused"
    );
    let everything: Vec<(Bytes, Bytes)> = db.scan::<&[u8]>(..).try_collect().await.expect("scan");
    assert_eq!(everything.len(), model.len());
    db.close().await.expect("close");
    let reopened = open(&store, &runtime).await;
    let after: Vec<(Bytes, Bytes)> = reopened.scan::<&[u8]>(..).try_collect().await.expect("scan");
    let expected: Vec<(Bytes, Bytes)> = model.into_iter().collect();
    assert_eq!(after, expected, "everything survives a reopen");
    reopened.close().await.expect("close");
    let l0_tables = store
        .list(&object_store::path::Path::from("model/compacted"))
        .await
        .expect("list");
    assert!(
        l0_tables.len() > 5,
        "the run went through L0 tables: {}",
        l0_tables.len()
    );
}

/// Keeps the state after the write at `seq` among the last 16.
fn remember(history: &mut VecDeque<(u64, Model)>, seq: u64, model: &Model) {
    if history.len() == 16 {
        history.pop_front();
    }
    history.push_back((seq, model.clone()));
}

#[test]
fn random_operations_match_a_btreemap_in_memory_under_sim() {
    for seed in [1, 2, 3] {
        let sim = Sim::new(seed);
        let runtime = sim.runtime();
        sim.block_on(run_model(
            Arc::new(ObjectStoreAdapter::in_memory()),
            runtime,
            seed,
            3000,
        ));
    }
}

#[test]
fn random_operations_match_a_btreemap_on_the_local_file_system() {
    let dir = TempDir::new("db-model");
    on_smol(|runtime| {
        let store = ObjectStoreAdapter::local_dir(dir.path(), runtime.clone()).expect("store");
        run_model(Arc::new(store), runtime, 9, 1500)
    });
}

#[test]
fn the_same_model_runs_on_tokio() {
    support::on_tokio(|runtime| run_model(Arc::new(ObjectStoreAdapter::in_memory()), runtime, 21, 800));
}

#[test]
fn the_same_model_runs_inside_an_actix_system() {
    actix_web::rt::System::new().block_on(async {
        let runtime = Runtime::actix_current().expect("inside actix");
        run_model(Arc::new(ObjectStoreAdapter::in_memory()), runtime, 22, 800).await;
    });
}
