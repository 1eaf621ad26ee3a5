//! What `talus bench` reports: latencies and their percentiles, one
//! workload's report in text and JSON, and the small conversions of the
//! database's stats into JSON.

use std::time::Duration;

use serde_json::{Value, json};
use talusdb::DbStats;

/// One operation's latency in microseconds, and whether a compaction job
/// was running when it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Sample {
    micros: u32,
    compacting: bool,
}

/// Latencies of a workload's operations; sorted once merged.
#[derive(Debug, Default)]
pub struct Latencies(Vec<Sample>);

impl Latencies {
    /// Records an operation that started while `compacting` said whether
    /// a compaction job was running.
    pub fn record_during(&mut self, took: Duration, compacting: bool) {
        let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        self.0.push(Sample { micros, compacting });
    }

    pub fn merge(parts: Vec<Latencies>) -> Latencies {
        let mut all: Vec<Sample> = parts.into_iter().flat_map(|part| part.0).collect();
        all.sort_unstable();
        Latencies(all)
    }

    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// The operations that started while a compaction ran, and the rest,
    /// apart (`None` when none did: then all of them ran without).
    pub fn split(&self) -> Option<(Latencies, Latencies)> {
        if !self.0.iter().any(|sample| sample.compacting) {
            return None;
        }
        let (during, quiet) = self.0.iter().partition(|sample| sample.compacting);
        Some((Latencies(during), Latencies(quiet)))
    }

    fn max(&self) -> u32 {
        self.0.last().map_or(0, |sample| sample.micros)
    }

    pub fn percentile(&self, p: f64) -> u32 {
        if self.0.is_empty() {
            return 0;
        }
        let rank = ((self.0.len() as f64) * p).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1].micros
    }

    pub fn print(&self, label: &str) {
        outln!(
            "  {:<24}p50 {}  p99 {}  p999 {}  max {}  ({} ops)",
            label,
            self.percentile(0.50),
            self.percentile(0.99),
            self.percentile(0.999),
            self.max(),
            self.0.len()
        );
    }

    pub fn json(&self) -> Value {
        json!({
            "count": self.0.len(),
            "p50": self.percentile(0.50),
            "p99": self.percentile(0.99),
            "p999": self.percentile(0.999),
            "max": self.max(),
        })
    }
}

/// One workload's results.
#[derive(Debug)]
pub struct Report {
    pub workload: &'static str,
    pub ops: u64,
    pub seconds: f64,
    pub latency: Option<Latencies>,
    /// Extra fields (rows/s, time until durable, reads per lookup).
    pub extra: serde_json::Map<String, Value>,
    pub requests: Value,
}

impl Report {
    pub fn json(&self) -> Value {
        let mut object = serde_json::Map::new();
        object.insert("workload".into(), json!(self.workload));
        object.insert("ops".into(), json!(self.ops));
        object.insert("seconds".into(), json!(self.seconds));
        object.insert("ops_per_s".into(), json!(rate(self.ops, self.seconds)));
        if let Some(latency) = &self.latency {
            object.insert("latency_us".into(), latency.json());
            if let Some((during, quiet)) = latency.split() {
                object.insert("latency_us_compacting".into(), during.json());
                object.insert("latency_us_not_compacting".into(), quiet.json());
            }
        }
        object.extend(self.extra.clone());
        object.insert("requests".into(), self.requests.clone());
        object.insert("requests_per_op".into(), json!(self.requests_per_op()));
        Value::Object(object)
    }

