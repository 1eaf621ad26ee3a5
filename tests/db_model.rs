//! Model-based: long random sequences of puts, deletes, batches, gets,
//! scans (forwards and backwards, with seeks, by prefix), transactions,
//! snapshots, reads at past sequence numbers, flushes and reopens against
//! a `BTreeMap`, on InMemory under the simulator and on the local file
//! system under smol. Under the simulator, puts with a TTL too, with
//! virtual time moving on: the model drops a key once its TTL has run out.
//! Merges (a list-append operator) and range deletes (alone, in batches
//! and in transactions) throughout.

mod support;

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use talusdb::actors::Runtime;
use talusdb::actors::runtime::Sim;
use talusdb::store::{ObjectStoreAdapter, Store};
use talusdb::{Db, DbIterator, ErrorKind, IsolationLevel, ScanOptions, ScanOrder, Ttl, WriteBatch, WriteOptions};

use support::{Gen, TempDir, on_smol};

type Model = BTreeMap<Bytes, Bytes>;

/// When keys of a model expire (wall-clock ms, at the latest).
type Expires = BTreeMap<Bytes, u64>;

/// `model` as read at `now_ms`: without the keys whose TTL ran out.
fn live(model: &Model, expires: &Expires, now_ms: u64) -> Model {
    let mut live = model.clone();
    live.retain(|key, _| expires.get(key).is_none_or(|at| *at > now_ms));
    live
}

/// Moves virtual time on until no expiry is within two seconds of now, so
/// that every read of the step that follows knows which TTLs have run out;
/// forgets expiries long past. Returns now.
async fn settle(runtime: &Runtime, deadlines: &mut Vec<u64>) -> u64 {
    loop {
        let now = runtime.wall_ms();
        deadlines.retain(|at| at + 3000 > now);
        if deadlines.iter().any(|at| now + 3000 >= *at && now <= at + 2000) {
            runtime.sleep(std::time::Duration::from_secs(3)).await;
            continue;
        }
        return now;
    }
}

/// A short random key range, `start..end`: up to 30 keys from a random one.
fn key_range(generator: &mut Gen) -> (Bytes, Bytes) {
    let start = generator.next(300);
    let end = start + generator.next(30);
    (
        Bytes::from(format!("key{start:04}")),
        Bytes::from(format!("key{end:04}")),
    )
}

/// Deletes `start..end` from `model` (and the expiry of what it held).
fn delete_range(model: &mut Model, expires: &mut Expires, (start, end): &(Bytes, Bytes)) {
    model.retain(|key, _| !(key >= start && key < end));
    expires.retain(|key, _| !(key >= start && key < end));
}

/// What [`support::Append`] makes of `operand` merged into `key` of `model`.
fn append(model: &mut Model, key: Bytes, operand: &str) {
    let value = match model.get(&key) {
        Some(value) => Bytes::from([value.as_ref(), b",", operand.as_bytes()].concat()),
        None => Bytes::copy_from_slice(operand.as_bytes()),
    };
    model.insert(key, value);
}

