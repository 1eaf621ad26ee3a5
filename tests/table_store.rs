//! The table store against real `object_store` backends (in-memory and the
//! local file system) from smol and from tokio; request counts through
//! `LatencyStore`; fences, retries and faults through `FaultyStore`.

mod support;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use talusdb::actors::Runtime;
use talusdb::actors::runtime::Sim;
use talusdb::internals::format::Row;
use talusdb::internals::format::sst::TableKind;
use talusdb::internals::{TableScanOptions as ScanOptions, TableStore};
use talusdb::store::{
    ByteRange, Fault, FaultyStore, LatencyStore, ObjectStoreAdapter, Op, PutMode, RequestCounts, Store, StoreError,
    TableId, TableStoreOptions, TimeoutStore, TokioThread,
};

use support::{on_smol, on_tokio, stores};

fn key(i: usize) -> Bytes {
    Bytes::from(format!("key{i:05}"))
}

/// `count` keys; every third has an older version, every fifth newest
/// version is a tombstone. In table order.
fn sorted_rows(count: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    for i in 0..count {
        let seq = 10 * i as u64 + 5;
        if i % 5 == 0 {
            rows.push(Row::tombstone(key(i), seq));
        } else {
            rows.push(Row::value(key(i), format!("value-{i}-new-{}", "x".repeat(i % 40)), seq));
        }
        if i % 3 == 0 {
            rows.push(Row::value(key(i), format!("value-{i}-old"), seq - 1));
        }
    }
    rows
}

fn wal_rows(first_seq: u64, count: u64) -> Vec<Row> {
    (0..count)
        .map(|n| Row::value(format!("w{}", (n * 7919) % 1000), format!("payload {n}"), first_seq + n))
        .collect()
}

fn table_store(store: Arc<dyn Store>, runtime: &Runtime, options: TableStoreOptions) -> TableStore {
    TableStore::new(store, Path::from("db"), runtime.clone(), options)
}

/// A table store over an in-memory store whose requests are counted.
fn counted_table_store(runtime: &Runtime, options: TableStoreOptions) -> (TableStore, Arc<RequestCounts>) {
    let latency = LatencyStore::new(
        Arc::new(ObjectStoreAdapter::in_memory()),
        runtime.clone(),
        Duration::ZERO,
    );
    let counts = latency.counts();
    (table_store(Arc::new(latency), runtime, options), counts)
}

/// Another table store on `tables`' store, with empty caches: how another
/// process (or a reopened database) sees the same tables.
fn cold(tables: &TableStore, runtime: &Runtime) -> TableStore {
    table_store(tables.store().clone(), runtime, tables.options().clone())
}

async fn write_sorted(tables: &TableStore, rows: &[Row]) -> talusdb::internals::WrittenTable {
    let mut builder = tables.builder(TableKind::Sorted);
    for row in rows {
        builder.add(row);
    }
    tables.write_sorted(builder).await.expect("write a sorted table")
}

/// Newest version per key with seq <= max_seq, from the row list.
fn model_get(rows: &[Row], wanted: &[u8], max_seq: u64) -> Option<Row> {
    rows.iter()
        .filter(|row| row.key.as_ref() == wanted && row.seq <= max_seq)
        .max_by_key(|row| row.seq)
        .cloned()
}

