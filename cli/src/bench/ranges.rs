//! The `range-delete` workload: delete a tenth of the filled key space in
//! ranges of `--range-len` rows (one range delete each, or with
//! `--per-key-deletes` one delete per key), then read across it cold: one
//! full scan and `--ops` gets, every answer checked.

use std::sync::atomic::Ordering;

use futures::StreamExt;
use serde_json::json;
use talusdb::WriteOptions;

use super::report::{Latencies, Report, rate, shape_json};
use super::rows::{check_value, key};
use super::{Bench, Worker, gather};
use crate::CliError;

/// Which rows the workload deletes: `ranges` runs of `len` rows, one every
/// `stride` rows from row 0, a tenth of `keys` in all.
#[derive(Clone, Copy, Debug)]
struct Deleted {
    ranges: u64,
    len: u64,
    stride: u64,
    keys: u64,
}

impl Deleted {
    fn new(keys: u64, len: u64) -> Deleted {
        let len = len.clamp(1, keys.max(1));
        let ranges = (keys / 10 / len).max(1);
        Deleted {
            ranges,
            len,
            stride: (keys / ranges).max(len),
            keys,
        }
    }

    /// The rows of range `range`, `first..past`.
    fn range(&self, range: u64) -> (u64, u64) {
        let first = range * self.stride;
        (first, (first + self.len).min(self.keys))
    }

    fn contains(&self, row: u64) -> bool {
        let range = row / self.stride;
        range < self.ranges && row - range * self.stride < self.len
    }

    fn rows(&self) -> u64 {
        (0..self.ranges)
            .map(|range| self.range(range))
            .map(|(first, past)| past - first)
            .sum()
    }
}

impl Bench {
    /// Deletes the ranges, flushes them into L0, reopens cold, then scans
    /// everything once and makes `--ops` gets from `--readers` tasks.
    pub(super) async fn range_delete(&self) -> Result<Report, CliError> {
        let deleted = Deleted::new(self.args.keys, self.args.range_len);
        let per_key = self.args.per_key_deletes;
        let db = self.open().await?;
        self.reset_counts();
        let started = self.runtime.now();
        let quick = WriteOptions {
            await_durable: false,
            ..WriteOptions::default()
        };
        let mut writes = 0u64;
        for range in 0..deleted.ranges {
            let (first, past) = deleted.range(range);
            if per_key {
                for row in first..past {
                    db.delete_with_options(key(row), quick).await?;
                    writes += 1;
                }
            } else {
                db.delete_range_with_options(key(first)..key(past), quick).await?;
                writes += 1;
            }
        }
        db.flush().await?;
        let delete_seconds = self.seconds_since(started);
        db.flush_memtable().await?;
        let delete_requests = self.counts.snapshot();
        db.close().await?;

        let db = self.open().await?;
        self.reset_counts();
        let started = self.runtime.now();
        let mut rows = db.scan::<&[u8]>(..);
        let (mut seen, mut next_row) = (0u64, 0u64);
        while let Some(row) = rows.next().await {
            let (found_key, found_value) = row?;
            while deleted.contains(next_row) {
                next_row += 1;
            }
            if found_key != key(next_row) {
                return Err(CliError::WrongAnswer(format!(
                    "full scan: row {seen} has key {found_key:?}, expected {:?}",
                    key(next_row)
                )));
            }
            check_value(next_row, Some(&found_value), self.args.value_size)?;
            (seen, next_row) = (seen + 1, next_row + 1);
        }
        let scan_seconds = self.seconds_since(started);
        let scan_requests = self.counts.snapshot();
        if seen != self.args.keys - deleted.rows() {
            return Err(CliError::WrongAnswer(format!(
                "the full scan returned {seen} rows, expected {}",
                self.args.keys - deleted.rows()
            )));
        }

        self.reset_counts();
        let bar = self.progress("gets", self.args.ops);
        let started = self.runtime.now();
        let tasks = self.spawn_workers(self.args.readers as u64, 0x2f6b_9d13, &db, &bar, |worker| {
            let Worker {
                ops,
                mut rng,
                clock,
                db,
                bar,
                compacting,
                ..
            } = worker;
            let (keys, size) = (self.args.keys, self.args.value_size);
            async move {
                let mut latencies = Latencies::default();
                let mut absent = 0u64;
                for _ in 0..ops {
                    // Half the gets aim inside a deleted range.
                    let row = if rng.below(2) == 0 {
                        let (first, past) = deleted.range(rng.below(deleted.ranges));
                        first + rng.below(past - first)
                    } else {
                        rng.below(keys)
                    };
                    let at = clock.now();
                    let during = compacting.load(Ordering::Relaxed);
                    let found = db.get(key(row)).await?;
                    latencies.record_during(clock.now() - at, during);
                    if deleted.contains(row) {
                        absent += 1;
                        if found.is_some() {
                            return Ok(Err(CliError::WrongAnswer(format!("deleted row {row} was found"))));
                        }
                    } else if let Err(wrong) = check_value(row, found.as_ref(), size) {
                        return Ok(Err(wrong));
                    }
                    bar.inc(1);
                }
                Ok(Ok((latencies, absent)))
            }
        });
        let (latency, absent) = gather(tasks).await?;
        let seconds = self.seconds_since(started);
        bar.finish_and_clear();
        let stats = db.stats();
        db.close().await?;
        Ok(self.report(
            if per_key { "per-key-delete" } else { "range-delete" },
            self.args.ops,
            seconds,
            Some(latency),
            [
                ("deleted_rows", json!(deleted.rows())),
                ("delete_writes", json!(writes)),
                ("delete_s", json!(delete_seconds)),
                ("delete_requests", json!(delete_requests)),
                ("scan_rows", json!(seen)),
                ("scan_s", json!(scan_seconds)),
                ("scan_rows_per_s", json!(rate(seen, scan_seconds))),
                ("scan_requests", json!(scan_requests)),
                ("gets_of_deleted_rows", json!(absent)),
                ("shape", shape_json(&stats)),
            ],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenth_of_the_rows_is_deleted_in_evenly_spaced_ranges() {
        let deleted = Deleted::new(200_000, 100);
        assert_eq!(deleted.ranges, 200);
        assert_eq!(deleted.rows(), 20_000);
        assert!(deleted.contains(0) && deleted.contains(99) && !deleted.contains(100));
        assert!(deleted.contains(1_000) && !deleted.contains(199_999));
        assert_eq!((0..200_000).filter(|row| deleted.contains(*row)).count(), 20_000);
        let tiny = Deleted::new(5, 100);
        assert_eq!(tiny.rows(), 5, "a range never runs past the last row");
        assert!((0..5).all(|row| tiny.contains(row)));
    }
}
