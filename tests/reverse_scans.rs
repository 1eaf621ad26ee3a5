//! Reverse scans against a model: random puts, deletes and batches spread
//! over the memtable, L0 tables and sorted runs (small blocks, so a table
//! has many), then every kind of range read forwards and backwards, live
//! and at a snapshot.

mod support;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use talusdb::actors::runtime::Sim;
use talusdb::store::{ObjectStoreAdapter, Store};
use talusdb::{Db, DbOptions, ScanOptions, ScanOrder, Snapshot, WriteBatch};

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

#[test]
fn reverse_scans_match_the_model_across_memtables_l0_and_sorted_runs() {
    for seed in 1..=4 {
        let sim = Sim::new(seed);
        let runtime = sim.runtime();
        sim.block_on(async move {
            let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
            let mut options: DbOptions = support::compacting_db_options(8, std::time::Duration::from_secs(1));
            options.tables.sst.block_size_bytes = 256;
            let db = Db::builder("db", store)
                .runtime(runtime)
                .options(options)
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
            }
            let shape = db.stats().shape;
            assert!(shape.sorted_runs + shape.l0_tables > 0, "tables were read: {shape:?}");
            drop(snapshot);
            db.close().await.expect("close");
        });
    }
}
