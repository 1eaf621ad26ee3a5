//! Model-based: long random sequences of puts, deletes, batches, gets,
//! scans, snapshots, flushes and reopens against a `BTreeMap`, on InMemory
//! under the simulator and on the local file system under smol.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use talusdb::actors::Runtime;
use talusdb::actors::runtime::Sim;
use talusdb::store::{ObjectStoreAdapter, Store};
use talusdb::{Db, WriteBatch, WriteOptions};

use support::{Gen, TempDir, on_smol};

type Model = BTreeMap<Bytes, Bytes>;

async fn open(store: &Arc<dyn Store>, runtime: &Runtime) -> Db {
    support::open_db("model", store, runtime).await
}

async fn check_scan(db: &Db, model: &Model, from: &Bytes, to: &Bytes, step: usize) {
    let scanned: Vec<(Bytes, Bytes)> = db.scan(from.clone()..to.clone()).try_collect().await.expect("scan");
    let expected: Vec<(Bytes, Bytes)> = model
        .range(from.clone()..to.clone())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(scanned, expected, "step {step}: scan {from:?}..{to:?}");
}

async fn run_model(store: Arc<dyn Store>, runtime: Runtime, seed: u64, steps: usize) {
    let mut db = open(&store, &runtime).await;
    let mut model = Model::new();
    let mut generator = Gen(seed);
    let mut snapshot: Option<(talusdb::Snapshot, Model)> = None;
    for step in 0..steps {
        let durable = WriteOptions {
            await_durable: generator.next(4) == 0,
        };
        match generator.next(100) {
            0..=34 => {
                let (key, value) = (
                    generator.key(),
                    Bytes::from(format!("v{step}-{}", "x".repeat(step % 50))),
                );
                db.put_with_options(key.clone(), value.clone(), durable)
                    .await
                    .expect("put");
                model.insert(key, value);
            }
            35..=44 => {
                let key = generator.key();
                db.delete_with_options(key.clone(), durable).await.expect("delete");
                model.remove(&key);
            }
            45..=52 => {
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
                db.write_with_options(batch, durable).await.expect("batch");
            }
            53..=79 => {
                let key = generator.key();
                assert_eq!(
                    db.get(&key).await.expect("get"),
                    model.get(&key).cloned(),
                    "step {step}: {key:?}"
                );
            }
            80..=86 => {
                let (a, b) = (generator.key(), generator.key());
                let (from, to) = if a <= b { (a, b) } else { (b, a) };
                check_scan(&db, &model, &from, &to, step).await;
            }
            87..=90 => match snapshot.take() {
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
            91..=93 => db.flush().await.expect("flush"),
            94..=96 => db.flush_memtable().await.expect("flush memtable"),
            _ => {
                snapshot = None;
                db.close().await.expect("close");
                assert!(db.get("key0001").await.expect_err("closed").is_closed());
                db = open(&store, &runtime).await;
            }
        }
    }
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
