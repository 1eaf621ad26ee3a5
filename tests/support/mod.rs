//! Shared helpers for the integration tests: runtimes to run a test on,
//! stores to run it against, and a temporary directory that removes itself.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use talusdb::actors::Runtime;
use talusdb::store::{ObjectStoreAdapter, Store};
use talusdb::{Db, DbOptions};

/// A directory under the system's temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("talusdb-{label}-{}-{unique}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `test` from inside smol (the future is polled by `smol::block_on`,
/// blocking work goes to smol's pool).
pub fn on_smol<F, Fut>(test: F)
where
    F: FnOnce(Runtime) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = Runtime::smol().expect("smol runtime");
    smol::block_on(test(runtime));
}

/// Runs `test` on a multi-thread tokio runtime.
pub fn on_tokio<F, Fut>(test: F)
where
    F: FnOnce(Runtime) -> Fut,
    Fut: Future<Output = ()>,
{
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    let runtime = Runtime::tokio(tokio.handle().clone());
    tokio.block_on(test(runtime));
}

/// The stores every table-store test runs against: `InMemory`, and
/// `LocalFileSystem` in a fresh directory (kept alive by the returned guard).
pub fn stores(runtime: &Runtime) -> Vec<(&'static str, Arc<dyn Store>, Option<TempDir>)> {
    let dir = TempDir::new("store");
    let local = ObjectStoreAdapter::local_dir(dir.path(), runtime.clone()).expect("local store");
    vec![
        ("in-memory", Arc::new(ObjectStoreAdapter::in_memory()), None),
        ("local", Arc::new(local), Some(dir)),
    ]
}

/// Options that make a small workload go through WAL tables, frozen
/// memtables and L0 tables.
pub fn small_db_options() -> DbOptions {
    DbOptions {
        memtable_bytes: 4 << 10,
        wal_buffer_bytes: 1 << 10,
        max_unflushed_bytes: 64 << 10,
        ..DbOptions::default()
    }
}

/// Opens the database under `root` with [`small_db_options`].
pub async fn open_db(root: &str, store: &Arc<dyn Store>, runtime: &Runtime) -> Db {
    Db::builder(root, store.clone())
        .runtime(runtime.clone())
        .options(small_db_options())
        .open()
        .await
        .expect("open")
}
