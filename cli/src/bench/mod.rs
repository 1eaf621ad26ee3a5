//! `talus bench`: the load benchmark (rows in `rows`, reports in `report`,
//! the store after the run in `store_after`). Workloads, keys, values and the
//! reported fields are described in `docs/cli.md`.
//!
//! Row i's key is the 16-digit zero-padded decimal of 2·i (absent keys use
//! 2·i+1). A value's first 8 bytes hold i and the next 4 its version (how
//! many times the key was written before), so every answer can be checked;
//! the rest is random. The run fails on the first wrong answer.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, ValueEnum};
use futures::StreamExt;
use futures::future::join_all;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use talusdb::actors::Runtime;
use talusdb::actors::runtime::JoinHandle;
use talusdb::store::{LatencyStore, RequestCounts, Store};
use talusdb::{Db, Error, ErrorKind, ScanOptions, ScanOrder};

use crate::{CliError, stores};

mod follow;
mod halt;
mod ranges;
mod report;
mod rows;
mod store_after;
mod timed;
mod writes;

use halt::{Halt, remove_database};
use report::{Latencies, Report, memory_json, peak_rss_bytes, rate, shape_json};
use rows::{KEY_BYTES, Rng, absent_key, check_value, key, value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Non-durable puts of every key in shuffled order, then flush and close.
    Fill,
    /// Puts that each wait for durability.
    DurablePut,
    /// Random gets on a cold, flushed database.
    Get,
    /// Scans of `--scan-len` rows on a cold, flushed database.
    Scan,
    /// Overwrites and gets for `--duration-s`.
    Mixed,
    /// Read-modify-write transactions for `--duration-s`: each reads two
    /// keys of the first `--hot-keys` and writes both back; a conflict
    /// counts as an abort (not retried).
    Txn,
    /// Counter increments (`Db::merge`, `--put-percent` of the operations)
    /// and reads that fold them, over `--hot-keys` counters, for
    /// `--duration-s`.
    Merge,
    /// Deletes a tenth of the rows in ranges of `--range-len` (one range
    /// delete each; with `--per-key-deletes` one delete per row), then one
    /// cold full scan and `--ops` gets across them.
    RangeDelete,
    /// Durable puts from `--writers` tasks for `--duration-s` while a
    /// reader that follows the writer polls their keys: how long each
    /// acknowledged put takes to be seen; then the reader idles for
    /// `--idle-s` (its requests per second).
    Follow,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to run (default: `fill`, then `get` on the filled database).
    #[arg(long, value_enum)]
    workload: Option<Workload>,
    /// Rows in the database.
    #[arg(long, default_value_t = 200_000)]
    keys: u64,
    /// Operations to measure (gets, scans, durable puts).
    #[arg(long, default_value_t = 100_000)]
    ops: u64,
    /// Bytes per value (at least 12, so values carry their key and version).
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Concurrent writers (at least 1).
    #[arg(long, default_value_t = 4, value_parser = at_least_one)]
    writers: usize,
    /// Concurrent readers (at least 1).
    #[arg(long, default_value_t = 4, value_parser = at_least_one)]
    readers: usize,
    /// Fraction of gets that ask for an absent key.
    #[arg(long, default_value_t = 0.0)]
    miss_ratio: f64,
    /// Rows per scan.
    #[arg(long, default_value_t = 100)]
    scan_len: u64,
    /// `scan` reads keys descending (from a random row down).
    #[arg(long)]
    reverse: bool,
    /// Percent of `mixed` operations that are puts.
    #[arg(long, default_value_t = 50)]
    put_percent: u8,
    /// How long `mixed`, `txn`, `merge` and `follow` run.
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// How long the `follow` workload's reader idles after the writes.
    #[arg(long, default_value_t = 10.0)]
    idle_s: f64,
    /// Keys `txn` transactions pick from (the hot set; fewer means more
    /// conflicts).
    #[arg(long, default_value_t = 1000)]
    hot_keys: u64,
    /// Added to every object-store request.
    #[arg(long, default_value_t = 0.0)]
    latency_ms: f64,
    /// Added to every request to the WAL's own store (`--wal-store`;
    /// default: `--latency-ms`), e.g. a low-latency bucket class.
    #[arg(long)]
    wal_latency_ms: Option<f64>,
    /// Seeds key order, values and choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// After the load (or, with `--existing`, before the workload), wait
    /// until compaction has settled, so a read workload runs with no
    /// compaction going on.
    #[arg(long)]
    settle: bool,
    /// Block cache capacity in MiB (default: the engine's).
    #[arg(long)]
    block_cache_mib: Option<u64>,
    /// Index and filter cache capacity in MiB (default: the engine's).
    #[arg(long)]
    meta_cache_mib: Option<u64>,
    /// The share of time a compaction may use while reads are busy, above
    /// 0 and at most 1 (default: the engine's).
    #[arg(long)]
    compaction_busy_share: Option<f64>,
    /// Run the read workload on a database an earlier `--keep` run left
    /// (its path, as printed), with the same `--keys`, `--value-size` and
    /// `--seed`, instead of loading a new one. Implies `--keep`.
    #[arg(long, value_name = "PATH")]
    existing: Option<String>,
    /// Rows per deleted range in `range-delete`.
    #[arg(long, default_value_t = 100)]
    range_len: u64,
    /// `range-delete` deletes the same rows one by one instead, for the
    /// comparison.
    #[arg(long)]
    per_key_deletes: bool,
    /// Keep the benchmark's database (its path is printed) instead of
    /// deleting it at the end.
    #[arg(long)]
    keep: bool,
}

