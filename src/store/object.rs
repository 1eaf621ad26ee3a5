//! The narrow object-store interface the engine uses, and the adapter that
//! puts any `object_store` implementation behind it.
//!
//! Owns: [`Store`] (the seven request kinds the engine needs), [`Driver`]
//! (where an `object_store` future runs) and [`ObjectStoreAdapter`]. Does not
//! own: table formats, caching, retries (the table store decides those).
//!
//! Why a trait of our own: the wrappers that count, slow down or fail
//! requests (`LatencyStore`, `FaultyStore`) need one method per request kind,
//! and the engine needs every request to run on the executor it was given,
//! whichever store is underneath. `object_store::ObjectStore` has a dozen
//! methods, some of them streams, and some implementations need a tokio
//! runtime; the adapter is the one place that knows.
//!
//! Invariants: every error names the object; `delete` of a missing object
//! succeeds (deletes are idempotent); `list` returns objects sorted by path.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};
use talus_actors::Runtime;

use super::error::{Op, StoreError};
use super::local::{self, LocalFiles};

/// The result of a store request.
pub type StoreResult<T> = Result<T, StoreError>;

/// Which bytes of an object to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// The whole object.
    All,
    /// `start..end`, which must lie within the object.
    Range(Range<u64>),
    /// The last `n` bytes (the whole object if it is shorter).
    Suffix(u64),
}

impl ByteRange {
    /// The request kind a read of this range counts as.
    pub fn op(&self) -> Op {
        match self {
            ByteRange::All => Op::Get,
            ByteRange::Range(_) | ByteRange::Suffix(_) => Op::GetRange,
        }
    }
}

/// Bytes read from an object, with the object's total size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The bytes read.
    pub bytes: Bytes,
    /// Offset of `bytes[0]` in the object.
    pub offset: u64,
    /// The whole object's size.
    pub object_size: u64,
}

/// What a listing or `head` reports of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's name.
    pub path: Path,
    /// Its size in bytes.
    pub size: u64,
    /// Last modification, wall-clock milliseconds; [`UNKNOWN_MODIFIED_MS`]
    /// if the store gave none we can read (an age that is never old).
    pub modified_ms: u64,
}

/// The modification time of an object whose time is unknown: later than
/// any clock, so the garbage collector never finds it old enough.
pub const UNKNOWN_MODIFIED_MS: u64 = u64::MAX;

/// How a `put` treats an existing object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutMode {
    /// Fail with [`StoreError::AlreadyExists`] if the object exists.
    Create,
    /// Replace the object if it exists.
    Overwrite,
}

/// An object store as the engine sees it. Object-safe; every future is
/// `Send`.
pub trait Store: fmt::Debug + Send + Sync + 'static {
    /// Reads `range` of the object at `path`.
    fn get(&self, path: &Path, range: ByteRange) -> BoxFuture<'static, StoreResult<Fetched>>;
    /// Reads the size and time of the object at `path`.
    fn head(&self, path: &Path) -> BoxFuture<'static, StoreResult<ObjectInfo>>;
    /// Writes `bytes` to `path` in one request.
    fn put(&self, path: &Path, bytes: Bytes, mode: PutMode) -> BoxFuture<'static, StoreResult<()>>;
    /// Uploads `parts` (each but the last at least the store's minimum part
    /// size) as one object, replacing any object at `path`.
    fn put_multipart(&self, path: &Path, parts: Vec<Bytes>) -> BoxFuture<'static, StoreResult<()>>;
    /// Every object under `prefix`, sorted by path.
    fn list(&self, prefix: &Path) -> BoxFuture<'static, StoreResult<Vec<ObjectInfo>>>;
    /// Removes the object; a missing object is not an error.
    fn delete(&self, path: &Path) -> BoxFuture<'static, StoreResult<()>>;
}

/// The outcome of a conditional create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    /// Our bytes are there now.
    Written,
    /// Someone else's object was there first.
    Conflict,
}

