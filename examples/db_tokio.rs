//! A tokio program that embeds talusdb: the actors run on the program's
//! own tokio runtime, and tasks of the program share one `Db`.
//!
//! Run with `cargo run --example db_tokio --features tokio`.

use std::sync::Arc;

use talusdb::actors::Runtime;
use talusdb::store::ObjectStoreAdapter;
use talusdb::{Db, WriteOptions};

pub fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    let total = tokio.block_on(async {
        let runtime = Runtime::tokio(tokio::runtime::Handle::current());
        let db = Db::builder("tokio-example", Arc::new(ObjectStoreAdapter::in_memory()))
            .runtime(runtime)
            .open()
            .await
            .expect("open");
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let db = db.clone();
                tokio::runtime::Handle::current().spawn(async move {
                    for n in 0..100 {
                        let options = WriteOptions {
                            await_durable: n % 10 == 0,
                        };
                        db.put_with_options(format!("t{task}/{n:03}"), "v", options)
                            .await
                            .expect("put");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("writer task");
        }
        db.flush().await.expect("flush");
        let mut total = 0;
        for task in 0..8 {
            for n in 0..100 {
                total += usize::from(db.get(format!("t{task}/{n:03}")).await.expect("get").is_some());
            }
        }
        db.close().await.expect("close");
        total
    });
    assert_eq!(total, 800);
    println!("tokio: 8 tasks wrote {total} keys through one Db");
}