/// What one benchmark task ends with: its latencies and a count of its
/// own (misses, rows, puts), or the wrong answer it met, or the database's
/// error.
type TaskResult = Result<Result<(Latencies, u64), CliError>, Error>;

/// Awaits every task: their latencies merged and their counts summed.
async fn gather(workers: Workers) -> Result<(Latencies, u64), CliError> {
    let mut parts = Vec::new();
    let mut total = 0;
    let Workers { tasks, watch, stop } = workers;
    let joined = join_all(tasks).await;
    stop.store(true, Ordering::Relaxed);
    let _ = watch.await;
    for task in joined {
        let joined =
            task.map_err(|error| Error::new(ErrorKind::Internal, format!("a benchmark task failed: {error}")))?;
        let (latencies, count) = joined??;
        parts.push(latencies);
        total += count;
    }
    Ok((Latencies::merge(parts), total))
}

/// A workload's tasks, and the task watching for compactions meanwhile.
struct Workers {
    tasks: Vec<JoinHandle<TaskResult>>,
    watch: JoinHandle<()>,
    stop: Arc<AtomicBool>,
}

/// What one benchmark task is handed (see [`Bench::spawn_workers`]).
struct Worker {
    index: u64,
    /// Its share of `--ops`.
    ops: u64,
    rng: Rng,
    clock: Runtime,
    db: Db,
    bar: ProgressBar,
    /// Whether a compaction job is running (sampled every millisecond).
    compacting: Arc<AtomicBool>,
}

/// The benchmark's state: the store (behind a counting latency wrapper),
/// where the database lives, and the arguments.
struct Bench {
    args: BenchArgs,
    store: Arc<dyn Store>,
    /// The WAL's own store (`--wal-store`), counted with `store`.
    wal_store: Option<Arc<dyn Store>>,
    counts: Arc<RequestCounts>,
    /// Bytes uploaded by the workloads before the last count reset.
    written_before: std::sync::atomic::AtomicU64,
    /// Bytes of keys and values the workloads put (every put counted).
    user_written: std::sync::atomic::AtomicU64,
    runtime: Runtime,
    path: String,
    show_progress: bool,
}