async fn round_trip(runtime: Runtime) {
    for (name, store, _dir) in stores(&runtime) {
        let options = TableStoreOptions {
            open_read_bytes: 4096,
            ..TableStoreOptions::default()
        };
        let tables = table_store(store, &runtime, options);
        let rows = sorted_rows(2000);
        let written = write_sorted(&tables, &rows).await;
        assert_eq!(written.meta.stats.rows, rows.len() as u64, "{name}");
        let reader = tables.open(written.id, Some(written.size)).await.expect("open");
        for i in (0..2000).step_by(7) {
            let wanted = key(i);
            for max_seq in [u64::MAX, 10 * i as u64 + 4, 0] {
                let found = reader.get(&wanted, max_seq).await.expect("get");
                assert_eq!(found, model_get(&rows, &wanted, max_seq), "{name}: {i} at {max_seq}");
            }
        }
        assert_eq!(reader.get(b"absent", u64::MAX).await.expect("get"), None);
        assert_eq!(reader.get(b"zzz", u64::MAX).await.expect("get"), None);

        let (from, to) = (key(100), key(1500));
        let mut scan = reader.scan(
            (Bound::Excluded(from.clone()), Bound::Included(to.clone())),
            ScanOptions {
                read_ahead_blocks: 8,
                fill_cache: false,
            },
        );
        let mut scanned = Vec::new();
        while let Some(row) = scan.next().await.expect("scan") {
            scanned.push(row);
        }
        let expected: Vec<Row> = rows
            .iter()
            .filter(|row| row.key > from && row.key <= to)
            .cloned()
            .collect();
        assert_eq!(scanned, expected, "{name}: scan");

        scan.seek(&key(1998));
        let mut tail = Vec::new();
        while let Some(row) = scan.next().await.expect("scan after seek") {
            tail.push(row.key);
        }
        assert!(tail.is_empty(), "{name}: seeking past the end bound yields nothing");

        let wal = wal_rows(100, 500);
        tables.write_wal(7, &wal).await.expect("write wal");
        assert_eq!(tables.read_wal(7).await.expect("read wal"), wal, "{name}: wal");
        assert_eq!(tables.list_wal_ids().await.expect("list"), vec![7]);
        let sorted = tables.list_sorted().await.expect("list sorted");
        assert_eq!(sorted.len(), 1);
        assert_eq!(sorted[0].0, written.id);
        assert_eq!(sorted[0].1.size, written.size);
        tables.delete(TableId::Wal(7)).await.expect("delete");
        tables.delete(TableId::Wal(7)).await.expect("deleting twice is fine");
        assert!(tables.list_wal_ids().await.expect("list").is_empty());
        assert!(matches!(tables.read_wal(7).await, Err(StoreError::NotFound { .. })));
    }
}

#[test]
fn tables_round_trip_from_smol() {
    on_smol(round_trip);
}

#[test]
fn tables_round_trip_from_tokio() {
    on_tokio(round_trip);
}

#[test]
fn a_store_on_an_owned_tokio_thread_serves_a_smol_caller() {
    on_smol(|runtime| async move {
        let thread = TokioThread::start("talus-io").expect("tokio thread");
        let store = ObjectStoreAdapter::new(Arc::new(object_store::memory::InMemory::new()), thread.driver());
        let tables = table_store(Arc::new(store), &runtime, TableStoreOptions::default());
        let rows = sorted_rows(100);
        let written = write_sorted(&tables, &rows).await;
        let reader = tables.open(written.id, None).await.expect("open");
        assert_eq!(
            reader.get(&key(4), u64::MAX).await.expect("get"),
            model_get(&rows, &key(4), u64::MAX)
        );
        thread.shutdown();
        let after = tables.read_wal(1).await;
        assert!(matches!(after, Err(StoreError::Unavailable { .. })), "{after:?}");
    });
}

#[test]
fn opening_takes_one_read_and_cached_lookups_take_none() {
    let sim = Sim::new(1);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let (tables, counts) = counted_table_store(&runtime, TableStoreOptions::default());
        let rows = sorted_rows(3000);
        let written = write_sorted(&tables, &rows).await;
        assert_eq!(counts.get(Op::Put), 1);
        assert!(written.size > 64 << 10, "the table is larger than the opening read");
        counts.reset();

        // The writer's own store holds the table's metadata already.
        let own = tables.open(written.id, Some(written.size)).await.expect("open");
        assert_eq!(counts.reads(), 0, "a table this store wrote opens with no read");
        own.get(&key(10), u64::MAX).await.expect("get");
        assert_eq!(counts.reads(), 1, "one block read, no index or filter read");

        counts.reset();
        let tables = cold(&tables, &runtime);
        let reader = tables.open(written.id, Some(written.size)).await.expect("open");
        let opening = counts.reads();
        assert!(
            opening == 1 || opening == 2,
            "footer, metadata, index and filter in one read, or two if they exceed it: {opening}"
        );
        reader.get(&key(10), u64::MAX).await.expect("get");
        assert_eq!(counts.reads(), opening + 1, "one block read");
        reader.get(&key(10), u64::MAX).await.expect("get");
        assert_eq!(counts.reads(), opening + 1, "the block is cached");
        for i in 0..50 {
            reader.get(format!("nope{i}").as_bytes(), u64::MAX).await.expect("get");
        }
        assert_eq!(
            counts.reads(),
            opening + 1,
            "keys outside the table's range cost nothing"
        );
    });
}

