//! Compaction throughput and write amplification for a fill of 1,000,000
//! puts of 100-byte values over 500,000 keys (every key written twice: 50 %
//! overwrites), on an in-memory store that counts the bytes written to it.
//! Prints the L0 table count over time, the compactor's input rate, a
//! final full compaction's rate, and bytes written ÷ user bytes.
//!
//! Run with `cargo bench --bench compaction` (`TALUS_BENCH_PUTS=<n>` for
//! another size).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use object_store::path::Path;
use talusdb::actors::Runtime;
use talusdb::compactor::CompactorOptions;
use talusdb::store::{ByteRange, Fetched, ObjectInfo, ObjectStoreAdapter, PutMode, Store, StoreResult};
use talusdb::{Db, DbOptions, WriteOptions};

/// Counts the bytes of every put.
#[derive(Debug)]
struct CountingStore {
    inner: Arc<dyn Store>,
    written: AtomicU64,
}

impl Store for CountingStore {
    fn get(&self, path: &Path, range: ByteRange) -> BoxFuture<'static, StoreResult<Fetched>> {
        self.inner.get(path, range)
    }
    fn head(&self, path: &Path) -> BoxFuture<'static, StoreResult<ObjectInfo>> {
        self.inner.head(path)
    }
    fn put(&self, path: &Path, bytes: Bytes, mode: PutMode) -> BoxFuture<'static, StoreResult<()>> {
        self.written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.inner.put(path, bytes, mode)
    }
    fn put_multipart(&self, path: &Path, parts: Vec<Bytes>) -> BoxFuture<'static, StoreResult<()>> {
        let total: usize = parts.iter().map(Bytes::len).sum();
        self.written.fetch_add(total as u64, Ordering::Relaxed);
        self.inner.put_multipart(path, parts)
    }
    fn list(&self, prefix: &Path) -> BoxFuture<'static, StoreResult<Vec<ObjectInfo>>> {
        self.inner.list(prefix)
    }
    fn delete(&self, path: &Path) -> BoxFuture<'static, StoreResult<()>> {
        self.inner.delete(path)
    }
}

fn main() {
    let puts: u64 = std::env::var("TALUS_BENCH_PUTS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1_000_000);
    let keys = (puts / 2).max(1);
    let runtime = Runtime::smol().expect("smol");
    smol::block_on(async move {
        let counting = Arc::new(CountingStore {
            inner: Arc::new(ObjectStoreAdapter::in_memory()),
            written: AtomicU64::new(0),
        });
        let db = Db::builder("bench", counting.clone())
            .runtime(runtime.clone())
            .options(DbOptions {
                memtable_bytes: 4 << 20,
                max_unflushed_bytes: 32 << 20,
                compactor: Some(CompactorOptions {
                    target_table_bytes: 8 << 20,
                    ..CompactorOptions::default()
                }),
                ..DbOptions::default()
            })
            .open()
            .await
            .expect("open");

        let done = Arc::new(AtomicBool::new(false));
        let sampler = runtime.spawn({
            let (db, done, clock) = (db.clone(), done.clone(), runtime.clone());
            async move {
                let mut samples = Vec::new();
                let start = clock.now();
                while !done.load(Ordering::Relaxed) {
                    samples.push(((clock.now() - start).as_secs_f64(), db.stats().l0_tables));
                    clock.sleep(Duration::from_millis(250)).await;
                }
                samples
            }
        });

        let start = runtime.now();
        let mut user_bytes = 0u64;
        let mut noise = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..puts {
            // A bijection of 0..keys, visited twice.
            let key = format!("{:016}", (i % keys) * 7919 % keys);
            let mut value = vec![0u8; 100];
            for chunk in value.chunks_mut(8) {
                noise ^= noise << 13;
                noise ^= noise >> 7;
                noise ^= noise << 17;
                chunk.copy_from_slice(&noise.to_le_bytes()[..chunk.len()]);
            }
            user_bytes += (key.len() + value.len()) as u64;
            db.put_with_options(
                key,
                value,
                WriteOptions {
                    await_durable: false,
                    ..WriteOptions::default()
                },
            )
            .await
            .expect("put");
        }
        db.flush().await.expect("flush");
        let fill = runtime.now() - start;
        done.store(true, Ordering::Relaxed);
        let samples = sampler.await.expect("sampler");
        let during = db.stats();
        let written_fill = counting.written.load(Ordering::Relaxed);

        let full_start = runtime.now();
        let summary = db.compact().await.expect("compact");
        let full = runtime.now() - full_start;
        let written_all = counting.written.load(Ordering::Relaxed);
        db.close().await.expect("close");

        let mb = |bytes: u64| bytes as f64 / (1 << 20) as f64;
        println!(
            "fill: {puts} puts over {keys} keys, {:.1} MiB of user data, {:.2} s ({:.0} puts/s)",
            mb(user_bytes),
            fill.as_secs_f64(),
            puts as f64 / fill.as_secs_f64()
        );
        let peak = samples.iter().map(|(_, l0)| *l0).max().unwrap_or(0);
        println!("L0 tables during the fill (max {peak}, every 0.25 s):");
        let series: Vec<String> = samples.iter().map(|(_, l0)| l0.to_string()).collect();
        for line in series.chunks(40) {
            println!("  {}", line.join(" "));
        }
        let compactor = during.compactor;
        println!(
            "background compactions: {} jobs, {:.1} MiB in, {:.1} MiB out, {:.1} MiB/s of input per job",
            compactor.compactions,
            mb(compactor.bytes_read),
            mb(compactor.bytes_written),
            compactor.read_bytes_per_second() / (1 << 20) as f64
        );
        println!(
            "L0 stalls {}, stalled writes {}",
            during.l0_stalls, during.stalled_writes
        );
        if let Some(summary) = summary {
            println!(
                "full compaction: {:.1} MiB in -> {:.1} MiB out in {:.2} s ({:.1} MiB/s of input)",
                mb(summary.bytes_in),
                mb(summary.bytes_out),
                full.as_secs_f64(),
                mb(summary.bytes_in) / full.as_secs_f64()
            );
        }
        println!(
            "write amplification: {:.2} after the fill, {:.2} after the full compaction (bytes written / user bytes)",
            written_fill as f64 / user_bytes as f64,
            written_all as f64 / user_bytes as f64
        );
    });
}
