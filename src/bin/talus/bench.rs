//! `talus bench`: the load benchmark. Workloads, keys, values and the
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

use bytes::Bytes;
use clap::{Args, ValueEnum};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use talusdb::actors::Runtime;
use talusdb::actors::runtime::JoinHandle;
use talusdb::store::{LatencyStore, RequestCounts, Store};
use talusdb::{Db, Error, ErrorKind, ScanOptions, WriteOptions};

use crate::{CliError, stores};

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
    /// Concurrent writers.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Concurrent readers.
    #[arg(long, default_value_t = 4)]
    readers: usize,
    /// Fraction of gets that ask for an absent key.
    #[arg(long, default_value_t = 0.0)]
    miss_ratio: f64,
    /// Rows per scan.
    #[arg(long, default_value_t = 100)]
    scan_len: u64,
    /// Percent of `mixed` operations that are puts.
    #[arg(long, default_value_t = 50)]
    put_percent: u8,
    /// How long `mixed` runs.
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// Added to every object-store request.
    #[arg(long, default_value_t = 0.0)]
    latency_ms: f64,
    /// Seeds key order, values and choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// A small, fast, seedable generator (splitmix64).
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }

    fn chance(&mut self, probability: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < probability
    }
}

fn key(i: u64) -> Bytes {
    Bytes::from(format!("{:016}", 2 * i))
}

fn absent_key(i: u64) -> Bytes {
    Bytes::from(format!("{:016}", 2 * i + 1))
}

fn value(i: u64, version: u32, size: usize, rng: &mut Rng) -> Bytes {
    let mut bytes = Vec::with_capacity(size);
    bytes.extend_from_slice(&i.to_le_bytes());
    bytes.extend_from_slice(&version.to_le_bytes());
    while bytes.len() < size {
        bytes.extend_from_slice(&rng.next().to_le_bytes());
    }
    bytes.truncate(size);
    Bytes::from(bytes)
}

/// Checks a value read for row `i`.
fn check_value(i: u64, found: Option<&Bytes>, size: usize) -> Result<(), CliError> {
    match found {
        None => Err(CliError::WrongAnswer(format!("row {i} (key {:016}) is missing", 2 * i))),
        Some(found) if found.len() != size => Err(CliError::WrongAnswer(format!(
            "row {i}: value of {} bytes, expected {size}",
            found.len()
        ))),
        Some(found) if found[..8] != i.to_le_bytes() => Err(CliError::WrongAnswer(format!(
            "row {i}: the value belongs to another key"
        ))),
        Some(_) => Ok(()),
    }
}

/// Latencies in microseconds.
#[derive(Debug, Default)]
struct Latencies(Vec<u32>);

impl Latencies {
    fn record(&mut self, took: Duration) {
        self.0.push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
    }

    fn merge(parts: Vec<Latencies>) -> Latencies {
        let mut all: Vec<u32> = parts.into_iter().flat_map(|part| part.0).collect();
        all.sort_unstable();
        Latencies(all)
    }

    fn percentile(&self, p: f64) -> u32 {
        if self.0.is_empty() {
            return 0;
        }
        let rank = ((self.0.len() as f64) * p).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    fn json(&self) -> Value {
        json!({
            "p50": self.percentile(0.50),
            "p99": self.percentile(0.99),
            "p999": self.percentile(0.999),
            "max": self.0.last().copied().unwrap_or(0),
        })
    }
}

/// One workload's results.
#[derive(Debug)]
struct Report {
    workload: &'static str,
    ops: u64,
    seconds: f64,
    latency: Option<Latencies>,
    /// Extra fields (rows/s, time until durable, reads per lookup).
    extra: serde_json::Map<String, Value>,
    requests: Value,
}

impl Report {
    fn json(&self) -> Value {
        let mut object = serde_json::Map::new();
        object.insert("workload".into(), json!(self.workload));
        object.insert("ops".into(), json!(self.ops));
        object.insert("seconds".into(), json!(self.seconds));
        object.insert("ops_per_s".into(), json!(rate(self.ops, self.seconds)));
        if let Some(latency) = &self.latency {
            object.insert("latency_us".into(), latency.json());
        }
        object.extend(self.extra.clone());
        object.insert("requests".into(), self.requests.clone());
        Value::Object(object)
    }

