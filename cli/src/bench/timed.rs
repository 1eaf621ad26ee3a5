//! The timed workloads: `mixed` and `txn` run for `--duration-s` on
//! `--writers` + `--readers` tasks, sharing one prologue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use talusdb::{ErrorKind, IsolationLevel, WriteOptions};

use super::report::{Latencies, Report, memory_json, shape_json};
use super::rows::{check_value, key, value};
use super::{Bench, TaskResult, Worker, gather};
use crate::CliError;

/// What a timed workload measured: its tasks' latencies and counts, how
/// long it ran, and the engine's statistics at the end.
struct Timed {
    latency: Latencies,
    count: u64,
    seconds: f64,
    stats: talusdb::DbStats,
}

impl Bench {
    /// Runs `task` on `--writers` + `--readers` workers for `--duration-s`
    /// on the opened database (each gets a stop flag to watch), then
    /// closes it: what a timed workload shares.
    async fn run_timed<F, Fut>(&self, name: &'static str, salt: u64, task: F) -> Result<Timed, CliError>
    where
        F: Fn(Worker, Arc<AtomicBool>) -> Fut,
        Fut: Future<Output = TaskResult> + Send + 'static,
    {
        let db = self.open().await?;
        self.reset_counts();
        let tasks_count = (self.args.writers + self.args.readers).max(1) as u64;
        let duration = Duration::from_secs_f64(self.args.duration_s.max(0.0));
        let stop = Arc::new(AtomicBool::new(false));
        let bar = self.progress(name, 0);
        let started = self.runtime.now();
        let tasks = self.spawn_workers(tasks_count, salt, &db, &bar, |worker| task(worker, stop.clone()));
        self.runtime.sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let (latency, count) = gather(tasks).await?;
        let seconds = self.seconds_since(started);
        bar.finish_and_clear();
        let stats = db.stats();
        db.close().await?;
        Ok(Timed {
            latency,
            count,
            seconds,
            stats,
        })
    }

    /// Overwrites (`--put-percent`) and gets of random rows for
    /// `--duration-s`, from `--writers` + `--readers` tasks. Each task
    /// checks its own gets; versions only grow.
    pub(super) async fn mixed(&self) -> Result<Report, CliError> {
        let timed = self.run_timed("mixed", 0xc2b2_ae35, |worker, stop| {
            let Worker {
                mut rng,
                clock,
                db,
                bar,
                compacting,
                ..
            } = worker;
            let (keys, size, put_percent) = (self.args.keys.max(1), self.args.value_size, self.args.put_percent);
            async move {
                let mut latencies = Latencies::default();
                let mut puts = 0u64;
                let options = WriteOptions {
                    await_durable: false,
                    ..WriteOptions::default()
                };
                while !stop.load(Ordering::Relaxed) {
                    let i = rng.below(keys);
                    let at = clock.now();
                    let during = compacting.load(Ordering::Relaxed);
                    if rng.below(100) < u64::from(put_percent) {
                        db.put_with_options(key(i), value(i, 1, size, &mut rng), options)
                            .await?;
                        puts += 1;
                    } else if let Err(wrong) = check_value(i, db.get(key(i)).await?.as_ref(), size) {
                        return Ok(Err(wrong));
                    }
                    latencies.record_during(clock.now() - at, during);
                    bar.inc(1);
                }
                Ok(Ok((latencies, puts)))
            }
        });
        let Timed {
            latency,
            count: puts,
            seconds,
            stats,
        } = timed.await?;
        self.count_puts(puts);
        let ops = latency.count() as u64;
        Ok(self.report(
            "mixed",
            ops,
            seconds,
            Some(latency),
            [
                ("puts", json!(puts)),
                ("gets", json!(ops - puts)),
                ("requests_per_op", json!(self.counts.total() as f64 / ops.max(1) as f64)),
                ("shape", shape_json(&stats)),
                ("memory", memory_json(&stats)),
            ],
        ))
    }

    /// Read-modify-write transactions over the first `--hot-keys` rows
    /// for `--duration-s`: each reads two rows (checking them) and writes
    /// both back; a conflict counts as an abort and is not retried.
    pub(super) async fn txn(&self) -> Result<Report, CliError> {
        let timed = self.run_timed("txn", 0x27d4_eb2f, |worker, stop| {
            let Worker {
                mut rng,
                clock,
                db,
                bar,
                compacting,
                ..
            } = worker;
            let (hot, size) = (self.args.hot_keys.clamp(1, self.args.keys.max(1)), self.args.value_size);
            async move {
                let mut latencies = Latencies::default();
                let mut aborts = 0u64;
                let options = WriteOptions {
                    await_durable: false,
                    ..WriteOptions::default()
                };
                while !stop.load(Ordering::Relaxed) {
                    let at = clock.now();
                    let during = compacting.load(Ordering::Relaxed);
                    let mut txn = db.begin(IsolationLevel::Snapshot);
                    for i in [rng.below(hot), rng.below(hot)] {
                        if let Err(wrong) = check_value(i, txn.get(key(i)).await?.as_ref(), size) {
                            return Ok(Err(wrong));
                        }
                        txn.put(key(i), value(i, 1, size, &mut rng));
                    }
                    match txn.commit_with_options(options).await {
                        Ok(_) => latencies.record_during(clock.now() - at, during),
                        Err(error) if error.kind() == &ErrorKind::TransactionConflict => aborts += 1,
                        Err(error) => return Err(error),
                    }
                    bar.inc(1);
                }
                Ok(Ok((latencies, aborts)))
            }
        });
        let Timed {
            latency,
            count: aborts,
            seconds,
            stats,
        } = timed.await?;
        let commits = latency.count() as u64;
        self.count_puts(commits * 2);
        Ok(self.report(
            "txn",
            commits,
            seconds,
            Some(latency),
            [
                ("commits", json!(commits)),
                ("aborts", json!(aborts)),
                ("aborts_per_s", json!(aborts as f64 / seconds.max(f64::MIN_POSITIVE))),
                ("hot_keys", json!(self.args.hot_keys)),
                (
                    "requests_per_commit",
                    json!(self.counts.total() as f64 / commits.max(1) as f64),
                ),
                ("shape", shape_json(&stats)),
            ],
        ))
    }
}