impl Bench {
    /// Starts counting requests afresh (bytes uploaded are kept in a total
    /// for the write amplification).
    fn reset_counts(&self) {
        self.written_before
            .fetch_add(self.counts.bytes_written(), Ordering::Relaxed);
        self.counts.reset();
    }

    /// Bytes uploaded since the benchmark started.
    fn total_written(&self) -> u64 {
        self.written_before.load(Ordering::Relaxed) + self.counts.bytes_written()
    }

    /// Bytes the user wrote in the load: every key and value once.
    fn user_bytes(&self) -> u64 {
        self.args.keys * self.row_bytes()
    }

    /// Bytes of one put's key and value.
    fn row_bytes(&self) -> u64 {
        KEY_BYTES + self.args.value_size as u64
    }

    /// Counts `puts` puts towards the write amplification.
    fn count_puts(&self, puts: u64) {
        self.user_written.fetch_add(puts * self.row_bytes(), Ordering::Relaxed);
    }

    async fn open(&self) -> Result<Db, Error> {
        self.open_with(None).await
    }

    /// A builder for the benchmark's database on its stores.
    fn builder(&self) -> talusdb::DbBuilder {
        self.builder_on(self.store.clone(), self.wal_store.clone())
    }

    /// A builder for the benchmark's database on `store` (and `wal_store`).
    fn builder_on(&self, store: Arc<dyn Store>, wal_store: Option<Arc<dyn Store>>) -> talusdb::DbBuilder {
        let builder = Db::builder(self.path.as_str(), store).runtime(self.runtime.clone());
        match wal_store {
            Some(wal_store) => builder.wal_store(wal_store),
            None => builder,
        }
    }

    /// Opens the database with `operator` (only the `merge` workload
    /// records one in the manifest).
    async fn open_with(&self, operator: Option<Arc<dyn talusdb::MergeOperator>>) -> Result<Db, Error> {
        let mut options = talusdb::DbOptions::default();
        if let Some(mib) = self.args.block_cache_mib {
            options.tables.block_cache_bytes = mib << 20;
        }
        if let Some(mib) = self.args.meta_cache_mib {
            options.tables.meta_cache_bytes = mib << 20;
        }
        if let (Some(share), Some(compactor)) = (self.args.compaction_busy_share, options.compactor.as_mut()) {
            compactor.busy_share = share;
        }
        let builder = self.builder().seed(self.args.seed).options(options);
        match operator {
            Some(operator) => builder.merge_operator(operator).open().await,
            None => builder.open().await,
        }
    }

    fn progress(&self, label: &str, total: u64) -> ProgressBar {
        self.drawn_bar(label, total, "{msg:>12} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
    }

    /// A bar for a workload that runs for `duration`: its position is the
    /// milliseconds elapsed, its message the workload and its count.
    fn timed_progress(&self, label: &str, duration: Duration) -> ProgressBar {
        let total = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1);
        let bar = self.drawn_bar(label, total, "{msg:>24} [{bar:40}] {elapsed} of {prefix}");
        bar.set_prefix(format!("{:.0}s", duration.as_secs_f64()));
        bar
    }

