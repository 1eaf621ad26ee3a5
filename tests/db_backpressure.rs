//! Backpressure: when memtables cannot reach L0 (a slow store), writers
//! stall at the unflushed-bytes maximum instead of exceeding it, and resume
//! once the uploads go through.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use talusdb::actors::runtime::Sim;
use talusdb::store::{GateStore, ObjectStoreAdapter, Op, Store};
use talusdb::{Db, DbOptions};

const MAX_UNFLUSHED: usize = 12 << 10;
const WRITES: usize = 300;

#[test]
fn writers_stall_at_the_unflushed_maximum_and_resume() {
    let sim = Sim::new(31);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let gate = GateStore::new(Arc::new(ObjectStoreAdapter::in_memory()));
        let store: Arc<dyn Store> = Arc::new(gate.clone());
        let db = Db::builder("db", store)
            .runtime(runtime.clone())
            .options(DbOptions {
                memtable_bytes: 4 << 10,
                wal_buffer_bytes: 1 << 10,
                max_unflushed_bytes: MAX_UNFLUSHED,
                ..DbOptions::default()
            })
            .open()
            .await
            .expect("open");
        // The store stops taking L0 tables: memtables pile up.
        gate.hold(Op::Put, "/compacted/", usize::MAX);
        let (written, writer) = support::spawn_counted_writes(&db, &runtime, WRITES);
        let mut waited = Duration::ZERO;
        while db.stats().stalled_writes == 0 {
            assert!(waited < Duration::from_secs(5), "the writer never stalled");
            runtime.sleep(Duration::from_millis(1)).await;
            waited += Duration::from_millis(1);
        }
        let at_stall = written.load(Ordering::Relaxed);
        assert!(at_stall < WRITES, "the writer is held back");
        // A second of virtual time changes nothing while the store is stuck
        // (under the request timeout, so no retry is involved).
        runtime.sleep(Duration::from_secs(1)).await;
        assert_eq!(written.load(Ordering::Relaxed), at_stall, "still stalled");
        let stats = db.stats();
        assert!(gate.held() >= 1, "an L0 upload is held");
        assert!(
            stats.peak_unflushed_bytes <= MAX_UNFLUSHED as u64,
            "unflushed bytes stayed under the maximum: {stats:?}"
        );

        gate.release();
        writer.await.expect("the writer resumes and finishes");
        let stats = db.stats();
        assert!(stats.peak_unflushed_bytes <= MAX_UNFLUSHED as u64, "{stats:?}");
        assert!(stats.memtables_frozen >= 3, "{stats:?}");
        for n in (0..WRITES).step_by(17) {
            let value = db.get(format!("key-{n:05}")).await.expect("get");
            assert_eq!(value.map(|value| value.len()), Some(200), "key-{n:05}");
        }
        db.close().await.expect("close");
    });
}
