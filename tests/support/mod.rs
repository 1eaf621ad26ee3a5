//! Shared helpers for the integration tests: runtimes to run a test on,
//! stores to run it against, and a temporary directory that removes itself.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub mod audit;
pub mod sim_world;

use talusdb::actors::Runtime;
use talusdb::store::{ObjectStoreAdapter, Store};
use talusdb::{Db, DbOptions};

/// A wall clock for `Sim::with_wall_origin` decades ahead of every
/// object's modification time: only references, never ages, keep objects
/// alive from the garbage collector.
pub const FAR_FUTURE_MS: u64 = 4_000_000_000_000;

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

/// Every object under the database root `db`, by path.
pub async fn listing(store: &Arc<dyn Store>) -> Vec<object_store::path::Path> {
    let objects = store.list(&"db".into()).await.expect("list");
    objects.into_iter().map(|info| info.path).collect()
}

/// `future`'s output, or a panic naming `what` if it takes longer than
/// `limit` on `runtime`'s clock (a hang detector, not a performance check).
pub async fn within<T>(
    runtime: &Runtime,
    limit: std::time::Duration,
    what: &str,
    future: impl Future<Output = T>,
) -> T {
    use futures::FutureExt;
    futures::select_biased! {
        output = future.fuse() => output,
        _ = runtime.sleep(limit).fuse() => panic!("{what} took longer than {limit:?}"),
    }
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

/// Keeps a store's backing (a directory, a server) alive.
pub type Guard = Option<Box<dyn std::any::Any>>;

/// The stores every table-store test runs against: `InMemory`,
/// `LocalFileSystem` in a fresh directory, and S3 on a local server when
/// one can be started (see [`S3Server::start`]); each with its guard.
pub fn stores(runtime: &Runtime) -> Vec<(&'static str, Arc<dyn Store>, Guard)> {
    let dir = TempDir::new("store");
    let local = ObjectStoreAdapter::local_dir(dir.path(), runtime.clone()).expect("local store");
    let mut stores: Vec<(&'static str, Arc<dyn Store>, Guard)> = vec![
        ("in-memory", Arc::new(ObjectStoreAdapter::in_memory()), None),
        ("local", Arc::new(local), Some(Box::new(dir))),
    ];
    add_s3(&mut stores);
    stores
}

/// Adds S3 on a local server to `stores`, when one can be started.
#[cfg(feature = "aws")]
fn add_s3(stores: &mut Vec<(&'static str, Arc<dyn Store>, Guard)>) {
    if let Some((store, server)) = s3_store("stores") {
        stores.push(("s3", store, Some(Box::new(server))));
    }
}

/// Without the `aws` feature there is no S3 store to add.
#[cfg(not(feature = "aws"))]
fn add_s3(_stores: &mut Vec<(&'static str, Arc<dyn Store>, Guard)>) {}

/// An S3 store on a fresh local server, if one can be started.
#[cfg(feature = "aws")]
pub fn s3_store(test: &str) -> Option<(Arc<dyn Store>, S3Server)> {
    let server = S3Server::start(test)?;
    let store = ObjectStoreAdapter::s3(&server.options("talus")).expect("an S3 adapter");
    Some((Arc::new(store), server))
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

/// Options that make a small workload flush, compact (L0 trigger 3, two
/// jobs at once, 16 KiB tables) and collect garbage every `gc_interval`
/// with no minimum age.
pub fn compacting_db_options(max_l0_tables: usize, gc_interval: std::time::Duration) -> DbOptions {
    use talusdb::compactor::{CompactorOptions, SizeTiered};
    DbOptions {
        memtable_bytes: 4 << 10,
        wal_buffer_bytes: 1 << 10,
        max_unflushed_bytes: 32 << 10,
        max_l0_tables,
        compactor: Some(CompactorOptions {
            poll_interval: std::time::Duration::from_secs(1),
            max_concurrent_jobs: 2,
            target_table_bytes: 16 << 10,
            read_ahead_blocks: 4,
            strategy: Arc::new(SizeTiered {
                l0_trigger: 3,
                min_merge_runs: 3,
                ..SizeTiered::default()
            }),
            ..CompactorOptions::default()
        }),
        gc: Some(talusdb::GcOptions::uniform(gc_interval, std::time::Duration::ZERO)),
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

/// A local S3-compatible server (moto's, from PyPI's `moto[server]`) on
/// 127.0.0.1 and a free port, with one bucket; stopped on drop. It runs
/// through `moto_atomic.py`, which makes moto's conditional puts atomic as
/// real S3's are (moto alone lets two racing creates of one key both win).
pub struct S3Server {
    child: std::process::Child,
    pub endpoint: String,
    pub bucket: String,
}

impl S3Server {
    /// Starts the server, or returns `None` after printing one skip line
    /// when moto is not installed — unless `TALUS_S3_REQUIRED` is set (as
    /// `.ci/run` does), which makes a missing server a failure. The Python
    /// that has moto is the one beside `TALUS_MOTO_SERVER` (the
    /// `moto_server` script of a virtual environment), else `python3`.
    #[allow(
        clippy::disallowed_methods,
        reason = "waits in real time for an external process, outside any executor"
    )]
    pub fn start(test: &str) -> Option<S3Server> {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        use std::time::{Duration, Instant};

        let program = std::env::var_os("TALUS_MOTO_SERVER")
            .map(std::path::PathBuf::from)
            .and_then(|server| Some(server.parent()?.join("python3")))
            .unwrap_or_else(|| "python3".into());
        let program = program.display().to_string();
        // The library's tests and the CLI's (`cli/`) share this file.
        let launcher = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|dir| dir.join("tests/support/moto_atomic.py"))
            .find(|launcher| launcher.exists())
            .expect("tests/support/moto_atomic.py in the package or above it");
        let launcher = launcher.display().to_string();
        let required = std::env::var_os("TALUS_S3_REQUIRED").is_some();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = std::process::Command::new(&program)
            .args([launcher.as_str(), "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(error) if !required => {
                println!(
                    "skipping {test}: cannot start {program} ({error}); pip install 'moto[server]' to run the S3 suite"
                );
                return None;
            }
            Err(error) => panic!("TALUS_S3_REQUIRED is set but {program} cannot start: {error}"),
        };
        let mut server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: "talus-test".into(),
        };
        // The server is ready when it answers the bucket's creation; until
        // then the connection is refused.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let created = TcpStream::connect(("127.0.0.1", port)).and_then(|mut stream| {
                write!(
                    stream,
                    "PUT /{} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    server.bucket
                )?;
                let mut answer = String::new();
                stream.read_to_string(&mut answer)?;
                Ok(answer)
            });
            match created {
                Ok(answer) if answer.starts_with("HTTP/1.1 200") => return Some(server),
                Ok(answer) => panic!("creating the bucket failed: {answer}"),
                Err(_) if Instant::now() < deadline => {
                    if let Ok(Some(status)) = server.child.try_wait() {
                        assert!(!required, "TALUS_S3_REQUIRED is set but moto exited at start: {status}");
                        println!("skipping {test}: {program} has no moto ({status}); pip install 'moto[server]'");
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => panic!("{program} did not start within 30 s: {error}"),
            }
        }
    }

    /// Options for an adapter on this server's bucket, under `prefix`.
    #[cfg(feature = "aws")]
    pub fn options(&self, prefix: &str) -> talusdb::store::S3Options {
        talusdb::store::S3Options {
            bucket: self.bucket.clone(),
            prefix: Some(prefix.into()),
            endpoint: Some(self.endpoint.clone()),
            allow_http: true,
            region: Some("us-east-1".into()),
            access_key_id: Some("testing".into()),
            secret_access_key: Some("testing".into()),
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The store a child process is told to use: `local:<dir>`, or
/// `s3:<endpoint>` (the test bucket of [`S3Server`], under `prefix`).
pub fn store_from_spec(spec: &str, prefix: &str, runtime: &Runtime) -> Arc<dyn Store> {
    if let Some(dir) = spec.strip_prefix("local:") {
        return Arc::new(ObjectStoreAdapter::local_dir(dir, runtime.clone()).expect("local store"));
    }
    let endpoint = spec
        .strip_prefix("s3:")
        .expect("a store spec: local:<dir> or s3:<endpoint>");
    s3_at(endpoint, prefix)
}

#[cfg(feature = "aws")]
fn s3_at(endpoint: &str, prefix: &str) -> Arc<dyn Store> {
    let options = talusdb::store::S3Options {
        bucket: "talus-test".into(),
        prefix: Some(prefix.into()),
        endpoint: Some(endpoint.into()),
        allow_http: true,
        region: Some("us-east-1".into()),
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
    };
    Arc::new(ObjectStoreAdapter::s3(&options).expect("an S3 adapter"))
}

#[cfg(not(feature = "aws"))]
fn s3_at(_endpoint: &str, _prefix: &str) -> Arc<dyn Store> {
    panic!("S3 stores need the `aws` feature")
}

/// Starts `db.flush_memtable()` with its L0 upload held at `gate`, and
/// returns once the upload is held; the task ends after `gate.release()`.
pub async fn flush_with_held_upload(
    gate: &talusdb::store::GateStore,
    db: &Db,
    runtime: &Runtime,
) -> talusdb::actors::runtime::JoinHandle<Result<(), talusdb::Error>> {
    gate.hold(talusdb::store::Op::Put, "/compacted/", 1);
    let held = gate.held();
    let db = db.clone();
    let flush = runtime.spawn(async move { db.flush_memtable().await });
    gate.wait_held(held + 1).await;
    flush
}

/// Spawns `count` non-durable puts of 200-byte values to `key-00000`,
/// `key-00001`, ...; the counter says how many have returned.
pub fn spawn_counted_writes(
    db: &Db,
    runtime: &Runtime,
    count: usize,
) -> (Arc<AtomicUsize>, talusdb::actors::runtime::JoinHandle<()>) {
    let written = Arc::new(AtomicUsize::new(0));
    let task = runtime.spawn({
        let (db, written) = (db.clone(), written.clone());
        async move {
            for n in 0..count {
                let options = talusdb::WriteOptions {
                    await_durable: false,
                    ..talusdb::WriteOptions::default()
                };
                db.put_with_options(format!("key-{n:05}"), vec![b'v'; 200], options)
                    .await
                    .expect("put");
                written.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    (written, task)
}

/// A tiny deterministic generator (the tests' own, so an operation
/// sequence is fixed by its seed on every executor).
pub struct Gen(pub u64);

impl Gen {
    pub fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }

    /// One of 300 keys, `key0000` to `key0299`.
    pub fn key(&mut self) -> bytes::Bytes {
        bytes::Bytes::from(format!("key{:04}", self.next(300)))
    }
}

/// Runs `test` under a fresh simulator seeded with `seed`, on an in-memory
/// store.
pub fn on_sim(seed: u64, test: impl AsyncFnOnce(Runtime, Arc<dyn Store>)) {
    let sim = talusdb::actors::runtime::Sim::new(seed);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        test(runtime, store).await;
    });
}

/// Default scan options, in key order or (with `reverse`) backwards.
pub fn scan_order(reverse: bool) -> talusdb::ScanOptions {
    let order = if reverse {
        talusdb::ScanOrder::Reverse
    } else {
        talusdb::ScanOrder::Forward
    };
    talusdb::ScanOptions {
        order,
        ..talusdb::ScanOptions::default()
    }
}

/// A list-append merge operator: operands are joined onto the value,
/// comma-separated.
#[derive(Debug)]
pub struct Append;

impl talusdb::MergeOperator for Append {
    fn name(&self) -> &str {
        "list-append"
    }

    fn full_merge(
        &self,
        _key: &[u8],
        base: Option<&[u8]>,
        operands: &[&[u8]],
    ) -> Result<bytes::Bytes, talusdb::MergeError> {
        let mut items: Vec<&[u8]> = base.into_iter().collect();
        items.extend(operands.iter().copied());
        Ok(bytes::Bytes::from(items.join(&b","[..])))
    }
}

/// A scanned pair as text (the tests' keys and values are UTF-8).
pub fn text((key, value): (bytes::Bytes, bytes::Bytes)) -> (String, String) {
    (
        String::from_utf8(key.to_vec()).expect("utf8"),
        String::from_utf8(value.to_vec()).expect("utf8"),
    )
}

/// Every row `scan` yields, as text.
/// What a database should hold, by key: the model [`write_model`] keeps
/// and [`check_model`] compares with.
pub type TextModel = std::collections::BTreeMap<String, String>;

/// Writes `count` random puts (values start with `label`) and deletes
/// (one in eight) to keys `k000` to `k399`, keeping `model` up to date.
pub async fn write_model(db: &Db, model: &mut TextModel, random: &mut Gen, label: &str, count: usize) {
    for _ in 0..count {
        let key = format!("k{:03}", random.next(400));
        if random.next(8) == 0 {
            db.delete(key.clone()).await.expect("delete");
            model.remove(&key);
        } else {
            let value = format!("{label} {}", "x".repeat(random.next(120) as usize));
            db.put(key.clone(), value.clone()).await.expect("put");
            model.insert(key, value);
        }
    }
}

/// Checks that a whole scan of `db` is `model`, and that gets of every
/// 13th key of [`write_model`]'s range, present or not, agree.
pub async fn check_model(db: &Db, model: &TextModel, what: &str) {
    let rows = text_rows(db.scan::<&str>(..))
        .await
        .unwrap_or_else(|error| panic!("{what}: a scan failed: {error}"));
    assert_eq!(rows.len(), model.len(), "{what}: rows");
    assert!(&rows == model, "{what}: a whole scan differs from the model");
    for key in (0..400).step_by(13).map(|i| format!("k{i:03}")) {
        assert_eq!(
            db.get(key.as_str()).await.expect("get").as_deref(),
            model.get(&key).map(String::as_bytes),
            "{what}: {key}"
        );
    }
}

pub async fn text_rows(
    scan: talusdb::DbIterator,
) -> Result<std::collections::BTreeMap<String, String>, talusdb::Error> {
    use futures::TryStreamExt;
    scan.map_ok(text).try_collect().await
}