    /// A bar of `total` steps drawn on stderr with `template` (hidden
    /// unless progress is shown).
    fn drawn_bar(&self, label: &str, total: u64, template: &str) -> ProgressBar {
        if !self.show_progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_owned());
        bar
    }

    /// Seconds from `started` (a time on the runtime's clock) until now.
    fn seconds_since(&self, started: Duration) -> f64 {
        (self.runtime.now() - started).as_secs_f64()
    }

    /// A workload's report, with the store requests counted since the
    /// last reset.
    fn report(
        &self,
        workload: &'static str,
        ops: u64,
        seconds: f64,
        latency: Option<Latencies>,
        extra: impl IntoIterator<Item = (&'static str, Value)>,
    ) -> Report {
        Report {
            workload,
            ops,
            seconds,
            latency,
            extra: extra
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect(),
            requests: json!(self.counts.snapshot()),
        }
    }

    /// Spawns `count` (at least one) tasks made by `task`, handing each
    /// its index, its share of `--ops`, its own RNG (seeded from `--seed`,
    /// `salt` and the index), the clock and handles on `db` and `bar`.
    fn spawn_workers<F, Fut>(&self, count: u64, salt: u64, db: &Db, bar: &ProgressBar, task: F) -> Workers
    where
        F: Fn(Worker) -> Fut,
        Fut: Future<Output = TaskResult> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let (compacting, watch) = self.watch_compactions(db, &stop);
        let count = count.max(1);
        let ops = self.args.ops;
        let tasks = (0..count)
            .map(|index| {
                self.runtime.spawn(task(Worker {
                    index,
                    ops: ops / count + u64::from(index < ops % count),
                    rng: Rng(self.args.seed ^ (index + 1).wrapping_mul(salt)),
                    clock: self.runtime.clone(),
                    db: db.clone(),
                    bar: bar.clone(),
                    compacting: compacting.clone(),
                }))
            })
            .collect();
        Workers { tasks, watch, stop }
    }

    /// Samples, every millisecond until `stop`, whether `db`'s compactor is
    /// running a job.
    fn watch_compactions(&self, db: &Db, stop: &Arc<AtomicBool>) -> (Arc<AtomicBool>, JoinHandle<()>) {
        let compacting = Arc::new(AtomicBool::new(false));
        let (flag, db, stop, clock) = (compacting.clone(), db.clone(), stop.clone(), self.runtime.clone());
        let task = self.runtime.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                flag.store(db.stats().compactor.running_jobs > 0, Ordering::Relaxed);
                clock.sleep(Duration::from_millis(1)).await;
            }
        });
        (compacting, task)
    }

    /// The key order of a fill: every row once, shuffled.
    fn shuffled(&self) -> Vec<u64> {
        let mut order: Vec<u64> = (0..self.args.keys).collect();
        let mut rng = Rng(self.args.seed);
        for i in (1..order.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        order
    }

    /// Opens the database, waits until compaction has settled, closes.
    async fn settle(&self) -> Result<(), CliError> {
        let db = self.open().await?;
        let settled = db.wait_for_compactions().await;
        db.close().await?;
        Ok(settled?)
    }

    /// Random gets (a `--miss-ratio` share of absent keys) from
    /// `--readers` tasks on a freshly opened database: every cache is cold.
    async fn get(&self) -> Result<Report, CliError> {
        let db = self.open().await?;
        self.reset_counts();
        let bar = self.progress("get", self.args.ops);
        let started = self.runtime.now();
        let tasks = self.spawn_workers(self.args.readers as u64, 0x9e37_79b9, &db, &bar, |worker| {
            let Worker {
                ops,
                mut rng,
                clock,
                db,
                bar,
                compacting,
                ..
            } = worker;
            let (keys, size, miss_ratio) = (self.args.keys.max(1), self.args.value_size, self.args.miss_ratio);
            async move {
                let mut latencies = Latencies::default();
                let mut misses = 0u64;
                for _ in 0..ops {
                    let i = rng.below(keys);
                    let miss = rng.chance(miss_ratio);
                    let at = clock.now();
                    let during = compacting.load(Ordering::Relaxed);
                    let found = db.get(if miss { absent_key(i) } else { key(i) }).await?;
                    latencies.record_during(clock.now() - at, during);
                    if miss {
                        misses += 1;
                        if found.is_some() {
                            return Ok(Err(CliError::WrongAnswer(format!(
                                "absent key {:016} was found",
                                2 * i + 1
                            ))));
                        }
                    } else if let Err(wrong) = check_value(i, found.as_ref(), size) {
                        return Ok(Err(wrong));
                    }
                    bar.inc(1);
                }
                Ok(Ok((latencies, misses)))
            }
        });
        let (latency, misses) = gather(tasks).await?;
        let seconds = self.seconds_since(started);
        bar.finish_and_clear();
        let (reads, bytes_read) = (self.counts.reads(), self.counts.bytes_read());
        let stats = db.stats();
        db.close().await?;
        let lookups = self.args.ops.max(1) as f64;
        Ok(self.report(
            "get",
            self.args.ops,
            seconds,
            Some(latency),
            [
                ("misses", json!(misses)),
                ("store_reads", json!(reads)),
                ("reads_per_lookup", json!(reads as f64 / lookups)),
                ("bytes_read_per_lookup", json!(bytes_read as f64 / lookups)),
                ("compactions", json!(stats.compactor.compactions)),
                ("shape", shape_json(&stats)),
                ("memory", memory_json(&stats)),
            ],
        ))
    }

    /// Scans of `--scan-len` rows from random starting rows, on a freshly
    /// opened database; each scan's rows are checked one by one.
    async fn scan(&self) -> Result<Report, CliError> {
        let db = self.open().await?;
        self.reset_counts();
        let bar = self.progress("scan", self.args.ops);
        let started = self.runtime.now();
        let tasks = self.spawn_workers(self.args.readers as u64, 0x85eb_ca6b, &db, &bar, |worker| {
            let Worker {
                ops,
                mut rng,
                clock,
                db,
                bar,
                compacting,
                ..
            } = worker;
            let (keys, size, scan_len) = (self.args.keys.max(1), self.args.value_size, self.args.scan_len);
            let reverse = self.args.reverse;
            async move {
                let mut latencies = Latencies::default();
                let mut rows = 0u64;
                for _ in 0..ops {
                    let first = rng.below(keys);
                    let at = clock.now();
                    let during = compacting.load(Ordering::Relaxed);
                    let (expected, stream) = if reverse {
                        let options = ScanOptions {
                            order: ScanOrder::Reverse,
                            ..ScanOptions::default()
                        };
                        (
                            scan_len.min(first + 1),
                            db.scan_with_options(..=key(first), options).boxed(),
                        )
                    } else {
                        (
                            scan_len.min(keys - first),
                            db.scan_with_options(key(first).., ScanOptions::default()).boxed(),
                        )
                    };
                    let mut stream = stream.take(scan_len as usize);
                    let mut seen = 0u64;
                    while let Some(row) = stream.next().await {
                        let (found_key, found_value) = row?;
                        let i = if reverse { first - seen } else { first + seen };
                        if found_key != key(i) {
                            return Ok(Err(CliError::WrongAnswer(format!(
                                "scan from row {first}: row {seen} has key {:?}, expected {:016}",
                                found_key,
                                2 * i
                            ))));
                        }
                        if let Err(wrong) = check_value(i, Some(&found_value), size) {
                            return Ok(Err(wrong));
                        }
                        seen += 1;
                    }
                    latencies.record_during(clock.now() - at, during);
                    if seen != expected {
                        return Ok(Err(CliError::WrongAnswer(format!(
                            "scan from row {first} returned {seen} rows, expected {expected}"
                        ))));
                    }
                    rows += seen;
                    bar.inc(1);
                }
                Ok(Ok((latencies, rows)))
            }
        });
        let (latency, rows) = gather(tasks).await?;
        let seconds = self.seconds_since(started);
        bar.finish_and_clear();
        let (reads, bytes_read) = (self.counts.reads(), self.counts.bytes_read());
        let stats = db.stats();
        db.close().await?;
        let scans = self.args.ops.max(1) as f64;
        Ok(self.report(
            "scan",
            self.args.ops,
            seconds,
            Some(latency),
            [
                ("rows", json!(rows)),
                ("rows_per_s", json!(rate(rows, seconds))),
                ("reverse", json!(self.args.reverse)),
                ("reads_per_scan", json!(reads as f64 / scans)),
                ("bytes_read_per_scan", json!(bytes_read as f64 / scans)),
                ("shape", shape_json(&stats)),
                ("memory", memory_json(&stats)),
            ],
        ))
    }
}