/// Creates `path` holding `bytes` unless an object is there. An existing
/// object with exactly our bytes is our own earlier attempt (its reply was
/// lost, here or in the store client's own retries) and counts as
/// `Written`; callers make their bytes unique (a put id or write id) so
/// that nobody else's object can be equal.
///
/// # Errors
///
/// The store's error, other than the object existing already.
pub async fn create_once(store: &dyn Store, path: &Path, bytes: Bytes) -> StoreResult<Created> {
    match store.put(path, bytes.clone(), PutMode::Create).await {
        Ok(()) => Ok(Created::Written),
        Err(StoreError::AlreadyExists { .. }) => {
            let existing = store.get(path, ByteRange::All).await?;
            if existing.bytes == bytes {
                tracing::debug!(%path, "a retried create found its own earlier attempt");
                Ok(Created::Written)
            } else {
                Ok(Created::Conflict)
            }
        }
        Err(error) => Err(error),
    }
}

/// Where the futures of an `object_store` implementation run.
#[derive(Clone)]
pub enum Driver {
    /// Polled by the caller: for stores that never block and need no runtime
    /// (`InMemory`).
    Direct,
    /// Each request runs to completion on the executor's blocking pool: for
    /// `LocalFileSystem`, which does blocking file I/O inside its futures.
    Blocking(Runtime),
    /// Each request is spawned on a tokio runtime: for HTTP stores (S3),
    /// whose client needs tokio's reactor and timers.
    Tokio(tokio::runtime::Handle),
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Driver::Direct => f.write_str("Direct"),
            Driver::Blocking(runtime) => write!(f, "Blocking({})", runtime.kind()),
            Driver::Tokio(_) => f.write_str("Tokio"),
        }
    }
}

/// Puts an `object_store` implementation behind [`Store`], running its
/// requests through a [`Driver`].
#[derive(Clone)]
pub struct ObjectStoreAdapter {
    inner: Arc<dyn ObjectStore>,
    driver: Driver,
    /// The local directory store behind `inner`, when it is one: its reads
    /// of page-cached bytes skip the driver.
    local: Option<Arc<LocalFiles>>,
    /// The tokio thread an S3 adapter's requests run on; it lives as long
    /// as the adapter's last clone.
    _owned_thread: Option<Arc<TokioThread>>,
}

impl fmt::Debug for ObjectStoreAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreAdapter")
            .field("inner", &format_args!("{}", self.inner))
            .field("driver", &self.driver)
            .finish()
    }
}

impl ObjectStoreAdapter {
    /// Adapts `inner`, whose requests run as `driver` says.
    pub fn new(inner: Arc<dyn ObjectStore>, driver: Driver) -> Self {
        ObjectStoreAdapter {
            inner,
            driver,
            local: None,
            _owned_thread: None,
        }
    }

