//! Metrics: with a recorder installed, the engine reports its writes, WAL
//! uploads, L0 tables, cache lookups and object-store requests under the
//! documented names (`talusdb::metrics`, `docs/metrics.md`).

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use talusdb::actors::runtime::Sim;
use talusdb::metrics as names;
use talusdb::store::{ObjectStoreAdapter, Store};

/// Counts histogram samples.
#[derive(Debug, Default)]
struct Samples(AtomicU64);

impl HistogramFn for Samples {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Remembers every metric by `name{label=value,...}`.
#[derive(Debug, Default)]
struct Capture {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    gauges: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<BTreeMap<String, Arc<Samples>>>,
}

fn render(key: &Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|label| format!("{}={}", label.key(), label.value()))
        .collect();
    if labels.is_empty() {
        key.name().to_owned()
    } else {
        format!("{}{{{}}}", key.name(), labels.join(","))
    }
}

impl Capture {
    fn counter(&self, name: &str) -> u64 {
        let counters = self.counters.lock().expect("lock");
        counters.get(name).map_or(0, |value| value.load(Ordering::Relaxed))
    }

    fn gauge(&self, name: &str) -> Option<f64> {
        let gauges = self.gauges.lock().expect("lock");
        gauges
            .get(name)
            .map(|value| f64::from_bits(value.load(Ordering::Relaxed)))
    }

    fn samples(&self, name: &str) -> u64 {
        let histograms = self.histograms.lock().expect("lock");
        histograms.get(name).map_or(0, |value| value.0.load(Ordering::Relaxed))
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.counters.lock().expect("lock");
        Counter::from_arc(counters.entry(render(key)).or_default().clone())
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut gauges = self.gauges.lock().expect("lock");
        Gauge::from_arc(gauges.entry(render(key)).or_default().clone())
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut histograms = self.histograms.lock().expect("lock");
        Histogram::from_arc(histograms.entry(render(key)).or_default().clone())
    }
}

#[test]
fn the_engine_reports_its_work_under_the_documented_names() {
    let capture = Capture::default();
    // Under sim every actor runs on this thread, where the recorder is set.
    metrics::with_local_recorder(&capture, || {
        let sim = Sim::new(61);
        let runtime = sim.runtime();
        sim.block_on(async move {
            let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
            let db = support::open_db("db", &store, &runtime).await;
            for n in 0..20 {
                db.put(format!("k{n:02}"), "value").await.expect("put");
            }
            db.flush_memtable().await.expect("to L0");
            db.close().await.expect("close");
            let db = support::open_db("db", &store, &runtime).await;
            for n in 0..20 {
                assert!(db.get(format!("k{n:02}")).await.expect("get").is_some());
            }
            db.close().await.expect("close");
        });
    });
    assert_eq!(capture.counter(names::WRITES), 20);
    assert!(capture.counter(names::WRITE_BYTES) >= 20 * 8);
    assert!(capture.counter(names::WAL_UPLOADS) >= 1);
    assert!(capture.samples(names::WAL_UPLOAD_SECONDS) >= 1);
    assert_eq!(capture.counter(names::MEMTABLES_FROZEN), 1);
    assert_eq!(capture.gauge(names::L0_TABLES), Some(1.0));
    assert_eq!(capture.gauge(names::UNFLUSHED_BYTES), Some(0.0));
    assert_eq!(capture.counter(names::STALLED_WRITES), 0);
    assert!(capture.counter(&format!("{}{{op=put}}", names::STORE_REQUESTS)) >= 2);
    assert!(capture.counter(&format!("{}{{op=get_range}}", names::STORE_REQUESTS)) >= 1);
    assert!(
        capture.counter(&format!("{}{{cache=block}}", names::CACHE_HITS)) >= 1,
        "later gets hit the block cache"
    );
    assert!(
        capture.counter(&format!("{}{{cache=block}}", names::CACHE_MISSES)) >= 1,
        "the first get after reopening misses"
    );
}