fn check_args(args: &BenchArgs) -> Result<(), CliError> {
    let bad = |message: &str| Err(CliError::Usage(message.to_owned()));
    if args.value_size < 12 {
        return bad("--value-size must be at least 12 (values carry their key and version)");
    }
    if !(0.0..=1.0).contains(&args.miss_ratio) {
        return bad("--miss-ratio must be between 0 and 1");
    }
    if args.put_percent > 100 {
        return bad("--put-percent must be at most 100");
    }
    if args.keys == 0 {
        return bad("--keys must be at least 1");
    }
    if let Some(wal) = args.wal_latency_ms
        && !(wal >= 0.0 && wal.is_finite())
    {
        return bad("--wal-latency-ms must be a finite number of milliseconds, at least 0");
    }
    if !(args.latency_ms >= 0.0 && args.latency_ms.is_finite()) {
        return bad("--latency-ms must be a non-negative number");
    }
    let writes = |workload| {
        matches!(
            workload,
            Workload::Fill | Workload::DurablePut | Workload::RangeDelete | Workload::Follow
        )
    };
    if args.existing.is_some() && args.workload.is_none_or(writes) {
        return bad("--existing needs a read workload (get, scan or mixed)");
    }
    if args.hot_keys == 0 {
        return bad("--hot-keys must be at least 1");
    }
    if !(args.duration_s >= 0.0 && args.duration_s.is_finite()) {
        return bad("--duration-s must be a non-negative number");
    }
    if !(args.idle_s >= 0.0 && args.idle_s.is_finite()) {
        return bad("--idle-s must be a non-negative number");
    }
    Ok(())
}