#[test]
fn a_large_index_and_filter_come_in_one_more_read() {
    let sim = Sim::new(13);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let (tables, counts) = counted_table_store(&runtime, TableStoreOptions::default());
        let rows = sorted_rows(40_000);
        let written = write_sorted(&tables, &rows).await;
        let tables = cold(&tables, &runtime);
        counts.reset();
        let reader = tables.open(written.id, Some(written.size)).await.expect("open");
        let index = reader.meta().index;
        assert!(
            written.size - index.offset > 64 << 10,
            "index, filter and metadata exceed the opening read"
        );
        assert_eq!(counts.reads(), 2, "the tail, then what it missed of index and filter");
        reader.get(&key(39_999), u64::MAX).await.expect("get");
        assert_eq!(counts.reads(), 3, "index and filter are cached; one block read");
        tables.caches().settle();
        let meta_bytes = tables.caches().weighted_sizes().1;
        assert!(
            meta_bytes < 2 * (written.size - index.offset),
            "metadata weighs what it holds ({meta_bytes} bytes), not the reads"
        );
    });
}

#[test]
fn a_small_opening_read_takes_more_reads_and_evicted_parts_are_read_again() {
    let sim = Sim::new(2);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let options = TableStoreOptions {
            open_read_bytes: 40,
            ..TableStoreOptions::default()
        };
        let (tables, counts) = counted_table_store(&runtime, options);
        let rows = sorted_rows(500);
        let written = write_sorted(&tables, &rows).await;
        let tables = cold(&tables, &runtime);
        counts.reset();
        let reader = tables.open(written.id, None).await.expect("open");
        assert_eq!(counts.reads(), 3, "footer, then metadata, then index and filter");
        // Evicted, each is read again on use, alone.
        tables.caches().forget(written.id);
        reader.filter().await.expect("filter").expect("the table has a filter");
        assert_eq!(counts.reads(), 4);
        reader.index().await.expect("index");
        assert_eq!(counts.reads(), 5);
        reader.get(&key(3), u64::MAX).await.expect("get");
        assert_eq!(counts.reads(), 6, "index and filter are cached; one block read");
    });
}

#[test]
fn scans_read_several_blocks_per_request_and_leave_the_cache_alone() {
    let sim = Sim::new(3);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let (tables, counts) = counted_table_store(&runtime, TableStoreOptions::default());
        let rows = sorted_rows(2000);
        let written = write_sorted(&tables, &rows).await;
        let reader = tables.open(written.id, Some(written.size)).await.expect("open");
        let blocks = reader.meta().stats.blocks;
        assert!(blocks > 20, "{blocks} blocks");
        counts.reset();
        let options = ScanOptions {
            read_ahead_blocks: 8,
            fill_cache: false,
        };
        let mut scan = reader.scan((Bound::Unbounded, Bound::Unbounded), options);
        let mut seen = 0;
        while scan.next().await.expect("scan").is_some() {
            seen += 1;
        }
        assert_eq!(seen, rows.len());
        assert_eq!(counts.reads(), blocks.div_ceil(8), "{blocks} blocks, 8 per read");
        tables.caches().settle();
        assert_eq!(
            tables.caches().weighted_sizes().0,
            0,
            "a scan does not fill the block cache"
        );
    });
}

#[test]
fn the_block_cache_stays_within_its_byte_budget() {
    let sim = Sim::new(4);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let options = TableStoreOptions {
            block_cache_bytes: 32 << 10,
            ..TableStoreOptions::default()
        };
        let tables = table_store(Arc::new(ObjectStoreAdapter::in_memory()), &runtime, options);
        let rows = sorted_rows(3000);
        let written = write_sorted(&tables, &rows).await;
        let reader = tables.open(written.id, None).await.expect("open");
        for i in 0..3000 {
            reader.get(&key(i), u64::MAX).await.expect("get");
        }
        tables.caches().settle();
        let (block_bytes, meta_bytes) = tables.caches().weighted_sizes();
        assert!(block_bytes <= 32 << 10, "{block_bytes} bytes cached");
        assert!(block_bytes > 0);
        assert!(meta_bytes > 0, "index and filter are cached");
    });
}

#[test]
fn a_wal_id_taken_by_another_writer_is_a_fence() {
    let sim = Sim::new(5);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let ours = table_store(store.clone(), &runtime, TableStoreOptions::default());
        let theirs = table_store(store, &runtime, TableStoreOptions::default());
        theirs.write_wal(9, &[]).await.expect("the new writer's fencing table");
        let result = ours.write_wal(9, &wal_rows(1, 3)).await;
        match result {
            Err(StoreError::Fenced { path }) => assert_eq!(path.as_ref(), "db/wal/00000000000000000009.sst"),
            other => panic!("expected a fence, got {other:?}"),
        }
        // Even an identical batch from another writer differs by its put id.
        theirs.write_wal(10, &wal_rows(1, 3)).await.expect("write");
        assert!(matches!(
            ours.write_wal(10, &wal_rows(1, 3)).await,
            Err(StoreError::Fenced { .. })
        ));
    });
}

