//! Ordered retirement: L0 uploads that finish out of order are recorded in
//! the manifest in sequence order, and a flush waiter for the later range
//! waits for the earlier one.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use talusdb::actors::runtime::Sim;
use talusdb::manifest::{Manifest, VersionedOptions, VersionedStore};
use talusdb::store::{GateStore, ObjectStoreAdapter, Store};
use talusdb::{Db, DbOptions};

#[test]
fn an_upload_that_finishes_first_waits_for_the_earlier_range() {
    let sim = Sim::new(21);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let gate = GateStore::new(Arc::new(ObjectStoreAdapter::in_memory()));
        let store: Arc<dyn Store> = Arc::new(gate.clone());
        let db = Db::builder("db", store.clone())
            .runtime(runtime.clone())
            .options(DbOptions {
                l0_upload_parallelism: 2,
                ..DbOptions::default()
            })
            .open()
            .await
            .expect("open");
        let manifests =
            VersionedStore::<Manifest>::new(store.clone(), "db".into(), runtime.clone(), VersionedOptions::default());
        let latest_l0 = || async {
            let (_, manifest) = manifests.read_latest().await.expect("read").expect("a manifest");
            manifest.l0
        };

        for n in 0..10 {
            db.put(format!("a{n}"), "early").await.expect("put");
        }
        // The first memtable's L0 upload is held back...
        let mut earlier = support::flush_with_held_upload(&gate, &db, &runtime).await;
        // ...while the second one's goes through.
        for n in 0..10 {
            db.put(format!("b{n}"), "late").await.expect("put");
        }
        let mut later = runtime.spawn({
            let db = db.clone();
            async move { db.flush_memtable().await }
        });
        // Under sim, virtual time moves only once every task is idle: after
        // this sleep the second upload is done and its message handled.
        runtime.sleep(Duration::from_millis(50)).await;
        let uploaded = store.list(&"db/compacted".into()).await.expect("list");
        assert_eq!(uploaded.len(), 1, "the later table is in the store");
        assert!(
            latest_l0().await.is_empty(),
            "but it is not retired before the earlier range"
        );
        assert!((&mut later).now_or_never().is_none(), "the later flush waiter waits");
        assert!(
            (&mut earlier).now_or_never().is_none(),
            "the earlier flush waiter waits"
        );

        gate.release();
        earlier.await.expect("task").expect("earlier flush");
        later.await.expect("task").expect("later flush");
        let l0 = latest_l0().await;
        assert_eq!(l0.len(), 2, "both tables retired");
        assert!(
            l0[0].min_seq > l0[1].max_seq,
            "newest first, in sequence order: {:?}",
            l0.iter()
                .map(|table| (table.min_seq, table.max_seq))
                .collect::<Vec<_>>()
        );
        assert_eq!(db.stats().l0_tables, 2);
        assert_eq!(db.get("a3").await.expect("get").as_deref(), Some(&b"early"[..]));
        assert_eq!(db.get("b3").await.expect("get").as_deref(), Some(&b"late"[..]));
        db.close().await.expect("close");
    });
}