async fn open(store: &Arc<dyn Store>, runtime: &Runtime) -> Db {
    Db::builder("model", store.clone())
        .runtime(runtime.clone())
        .options(support::small_db_options())
        .merge_operator(Arc::new(support::Append))
        .open()
        .await
        .expect("open")
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
async fn run_transaction(
    db: &Db,
    model: &mut Model,
    expires: &mut Expires,
    generator: &mut Gen,
    step: usize,
) -> Option<u64> {
    let isolation = if generator.next(2) == 0 {
        IsolationLevel::Snapshot
    } else {
        IsolationLevel::Serializable
    };
    let mut txn = db.begin(isolation);
    let mut own = model.clone();
    let mut written = Vec::new();
    let mut deleted_ranges = Vec::new();
    for n in 0..1 + generator.next(6) {
        let key = generator.key();
        match generator.next(6) {
            5 => {
                let range = key_range(generator);
                txn.delete_range(range.0.clone()..range.1.clone());
                own.retain(|key, _| !(*key >= range.0 && *key < range.1));
                deleted_ranges.push(range);
            }
            0 => {
                txn.delete(key.clone());
                own.remove(&key);
                written.push(key);
            }
            1 if !expires.contains_key(&key) => {
                // Merged over a value with a TTL, the answer would change
                // when it expires: the model merges only into others.
                let operand = format!("tm{step}-{n}");
                txn.merge(key.clone(), operand.clone());
                append(&mut own, key.clone(), &operand);
                written.push(key);
            }
            1 | 2 => {
                let value = Bytes::from(format!("t{step}-{n}"));
                txn.put(key.clone(), value.clone());
                own.insert(key.clone(), value);
                written.push(key);
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
    for (start, end) in &deleted_ranges {
        expires.retain(|key, _| !(key >= start && key < end));
    }
    for key in written {
        expires.remove(&key);
    }
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

/// Runs `steps` random operations; with `virtual_time` (the simulator)
/// some puts have a TTL and some steps let time pass.
async fn run_model(store: Arc<dyn Store>, runtime: Runtime, seed: u64, steps: usize, virtual_time: bool) {
    let mut db = open(&store, &runtime).await;
    let mut model = Model::new();
    let mut expires = Expires::new();
    let mut deadlines: Vec<u64> = Vec::new();
    let mut generator = Gen(seed);
    let mut snapshot: Option<(talusdb::Snapshot, Model, Expires)> = None;
    // Recent states: the sequence of a write and the model after it.
    let mut history: VecDeque<(u64, Model, Expires)> = VecDeque::new();
    let (mut past_read, mut past_refused, mut expired) = (0, 0, 0);
    for step in 0..steps {
        let now = settle(&runtime, &mut deadlines).await;
        let before = model.len();
        model = live(&model, &expires, now);
        expired += before - model.len();
        expires.retain(|_, at| *at > now);
        let durable = WriteOptions {
            await_durable: generator.next(4) == 0,
            ..WriteOptions::default()
        };
        match generator.next(100) {
            0..=4 => {
                let key = generator.key();
                if expires.contains_key(&key) {
                    continue;
                }
                let operand = format!("m{step}");
                let seq = if generator.next(2) == 0 {
                    db.merge_with_options(key.clone(), operand.clone(), durable)
                        .await
                        .expect("merge")
                        .seq
                } else {
                    let mut batch = WriteBatch::new();
                    batch.merge(key.clone(), operand.clone());
                    db.write_with_options(batch, durable).await.expect("batch merge").seq
                };
                append(&mut model, key, &operand);
                remember(&mut history, seq, &model, &expires);
            }
            5..=29 => {
                let (key, value) = (
                    generator.key(),
                    Bytes::from(format!("v{step}-{}", "x".repeat(step % 50))),
                );
                let ttl = (virtual_time && generator.next(4) == 0)
                    .then(|| std::time::Duration::from_secs(10 * (1 + generator.next(3))));
                let options = WriteOptions {
                    ttl: ttl.map_or(Ttl::Default, Ttl::After),
                    ..durable
                };
                let seq = db
                    .put_with_options(key.clone(), value.clone(), options)
                    .await
                    .expect("put")
                    .seq;
                match ttl {
                    Some(ttl) => {
                        // It expires by now + ttl at the latest (the writer's
                        // clock read it before the reply).
                        let at = runtime.wall_ms() + ttl.as_millis() as u64;
                        expires.insert(key.clone(), at);
                        deadlines.push(at);
                    }
                    None => {
                        expires.remove(&key);
                    }
                }
                model.insert(key, value);
                remember(&mut history, seq, &model, &expires);
            }
            35..=37 => {
                let range = key_range(&mut generator);
                let seq = db
                    .delete_range_with_options(range.0.clone()..range.1.clone(), durable)
                    .await
                    .expect("delete range")
                    .seq;
                delete_range(&mut model, &mut expires, &range);
                remember(&mut history, seq, &model, &expires);
            }
            30..=34 => {
                let key = generator.key();
                let seq = db.delete_with_options(key.clone(), durable).await.expect("delete").seq;
                model.remove(&key);
                expires.remove(&key);
                remember(&mut history, seq, &model, &expires);
            }
            38..=44 => {
                let mut batch = WriteBatch::new();
                for n in 0..generator.next(8) {
                    let key = generator.key();
                    if generator.next(6) == 0 {
                        let range = key_range(&mut generator);
                        batch.delete_range(range.0.clone()..range.1.clone());
                        delete_range(&mut model, &mut expires, &range);
                        continue;
                    }
                    expires.remove(&key);
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
                remember(&mut history, seq, &model, &expires);
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
                if let Some(seq) = run_transaction(&db, &mut model, &mut expires, &mut generator, step).await {
                    remember(&mut history, seq, &model, &expires);
                }
            }
            79..=81 => {
                let Some((seq, then, then_expires)) = history.get(generator.next(history.len().max(1) as u64) as usize)
                else {
                    continue;
                };
                let then = &live(then, then_expires, now);
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
                None => snapshot = Some((db.snapshot(), model.clone(), expires.clone())),
                Some((pinned, frozen, frozen_expires)) => {
                    let frozen = live(&frozen, &frozen_expires, now);
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
            87..=88 => db.flush().await.expect("flush"),
            89..=90 if virtual_time => runtime.sleep(std::time::Duration::from_secs(7)).await,
            89..=90 => db.flush().await.expect("flush"),
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
    assert_eq!(virtual_time, expired > 0, "{expired} keys expired");
    let now = settle(&runtime, &mut deadlines).await;
    let model = live(&model, &expires, now);
    let everything: Vec<(Bytes, Bytes)> = db.scan::<&[u8]>(..).try_collect().await.expect("scan");
    assert_eq!(everything.len(), model.len());
    db.close().await.expect("close");
    let reopened = open(&store, &runtime).await;
    let now = settle(&runtime, &mut deadlines).await;
    let after: Vec<(Bytes, Bytes)> = reopened.scan::<&[u8]>(..).try_collect().await.expect("scan");
    let expected: Vec<(Bytes, Bytes)> = live(&model, &expires, now).into_iter().collect();
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
fn remember(history: &mut VecDeque<(u64, Model, Expires)>, seq: u64, model: &Model, expires: &Expires) {
    if history.len() == 16 {
        history.pop_front();
    }
    history.push_back((seq, model.clone(), expires.clone()));
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
            true,
        ));
    }
}

#[test]
fn random_operations_match_a_btreemap_on_the_local_file_system() {
    let dir = TempDir::new("db-model");
    on_smol(|runtime| {
        let store = ObjectStoreAdapter::local_dir(dir.path(), runtime.clone()).expect("store");
        run_model(Arc::new(store), runtime, 9, 1500, false)
    });
}

#[test]
fn the_same_model_runs_on_tokio() {
    support::on_tokio(|runtime| run_model(Arc::new(ObjectStoreAdapter::in_memory()), runtime, 21, 800, false));
}

#[test]
fn the_same_model_runs_inside_an_actix_system() {
    actix_web::rt::System::new().block_on(async {
        let runtime = Runtime::actix_current().expect("inside actix");
        run_model(Arc::new(ObjectStoreAdapter::in_memory()), runtime, 22, 800, false).await;
    });
}
