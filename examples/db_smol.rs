//! A smol program that embeds talusdb on a local directory (the embedded
//! default): write, read, scan, make a checkpoint, close, reopen.
//!
//! Run with `cargo run --example db_smol [DIR]` (default: a fresh
//! directory under the system's temp dir, removed at the end).

use std::sync::Arc;

use futures::TryStreamExt;
use talusdb::actors::Runtime;
use talusdb::manifest::CheckpointOptions;
use talusdb::store::ObjectStoreAdapter;
use talusdb::{Db, WriteBatch};

pub fn main() {
    let argument = std::env::args().nth(1).filter(|arg| !arg.starts_with('-'));
    let (dir, temporary) = match argument {
        Some(dir) => (std::path::PathBuf::from(dir), false),
        None => (
            std::env::temp_dir().join(format!("talusdb-example-smol-{}", std::process::id())),
            true,
        ),
    };
    smol::block_on(async {
        let runtime = Runtime::smol().expect("smol executor");
        let store = Arc::new(ObjectStoreAdapter::local_dir(&dir, runtime.clone()).expect("directory"));
        let db = Db::builder("example", store.clone())
            .runtime(runtime.clone())
            .open()
            .await
            .expect("open");
        db.put("fruit/apple", "red").await.expect("put");
        let mut batch = WriteBatch::new();
        batch
            .put("fruit/banana", "yellow")
            .put("fruit/cherry", "dark red")
            .delete("fruit/apple");
        db.write(batch).await.expect("batch");
        let fruit: Vec<_> = db.scan("fruit/".."fruit0").try_collect().await.expect("scan");
        assert_eq!(fruit.len(), 2);
        let checkpoint = db
            .create_checkpoint(CheckpointOptions {
                name: Some("example".into()),
                ..CheckpointOptions::default()
            })
            .await
            .expect("checkpoint");
        db.close().await.expect("close");

        let reopened = Db::builder("example", store)
            .runtime(runtime)
            .open()
            .await
            .expect("reopen");
        let banana = reopened.get("fruit/banana").await.expect("get");
        assert_eq!(banana.as_deref(), Some(&b"yellow"[..]));
        assert_eq!(reopened.get("fruit/apple").await.expect("get"), None);
        reopened.close().await.expect("close");
        println!(
            "smol: {} fruits in {}, checkpoint {} pins manifest {}",
            fruit.len(),
            dir.display(),
            checkpoint.id,
            checkpoint.manifest_id
        );
    });
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