    /// An S3 (or S3-compatible) bucket, with conditional puts
    /// (`If-None-Match`), its requests run on a tokio thread the adapter
    /// owns, so it works from any executor. Credentials and region come
    /// from the standard AWS environment variables unless `options` sets
    /// them.
    ///
    /// # Errors
    ///
    /// [`StoreError::Config`] if the bucket, endpoint or credentials cannot
    /// be used.
    #[cfg(feature = "aws")]
    pub fn s3(options: &S3Options) -> Result<Self, StoreError> {
        let invalid = |detail: String| StoreError::Config {
            path: Path::from(options.bucket.as_str()),
            detail,
        };
        if options.bucket.is_empty() {
            return Err(invalid("no S3 bucket named".into()));
        }
        let allow_http =
            options.allow_http || std::env::var("AWS_ALLOW_HTTP").is_ok_and(|value| value.eq_ignore_ascii_case("true"));
        let endpoint = options.endpoint.clone().or_else(|| std::env::var("AWS_ENDPOINT").ok());
        if let Some(endpoint) = endpoint.as_deref()
            && endpoint.starts_with("http://")
            && !allow_http
        {
            return Err(invalid(format!(
                "the endpoint {endpoint} is plain HTTP: permit it with --allow-http (S3Options::allow_http or \
                 AWS_ALLOW_HTTP=true), or use https://"
            )));
        }
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&options.bucket)
            .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
            // The client's own retries stay short: the table store and the
            // metadata layer retry what can succeed later, and an error no
            // retry fixes (nothing listening, no credentials) must surface
            // in seconds, not minutes.
            .with_retry(object_store::RetryConfig {
                max_retries: 3,
                retry_timeout: S3_CLIENT_RETRY_TIMEOUT,
                ..object_store::RetryConfig::default()
            });
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if allow_http {
            builder = builder.with_allow_http(true);
        }
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &options.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &options.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let s3 = builder.build().map_err(|error| invalid(format!("S3: {error}")))?;
        let inner: Arc<dyn ObjectStore> = match options.prefix.as_deref().filter(|prefix| !prefix.is_empty()) {
            Some(prefix) => Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)),
            None => Arc::new(s3),
        };
        let thread = TokioThread::start("talus-s3")
            .map_err(|error| invalid(format!("cannot start the S3 client's thread: {error}")))?;
        Ok(ObjectStoreAdapter {
            inner,
            driver: thread.driver(),
            local: None,
            _owned_thread: Some(Arc::new(thread)),
        })
    }

    /// An in-memory store (tests, simulation).
    pub fn in_memory() -> Self {
        Self::new(Arc::new(object_store::memory::InMemory::new()), Driver::Direct)
    }

    /// A directory on the local file system (created if missing), with
    /// fsync on every write, whose file I/O runs on `runtime`'s blocking pool.
    ///
    /// # Errors
    ///
    /// The directory cannot be created or is not a directory.
    pub fn local_dir(dir: impl AsRef<std::path::Path>, runtime: Runtime) -> std::io::Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(std::io::Error::other)?
            .with_fsync(true)
            .with_automatic_cleanup(true);
        let store = Arc::new(store);
        Ok(ObjectStoreAdapter {
            local: Some(Arc::new(LocalFiles::new(store.clone()))),
            ..Self::new(store, Driver::Blocking(runtime))
        })
    }

    /// Runs one request built by `request` on the driver.
    fn run<T, F>(&self, op: Op, path: &Path, request: F) -> BoxFuture<'static, StoreResult<T>>
    where
        T: Send + 'static,
        F: FnOnce(Arc<dyn ObjectStore>, Path) -> BoxFuture<'static, object_store::Result<T>> + Send + 'static,
    {
        let (inner, driver, path) = (self.inner.clone(), self.driver.clone(), path.clone());
        // Nothing starts until the returned future is polled, so a wrapper
        // can delay or drop a request before it reaches the store.
        async move {
            let lost = |error: String| StoreError::unavailable(op, &path, error);
            let outcome = match driver {
                Driver::Direct => request(inner, path.clone()).await,
                Driver::Blocking(runtime) => {
                    let request = request(inner, path.clone());
                    runtime
                        .unblock(move || futures::executor::block_on(request))
                        .await
                        .map_err(|error| lost(error.to_string()))?
                }
                Driver::Tokio(handle) => {
                    let task = AbortOnDrop(handle.spawn(request(inner, path.clone())));
                    task.await.map_err(|error| lost(error.to_string()))?
                }
            };
            outcome.map_err(|error| StoreError::from_object_store(op, &path, error))
        }
        .boxed()
    }
}

/// A tokio task that is cancelled when its awaiting future is dropped (a
/// timed-out request must not keep running unobserved).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn info(meta: object_store::ObjectMeta) -> ObjectInfo {
    ObjectInfo {
        path: meta.location,
        size: meta.size,
        // A time before 1970 is no time we can judge an age by: unknown,
        // and an unknown age counts as young.
        modified_ms: u64::try_from(meta.last_modified.timestamp_millis()).unwrap_or(UNKNOWN_MODIFIED_MS),
    }
}

