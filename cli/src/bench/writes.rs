//! The write workloads: `fill` (every row, non-durable, then made durable
//! and moved into L0) and `durable-put` (random rows, each acknowledged
//! durable).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::json;
use talusdb::WriteOptions;

use super::report::Report;
use super::{Bench, Latencies, Worker, gather, key, rate, shape_json, value};
use crate::CliError;

impl Bench {
    /// Writes every row (non-durable) from `--writers` tasks, then makes
    /// it all durable and closes with the memtable moved into L0.
    pub(super) async fn fill(&self) -> Result<Report, CliError> {
        self.reset_counts();
        let db = self.open().await?;
        let order = Arc::new(self.shuffled());
        let writers = self.args.writers.max(1);
        let bar = self.progress("fill", self.args.keys);
        let started = self.runtime.now();
        let tasks = self.spawn_workers(writers as u64, 0x51_7cc1, &db, &bar, |worker| {
            let Worker {
                index: writer,
                mut rng,
                db,
                bar,
                ..
            } = worker;
            let (order, writer) = (order.clone(), writer as usize);
            let size = self.args.value_size;
            async move {
                let options = WriteOptions {
                    await_durable: false,
                    ..WriteOptions::default()
                };
                for &i in order.iter().skip(writer).step_by(writers) {
                    db.put_with_options(key(i), value(i, 0, size, &mut rng), options)
                        .await?;
                    bar.inc(1);
                }
                Ok(Ok((Latencies::default(), 0)))
            }
        });
        gather(tasks).await?;
        self.count_puts(self.args.keys);
        let put_seconds = self.seconds_since(started);
        db.flush().await?;
        let durable_seconds = self.seconds_since(started);
        let settled_seconds = if self.args.settle {
            db.flush_memtable().await?;
            db.wait_for_compactions().await?;
            Some(self.seconds_since(started))
        } else {
            None
        };
        let stats = db.stats();
        db.close_with(talusdb::CloseOptions { flush_memtable: true }).await?;
        let closed_seconds = self.seconds_since(started);
        bar.finish_and_clear();
        Ok(self.report(
            "fill",
            self.args.keys,
            put_seconds,
            None,
            [
                ("durable_after_s", json!(durable_seconds)),
                ("settled_after_s", json!(settled_seconds)),
                ("in_l0_after_s", json!(closed_seconds)),
                ("mb_per_s", json!(rate(self.user_bytes(), put_seconds) / 1e6)),
                ("bytes_written", json!(self.counts.bytes_written())),
                ("compactions", json!(stats.compactor.compactions)),
                ("shape", shape_json(&stats)),
            ],
        ))
    }

    /// Durable puts of random rows from `--writers` tasks.
    pub(super) async fn durable_put(&self) -> Result<Report, CliError> {
        let db = self.open().await?;
        self.reset_counts();
        let bar = self.progress("durable-put", self.args.ops);
        let started = self.runtime.now();
        let tasks = self.spawn_workers(self.args.writers as u64, 0x2545_f491, &db, &bar, |worker| {
            let Worker {
                ops,
                mut rng,
                clock,
                db,
                bar,
                compacting,
                ..
            } = worker;
            let (keys, size) = (self.args.keys.max(1), self.args.value_size);
            async move {
                let mut latencies = Latencies::default();
                for _ in 0..ops {
                    let i = rng.below(keys);
                    let value = value(i, 1, size, &mut rng);
                    let at = clock.now();
                    let during = compacting.load(Ordering::Relaxed);
                    db.put(key(i), value).await?;
                    latencies.record_during(clock.now() - at, during);
                    bar.inc(1);
                }
                Ok(Ok((latencies, 0)))
            }
        });
        let (latency, _) = gather(tasks).await?;
        self.count_puts(self.args.ops);
        let seconds = self.seconds_since(started);
        bar.finish_and_clear();
        let stats = db.stats();
        db.close().await?;
        Ok(self.report(
            "durable-put",
            self.args.ops,
            seconds,
            Some(latency),
            [("wal_uploads", json!(stats.wal_uploads))],
        ))
    }
}