    fn print(&self) {
        println!("{}", self.workload);
        println!("  {:<24}{}", "operations", self.ops);
        println!("  {:<24}{:.2}", "seconds", self.seconds);
        println!("  {:<24}{:.0}", "ops/s", rate(self.ops, self.seconds));
        if let Some(latency) = &self.latency {
            println!(
                "  {:<24}p50 {}  p99 {}  p999 {}  max {}",
                "latency (µs)",
                latency.percentile(0.50),
                latency.percentile(0.99),
                latency.percentile(0.999),
                latency.0.last().copied().unwrap_or(0)
            );
        }
        for (name, value) in &self.extra {
            println!("  {name:<24}{value}");
        }
        let requests = self
            .requests
            .as_object()
            .map(|kinds| {
                kinds
                    .iter()
                    .map(|(kind, count)| format!("{kind} {count}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        println!(
            "  {:<24}{}",
            "store requests",
            if requests.is_empty() { "none".into() } else { requests }
        );
    }
}

/// What one benchmark task ends with: its latencies and a count of its
/// own (misses, rows, puts), or the wrong answer it met, or the database's
/// error.
type TaskResult = Result<Result<(Latencies, u64), CliError>, Error>;

/// Awaits every task: their latencies merged and their counts summed.
async fn gather(tasks: Vec<JoinHandle<TaskResult>>) -> Result<(Latencies, u64), CliError> {
    let mut parts = Vec::new();
    let mut total = 0;
    for task in tasks {
        let joined = task
            .await
            .map_err(|error| Error::new(ErrorKind::Internal, format!("a benchmark task failed: {error}")))?;
        let (latencies, count) = joined??;
        parts.push(latencies);
        total += count;
    }
    Ok((Latencies::merge(parts), total))
}

fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 { count as f64 / seconds } else { 0.0 }
}

/// Peak resident memory of this process, where the OS tells it.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
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
}

/// The benchmark's state: the store (behind a counting latency wrapper),
/// where the database lives, and the arguments.
struct Bench {
    args: BenchArgs,
    store: Arc<dyn Store>,
    counts: Arc<RequestCounts>,
    runtime: Runtime,
    path: String,
    show_progress: bool,
}

impl Bench {
    async fn open(&self) -> Result<Db, Error> {
        Db::builder(self.path.as_str(), self.store.clone())
            .runtime(self.runtime.clone())
            .seed(self.args.seed)
            .open()
            .await
    }

    fn progress(&self, label: &str, total: u64) -> ProgressBar {
        if !self.show_progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {per_sec} eta {eta}") {
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
    fn spawn_workers<F, Fut>(
        &self,
        count: u64,
        salt: u64,
        db: &Db,
        bar: &ProgressBar,
        task: F,
    ) -> Vec<JoinHandle<TaskResult>>
    where
        F: Fn(Worker) -> Fut,
        Fut: Future<Output = TaskResult> + Send + 'static,
    {
        let count = count.max(1);
        let ops = self.args.ops;
        (0..count)
            .map(|index| {
                self.runtime.spawn(task(Worker {
                    index,
                    ops: ops / count + u64::from(index < ops % count),
                    rng: Rng(self.args.seed ^ (index + 1).wrapping_mul(salt)),
                    clock: self.runtime.clone(),
                    db: db.clone(),
                    bar: bar.clone(),
                }))
            })
            .collect()
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

    /// Writes every row (non-durable) from `--writers` tasks, then makes
    /// it all durable and closes with the memtable moved into L0.
    async fn fill(&self) -> Result<Report, CliError> {
        self.counts.reset();
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
                let options = WriteOptions { await_durable: false };
                for &i in order.iter().skip(writer).step_by(writers) {
                    db.put_with_options(key(i), value(i, 0, size, &mut rng), options)
                        .await?;
                    bar.inc(1);
                }
                Ok(Ok((Latencies::default(), 0)))
            }
        });
        gather(tasks).await?;
        let put_seconds = self.seconds_since(started);
        db.flush().await?;
        let durable_seconds = self.seconds_since(started);
        db.close_with(true).await?;
        let closed_seconds = self.seconds_since(started);
        bar.finish_and_clear();
        Ok(self.report(
            "fill",
            self.args.keys,
            put_seconds,
            None,
            [
                ("durable_after_s", json!(durable_seconds)),
                ("in_l0_after_s", json!(closed_seconds)),
                (
                    "mb_per_s",
                    json!(rate(self.args.keys * (self.args.value_size as u64 + 16), put_seconds) / 1e6),
                ),
            ],
        ))
    }

