//! L0 backpressure: when L0 holds its maximum, memtable flushes wait (an
//! L0 stall, counted), unflushed bytes grow until writers stall, and all
//! of it resumes once a compactor makes room.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use talusdb::actors::runtime::Sim;
use talusdb::store::{ObjectStoreAdapter, Store};
use talusdb::{Db, DbOptions};

/// The default strategy's L0 trigger: a compactor can always make room.
const MAX_L0: usize = 4;
const WRITES: usize = 600;

#[test]
fn a_full_l0_stalls_flushes_then_writers_until_a_compactor_makes_room() {
    let sim = Sim::new(17);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let options = DbOptions {
            memtable_bytes: 4 << 10,
            wal_buffer_bytes: 1 << 10,
            max_unflushed_bytes: 16 << 10,
            max_l0_tables: MAX_L0,
            // A compactor elsewhere is expected; it starts late.
            compactor: None,
            ..DbOptions::default()
        };
        let db = Db::builder("db", store.clone())
            .runtime(runtime.clone())
            .options(options.clone())
            .open()
            .await
            .expect("open");
        let (written, writer) = support::spawn_counted_writes(&db, &runtime, WRITES);
        // Ten seconds of virtual time: far more than the writes need.
        runtime.sleep(Duration::from_secs(10)).await;
        let stats = db.stats();
        let at_stall = written.load(Ordering::Relaxed);
        assert!(at_stall < WRITES, "the writer is held back: {stats:?}");
        assert_eq!(stats.l0_tables, MAX_L0 as u64, "{stats:?}");
        assert!(stats.l0_stalls >= 1 && stats.stalled_writes >= 1, "{stats:?}");
        assert!(stats.peak_unflushed_bytes <= 16 << 10, "{stats:?}");

        let compactor = Db::builder("db", store.clone())
            .runtime(runtime.clone())
            .options(options)
            .open_compactor()
            .await
            .expect("compactor");
        writer.await.expect("the writer resumes and finishes");
        db.flush_memtable().await.expect("flush");
        assert!(db.stats().l0_tables <= MAX_L0 as u64);
        assert!(compactor.stats().compactions >= 1);
        for n in (0..WRITES).step_by(11) {
            let value = db.get(format!("key-{n:05}")).await.expect("get");
            assert_eq!(value.map(|value| value.len()), Some(200), "key-{n:05}");
        }
        compactor.close().await.expect("close compactor");
        db.close().await.expect("close");
    });
}
