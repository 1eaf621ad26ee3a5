//! S3 through a local S3-compatible server (`moto_server`, started on
//! 127.0.0.1 by each test and stopped after it): WAL fencing and own-retry
//! recognition with conditional puts, and the engine from smol (the CLI on S3
//! is tested in `cli/tests/s3.rs`).
//! The table store and manifest suites also run on S3 (`tests/table_store.rs`,
//! `tests/manifest.rs`). Without `moto_server` each test prints one skip
//! line; `.ci/run` installs it and sets `TALUS_S3_REQUIRED`.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use talusdb::internals::TableStore;
use talusdb::internals::format::Row;
use talusdb::store::{Fault, FaultyStore, StoreError, TableStoreOptions};
use talusdb::{Db, WriteOptions};

use support::{on_smol, s3_store};

fn rows(seq: u64, count: u64) -> Vec<Row> {
    (0..count)
        .map(|n| Row::value(format!("k{n}"), format!("v{seq}-{n}"), seq + n))
        .collect()
}

#[test]
fn wal_ids_fence_and_an_ambiguous_retry_is_recognised_on_s3() {
    let Some((store, _server)) = s3_store("the S3 WAL test") else {
        return;
    };
    on_smol(|runtime| async move {
        let faulty = FaultyStore::new(store, 3);
        let tables = TableStore::new(
            Arc::new(faulty.clone()),
            Path::from("db"),
            runtime.clone(),
            TableStoreOptions::default(),
        );
        tables.write_wal(5, &rows(1, 10)).await.expect("first write of WAL 5");
        let other = tables.write_wal(5, &rows(100, 10)).await;
        assert!(matches!(other, Err(StoreError::Fenced { .. })), "{other:?}");

        // The next request lands but its reply is lost: the retry meets its
        // own object and is not taken for a fence.
        faulty.fail_request(1, Fault::LostReply);
        tables.write_wal(6, &rows(20, 10)).await.expect("own retry recognised");
        assert_eq!(tables.read_wal(6).await.expect("read"), rows(20, 10));
        assert_eq!(tables.list_wal_ids().await.expect("list"), vec![5, 6]);
    });
}

#[test]
fn the_engine_runs_on_s3_survives_a_crash_and_fences() {
    let Some((store, _server)) = s3_store("the S3 engine test") else {
        return;
    };
    on_smol(|runtime| async move {
        let first = support::open_db("db", &store, &runtime).await;
        for n in 0..60 {
            let options = WriteOptions {
                await_durable: n % 4 != 0,
                ..WriteOptions::default()
            };
            first
                .put_with_options(format!("k{n:03}"), format!("v{n}"), options)
                .await
                .expect("put");
        }
        first.flush_memtable().await.expect("to L0");
        first.put("last", "acknowledged").await.expect("put");

        // A second writer opens while the first is alive (and never closed).
        let second = support::open_db("db", &store, &runtime).await;
        let fenced = first
            .put("stale", "never")
            .await
            .expect_err("the first writer is fenced");
        assert!(fenced.is_fenced(), "{fenced}");
        assert_eq!(
            second.get("last").await.expect("get").as_deref(),
            Some(&b"acknowledged"[..])
        );
        assert_eq!(second.get("stale").await.expect("get"), None);
        let keys: Vec<Bytes> = second.scan("k".."l").map(|row| row.expect("row").0).collect().await;
        assert_eq!(keys.len(), 60);
        second.close().await.expect("close");

        let reader = Db::builder("db", store.clone())
            .runtime(runtime.clone())
            .open_read_only()
            .await
            .expect("read-only");
        assert_eq!(reader.get("k059").await.expect("get").as_deref(), Some(&b"v59"[..]));
    });
}
