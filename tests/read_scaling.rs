//! Point lookups on a database of several hundred small tables: after the
//! first lookups have loaded every table's metadata, a lookup reads at
//! most one table per sorted run (plus each L0 table whose filter lets the
//! key through) and never a table's metadata again; and a metadata cache
//! smaller than the metadata stays within its bound while answers stay
//! right. In memory, on virtual time.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use talusdb::actors::runtime::Sim;
use talusdb::compactor::CompactorOptions;
use talusdb::store::{Layer, ObjectStoreAdapter, Op, Payload, Requests, Store, StoreResult};
use talusdb::{Db, DbOptions, WriteOptions};

const KEYS: u64 = 6_000;

fn key(n: u64) -> String {
    format!("key{:08}", 2 * n)
}

fn absent(n: u64) -> String {
    format!("key{:08}", 2 * n + 1)
}

fn value(n: u64) -> String {
    format!("v{n:010}")
}

/// Records the path of every ranged or whole read. Clones share the log.
#[derive(Clone, Debug)]
struct ReadLog {
    inner: Arc<dyn Store>,
    reads: Arc<Mutex<Vec<String>>>,
}

impl Layer for ReadLog {
    fn around<T: Payload>(
        &self,
        op: Op,
        path: &object_store::path::Path,
        _requests: Requests,
        request: impl FnOnce(&dyn Store) -> BoxFuture<'static, StoreResult<T>>,
    ) -> BoxFuture<'static, StoreResult<T>> {
        if matches!(op, Op::Get | Op::GetRange) {
            self.reads.lock().expect("log").push(path.to_string());
        }
        request(&*self.inner)
    }
}

impl ReadLog {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.reads.lock().expect("log"))
    }
}

/// Small memtables, tables and blocks (about 8 rows each): a few hundred
/// KiB of rows make hundreds of tables, each with a filter. No block cache, so every lookup that needs a block
/// reads it and the reads show which tables a lookup touched.
fn options(meta_cache_bytes: u64) -> DbOptions {
    let mut options = DbOptions {
        memtable_bytes: 8 << 10,
        wal_buffer_bytes: 4 << 10,
        max_unflushed_bytes: 64 << 10,
        compactor: Some(CompactorOptions {
            target_table_bytes: 512,
            ..CompactorOptions::default()
        }),
        ..DbOptions::default()
    };
    options.tables.sst.block_size_bytes = 256;
    options.tables.sst.bloom_min_keys = 1;
    options.tables.block_cache_bytes = 0;
    options.tables.meta_cache_bytes = meta_cache_bytes;
    options
}

/// The database with `options(meta_cache_bytes)`.
async fn open(store: Arc<dyn Store>, runtime: talusdb::actors::Runtime, meta_cache_bytes: u64) -> Db {
    Db::builder("db", store)
        .runtime(runtime)
        .options(options(meta_cache_bytes))
        .open()
        .await
        .expect("open")
}

async fn fill(store: Arc<dyn Store>, runtime: talusdb::actors::Runtime) {
    let db = open(store, runtime, 64 << 20).await;
    let quick = WriteOptions {
        await_durable: false,
        ..WriteOptions::default()
    };
    // Shuffled, so every table of every run spans part of the key space.
    for n in 0..KEYS {
        let i = (n * 1_597) % KEYS;
        db.put_with_options(key(i), value(i), quick).await.expect("put");
    }
    db.flush_memtable().await.expect("flush");
    db.wait_for_compactions().await.expect("settle");
    db.close().await.expect("close");
}

#[test]
fn lookups_read_one_table_per_run_and_metadata_once() {
    let sim = Sim::with_wall_origin(5, support::FAR_FUTURE_MS);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let memory: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        fill(memory.clone(), runtime.clone()).await;
        let log = ReadLog {
            inner: memory,
            reads: Arc::default(),
        };
        let store: Arc<dyn Store> = Arc::new(log.clone());
        let db = open(store, runtime, 64 << 20).await;
        let shape = db.stats().shape;
        let tables = shape.l0_tables + shape.run_tables;
        assert!(tables >= 200, "several hundred tables: {shape:?}");
        assert!(shape.sorted_runs >= 2, "more than one run to rule out: {shape:?}");
        let per_lookup = (shape.sorted_runs + shape.l0_tables) as usize;

        // Warm-up: every table is opened, its index and filter loaded.
        for n in 0..KEYS {
            assert_eq!(db.get(key(n)).await.expect("get").as_deref(), Some(value(n).as_bytes()));
        }
        assert!(db.stats().memory.metadata_bytes > 0, "metadata is accounted");
        log.take();

        let (mut hit_reads, mut miss_reads) = (0, 0);
        for n in 0..KEYS {
            let found = db.get(key(n)).await.expect("get");
            assert_eq!(found.as_deref(), Some(value(n).as_bytes()));
            let reads = log.take();
            let touched: BTreeSet<&String> = reads.iter().collect();
            assert!(!touched.is_empty(), "a present key reads its block");
            assert!(
                touched.len() <= per_lookup,
                "key {n} touched {} tables, more than one per run: {reads:?}",
                touched.len()
            );
            hit_reads += reads.len();

            assert_eq!(db.get(absent(n)).await.expect("get"), None);
            let reads = log.take();
            let touched: BTreeSet<&String> = reads.iter().collect();
            assert!(touched.len() <= per_lookup, "absent key {n}: {reads:?}");
            miss_reads += reads.len();
        }
        // A present key reads one block (two when its row starts a block);
        // filters keep absent keys away from nearly every table. Neither
        // reads an index or a filter again.
        let keys = KEYS as usize;
        assert!(hit_reads <= keys * 12 / 10, "{hit_reads} reads for {keys} present keys");
        assert!(miss_reads <= keys / 10, "{miss_reads} reads for {keys} absent keys");
        db.close().await.expect("close");
    });
}

#[test]
fn a_small_metadata_cache_stays_within_its_bound() {
    const BOUND: u64 = 16 << 10;
    let sim = Sim::with_wall_origin(6, support::FAR_FUTURE_MS);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        fill(store.clone(), runtime.clone()).await;
        let roomy = Db::builder("db", store.clone())
            .runtime(runtime.clone())
            .options(options(64 << 20))
            .open()
            .await
            .expect("reopen");
        for n in 0..KEYS {
            roomy.get(key(n)).await.expect("get");
        }
        let needed = roomy.stats().memory.metadata_bytes;
        roomy.close().await.expect("close");
        assert!(
            needed > 4 * BOUND,
            "the metadata ({needed} bytes) must not fit the bound"
        );

        let tight = open(store, runtime, BOUND).await;
        for round in 0..2 {
            for n in 0..KEYS {
                let found = tight.get(key(n)).await.expect("get");
                assert_eq!(found.as_deref(), Some(value(n).as_bytes()), "round {round}");
                assert_eq!(tight.get(absent(n)).await.expect("get"), None);
            }
            let held = tight.stats().memory.metadata_bytes;
            assert!(held <= BOUND, "round {round}: {held} bytes of metadata, bound {BOUND}");
        }
        tight.close().await.expect("close");
    });
}