#[test]
fn a_retry_that_meets_its_own_earlier_write_succeeds() {
    let sim = Sim::new(6);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let faulty = FaultyStore::new(Arc::new(ObjectStoreAdapter::in_memory()), 6);
        faulty.fail_request(1, Fault::LostReply);
        let tables = table_store(Arc::new(faulty.clone()), &runtime, TableStoreOptions::default());
        let rows = wal_rows(50, 10);
        tables
            .write_wal(3, &rows)
            .await
            .expect("the retry recognises its own table");
        assert_eq!(faulty.injected(), 1);
        assert_eq!(tables.read_wal(3).await.expect("read"), rows);

        faulty.fail_request(1, Fault::Lost);
        faulty.fail_request(2, Fault::Lost);
        tables.write_wal(4, &rows).await.expect("two lost requests are retried");
        assert_eq!(faulty.injected(), 3);
    });
}

#[test]
fn writes_give_up_after_their_attempts_with_an_error_naming_the_object() {
    let sim = Sim::new(7);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let faulty = FaultyStore::new(Arc::new(ObjectStoreAdapter::in_memory()), 7);
        let tables = table_store(Arc::new(faulty.clone()), &runtime, TableStoreOptions::default());
        faulty.crash_after(0);
        let started = runtime.now();
        let error = tables
            .write_wal(1, &wal_rows(1, 1))
            .await
            .expect_err("the store is down");
        assert!(error.is_retryable());
        assert_eq!(error.path().as_ref(), "db/wal/00000000000000000001.sst");
        assert_eq!(faulty.injected(), 10, "put_attempts");
        assert_eq!(
            runtime.now() - started,
            Duration::from_millis(50 + 100 + 200 + 400 + 800 + 1600 + 3 * 2000),
            "doubling backoff, at most 2 s"
        );
        faulty.heal();
        tables.write_wal(1, &wal_rows(1, 1)).await.expect("works again");
    });
}

#[test]
fn a_seeded_fraction_of_failures_is_retried_through() {
    let sim = Sim::new(8);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let faulty = FaultyStore::new(Arc::new(ObjectStoreAdapter::in_memory()), 8);
        faulty.fail_fraction(0.3, &[Op::Put], Fault::LostReply);
        let tables = table_store(Arc::new(faulty.clone()), &runtime, TableStoreOptions::default());
        for id in 0..40 {
            tables
                .write_wal(id, &wal_rows(id * 10, 3))
                .await
                .expect("retries absorb the faults");
        }
        let injected = faulty.injected();
        assert!((4..=30).contains(&injected), "{injected} faults for ~30%");
        assert_eq!(tables.list_wal_ids().await.expect("list").len(), 40);
    });
}

#[test]
fn a_request_that_hangs_times_out() {
    let sim = Sim::new(9);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let slow = LatencyStore::new(
            Arc::new(ObjectStoreAdapter::in_memory()),
            runtime.clone(),
            Duration::from_secs(3600),
        );
        let bounded = TimeoutStore::new(Arc::new(slow), runtime.clone(), Duration::from_secs(5));
        let path = Path::from("db/wal/00000000000000000001.sst");
        let error = bounded.get(&path, ByteRange::All).await.expect_err("times out");
        assert!(error.to_string().contains("timed out after 5s"), "{error}");
        assert_eq!(runtime.now(), Duration::from_secs(5));
    });
}

#[test]
fn large_tables_go_up_in_parts() {
    let sim = Sim::new(10);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let options = TableStoreOptions {
            multipart_threshold_bytes: 64 << 10,
            multipart_part_bytes: 16 << 10,
            ..TableStoreOptions::default()
        };
        let (tables, counts) = counted_table_store(&runtime, options);
        let rows = sorted_rows(3000);
        let written = write_sorted(&tables, &rows).await;
        assert_eq!(counts.get(Op::Put), 0);
        assert_eq!(counts.get(Op::MultipartPart), written.size.div_ceil(16 << 10));
        let reader = tables.open(written.id, Some(written.size)).await.expect("open");
        assert_eq!(
            reader.get(&key(2999), u64::MAX).await.expect("get"),
            model_get(&rows, &key(2999), u64::MAX)
        );
        // WAL tables always use a conditional create, whatever their size.
        counts.reset();
        tables.write_wal(1, &wal_rows(0, 3000)).await.expect("wal");
        assert_eq!(counts.snapshot(), BTreeMap::from([("put", 1)]));
    });
}

