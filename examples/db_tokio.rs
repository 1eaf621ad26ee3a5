//! A tokio program that embeds talusdb on a local directory: the database's
//! actors run on the program's own tokio runtime, and tasks spawned the
//! tokio way share one `Db` (it is cheap to clone).
//!
//! Run with `cargo run --example db_tokio --features tokio [DIR]` (default:
//! a fresh directory under the system's temp dir, removed at the end).

use std::sync::Arc;

use talusdb::actors::Runtime;
use talusdb::store::ObjectStoreAdapter;
use talusdb::{Db, WriteOptions};

const TASKS: usize = 8;
const WRITES_PER_TASK: usize = 100;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub async fn main() {
    let argument = std::env::args().nth(1).filter(|arg| !arg.starts_with('-'));
    let (dir, temporary) = match argument {
        Some(dir) => (std::path::PathBuf::from(dir), false),
        None => (
            std::env::temp_dir().join(format!("talusdb-example-tokio-{}", std::process::id())),
            true,
        ),
    };
    let runtime = Runtime::tokio(tokio::runtime::Handle::current());
    let store = Arc::new(ObjectStoreAdapter::local_dir(&dir, runtime.clone()).expect("directory"));
    let db = Db::builder("example", store)
        .runtime(runtime)
        .open()
        .await
        .expect("open");

    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let db = db.clone();
        tasks.spawn(async move {
            for n in 0..WRITES_PER_TASK {
                // Every tenth write waits until it is durable; the others
                // return once they are in the memtable.
                let options = WriteOptions {
                    await_durable: n % 10 == 0,
                    ..WriteOptions::default()
                };
                db.put_with_options(format!("t{task}/{n:03}"), "v", options)
                    .await
                    .expect("put");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("writer task");
    }
    db.flush().await.expect("flush");

    let mut found = 0;
    for task in 0..TASKS {
        for n in 0..WRITES_PER_TASK {
            found += usize::from(db.get(format!("t{task}/{n:03}")).await.expect("get").is_some());
        }
    }
    db.close().await.expect("close");
    assert_eq!(found, TASKS * WRITES_PER_TASK);
    println!("tokio: {found} keys written by {TASKS} tasks in {}", dir.display());
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