impl ObjectStoreAdapter {
    /// A read through the driver (the blocking pool for a local directory).
    fn get_blocking(&self, op: Op, path: &Path, range: ByteRange) -> BoxFuture<'static, StoreResult<Fetched>> {
        self.run(op, path, move |store, path| {
            async move {
                let options = GetOptions {
                    range: match range {
                        ByteRange::All => None,
                        ByteRange::Range(range) => Some(GetRange::Bounded(range)),
                        ByteRange::Suffix(len) => Some(GetRange::Suffix(len)),
                    },
                    ..GetOptions::default()
                };
                let result = store.get_opts(&path, options).await?;
                let (offset, object_size) = (result.range.start, result.meta.size);
                let bytes = result.bytes().await?;
                Ok(Fetched {
                    bytes,
                    offset,
                    object_size,
                })
            }
            .boxed()
        })
    }
}

impl Store for ObjectStoreAdapter {
    fn get(&self, path: &Path, range: ByteRange) -> BoxFuture<'static, StoreResult<Fetched>> {
        let op = range.op();
        if let ByteRange::Range(wanted) = &range
            && wanted.start >= wanted.end
        {
            let error = StoreError::InvalidRequest {
                op,
                path: path.clone(),
                detail: format!("empty range {wanted:?}"),
            };
            return futures::future::ready(Err(error)).boxed();
        }
        if let Some(local) = self.local.clone() {
            // Bytes the OS already caches are read on the caller's thread:
            // a table block from the page cache costs a few microseconds,
            // a trip through the blocking pool ten times that.
            let (adapter, path) = (self.clone(), path.clone());
            return async move {
                if let Some(fetched) = local.read_cached(&path, &range) {
                    // A caller whose reads all come from the page cache
                    // never waits: it yields now and then, or it would
                    // hold its executor thread while other tasks queue.
                    if local::due_to_yield() {
                        talus_actors::runtime::yield_now().await;
                    }
                    return Ok(fetched);
                }
                adapter.get_blocking(op, &path, range).await
            }
            .boxed();
        }
        self.get_blocking(op, path, range)
    }

    fn head(&self, path: &Path) -> BoxFuture<'static, StoreResult<ObjectInfo>> {
        self.run(Op::Head, path, |store, path| {
            async move { store.head(&path).await.map(info) }.boxed()
        })
    }

    fn put(&self, path: &Path, bytes: Bytes, mode: PutMode) -> BoxFuture<'static, StoreResult<()>> {
        self.run(Op::Put, path, move |store, path| {
            async move {
                let options = PutOptions {
                    mode: match mode {
                        PutMode::Create => object_store::PutMode::Create,
                        PutMode::Overwrite => object_store::PutMode::Overwrite,
                    },
                    ..PutOptions::default()
                };
                store.put_opts(&path, PutPayload::from(bytes), options).await.map(drop)
            }
            .boxed()
        })
    }

    fn put_multipart(&self, path: &Path, parts: Vec<Bytes>) -> BoxFuture<'static, StoreResult<()>> {
        self.run(Op::MultipartPart, path, move |store, path| {
            async move {
                let mut upload = store.put_multipart(&path).await?;
                let uploads: Vec<_> = parts
                    .into_iter()
                    .map(|part| upload.put_part(PutPayload::from(part)))
                    .collect();
                let sent = futures::stream::iter(uploads)
                    .buffered(4)
                    .try_collect::<Vec<()>>()
                    .await;
                match sent {
                    Ok(_) => upload.complete().await.map(drop),
                    Err(error) => {
                        let _ = upload.abort().await;
                        Err(error)
                    }
                }
            }
            .boxed()
        })
    }

    fn list(&self, prefix: &Path) -> BoxFuture<'static, StoreResult<Vec<ObjectInfo>>> {
        self.run(Op::List, prefix, |store, prefix| {
            async move {
                let mut objects: Vec<ObjectInfo> = store.list(Some(&prefix)).map_ok(info).try_collect().await?;
                objects.sort_by(|a, b| a.path.cmp(&b.path));
                Ok(objects)
            }
            .boxed()
        })
    }

    fn delete(&self, path: &Path) -> BoxFuture<'static, StoreResult<()>> {
        // The handle goes before and after: a read in between may have
        // opened it again.
        let local = self.local.clone();
        if let Some(local) = &local {
            local.forget(path);
        }
        let forget = path.clone();
        self.run(Op::Delete, path, |store, path| {
            async move {
                let deleted = match store.delete(&path).await {
                    Err(object_store::Error::NotFound { .. }) => Ok(()),
                    other => other,
                };
                if let Some(local) = local {
                    local.forget(&forget);
                }
                deleted
            }
            .boxed()
        })
    }
}

