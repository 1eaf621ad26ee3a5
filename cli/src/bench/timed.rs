//! The timed workloads: `mixed` and `txn` run for `--duration-s` on
//! `--writers` + `--readers` tasks, sharing one prologue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use indicatif::ProgressBar;
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
        let operator = (name == "merge").then(|| Arc::new(Counter) as Arc<dyn talusdb::MergeOperator>);
        let db = self.open_with(operator).await?;
        self.reset_counts();
        let tasks_count = (self.args.writers + self.args.readers).max(1) as u64;
        let duration = Duration::from_secs_f64(self.args.duration_s.max(0.0));
        let stop = Arc::new(AtomicBool::new(false));
        // The workers count operations on a bar never drawn; the bar shown
        // runs on time, with the count in its message.
        let (ops, bar) = (ProgressBar::hidden(), self.timed_progress(name, duration));
        let started = self.runtime.now();
        let tasks = self.spawn_workers(tasks_count, salt, &db, &ops, |worker| task(worker, stop.clone()));
        loop {
            let elapsed = self.runtime.now() - started;
            bar.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
            bar.set_message(format!("{name} {} ops", ops.position()));
            if elapsed >= duration {
                break;
            }
            self.runtime
                .sleep((duration - elapsed).min(Duration::from_millis(200)))
                .await;
        }
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

    /// Counter increments and reads over the first `--hot-keys` counters
    /// for `--duration-s`: `--put-percent` of the operations merge 1 into
    /// a counter, the rest read one (folding its operands) and check it is
    /// at least the increments this task has had acknowledged there.
    pub(super) async fn merge(&self) -> Result<Report, CliError> {
        let timed = self.run_timed("merge", 0x1656_67b1, |worker, stop| {
            let Worker {
                mut rng,
                clock,
                db,
                bar,
                compacting,
                ..
            } = worker;
            let (hot, put_percent) = (self.args.hot_keys.max(1), self.args.put_percent);
            async move {
                let mut latencies = Latencies::default();
                let mut merges = 0u64;
                let mut mine = vec![0u64; hot as usize];
                let options = WriteOptions {
                    await_durable: false,
                    ..WriteOptions::default()
                };
                let one = Bytes::copy_from_slice(&1u64.to_le_bytes());
                while !stop.load(Ordering::Relaxed) {
                    let i = rng.below(hot);
                    let at = clock.now();
                    let during = compacting.load(Ordering::Relaxed);
                    if rng.below(100) < u64::from(put_percent) {
                        db.merge_with_options(counter_key(i), one.clone(), options).await?;
                        mine[i as usize] += 1;
                        merges += 1;
                    } else {
                        let seen = db.get(counter_key(i)).await?.map_or(Ok(0), |value| counter(&value));
                        match seen {
                            Ok(seen) if seen >= mine[i as usize] => {}
                            Ok(seen) => {
                                return Ok(Err(CliError::WrongAnswer(format!(
                                    "counter {i} reads {seen}, below the {} increments acknowledged to this task",
                                    mine[i as usize]
                                ))));
                            }
                            Err(error) => return Ok(Err(CliError::WrongAnswer(format!("counter {i}: {error}")))),
                        }
                    }
                    latencies.record_during(clock.now() - at, during);
                    bar.inc(1);
                }
                Ok(Ok((latencies, merges)))
            }
        });
        let Timed {
            latency,
            count: merges,
            seconds,
            stats,
        } = timed.await?;
        self.count_puts(merges);
        let ops = latency.count() as u64;
        Ok(self.report(
            "merge",
            ops,
            seconds,
            Some(latency),
            [
                ("merges", json!(merges)),
                ("gets", json!(ops - merges)),
                ("hot_keys", json!(self.args.hot_keys)),
                ("shape", shape_json(&stats)),
            ],
        ))
    }
}

/// The key of counter `i` (apart from the rows `fill` writes).
fn counter_key(i: u64) -> Bytes {
    Bytes::from(format!("counter/{i:08}"))
}

/// A counter's value.
fn counter(bytes: &[u8]) -> Result<u64, talusdb::MergeError> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| talusdb::MergeError::new(format!("a counter of {} bytes, not 8", bytes.len())))?;
    Ok(u64::from_le_bytes(array))
}

/// The bench's merge operator: little-endian u64 counters, operands added
/// up (also partially, so compaction can join them with no base).
#[derive(Debug)]
struct Counter;

impl talusdb::MergeOperator for Counter {
    fn name(&self) -> &str {
        "talus-bench-counter-u64"
    }

    fn full_merge(&self, _key: &[u8], base: Option<&[u8]>, operands: &[&[u8]]) -> Result<Bytes, talusdb::MergeError> {
        let mut total = base.map(counter).transpose()?.unwrap_or(0);
        for operand in operands {
            total = total.wrapping_add(counter(operand)?);
        }
        Ok(Bytes::copy_from_slice(&total.to_le_bytes()))
    }

    fn partial_merge(&self, key: &[u8], operands: &[&[u8]]) -> Option<Result<Bytes, talusdb::MergeError>> {
        Some(self.full_merge(key, None, operands))
    }
}