    /// Durable puts of random rows from `--writers` tasks.
    async fn durable_put(&self) -> Result<Report, CliError> {
        let db = self.open().await?;
        self.counts.reset();
        let bar = self.progress("durable-put", self.args.ops);
        let started = self.runtime.now();
        let tasks = self.spawn_workers(self.args.writers as u64, 0x2545_f491, &db, &bar, |worker| {
            let Worker {
                ops,
                mut rng,
                clock,
                db,
                bar,
                ..
            } = worker;
            let (keys, size) = (self.args.keys.max(1), self.args.value_size);
            async move {
                let mut latencies = Latencies::default();
                for _ in 0..ops {
                    let i = rng.below(keys);
                    let value = value(i, 1, size, &mut rng);
                    let at = clock.now();
                    db.put(key(i), value).await?;
                    latencies.record(clock.now() - at);
                    bar.inc(1);
                }
                Ok(Ok((latencies, 0)))
            }
        });
        let (latency, _) = gather(tasks).await?;
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

    /// Random gets (a `--miss-ratio` share of absent keys) from
    /// `--readers` tasks on a freshly opened database: every cache is cold.
    async fn get(&self) -> Result<Report, CliError> {
        let db = self.open().await?;
        self.counts.reset();
        let bar = self.progress("get", self.args.ops);
        let started = self.runtime.now();
        let tasks = self.spawn_workers(self.args.readers as u64, 0x9e37_79b9, &db, &bar, |worker| {
            let Worker {
                ops,
                mut rng,
                clock,
                db,
                bar,
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
                    let found = db.get(if miss { absent_key(i) } else { key(i) }).await?;
                    latencies.record(clock.now() - at);
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
        let reads = self.counts.reads();
        db.close().await?;
        Ok(self.report(
            "get",
            self.args.ops,
            seconds,
            Some(latency),
            [
                ("misses", json!(misses)),
                ("store_reads", json!(reads)),
                ("reads_per_lookup", json!(reads as f64 / self.args.ops.max(1) as f64)),
            ],
        ))
    }

    /// Scans of `--scan-len` rows from random starting rows, on a freshly
    /// opened database; each scan's rows are checked one by one.
    async fn scan(&self) -> Result<Report, CliError> {
        let db = self.open().await?;
        self.counts.reset();
        let bar = self.progress("scan", self.args.ops);
        let started = self.runtime.now();
        let tasks = self.spawn_workers(self.args.readers as u64, 0x85eb_ca6b, &db, &bar, |worker| {
            let Worker {
                ops,
                mut rng,
                clock,
                db,
                bar,
                ..
            } = worker;
            let (keys, size, scan_len) = (self.args.keys.max(1), self.args.value_size, self.args.scan_len);
            async move {
                let mut latencies = Latencies::default();
                let mut rows = 0u64;
                for _ in 0..ops {
                    let first = rng.below(keys);
                    let expected = scan_len.min(keys - first);
                    let at = clock.now();
                    let mut stream = Box::pin(
                        db.scan_with_options(key(first).., ScanOptions::default())
                            .take(scan_len as usize),
                    );
                    let mut seen = 0u64;
                    while let Some(row) = stream.next().await {
                        let (found_key, found_value) = row?;
                        let i = first + seen;
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
                    latencies.record(clock.now() - at);
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
        db.close().await?;
        Ok(self.report(
            "scan",
            self.args.ops,
            seconds,
            Some(latency),
            [("rows", json!(rows)), ("rows_per_s", json!(rate(rows, seconds)))],
        ))
    }

    /// Overwrites (`--put-percent`) and gets of random rows for
    /// `--duration-s`, from `--writers` + `--readers` tasks. Each task
    /// checks its own gets; versions only grow.
    async fn mixed(&self) -> Result<Report, CliError> {
        let db = self.open().await?;
        self.counts.reset();
        let tasks_count = (self.args.writers + self.args.readers).max(1) as u64;
        let duration = Duration::from_secs_f64(self.args.duration_s.max(0.0));
        let stop = Arc::new(AtomicBool::new(false));
        let bar = self.progress("mixed", 0);
        let started = self.runtime.now();
        let tasks = self.spawn_workers(tasks_count, 0xc2b2_ae35, &db, &bar, |worker| {
            let Worker {
                mut rng,
                clock,
                db,
                bar,
                ..
            } = worker;
            let stop = stop.clone();
            let (keys, size, put_percent) = (self.args.keys.max(1), self.args.value_size, self.args.put_percent);
            async move {
                let mut latencies = Latencies::default();
                let mut puts = 0u64;
                let options = WriteOptions { await_durable: false };
                while !stop.load(Ordering::Relaxed) {
                    let i = rng.below(keys);
                    let at = clock.now();
                    if rng.below(100) < u64::from(put_percent) {
                        db.put_with_options(key(i), value(i, 1, size, &mut rng), options)
                            .await?;
                        puts += 1;
                    } else if let Err(wrong) = check_value(i, db.get(key(i)).await?.as_ref(), size) {
                        return Ok(Err(wrong));
                    }
                    latencies.record(clock.now() - at);
                    bar.inc(1);
                }
                Ok(Ok((latencies, puts)))
            }
        });
        self.runtime.sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let (latency, puts) = gather(tasks).await?;
        let seconds = self.seconds_since(started);
        bar.finish_and_clear();
        db.close().await?;
        let ops = latency.0.len() as u64;
        Ok(self.report(
            "mixed",
            ops,
            seconds,
            Some(latency),
            [("puts", json!(puts)), ("gets", json!(ops - puts))],
        ))
    }

    /// Removes every object the benchmark wrote under its path.
    async fn clean_up(&self) -> Result<(), Error> {
        let prefix = self.path.as_str().into();
        for object in self.store.list(&prefix).await.map_err(Error::from)? {
            self.store.delete(&object.path).await.map_err(Error::from)?;
        }
        Ok(())
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
    if !(args.latency_ms >= 0.0 && args.latency_ms.is_finite()) {
        return bad("--latency-ms must be a non-negative number");
    }
    if !(args.duration_s >= 0.0 && args.duration_s.is_finite()) {
        return bad("--duration-s must be a non-negative number");
    }
    Ok(())
}

pub async fn run(
    args: BenchArgs,
    store_url: &str,
    s3: &stores::S3Flags,
    runtime: Runtime,
    json: bool,
) -> Result<ExitCode, CliError> {
    check_args(&args)?;
    let base = stores::open(store_url, s3, &runtime)?;
    let latency = LatencyStore::new(base, runtime.clone(), Duration::from_secs_f64(args.latency_ms / 1000.0));
    let counts = latency.counts();
    let bench = Bench {
        path: format!("bench-{}", talusdb::store::Ulid::generate(&runtime)),
        store: Arc::new(latency),
        counts,
        runtime,
        show_progress: !json && std::io::stderr().is_terminal(),
        args,
    };
    let workloads = match bench.args.workload {
        None => vec![Workload::Fill, Workload::Get],
        Some(alone @ (Workload::Fill | Workload::DurablePut)) => vec![alone],
        Some(read) => vec![Workload::Fill, read],
    };
    let measured = bench.args.workload;
    let mut reports = Vec::new();
    let outcome: Result<(), CliError> = async {
        for workload in workloads {
            let report = match workload {
                Workload::Fill => bench.fill().await?,
                Workload::DurablePut => bench.durable_put().await?,
                Workload::Get => bench.get().await?,
                Workload::Scan => bench.scan().await?,
                Workload::Mixed => bench.mixed().await?,
            };
            // A read workload's load phase is reported only when no
            // workload was named (then `fill` is one of the two asked for).
            if measured.is_none() || measured == Some(workload) {
                reports.push(report);
            }
        }
        Ok(())
    }
    .await;
    let cleaned = bench.clean_up().await;
    outcome?;
    cleaned?;
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
            "peak_rss_bytes": peak_rss,
        });
        println!("{value}");
    } else {
        println!(
            "talus bench: {} keys, {}-byte values, store {}, +{} ms per request",
            bench.args.keys, bench.args.value_size, store_url, bench.args.latency_ms
        );
        for report in &reports {
            report.print();
        }
        if let Some(bytes) = peak_rss {
            println!("peak RSS {:.1} MiB", bytes as f64 / (1 << 20) as f64);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_ranked_sample() {
        let latencies = Latencies::merge(vec![Latencies((1..=1000).rev().collect())]);
        assert_eq!(latencies.percentile(0.5), 500);
        assert_eq!(latencies.percentile(0.99), 990);
        assert_eq!(latencies.percentile(0.999), 999);
        assert_eq!(Latencies::default().percentile(0.5), 0);
    }

    #[test]
    fn values_carry_their_row_and_are_checked() {
        let mut rng = Rng(7);
        let made = value(42, 3, 100, &mut rng);
        assert_eq!(made.len(), 100);
        assert!(check_value(42, Some(&made), 100).is_ok());
        assert!(check_value(43, Some(&made), 100).is_err());
        assert!(check_value(42, Some(&made), 99).is_err());
        assert!(check_value(42, None, 100).is_err());
        assert_eq!(key(3), Bytes::from("0000000000000006"));
        assert_eq!(absent_key(3), Bytes::from("0000000000000007"));
    }
}