    /// Store requests of every kind, per operation.
    fn requests_per_op(&self) -> f64 {
        let total: u64 = self
            .requests
            .as_object()
            .map(|kinds| kinds.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        total as f64 / self.ops.max(1) as f64
    }

    pub fn print(&self) {
        outln!("{}", self.workload);
        outln!("  {:<24}{}", "operations", self.ops);
        outln!("  {:<24}{:.2}", "seconds", self.seconds);
        outln!("  {:<24}{:.0}", "ops/s", rate(self.ops, self.seconds));
        if let Some(latency) = &self.latency {
            latency.print("latency (µs)");
            if let Some((during, quiet)) = latency.split() {
                during.print("  while compacting");
                quiet.print("  otherwise");
            }
        }
        for (name, value) in &self.extra {
            outln!("  {name:<24}{}", rounded(value));
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
        outln!(
            "  {:<24}{}",
            "store requests",
            if requests.is_empty() { "none".into() } else { requests }
        );
        outln!("  {:<24}{}", "requests/op", round_figure(self.requests_per_op()));
    }
}

/// A JSON value for text: numbers rounded (see [`round_figure`]), objects
/// as `name value` pairs; `--json` keeps full precision.
pub fn rounded(value: &Value) -> String {
    match value {
        Value::Number(number) if number.is_f64() => number.as_f64().map_or_else(|| number.to_string(), round_figure),
        Value::Object(fields) => fields
            .iter()
            .map(|(name, value)| format!("{name} {}", rounded(value)))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Array(items) => format!("[{}]", items.iter().map(rounded).collect::<Vec<_>>().join(", ")),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A figure to about three significant digits: `1234.5` as `1235`, `12.345`
/// as `12.3`, `0.012345` as `0.0123`.
pub fn round_figure(figure: f64) -> String {
    if !figure.is_finite() || figure == 0.0 {
        return format!("{figure}");
    }
    let magnitude = figure.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).clamp(0, 6) as usize;
    format!("{figure:.decimals$}")
}

pub fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 { count as f64 / seconds } else { 0.0 }
}

/// The tables readers search, as the database's stats give them.
pub fn shape_json(stats: &DbStats) -> Value {
    let shape = stats.shape;
    json!({
        "l0_tables": shape.l0_tables,
        "sorted_runs": shape.sorted_runs,
        "run_tables": shape.run_tables,
        "table_bytes": shape.table_bytes,
    })
}

/// The engine's own accounting of its memory.
pub fn memory_json(stats: &DbStats) -> Value {
    let memory = stats.memory;
    json!({
        "block_cache_bytes": memory.block_cache_bytes,
        "metadata_bytes": memory.metadata_bytes,
        "memtable_bytes": memory.memtable_bytes,
    })
}

/// Peak resident memory of this process, where the OS tells it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(latencies: &Latencies) -> Vec<u32> {
        latencies.0.iter().map(|sample| sample.micros).collect()
    }

    #[test]
    fn percentiles_pick_the_ranked_sample() {
        let mut latencies = Latencies::default();
        for micros in (1..=1000).rev() {
            latencies.record_during(Duration::from_micros(micros), false);
        }
        let latencies = Latencies::merge(vec![latencies]);
        assert_eq!(latencies.percentile(0.5), 500);
        assert_eq!(latencies.percentile(0.99), 990);
        assert_eq!(latencies.percentile(0.999), 999);
        assert_eq!(Latencies::default().percentile(0.5), 0);
    }

    #[test]
    fn latencies_during_compaction_are_split_from_the_rest() {
        let mut first = Latencies::default();
        let mut second = Latencies::default();
        for micros in [5, 7, 9] {
            first.record_during(Duration::from_micros(micros), false);
        }
        for (micros, compacting) in [(7, true), (100, true), (3, false)] {
            second.record_during(Duration::from_micros(micros), compacting);
        }
        let all = Latencies::merge(vec![first, second]);
        assert_eq!(micros(&all), vec![3, 5, 7, 7, 9, 100]);
        let (during, quiet) = all.split().expect("some ran during a compaction");
        assert_eq!(micros(&during), vec![7, 100]);
        assert_eq!(micros(&quiet), vec![3, 5, 7, 9]);
        let mut calm = Latencies::default();
        calm.record_during(Duration::from_micros(1), false);
        assert!(Latencies::merge(vec![calm]).split().is_none());
    }
}