#[test]
fn damaged_objects_are_corruption_errors_naming_the_object_and_part() {
    let sim = Sim::new(11);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let writer = table_store(store.clone(), &runtime, TableStoreOptions::default());
        let rows = sorted_rows(300);
        let written = write_sorted(&writer, &rows).await;
        // Read back by a store that did not write the table (the writer's
        // cache would still hold the good metadata of an object that, in
        // life, never changes).
        let tables = table_store(store.clone(), &runtime, TableStoreOptions::default());
        let path = tables.path(written.id);
        let good = store.get(&path, ByteRange::All).await.expect("read").bytes;

        let part_of = |error: StoreError| match error {
            StoreError::Corruption { path: named, part, .. } => {
                assert_eq!(named, path);
                part
            }
            other => panic!("expected corruption, got {other:?}"),
        };

        // A flipped byte in the first data block.
        let mut damaged = good.to_vec();
        damaged[10] ^= 0x40;
        store
            .put(&path, Bytes::from(damaged), PutMode::Overwrite)
            .await
            .expect("put");
        let reader = tables
            .open(written.id, Some(written.size))
            .await
            .expect("the tail is intact");
        assert_eq!(
            part_of(reader.get(&rows[0].key, u64::MAX).await.expect_err("bad block")),
            "block"
        );

        // Truncated: the footer is gone.
        tables.caches().forget(written.id);
        store
            .put(&path, good.slice(..good.len() - 3), PutMode::Overwrite)
            .await
            .expect("put");
        assert_eq!(
            part_of(tables.open(written.id, None).await.expect_err("truncated")),
            "footer"
        );
        assert_eq!(
            part_of(tables.open(written.id, Some(written.size)).await.expect_err("size")),
            "object"
        );
        tables.caches().forget(written.id);

        // Not a table at all.
        store
            .put(&path, Bytes::from_static(b"hello"), PutMode::Overwrite)
            .await
            .expect("put");
        assert_eq!(
            part_of(tables.open(written.id, None).await.expect_err("garbage")),
            "footer"
        );
        // A sorted table where a WAL table belongs.
        let wal_path = tables.path(TableId::Wal(1));
        store.put(&wal_path, good, PutMode::Create).await.expect("put");
        match tables.read_wal(1).await {
            Err(StoreError::Corruption { path, part, .. }) => assert_eq!((path, part), (wal_path, "footer")),
            other => panic!("expected corruption, got {other:?}"),
        }
    });
}

#[test]
fn every_damaged_byte_gives_the_right_answer_or_corruption() {
    let sim = Sim::new(12);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let options = TableStoreOptions {
            sst: talusdb::internals::format::sst::SstOptions {
                block_size_bytes: 256,
                bloom_min_keys: 1,
                ..Default::default()
            },
            block_cache_bytes: 0,
            meta_cache_bytes: 0,
            ..TableStoreOptions::default()
        };
        let tables = table_store(store.clone(), &runtime, options);
        let rows = sorted_rows(40);
        let written = write_sorted(&tables, &rows).await;
        let path = tables.path(written.id);
        let good = store.get(&path, ByteRange::All).await.expect("read").bytes;
        for position in 0..good.len() {
            let mut damaged = good.to_vec();
            damaged[position] ^= 0x01;
            store
                .put(&path, Bytes::from(damaged), PutMode::Overwrite)
                .await
                .expect("put");
            let outcome: Result<Vec<Option<Row>>, StoreError> = async {
                let reader = tables.open(written.id, Some(written.size)).await?;
                let mut found = Vec::new();
                for i in 0..40 {
                    found.push(reader.get(&key(i), u64::MAX).await?);
                }
                Ok(found)
            }
            .await;
            match outcome {
                Ok(found) => {
                    for (i, row) in found.into_iter().enumerate() {
                        assert_eq!(row, model_get(&rows, &key(i), u64::MAX), "byte {position}, key {i}");
                    }
                }
                Err(StoreError::Corruption { path: named, .. }) => assert_eq!(named, path),
                Err(other) => panic!("byte {position}: {other:?}"),
            }
        }
    });
}
