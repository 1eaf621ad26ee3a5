//! The `follow` workload: `--writers` tasks make durable puts for
//! `--duration-s` while a reader that follows the writer
//! (`DbBuilder::open_reader`, default options) polls their keys; each
//! acknowledged put's staleness is the time from its acknowledgement until
//! the reader first sees it (or a later value of the key). Then the writer
//! closes and the reader idles for `--idle-s`: its requests per second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::json;
use talusdb::ReaderOptions;
use talusdb::store::LatencyStore;

use super::Bench;
use super::report::{Latencies, Report, rate};
use crate::CliError;

/// How often the reader task looks at every writer's key.
const POLL: Duration = Duration::from_millis(2);

/// Per writer, the acknowledgement time of each value (value `n` at index
/// `n - 1`).
type Acks = Arc<Mutex<Vec<Vec<Duration>>>>;

fn joined(error: impl std::fmt::Display) -> talusdb::Error {
    talusdb::Error::new(
        talusdb::ErrorKind::Internal,
        format!("a benchmark task failed: {error}"),
    )
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn writer_key(writer: usize) -> String {
    format!("follow/{writer:04}")
}

impl Bench {
    pub(super) async fn follow(&self) -> Result<Report, CliError> {
        let writers = self.args.writers.max(1);
        let db = self.open().await?;
        let counted = Arc::new(LatencyStore::new(
            self.store.clone(),
            self.runtime.clone(),
            Duration::ZERO,
        ));
        let reader_counts = counted.counts();
        let counted_wal = self.wal_store.clone().map(|wal_store| {
            Arc::new(LatencyStore::with_counts(
                wal_store,
                self.runtime.clone(),
                Duration::ZERO,
                reader_counts.clone(),
            )) as Arc<dyn talusdb::store::Store>
        });
        let reader = self
            .builder_on(counted, counted_wal)
            .open_reader(ReaderOptions::default())
            .await?;
        self.reset_counts();
        let acks: Acks = Arc::new(Mutex::new(vec![Vec::new(); writers]));
        let stop = Arc::new(AtomicBool::new(false));
        let started = self.runtime.now();
        let deadline = started + Duration::from_secs_f64(self.args.duration_s);
        let tasks: Vec<_> = (0..writers)
            .map(|writer| {
                let (db, acks, clock) = (db.clone(), acks.clone(), self.runtime.clone());
                self.runtime.spawn(async move {
                    let mut n = 0u64;
                    while clock.now() < deadline {
                        n += 1;
                        db.put(writer_key(writer), n.to_string()).await?;
                        lock(&acks)[writer].push(clock.now());
                    }
                    Ok::<u64, talusdb::Error>(n)
                })
            })
            .collect();
        let watcher = {
            let (reader, acks, clock, stop) = (reader.clone(), acks.clone(), self.runtime.clone(), stop.clone());
            self.runtime.spawn(async move {
                let mut seen = vec![0u64; writers];
                let mut staleness = Latencies::default();
                loop {
                    let stopping = stop.load(Ordering::Acquire);
                    for (writer, last) in seen.iter_mut().enumerate() {
                        let Some(value) = reader.get(writer_key(writer)).await? else {
                            continue;
                        };
                        let n: u64 = std::str::from_utf8(&value)
                            .ok()
                            .and_then(|text| text.parse().ok())
                            .unwrap_or(0);
                        if n > *last {
                            let now = clock.now();
                            let acked = lock(&acks)[writer].clone();
                            for at in acked.iter().take(n as usize).skip(*last as usize) {
                                staleness.record_during(now.saturating_sub(*at), false);
                            }
                            *last = n;
                        }
                    }
                    let caught_up = {
                        let acks = lock(&acks);
                        seen.iter()
                            .zip(acks.iter())
                            .all(|(seen, acked)| *seen >= acked.len() as u64)
                    };
                    if stopping && caught_up {
                        return Ok::<Latencies, talusdb::Error>(Latencies::merge(vec![staleness]));
                    }
                    clock.sleep(POLL).await;
                }
            })
        };
        let mut puts = 0u64;
        for task in tasks {
            puts += task.await.map_err(joined)??;
        }
        let seconds = self.seconds_since(started);
        self.count_puts(puts);
        stop.store(true, Ordering::Release);
        let staleness = watcher.await.map_err(joined)??;
        let writer_requests = self.counts.snapshot();
        db.close().await?;

        // The reader alone, with nothing to find.
        reader_counts.reset();
        let idle = Duration::from_secs_f64(self.args.idle_s);
        let idle_started = self.runtime.now();
        self.runtime.sleep(idle).await;
        let idle_seconds = self.seconds_since(idle_started);
        let idle_requests = reader_counts.snapshot();
        let idle_total = reader_counts.total();
        reader.close().await?;
        Ok(self.report(
            "follow",
            puts,
            seconds,
            None,
            [
                ("staleness_us", staleness.json()),
                ("writer_requests", json!(writer_requests)),
                ("reader_idle_s", json!(idle_seconds)),
                ("reader_idle_requests", json!(idle_requests)),
                ("reader_idle_requests_per_s", json!(rate(idle_total, idle_seconds))),
            ],
        ))
    }
}
