//! Format micro-benchmarks: block build + encode, a seek in a decoded
//! block, and a bloom probe. Run with `cargo bench -p talusdb --bench format`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use talusdb::Compression;
use talusdb::internals::format::Row;
use talusdb::internals::format::block::{Block, BlockBuilder, DEFAULT_BLOCK_SIZE_BYTES};
use talusdb::internals::format::bloom::{self, BloomFilter};

/// Row i's key, as the load benchmark names keys: 16 zero-padded digits.
fn key(index: u64) -> String {
    format!("{index:016}")
}

fn block_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    let mut size = 0;
    let mut index = 0;
    while size < DEFAULT_BLOCK_SIZE_BYTES {
        let row = Row::value(key(2 * index), vec![b'v'; 100], 1_000 - index);
        size += row.key.len() + 100 + 4;
        rows.push(row);
        index += 1;
    }
    rows
}

fn blocks(c: &mut Criterion) {
    let rows = block_rows();
    let raw_bytes: usize = rows.iter().map(|row| row.key.len() + 100).sum();
    let mut group = c.benchmark_group("block");
    group.throughput(Throughput::Bytes(raw_bytes as u64));
    for compression in Compression::available() {
        group.bench_function(format!("build+encode 4KiB, {compression:?}"), |b| {
            b.iter(|| {
                let mut builder = BlockBuilder::default();
                for row in &rows {
                    builder.add(row);
                }
                black_box(builder.finish(compression))
            })
        });
    }
    group.finish();

    let mut builder = BlockBuilder::default();
    for row in &rows {
        builder.add(row);
    }
    let stored = Bytes::from(builder.finish(Compression::None));
    let block = Block::decode(stored.clone()).expect("decodes");
    let middle = key(rows.len() as u64);
    c.bench_function("block/decode 4KiB", |b| {
        b.iter(|| black_box(Block::decode(stored.clone()).expect("decodes")))
    });
    c.bench_function("block/seek+read one row", |b| {
        b.iter(|| {
            let mut iter = block.iter();
            iter.seek(middle.as_bytes()).expect("seek");
            black_box(iter.next())
        })
    });
}

fn blooms(c: &mut Criterion) {
    let hashes: Vec<u64> = (0..100_000)
        .map(|index| bloom::key_hash(key(2 * index).as_bytes()))
        .collect();
    let filter = BloomFilter::decode(
        Bytes::from(bloom::build(&hashes, bloom::DEFAULT_BITS_PER_KEY)),
        bloom::FilterLayout::Blocked,
    )
    .expect("decodes");
    let absent = key(777_777);
    let present = key(2 * 4_242);
    c.bench_function("bloom/probe absent key", |b| {
        b.iter(|| black_box(filter.may_contain(black_box(absent.as_bytes()))))
    });
    c.bench_function("bloom/probe present key", |b| {
        b.iter(|| black_box(filter.may_contain(black_box(present.as_bytes()))))
    });
}

criterion_group!(benches, blocks, blooms);
criterion_main!(benches);
