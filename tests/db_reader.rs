//! Read-only opening: a `DbReader` sees what was durable when it opened
//! (tables and WAL), and never fences or disturbs the live writer.

mod support;

use std::sync::Arc;

use futures::StreamExt;
use talusdb::Db;
use talusdb::actors::runtime::Sim;
use talusdb::store::{ObjectStoreAdapter, Store};

#[test]
fn a_reader_sees_durable_rows_and_the_writer_goes_on() {
    let sim = Sim::new(51);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let missing = Db::builder("db", store.clone())
            .runtime(runtime.clone())
            .open_read_only()
            .await
            .expect_err("no database yet");
        assert!(missing.message().contains("db"), "{missing}");

        let writer = support::open_db("db", &store, &runtime).await;
        for n in 0..40 {
            writer.put(format!("k{n:02}"), format!("v{n}")).await.expect("put");
        }
        writer.flush_memtable().await.expect("some rows in L0");
        writer.put("in-wal-only", "yes").await.expect("put");
        writer.delete("k00").await.expect("delete");

        let reader = Db::builder("db", store.clone())
            .runtime(runtime.clone())
            .open_read_only()
            .await
            .expect("open read-only");
        assert_eq!(reader.get("k07").await.expect("get").as_deref(), Some(&b"v7"[..]));
        assert_eq!(
            reader.get("in-wal-only").await.expect("get").as_deref(),
            Some(&b"yes"[..])
        );
        assert_eq!(reader.get("k00").await.expect("get"), None, "the delete is seen");
        let keys: Vec<_> = reader.scan::<&str>(..).map(|row| row.expect("row").0).collect().await;
        assert_eq!(keys.len(), 40, "39 of the first rows and the WAL-only one");

        writer
            .put("after-reader", "still the writer")
            .await
            .expect("the writer is not fenced");
        assert_eq!(reader.get("after-reader").await.expect("get"), None, "pinned at open");
        writer.close().await.expect("close");
    });
}
