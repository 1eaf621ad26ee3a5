//! Table-store micro-benchmarks: a point lookup in an open table whose
//! blocks are cached, and a full scan, over the in-memory store. Run with
//! `cargo bench -p talusdb --bench table`.

use std::hint::black_box;
use std::ops::Bound;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use object_store::path::Path;
use talusdb::Compression;
use talusdb::actors::runtime::Sim;
use talusdb::internals::format::Row;
use talusdb::internals::format::sst::{SstOptions, TableKind};
use talusdb::internals::{TableReader, TableScanOptions as ScanOptions, TableStore};
use talusdb::store::{ObjectStoreAdapter, TableStoreOptions};

const ROWS: u64 = 100_000;

fn key(index: u64) -> String {
    format!("{index:016}")
}

/// A table of `ROWS` rows with 100-byte values, opened; blocks cached after
/// one pass of lookups.
fn open_table(sim: &Sim, compression: Compression) -> TableReader {
    let runtime = sim.runtime();
    let options = TableStoreOptions {
        sst: SstOptions {
            compression,
            ..SstOptions::default()
        },
        block_cache_bytes: 256 << 20,
        ..TableStoreOptions::default()
    };
    let tables = TableStore::new(
        Arc::new(ObjectStoreAdapter::in_memory()),
        Path::from("bench"),
        runtime,
        options,
    );
    sim.block_on(async move {
        let mut builder = tables.builder(TableKind::Sorted);
        for index in 0..ROWS {
            builder.add(&Row::value(key(2 * index), vec![b'v'; 100], index + 1));
        }
        let written = tables.write_sorted(builder).await.expect("write");
        let reader = tables.open(written.id, Some(written.size)).await.expect("open");
        for index in 0..ROWS {
            reader.get(key(2 * index).as_bytes(), u64::MAX).await.expect("warm");
        }
        reader
    })
}

fn lookups(c: &mut Criterion) {
    let sim = Sim::new(1);
    let reader = open_table(&sim, Compression::None);
    let mut probe = 0u64;
    c.bench_function("table/get present key, cached", |b| {
        b.iter(|| {
            probe = (probe + 7919) % ROWS;
            let key = key(2 * probe);
            black_box(futures::executor::block_on(reader.get(key.as_bytes(), u64::MAX)).expect("get"))
        })
    });
    c.bench_function("table/get absent key, cached", |b| {
        b.iter(|| {
            probe = (probe + 7919) % ROWS;
            let key = key(2 * probe + 1);
            black_box(futures::executor::block_on(reader.get(key.as_bytes(), u64::MAX)).expect("get"))
        })
    });
}

fn scans(c: &mut Criterion) {
    let mut group = c.benchmark_group("table/scan");
    group.throughput(Throughput::Elements(ROWS));
    group.sample_size(20);
    for compression in Compression::available() {
        let sim = Sim::new(2);
        let reader = open_table(&sim, compression);
        for (label, fill_cache) in [("from cache", true), ("reading the store", false)] {
            group.bench_function(format!("{compression:?}, {label}"), |b| {
                b.iter(|| {
                    let options = ScanOptions {
                        read_ahead_blocks: 8,
                        fill_cache,
                    };
                    let mut scan = reader.scan((Bound::Unbounded, Bound::Unbounded), options);
                    let mut rows = 0u64;
                    futures::executor::block_on(async {
                        while scan.next().await.expect("scan").is_some() {
                            rows += 1;
                        }
                    });
                    assert_eq!(rows, ROWS);
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, lookups, scans);
criterion_main!(benches);