pub async fn run(
    args: BenchArgs,
    store_url: &str,
    wal_store_url: Option<&str>,
    s3: &stores::S3Flags,
    runtime: Runtime,
    json: bool,
) -> Result<ExitCode, CliError> {
    check_args(&args)?;
    let halted = Arc::new(AtomicBool::new(false));
    let halting = |inner: Arc<dyn Store>| -> Arc<dyn Store> {
        Arc::new(Halt {
            inner,
            halted: halted.clone(),
        })
    };
    let mut underneath = vec![stores::open(store_url, s3, &runtime)?];
    let latency = LatencyStore::new(
        halting(underneath[0].clone()),
        runtime.clone(),
        Duration::from_secs_f64(args.latency_ms / 1000.0),
    );
    let counts = latency.counts();
    let wal_store = match wal_store_url {
        Some(url) => {
            let wal_latency = args.wal_latency_ms.unwrap_or(args.latency_ms);
            underneath.push(stores::open(url, s3, &runtime)?);
            let wal = LatencyStore::with_counts(
                halting(underneath[1].clone()),
                runtime.clone(),
                Duration::from_secs_f64(wal_latency / 1000.0),
                counts.clone(),
            );
            Some(Arc::new(wal) as Arc<dyn Store>)
        }
        None => None,
    };
    let bench = Bench {
        wal_store,
        path: match &args.existing {
            Some(path) => path.clone(),
            None => format!("bench-{}", talusdb::store::Ulid::generate(&runtime)),
        },
        store: Arc::new(latency),
        counts,
        written_before: Default::default(),
        user_written: Default::default(),
        runtime,
        show_progress: !json && std::io::stderr().is_terminal(),
        args,
    };
    let workloads = match bench.args.workload {
        None => vec![Workload::Fill, Workload::Get],
        Some(alone @ (Workload::Fill | Workload::DurablePut | Workload::Follow)) => vec![alone],
        Some(read) if bench.args.existing.is_some() => vec![read],
        Some(read) => vec![Workload::Fill, read],
    };
    let measured = bench.args.workload;
    let mut reports = Vec::new();
    let mut load = None;
    // SIGINT or SIGTERM ends the workloads where they are (the database's
    // handles are dropped unclosed) and goes on to the clean-up.
    let mut signals = async_signal::Signals::new([async_signal::Signal::Int, async_signal::Signal::Term]).ok();
    let interrupted = async {
        match signals.as_mut() {
            Some(signals) => drop(signals.next().await),
            None => futures::future::pending().await,
        }
    };
    let workloads_run = async {
        if bench.args.settle && bench.args.existing.is_some() {
            bench.settle().await?;
        }
        for workload in workloads {
            let report = match workload {
                Workload::Fill => bench.fill().await?,
                Workload::DurablePut => bench.durable_put().await?,
                Workload::Get => bench.get().await?,
                Workload::Scan => bench.scan().await?,
                Workload::Mixed => bench.mixed().await?,
                Workload::Txn => bench.txn().await?,
                Workload::Merge => bench.merge().await?,
                Workload::RangeDelete => bench.range_delete().await?,
                Workload::Follow => bench.follow().await?,
            };
            // A read workload's load phase is reported apart, as `load`,
            // unless no workload was named (then `fill` is one of the two
            // asked for).
            if measured.is_none() || measured == Some(workload) {
                reports.push(report);
            } else {
                load = Some(report);
            }
        }
        Ok(())
    };
    let (outcome, interrupted): (Result<(), CliError>, bool) =
        match futures::future::select(std::pin::pin!(workloads_run), std::pin::pin!(interrupted)).await {
            futures::future::Either::Left((outcome, _)) => (outcome, false),
            futures::future::Either::Right(((), _)) => {
                halted.store(true, Ordering::Release);
                (Ok(()), true)
            }
        };
    let store_report = match (&outcome, interrupted) {
        (Ok(()), false) => Some(bench.store_report().await),
        _ => None,
    };
    let kept = bench.args.keep || bench.args.existing.is_some();
    let cleaned = if kept {
        eprintln!("kept the benchmark's database at {}", bench.path);
        Ok(())
    } else {
        if interrupted {
            // An upload that was in flight at the halt lands first.
            bench.runtime.sleep(Duration::from_millis(500)).await;
        }
        // On the stores underneath: no latency added, nothing halted.
        remove_database(&bench.path, &underneath).await
    };
    if interrupted {
        cleaned?;
        return Err(CliError::Interrupted(if kept {
            "interrupted".to_owned()
        } else {
            format!("interrupted; removed the benchmark's database {}", bench.path)
        }));
    }
    outcome?;
    cleaned?;
    let store_report = store_report.transpose()?;
    let peak_rss = peak_rss_bytes();
    if json {
        let value = json!({
            "store": store_url,
            "latency_ms": bench.args.latency_ms,
            "keys": bench.args.keys,
            "value_size": bench.args.value_size,
            "writers": bench.args.writers,
            "readers": bench.args.readers,
            "seed": bench.args.seed,
            "workloads": reports.iter().map(Report::json).collect::<Vec<_>>(),
            "load": load.as_ref().map(Report::json),
            "store_after": store_report,
            "peak_rss_bytes": peak_rss,
        });
        outln!("{value}");
    } else {
        outln!(
            "talus bench: {} keys, {}-byte values, store {}, +{} ms per request",
            bench.args.keys,
            bench.args.value_size,
            store_url,
            bench.args.latency_ms
        );
        if let Some(load) = &load {
            outln!("load phase:");
            load.print();
        }
        for report in &reports {
            report.print();
        }
        if let Some(Value::Object(fields)) = &store_report {
            outln!("store after the run");
            for (name, value) in fields {
                outln!("  {name:<24}{}", report::rounded(value));
            }
        }
        if let Some(bytes) = peak_rss {
            outln!("peak RSS {:.1} MiB", bytes as f64 / (1 << 20) as f64);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A count of tasks: a whole number of at least 1 (a bench with no writer
/// or reader would report figures it never measured).
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(count) => Ok(count),
        Err(error) => Err(error.to_string()),
    }
}
