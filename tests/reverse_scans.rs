//! Reverse scans and seeks against a model: random puts, deletes and
//! batches spread over the memtable, L0 tables and sorted runs (small
//! blocks, so a table has many), then every kind of range read forwards
//! and backwards, live, at a snapshot and in a transaction with writes of
//! its own, with seeks both ways in the middle of scans.

mod support;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use talusdb::actors::runtime::Sim;
use talusdb::store::{LatencyStore, ObjectStoreAdapter, Store};
use talusdb::{Db, DbIterator, DbOptions, IsolationLevel, ScanOptions, ScanOrder, Snapshot, WriteBatch};

use support::Gen;

const KEYS: u64 = 400;

fn key(n: u64) -> Bytes {
    Bytes::from(format!("key{n:04}"))
}

type Model = BTreeMap<Bytes, Bytes>;

fn expected(model: &Model, range: &(Bound<Bytes>, Bound<Bytes>), reverse: bool) -> Vec<(Bytes, Bytes)> {
    let rows = model
        .iter()
        .filter(|(key, _)| range_contains(range, key))
        .map(|(key, value)| (key.clone(), value.clone()));
    if reverse { rows.rev().collect() } else { rows.collect() }
}

fn range_contains((start, end): &(Bound<Bytes>, Bound<Bytes>), key: &Bytes) -> bool {
    let above = match start {
        Bound::Included(start) => key >= start,
        Bound::Excluded(start) => key > start,
        Bound::Unbounded => true,
    };
    let below = match end {
        Bound::Included(end) => key <= end,
        Bound::Excluded(end) => key < end,
        Bound::Unbounded => true,
    };
    above && below
}

fn random_range(dice: &mut Gen) -> (Bound<Bytes>, Bound<Bytes>) {
    let bound = |dice: &mut Gen| match dice.next(3) {
        0 => Bound::Unbounded,
        1 => Bound::Included(key(dice.next(KEYS + 20))),
        _ => Bound::Excluded(key(dice.next(KEYS + 20))),
    };
    (bound(dice), bound(dice))
}

fn options(reverse: bool, read_ahead_blocks: usize) -> ScanOptions {
    ScanOptions {
        order: if reverse {
            ScanOrder::Reverse
        } else {
            ScanOrder::Forward
        },
        read_ahead_blocks,
        ..ScanOptions::default()
    }
}

async fn check_ranges(db: &Db, snapshot: Option<(&Snapshot, &Model)>, model: &Model, dice: &mut Gen) {
    for _ in 0..40 {
        let range = random_range(dice);
        let read_ahead = [1, 2, 8][dice.next(3) as usize];
        for reverse in [false, true] {
            let got: Vec<_> = db
                .scan_with_options(range.clone(), options(reverse, read_ahead))
                .try_collect()
                .await
                .expect("scan");
            assert_eq!(got, expected(model, &range, reverse), "{range:?}, reverse {reverse}");
        }
        if let Some((snapshot, at)) = snapshot {
            let got: Vec<_> = snapshot
                .scan_with_options(range.clone(), options(true, read_ahead))
                .try_collect()
                .await
                .expect("snapshot scan");
            assert_eq!(got, expected(at, &range, true), "snapshot {range:?}");
        }
    }
}

/// The rows of `range` a scan yields after a seek to `to`.
fn expected_after(
    model: &Model,
    range: &(Bound<Bytes>, Bound<Bytes>),
    reverse: bool,
    to: &Bytes,
) -> Vec<(Bytes, Bytes)> {
    let mut rows = expected(model, range, reverse);
    rows.retain(|(key, _)| if reverse { key <= to } else { key >= to });
    rows
}

/// Reads `count` pairs (fewer at the end).
async fn take(rows: &mut DbIterator, count: u64) -> Vec<(Bytes, Bytes)> {
    let mut taken = Vec::new();
    while (taken.len() as u64) < count {
        match rows.try_next().await.expect("scan") {
            Some(pair) => taken.push(pair),
            None => break,
        }
    }
    taken
}

/// Scans that seek back and forth, some before reading anything, some
/// after their end, each read checked against the model.
async fn check_seeks(
    mut open: impl FnMut(&(Bound<Bytes>, Bound<Bytes>), bool) -> DbIterator,
    model: &Model,
    dice: &mut Gen,
) {
    for _ in 0..12 {
        let range = random_range(dice);
        for reverse in [false, true] {
            let mut rows = open(&range, reverse);
            let mut want = expected(model, &range, reverse);
            for _ in 0..6 {
                let count = dice.next(6);
                let got = take(&mut rows, count).await;
                let len = got.len();
                assert_eq!(got, want[..len], "{range:?} reverse {reverse}");
                assert!(len as u64 == count || len == want.len(), "ended early: {range:?}");
                want.drain(..len);
                if dice.next(4) > 0 {
                    let to = key(dice.next(KEYS + 20));
                    rows.seek(&to);
                    want = expected_after(model, &range, reverse, &to);
                }
            }
            let rest: Vec<_> = rows.try_collect().await.expect("rest");
            assert_eq!(rest, want, "the rest of {range:?} reverse {reverse}");
        }
    }
}