/// How long the S3 client retries one request by itself.
#[cfg(feature = "aws")]
const S3_CLIENT_RETRY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

/// Where an S3 adapter points. Anything left `None` comes from the AWS
/// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, ...).
#[cfg(feature = "aws")]
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    /// The bucket.
    pub bucket: String,
    /// Every object is stored under this prefix.
    pub prefix: Option<String>,
    /// For S3-compatible servers, e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    /// Permits plain `http://` endpoints.
    pub allow_http: bool,
    /// The region (default: the environment's, or `us-east-1`).
    pub region: Option<String>,
    /// Credentials (default: the environment's).
    pub access_key_id: Option<String>,
    /// Credentials (default: the environment's).
    pub secret_access_key: Option<String>,
}

/// A one-thread tokio runtime owned by the library, for stores whose client
/// needs tokio (S3 over reqwest) when the application runs on smol, actix or
/// the simulator. Requests are spawned on it through [`Driver::Tokio`];
/// their results come back to the caller's executor through the join handle.
///
/// Dropping it stops the thread without waiting for it: requests still in
/// flight are cancelled and their callers get an `Unavailable` error.
#[derive(Debug)]
pub struct TokioThread {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokioThread {
    /// Starts the runtime on a thread called `name`.
    ///
    /// # Errors
    ///
    /// The runtime or its thread could not be created.
    pub fn start(name: &str) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name(name.to_owned()).spawn(move || {
            let _ = runtime.block_on(stopped);
        })?;
        Ok(TokioThread {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where to spawn requests.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }

    /// A driver that runs requests on this thread.
    pub fn driver(&self) -> Driver {
        Driver::Tokio(self.handle())
    }

    /// Stops the runtime and waits for its thread to exit (blocking; never
    /// call it from a request running on this thread). Requests made after
    /// it returns fail as `Unavailable`.
    pub fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TokioThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_at(millis: i64) -> object_store::ObjectMeta {
        object_store::ObjectMeta {
            location: Path::from("db/wal/1.sst"),
            last_modified: chrono::DateTime::from_timestamp_millis(millis).expect("a valid time"),
            size: 10,
            e_tag: None,
            version: None,
        }
    }

    /// Page-cached reads of a local directory (done on the caller's
    /// thread) answer exactly what the blocking path answers, and a caller
    /// doing nothing but such reads yields every `READS_PER_YIELD`th time.
    #[test]
    fn cached_local_reads_match_the_blocking_path() {
        /// Removes the test's directory however the test ends.
        struct Scratch(std::path::PathBuf);
        impl Drop for Scratch {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let dir = Scratch(std::env::temp_dir().join(format!("talus-cached-read-{}", std::process::id())));
        let sim = talus_actors::runtime::Sim::new(1);
        let runtime = sim.runtime();
        sim.block_on(async {
            let store = ObjectStoreAdapter::local_dir(&dir.0, runtime).expect("dir");
            let plain = ObjectStoreAdapter {
                local: None,
                ..store.clone()
            };
            let path = Path::from("db/compacted/table.sst");
            let content: Vec<u8> = (0..20_000u32).map(|n| (n % 251) as u8).collect();
            store
                .put(&path, Bytes::from(content.clone()), PutMode::Create)
                .await
                .expect("put");
            // Just written, so in the page cache: the direct path answers.
            let local = store.local.clone().expect("local");
            assert!(local.read_cached(&path, &ByteRange::Range(10..20)).is_some());
            assert_eq!(local.open_handles(), 1, "a sorted table's handle is kept");
            for range in [
                ByteRange::Range(0..1),
                ByteRange::Range(4_000..8_096),
                ByteRange::Range(19_990..20_000),
                ByteRange::Suffix(300),
                ByteRange::Suffix(50_000),
                ByteRange::All,
            ] {
                let fast = store.get(&path, range.clone()).await.expect("cached read");
                let slow = plain.get(&path, range.clone()).await.expect("blocking read");
                assert_eq!(fast, slow, "{range:?}");
            }
            // A range past the end and a missing object take the blocking
            // path, which answers them as it always has.
            let past_end = ByteRange::Range(19_999..20_001);
            assert!(local.read_cached(&path, &past_end).is_none());
            assert_eq!(
                store.get(&path, past_end.clone()).await.expect("past the end"),
                plain.get(&path, past_end).await.expect("past the end")
            );
            let missing = store
                .get(&Path::from("db/compacted/none.sst"), ByteRange::Range(0..1))
                .await;
            assert!(matches!(missing, Err(StoreError::NotFound { .. })), "{missing:?}");
            // Deleting the table closes its handle: it is gone for readers.
            store.delete(&path).await.expect("delete");
            assert_eq!(local.open_handles(), 0);
            let deleted = store.get(&path, ByteRange::Range(0..1)).await;
            assert!(matches!(deleted, Err(StoreError::NotFound { .. })), "{deleted:?}");
            // An object that may be replaced is opened for every read, so
            // a read after the replacement sees the new bytes.
            let wal = Path::from("db/wal/00000000000000000001.sst");
            store
                .put(&wal, Bytes::from_static(b"first"), PutMode::Create)
                .await
                .expect("put");
            assert_eq!(store.get(&wal, ByteRange::All).await.expect("read").bytes, "first");
            store
                .put(&wal, Bytes::from_static(b"second"), PutMode::Overwrite)
                .await
                .expect("put");
            assert_eq!(store.get(&wal, ByteRange::All).await.expect("read").bytes, "second");
            assert_eq!(local.open_handles(), 0, "no handle kept for a WAL table");
        });
        let yields = (0..3 * local::READS_PER_YIELD)
            .filter(|_| local::due_to_yield())
            .count();
        assert_eq!(yields, 3);
    }

    /// Regression: a time before 1970 became 0, which the collector reads
    /// as the oldest possible age.
    #[test]
    fn a_time_that_cannot_be_read_is_unknown_not_ancient() {
        assert_eq!(info(meta_at(1_700_000_000_000)).modified_ms, 1_700_000_000_000);
        assert_eq!(info(meta_at(-5)).modified_ms, UNKNOWN_MODIFIED_MS);
    }

    #[test]
    fn errors_no_retry_can_fix_are_not_retryable() {
        let path = Path::from("db/manifest/1.manifest");
        let io = |kind: std::io::ErrorKind| object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::new(kind, "refused")),
        };
        for (error, says) in [
            (io(std::io::ErrorKind::ReadOnlyFilesystem), "read-only"),
            (io(std::io::ErrorKind::PermissionDenied), "permission denied"),
            (io(std::io::ErrorKind::ConnectionRefused), "nothing listens"),
        ] {
            let error = StoreError::from_object_store(Op::Put, &path, error);
            assert!(!error.is_retryable(), "{error}");
            assert!(error.to_string().contains(says), "{error}");
        }
        let denied = object_store::Error::PermissionDenied {
            path: path.to_string(),
            source: "403".into(),
        };
        assert!(!StoreError::from_object_store(Op::Get, &path, denied).is_retryable());
        let transient = io(std::io::ErrorKind::ConnectionReset);
        assert!(StoreError::from_object_store(Op::Get, &path, transient).is_retryable());
    }
}