#[test]
fn reverse_scans_match_the_model_across_memtables_l0_and_sorted_runs() {
    for seed in 1..=4 {
        let sim = Sim::new(seed);
        let runtime = sim.runtime();
        sim.block_on(async move {
            let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
            let mut db_options: DbOptions = support::compacting_db_options(8, std::time::Duration::from_secs(1));
            db_options.tables.sst.block_size_bytes = 256;
            let db = Db::builder("db", store)
                .runtime(runtime)
                .options(db_options)
                .open()
                .await
                .expect("open");
            let mut dice = Gen(seed);
            let mut model = Model::new();
            let mut snapshot = None;
            for round in 0..6u64 {
                for _ in 0..150 {
                    let n = dice.next(KEYS);
                    match dice.next(10) {
                        0..=5 => {
                            let value = Bytes::from(format!("v{round}-{}", dice.next(1000)));
                            db.put(key(n), value.clone()).await.expect("put");
                            model.insert(key(n), value);
                        }
                        6 | 7 => {
                            db.delete(key(n)).await.expect("delete");
                            model.remove(&key(n));
                        }
                        _ => {
                            let mut batch = WriteBatch::new();
                            for offset in 0..3 {
                                let k = key((n + offset) % KEYS);
                                let value = Bytes::from(format!("b{round}-{offset}"));
                                batch.put(k.clone(), value.clone());
                                model.insert(k, value);
                            }
                            db.write(batch).await.expect("batch");
                        }
                    }
                }
                match round % 3 {
                    0 => db.flush_memtable().await.expect("flush"),
                    1 => drop(db.compact().await.expect("compact")),
                    _ => {}
                }
                if round == 2 {
                    snapshot = Some((db.snapshot(), model.clone()));
                }
                let pinned = snapshot
                    .as_ref()
                    .map(|(snapshot, at): &(Snapshot, Model)| (snapshot, at));
                check_ranges(&db, pinned, &model, &mut dice).await;
                check_seeks(
                    |range, reverse| db.scan_with_options(range.clone(), options(reverse, 2)),
                    &model,
                    &mut dice,
                )
                .await;
                if let Some((snapshot, at)) = &snapshot {
                    let read_ahead = 1 + dice.next(3) as usize;
                    check_seeks(
                        |range, reverse| snapshot.scan_with_options(range.clone(), options(reverse, read_ahead)),
                        at,
                        &mut dice,
                    )
                    .await;
                }
                // A transaction's own writes (and deletes) over the rows.
                let mut txn = db.begin(IsolationLevel::Serializable);
                let mut own = model.clone();
                for _ in 0..30 {
                    let n = dice.next(KEYS);
                    if dice.next(3) == 0 {
                        txn.delete(key(n));
                        own.remove(&key(n));
                    } else {
                        let value = Bytes::from(format!("t{round}-{n}"));
                        txn.put(key(n), value.clone());
                        own.insert(key(n), value);
                    }
                }
                check_seeks(
                    |range, reverse| txn.scan_with_options(range.clone(), options(reverse, 2)),
                    &own,
                    &mut dice,
                )
                .await;
                txn.rollback();
            }
            let shape = db.stats().shape;
            assert!(shape.sorted_runs + shape.l0_tables > 0, "tables were read: {shape:?}");
            drop(snapshot);
            db.close().await.expect("close");
        });
    }
}

/// A seek moves inside the tables the scan has open: going back over
/// blocks it cached reads nothing from the store, and jumping ahead reads
/// only the blocks from the target on.
#[test]
fn a_seek_reuses_open_tables_and_cached_blocks() {
    let sim = Sim::new(7);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let latency = LatencyStore::new(
            Arc::new(ObjectStoreAdapter::in_memory()),
            runtime.clone(),
            Duration::ZERO,
        );
        let counts = latency.counts();
        let store: Arc<dyn Store> = Arc::new(latency);
        let mut db_options: DbOptions = support::small_db_options();
        db_options.tables.sst.block_size_bytes = 256;
        let db = Db::builder("db", store)
            .runtime(runtime)
            .options(db_options)
            .open()
            .await
            .expect("open");
        for n in 0..KEYS {
            db.put(key(n), format!("value {n}")).await.expect("put");
        }
        db.flush_memtable().await.expect("flush");
        db.compact().await.expect("compact");
        // A cold scan that jumps to the last key reads a block or two, not
        // the table.
        let mut rows = db.scan::<Bytes>(..);
        counts.reset();
        rows.seek(key(KEYS - 1));
        assert_eq!(take(&mut rows, 2).await.len(), 1);
        let jump = counts.reads();
        counts.reset();
        let whole = take(&mut db.scan_with_options::<Bytes>(.., options(false, 1)), KEYS).await;
        assert_eq!(whole.len() as u64, KEYS);
        let scan = counts.reads();
        assert!(
            jump >= 1 && jump * 4 <= scan,
            "{jump} reads to jump to the end, {scan} to read it all"
        );
        let mut read_ahead = options(false, 1);
        read_ahead.fill_cache = true;
        for reverse in [false, true] {
            read_ahead.order = if reverse {
                ScanOrder::Reverse
            } else {
                ScanOrder::Forward
            };
            let mut rows = db.scan_with_options::<Bytes>(.., read_ahead);
            let all = take(&mut rows, KEYS).await;
            assert_eq!(all.len() as u64, KEYS);
            counts.reset();
            rows.seek(all[0].0.clone());
            assert_eq!(take(&mut rows, KEYS).await, all, "reverse {reverse}");
            assert_eq!(counts.reads(), 0, "reading cached blocks again, reverse {reverse}");
        }
        db.close().await.expect("close");
    });
}
