//! Opening a database: the builder, recovery (fencing, WAL replay), and
//! starting the actors that serve the recovered state.

use std::sync::Arc;

use arc_swap::ArcSwap;
use object_store::path::Path;
use talus_actors::{Capacity, Recorder, Runtime, System};

use super::options::DbOptions;
use super::reader::DbReader;
use super::{Db, DbInner, GC, L0_WRITER, UPLOADER, WAL_WRITER};
use crate::compactor::actor::{CompactorClient, CompactorParts, OnCommit};
use crate::compactor::{COMPACTOR, Compactor, CompactorMsg, CompactorOptions};
use crate::error::Error;
use crate::gc::{Collector, GcActor, GcMsg};
use crate::l0::l0_writer::{L0Msg, L0Settings, L0Writer};
use crate::l0::uploader::{UploadMsg, Uploader};
use crate::manifest::{
    Compactions, CompactorState, EpochLease, Fenced, IfMissing, Manifest, Role, VersionedOptions, VersionedStore,
};
use crate::read::operator::Operator;
use crate::read::{ReadView, Seqs};
use crate::shared::counters::Counters;
use crate::shared::snapshots::Snapshots;
use crate::store::{Store, TableStore, TimeoutStore};
use crate::wal::replay::{OnDamage, recover};
use crate::wal::writer::{WalMsg, WalSettings, WalShared, WalStart, WalWriter};

/// A builder's settings made ready to open with.
pub(super) struct Prepared {
    root: Path,
    pub(super) runtime: Runtime,
    options: DbOptions,
    pub(super) tables: TableStore,
    pub(super) manifests: VersionedStore<Manifest>,
    pub(super) compactions: VersionedStore<Compactions>,
    pub(super) merge_operator: Operator,
}

impl Prepared {
    fn collector(&self, options: crate::gc::GcOptions) -> Collector {
        Collector::new(
            self.tables.clone(),
            self.manifests.clone(),
            self.compactions.clone(),
            options,
        )
    }
}

/// Opens a database with non-default settings.
#[derive(Debug)]
pub struct DbBuilder {
    root: Path,
    store: Arc<dyn Store>,
    runtime: Option<Runtime>,
    seed: Option<u64>,
    options: DbOptions,
    recorder: Option<Recorder>,
    salvage: bool,
    merge_operator: Operator,
    /// The database to clone from, and at which checkpoint, when this one
    /// does not exist yet.
    clone_from: Option<(Path, Option<crate::store::Ulid>)>,
    /// Where the WAL tables go, if not in `store`.
    wal_store: Option<Arc<dyn Store>>,
}

impl Compactor {
    /// Starts a compactor for the database under `path` in `store`, with
    /// default options on the default executor. Use
    /// [`DbBuilder::open_compactor`](crate::DbBuilder::open_compactor) for
    /// other settings.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` if the options are inconsistent (the message names
    /// the option); `Unavailable` if the store cannot be reached;
    /// `Corruption` if the manifest is damaged, or tables remain with no
    /// manifest (a lost manifest: nothing is created over it); `InvalidArgument`
    /// if there is no database there.
    pub async fn open(path: impl Into<object_store::path::Path>, store: Arc<dyn Store>) -> Result<Compactor, Error> {
        Db::builder(path, store).open_compactor().await
    }
}

impl DbBuilder {
    /// The default settings for the database under `root` in `store`.
    pub(super) fn new(root: Path, store: Arc<dyn Store>) -> Self {
        DbBuilder {
            root,
            store,
            runtime: None,
            seed: None,
            options: DbOptions::default(),
            recorder: None,
            salvage: false,
            merge_operator: None,
            clone_from: None,
            wal_store: None,
        }
    }

    /// Keeps the WAL tables in `store` (at the same path) instead of the
    /// main store, where sorted tables, manifests and the compactions file
    /// stay: for example a low-latency bucket class for the WAL, whose
    /// writes every durable put waits for, and a cheaper one for the rest.
    /// A new database records in its first manifest version that its WAL
    /// is separate;
    /// from then on every writer, reader and collector of the database must
    /// be opened with the same WAL store (opening without it, or opening a
    /// database whose WAL is in its main store with one, fails with
    /// `InvalidArgument` before anything is written). A compactor needs no
    /// WAL store. See `docs/scale-out.md`, "A separate WAL store".
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use talusdb::store::{ObjectStoreAdapter, Store};
    /// # use talusdb::Db;
    /// # smol::block_on(async {
    /// let tables: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
    /// let wal: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
    /// let db = Db::builder("db", tables.clone()).wal_store(wal.clone()).open().await?;
    /// db.put("k", "v").await?;
    /// db.close().await?;
    ///
    /// let reader = Db::builder("db", tables.clone()).wal_store(wal).open_read_only().await?;
    /// assert_eq!(reader.get("k").await?.as_deref(), Some(&b"v"[..]));
    /// let refused = Db::builder("db", tables).open().await.unwrap_err();
    /// assert_eq!(refused.kind(), &talusdb::ErrorKind::InvalidArgument);
    /// # Ok::<_, talusdb::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn wal_store(mut self, store: Arc<dyn Store>) -> Self {
        self.wal_store = Some(store);
        self
    }

    /// Makes the database, if there is none at this path yet, a clone of
    /// the one at `source` in the same store: at the live checkpoint
    /// `checkpoint`, or (`None`) at the source's newest version and every
    /// WAL table written above it. The clone lists the source's tables
    /// without copying them and holds a checkpoint in the source (named
    /// `clone <path>`, without expiry) so that the source's collector keeps
    /// them; its own collector releases that checkpoint once compaction has
    /// replaced every source table the clone listed. Writing to the clone
    /// never changes the source. If the path already holds a clone of
    /// `source`, [`open`](DbBuilder::open) opens it; any other database
    /// there is an error. See `docs/scale-out.md`, "Clones".
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use talusdb::store::{ObjectStoreAdapter, Store};
    /// # use talusdb::{Db, manifest::CheckpointOptions};
    /// # smol::block_on(async {
    /// let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
    /// let source = Db::open("prod", store.clone()).await?;
    /// source.put("k", "from prod").await?;
    /// let checkpoint = source.create_checkpoint(CheckpointOptions::default()).await?;
    ///
    /// let clone = Db::builder("test-copy", store.clone())
    ///     .clone_from("prod", Some(checkpoint.id))
    ///     .open()
    ///     .await?;
    /// clone.put("k", "changed in the copy").await?;
    /// assert_eq!(source.get("k").await?.as_deref(), Some(&b"from prod"[..]));
    /// assert_eq!(clone.get("k").await?.as_deref(), Some(&b"changed in the copy"[..]));
    /// clone.close().await?;
    /// source.close().await?;
    /// # Ok::<_, talusdb::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn clone_from(mut self, source: impl Into<Path>, checkpoint: Option<crate::store::Ulid>) -> Self {
        self.clone_from = Some((source.into(), checkpoint));
        self
    }

    /// The merge operator that folds [`Db::merge`] operands (see
    /// [`MergeOperator`](crate::MergeOperator)). Its name is recorded in
    /// the manifest by the first writer opened with it; opening the
    /// database later with an operator of another name fails. Without one,
    /// merges are refused at the call, and a read that meets operands
    /// (written by an application that had one) fails naming the key.
    pub fn merge_operator(mut self, operator: Arc<dyn crate::MergeOperator>) -> Self {
        self.merge_operator = Some(operator);
        self
    }

    /// Opens even if WAL tables the manifest does not cover yet are
    /// damaged (truncated, or failing their checksum): each is moved to
    /// `<path>/lost/wal/`, the sequence numbers it may have held are
    /// recorded in the manifest as a [`WalLoss`](crate::WalLoss), and the database opens
    /// with everything else. Off by default: then a damaged WAL table fails
    /// the open with `Corruption` naming it, and nothing is skipped.
    /// [`Db::salvaged`] reports what this open gave up; `talus repair`
    /// does the same from the command line.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use talusdb::store::{ObjectStoreAdapter, Store};
    /// # let sim = talusdb::actors::runtime::Sim::new(1);
    /// # let runtime = sim.runtime();
    /// # sim.block_on(async {
    /// # let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
    /// let db = talusdb::Db::builder("db", store)
    ///     # .runtime(runtime)
    ///     .salvage(true)
    ///     .open()
    ///     .await?;
    /// for loss in db.salvaged() {
    ///     eprintln!("lost WAL table {}: sequences {}..={:?}", loss.wal_id, loss.first_seq, loss.last_seq);
    /// }
    /// db.close().await?;
    /// # Ok::<(), talusdb::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn salvage(mut self, salvage: bool) -> Self {
        self.salvage = salvage;
        self
    }

    /// The executor the actors run on (default: smol's, with the `smol`
    /// feature).
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Seeds the RNG (table ids, jitter) for repeatable runs.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The database's options (default: [`DbOptions::default`]); checked
    /// when the database opens.
    pub fn options(mut self, options: DbOptions) -> Self {
        self.options = options;
        self
    }

    /// Records every message the database's actors handle into `recorder`
    /// (see [`talus_actors::Recorder`]). Under the `sim` executor the trace
    /// is a function of the seed, which is what a replay test compares.
    pub fn recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Opens the database for reading only, as it is now: no writer is
    /// fenced and nothing is written. Fails if there is no database.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` if the options are inconsistent (the message names
    /// the option); `Unavailable` if the store cannot be reached;
    /// `Corruption` if the manifest is damaged, or tables remain with no
    /// manifest (a lost manifest: nothing is created over it); `InvalidArgument`
    /// if there is no database there.
    pub async fn open_read_only(self) -> Result<DbReader, Error> {
        DbReader::open(self).await
    }

    /// Opens a reader that follows the writer (or, with
    /// [`ReaderOptions::at_checkpoint`](crate::ReaderOptions::at_checkpoint), stays at a checkpoint), in this
    /// process or any other, on any machine sharing the store. It fences
    /// no one; its only writes are checkpoints of its own, which keep the
    /// writer's garbage collector off every table it reads until it closes
    /// (or, if it dies, until they expire). It sees each durable write
    /// within about [`ReaderOptions::refresh_interval`](crate::ReaderOptions::refresh_interval).
    ///
    /// ```
    /// # smol::block_on(async {
    /// use std::sync::Arc;
    /// use talusdb::store::ObjectStoreAdapter;
    /// use talusdb::{Db, ReaderOptions};
    ///
    /// let store = Arc::new(ObjectStoreAdapter::in_memory());
    /// let writer = Db::builder("db", store.clone()).open().await?;
    /// writer.put("k", "v1").await?;
    /// let reader = Db::builder("db", store.clone())
    ///     .open_reader(ReaderOptions::default())
    ///     .await?;
    /// assert_eq!(reader.get("k").await?.as_deref(), Some(&b"v1"[..]));
    ///
    /// // A checkpoint, and a reader that stays there.
    /// let checkpoint = writer.create_checkpoint(Default::default()).await?;
    /// writer.put("k", "v2").await?;
    /// let at = Db::builder("db", store)
    ///     .open_reader(ReaderOptions {
    ///         at_checkpoint: Some(checkpoint.id),
    ///         ..ReaderOptions::default()
    ///     })
    ///     .await?;
    /// assert_eq!(at.get("k").await?.as_deref(), Some(&b"v1"[..]));
    /// reader.close().await?;
    /// writer.close().await?;
    /// # Ok::<(), talusdb::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`DbBuilder::open_read_only`]; `InvalidArgument` if `options`
    /// are unusable (the message names the option) or name a checkpoint
    /// that is not live.
    pub async fn open_reader(self, options: super::ReaderOptions) -> Result<DbReader, Error> {
        DbReader::open_with(self, options).await
    }

    /// What opening a writer and opening a reader share: checked options,
    /// the executor, and the table and manifest stores behind the
    /// request timeout.
    pub(super) fn prepare(self) -> Result<Prepared, Error> {
        self.options.validate().map_err(Error::invalid)?;
        let runtime = match self.runtime {
            Some(runtime) => runtime,
            None => default_runtime()?,
        };
        let runtime = match self.seed {
            Some(seed) => runtime.with_seed(seed),
            None => runtime,
        };
        let options = self.options;
        let store: Arc<dyn Store> = Arc::new(TimeoutStore::new(self.store, runtime.clone(), options.request_timeout));
        let wal_store = self.wal_store.map(|wal_store| {
            Arc::new(TimeoutStore::new(wal_store, runtime.clone(), options.request_timeout)) as Arc<dyn Store>
        });
        let tables = TableStore::with_wal_store(
            store.clone(),
            wal_store,
            self.root.clone(),
            runtime.clone(),
            options.tables.clone(),
        );
        let versioned = VersionedOptions {
            update_timeout: options.manifest_update_timeout,
            ..VersionedOptions::default()
        };
        let manifests = VersionedStore::new(store.clone(), self.root.clone(), runtime.clone(), versioned.clone());
        let compactions = VersionedStore::new(store, self.root.clone(), runtime.clone(), versioned);
        Ok(Prepared {
            root: self.root,
            runtime,
            options,
            tables,
            manifests,
            compactions,
            merge_operator: self.merge_operator,
        })
    }

    /// Starts a compactor on its own (no writer): it fences every earlier
    /// compactor. Fails if there is no database. Uses the options'
    /// `compactor` settings (their defaults if `None`).
    ///
    /// # Errors
    ///
    /// `InvalidArgument` if the options are inconsistent (the message names
    /// the option); `Unavailable` if the store cannot be reached;
    /// `Corruption` if the manifest is damaged, or tables remain with no
    /// manifest (a lost manifest: nothing is created over it); `InvalidArgument`
    /// if there is no database there.
    pub async fn open_compactor(self) -> Result<Compactor, Error> {
        self.start_compactor(false).await
    }

    /// Starts a compactor on its own as [`DbBuilder::open_compactor`]
    /// does, and a garbage collector beside it on the options' `gc`
    /// settings (their defaults if `None`): the long-running compaction
    /// process of a deployment whose writer is opened with `compactor:
    /// None` and `gc: None` (`talus compactor run`). Run it with
    /// [`Compactor::run_until`]; [`Compactor::stats`] reports its
    /// progress. Opening a second one fences this one; restarted, it
    /// resumes the jobs the compactions file lists. See
    /// `docs/scale-out.md`, "A compactor process".
    ///
    /// # Errors
    ///
    /// As [`DbBuilder::open_compactor`]; `InvalidArgument` also if the `gc`
    /// options are unusable.
    pub async fn open_compactor_and_collector(self) -> Result<Compactor, Error> {
        self.start_compactor(true).await
    }

    async fn start_compactor(self, with_collector: bool) -> Result<Compactor, Error> {
        let prepared = self.prepare()?;
        let options = with_operator(
            prepared.options.compactor.clone().unwrap_or_default(),
            &prepared.merge_operator,
        );
        if let Some((_, manifest)) = prepared.manifests.read_latest().await? {
            check_merge_operator(&manifest, &options.merge_operator)?;
            super::clone::adopt_sources(&prepared.tables, &manifest);
        }
        let collector = with_collector.then(|| prepared.collector(prepared.options.gc.clone().unwrap_or_default()));
        let state = CompactorState::open(prepared.manifests.clone(), prepared.compactions.clone()).await?;
        let system = System::new(prepared.runtime.clone());
        Ok(Compactor::start(
            system,
            CompactorParts {
                state,
                tables: prepared.tables,
                options,
                on_commit: None,
                fenced_is_fatal: true,
            },
            collector,
        ))
    }

    /// A garbage collector for the database, to run by hand (what
    /// `talus gc run` uses). Uses the options' `gc` settings (their
    /// defaults if `None`).
    ///
    /// # Errors
    ///
    /// `InvalidArgument` if the `gc` options are unusable.
    pub fn collector(self) -> Result<Collector, Error> {
        let prepared = self.prepare()?;
        let options = prepared.options.gc.clone().unwrap_or_default();
        Ok(prepared.collector(options))
    }

    /// Makes live checkpoint `checkpoint`'s state the database's current
    /// state, in place, as a new manifest version: what was written after
    /// the checkpoint is gone (rows only in the WAL too), and the
    /// checkpoint stays. Fences the running writer and compactor of the
    /// database first, as opening them would (a process running either
    /// gets [`ErrorKind::Fenced`](crate::ErrorKind::Fenced) and must
    /// reopen), and fails every unfinished compaction. Sequence numbers keep
    /// rising across the restore, so a snapshot by sequence number or time
    /// from before it reads the restored state, not the history. The
    /// objects only newer versions listed are left for the collector.
    /// `talus checkpoint restore ID --yes` does the same from the command
    /// line.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use talusdb::store::{ObjectStoreAdapter, Store};
    /// # use talusdb::manifest::CheckpointOptions;
    /// # let sim = talusdb::actors::runtime::Sim::new(1);
    /// # let runtime = sim.runtime();
    /// # sim.block_on(async {
    /// # let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
    /// # let builder = || talusdb::Db::builder("db", store.clone()).runtime(runtime.clone());
    /// let db = builder().open().await?;
    /// db.put("plan", "before").await?;
    /// let checkpoint = db.create_checkpoint(CheckpointOptions::default()).await?;
    /// db.put("plan", "after").await?;
    /// db.close().await?;
    ///
    /// let restored = builder().restore_checkpoint(checkpoint.id).await?;
    /// assert_eq!(restored.pinned_version, checkpoint.manifest_id);
    /// let db = builder().open().await?;
    /// assert_eq!(db.get("plan").await?.as_deref(), Some(&b"before"[..]));
    /// db.close().await?;
    /// # Ok::<(), talusdb::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidArgument` if there is no database at the path or no live
    /// checkpoint with this id; `Corruption` naming a damaged WAL table
    /// (run a salvaging open first) or a damaged manifest; `Unavailable`
    /// if the store cannot be reached.
    pub async fn restore_checkpoint(self, checkpoint: crate::store::Ulid) -> Result<super::Restored, Error> {
        let prepared = self.prepare()?;
        super::restore::restore(&prepared, checkpoint).await
    }

    /// Opens (or creates) the database: fences older writers and replays
    /// the WAL.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` if the options are inconsistent (the message names
    /// the option); `Unavailable` if the store cannot be reached;
    /// `Corruption` if the manifest is damaged, or tables remain with no
    /// manifest (a lost manifest: nothing is created over it); `Corruption`
    /// naming a damaged WAL table (unless [`DbBuilder::salvage`]);
    /// `Unsupported` for objects of a newer format version.
    pub async fn open(self) -> Result<Db, Error> {
        let recorder = self.recorder.clone();
        let recovered = self.recover().await?;
        let system = match recorder {
            Some(recorder) => System::new(recovered.runtime.clone()).recording(recorder),
            None => System::new(recovered.runtime.clone()),
        };
        Ok(recovered.start(system))
    }

    /// Fences older writers and replays the WAL: everything an open reads
    /// before any actor starts.
    async fn recover(self) -> Result<Recovery, Error> {
        let on_damage = if self.salvage {
            OnDamage::Salvage
        } else {
            OnDamage::Fail
        };
        let clone_from = self.clone_from.clone();
        let prepared = self.prepare()?;
        let mut latest = prepared.manifests.read_latest().await?;
        if let Some((source, checkpoint)) = &clone_from {
            match &latest {
                None => {
                    super::clone::create(&prepared, source, *checkpoint).await?;
                    latest = prepared.manifests.read_latest().await?;
                }
                Some((_, existing)) if existing.sources.iter().any(|entry| entry.root == source.as_ref()) => {}
                Some(_) => {
                    return Err(Error::invalid(format!(
                        "{} already holds a database that is not a clone of {source}",
                        prepared.root
                    )));
                }
            }
        }
        let collector = prepared.collector(prepared.options.gc.clone().unwrap_or_default());
        let Prepared {
            root,
            runtime,
            options,
            tables,
            manifests,
            compactions,
            merge_operator,
        } = prepared;
        // Our epoch bump lands after this instant: no newer writer had
        // opened before it.
        let lease = Arc::new(EpochLease::new(runtime.now()));
        if latest.is_none() {
            crate::manifest::refuse_lost_manifest(&manifests, &tables).await?;
        }
        // Refused before our epoch fences anyone.
        match latest {
            Some((_, latest)) => crate::manifest::check_wal_store(&latest, &tables)?,
            // A new database records where its WAL is in its first version,
            // so that no crash leaves it recorded wrong.
            None if tables.has_wal_store() => {
                let first = Manifest {
                    separate_wal: true,
                    ..Manifest::default()
                };
                let deadline = runtime.now() + options.manifest_update_timeout;
                // A conflict is a writer that created it first: checked below.
                manifests.create(1, &first, deadline).await?;
            }
            None => {}
        }
        let mut manifest = Fenced::open(manifests.clone(), Role::Writer, IfMissing::Create).await?;
        crate::manifest::check_wal_store(manifest.current(), &tables)?;
        super::clone::adopt_sources(&tables, manifest.current());
        check_merge_operator(manifest.current(), &merge_operator)?;
        if let Some(operator) = &merge_operator
            && manifest.current().merge_operator.is_none()
        {
            let name = operator.name().to_string();
            manifest
                .update(|manifest, _| {
                    manifest.merge_operator = Some(name.clone());
                    Ok(())
                })
                .await?;
        }
        let recovered = recover(&tables, &mut manifest, on_damage).await?;
        let collector = collector.for_writer(manifest.epoch().unwrap_or(0));
        tracing::info!(
            root = %root,
            epoch = manifest.epoch(),
            replayed = recovered.replayed,
            last_seq = recovered.last_seq,
            "opened"
        );
        let compactor = match options.compactor.clone() {
            Some(compactor_options) => Some((
                CompactorState::open(manifests.clone(), compactions).await?,
                with_operator(compactor_options, &merge_operator),
            )),
            None => None,
        };
        Ok(Recovery {
            merge_operator,
            runtime,
            options,
            tables,
            manifests,
            manifest,
            recovered,
            lease,
            collector,
            compactor,
        })
    }
}

/// What [`DbBuilder::open`] has read and recovered, ready to start the
/// actors.
struct Recovery {
    merge_operator: Operator,
    runtime: Runtime,
    options: DbOptions,
    tables: TableStore,
    manifests: VersionedStore<Manifest>,
    manifest: Fenced<Manifest>,
    recovered: crate::wal::replay::Recovered,
    lease: Arc<EpochLease>,
    collector: Collector,
    /// The embedded compactor's state and options (`None`: it is off).
    compactor: Option<(CompactorState, CompactorOptions)>,
}

/// `options`, with the database's merge operator unless they name one.
fn with_operator(mut options: CompactorOptions, operator: &Operator) -> CompactorOptions {
    if options.merge_operator.is_none() {
        options.merge_operator = operator.clone();
    }
    options
}

/// Fails if `manifest` records a merge operator other than `operator`
/// (opening without one is allowed: merges are then refused, and reads of
/// operands fail naming the key).
pub(super) fn check_merge_operator(manifest: &Manifest, operator: &Operator) -> Result<(), Error> {
    match (&manifest.merge_operator, operator) {
        (Some(recorded), Some(operator)) if recorded != operator.name() => Err(Error::invalid(format!(
            "the database's merge operands are for the merge operator {recorded:?}, not {:?}: \
             open it with the operator it was written with",
            operator.name()
        ))),
        _ => Ok(()),
    }
}

/// The state the engine's actors share, made once per open.
#[derive(Clone)]
struct Shared {
    view: Arc<ArcSwap<ReadView>>,
    seqs: Arc<Seqs>,
    counters: Arc<Counters>,
    snapshots: Arc<Snapshots>,
}

impl Recovery {
    /// Starts the actors in `system` and returns the database they serve.
    fn start(self, system: System<Error>) -> Db {
        let shared = self.shared();
        let (wal, wal_box) = system.mailbox::<WalMsg>(WAL_WRITER, Capacity::Bounded(1024));
        let (l0, l0_box) = system.mailbox::<L0Msg>(L0_WRITER, Capacity::Unbounded);
        let (uploader, uploader_box) = system.mailbox(UPLOADER, Capacity::Unbounded);
        let compactor_box = self
            .compactor
            .as_ref()
            .map(|_| system.mailbox::<CompactorMsg>(COMPACTOR, Capacity::Unbounded).1);

        system.run(wal_box, self.wal_writer(&shared, uploader));
        system.run_pool(
            uploader_box,
            (0..self.options.l0_upload_parallelism).map(|_| Uploader::new(self.tables.clone(), l0.clone())),
        );
        let wake_compactor: Option<OnCommit> = compactor_box.as_ref().map(|mailbox| {
            let compactor = mailbox.addr();
            Arc::new(move || {
                let _ = compactor.try_send(CompactorMsg::Poll);
            }) as OnCommit
        });
        let settings = self.l0_settings(&wal, wake_compactor);
        let l0_writer = L0Writer::new(
            self.manifest,
            shared.view.clone(),
            shared.counters.clone(),
            shared.snapshots.clone(),
            settings,
        );
        system.run(l0_box, l0_writer);

        let compactor = self.compactor.zip(compactor_box).map(|((state, options), mailbox)| {
            let l0 = l0.clone();
            let parts = CompactorParts {
                state,
                tables: self.tables.clone(),
                options,
                on_commit: Some(Arc::new(move || {
                    let _ = l0.try_send(L0Msg::Poll);
                })),
                fenced_is_fatal: false,
            };
            CompactorClient::run(&system, mailbox, parts)
        });
        let gc = self.options.gc.as_ref().map(|_| {
            let (gc, gc_box) = system.mailbox::<GcMsg>(GC, Capacity::Unbounded);
            system.run(gc_box, GcActor::new(self.collector.clone(), Arc::default()));
            gc
        });
        Db {
            inner: Arc::new(DbInner {
                system,
                wal,
                l0,
                view: shared.view,
                seqs: shared.seqs,
                counters: shared.counters,
                tables: self.tables,
                snapshots: shared.snapshots,
                compactor,
                gc,
                collector: self.collector,
                salvaged: self.recovered.salvaged,
                default_ttl: self.options.default_ttl,
                merge_operator: self.merge_operator,
            }),
        }
    }

    /// The read view, sequence numbers, counters and snapshot registry of
    /// the recovered state.
    fn shared(&self) -> Shared {
        let shared = Shared {
            view: Arc::new(ArcSwap::from_pointee(ReadView::new(
                self.recovered.memtable.clone(),
                self.manifest.current(),
            ))),
            seqs: Arc::new(Seqs::new(self.recovered.last_seq)),
            counters: Arc::new(Counters::default()),
            snapshots: Arc::new(Snapshots::new(
                u64::try_from(self.options.retention.as_millis()).unwrap_or(u64::MAX),
                self.manifest.current().retain_seq,
                &self.manifest.current().seq_times,
            )),
        };
        shared.counters.set_unflushed(self.recovered.memtable.size());
        shared.counters.set_l0_tables(self.manifest.current().l0.len());
        shared
    }

    /// The WAL writer, continuing from the recovered sequence and WAL id.
    fn wal_writer(&self, shared: &Shared, uploader: talus_actors::Addr<UploadMsg, Error>) -> WalWriter {
        let wal_shared = WalShared {
            view: shared.view.clone(),
            seqs: shared.seqs.clone(),
            counters: shared.counters.clone(),
            snapshots: shared.snapshots.clone(),
        };
        WalWriter::new(
            self.tables.clone(),
            wal_shared,
            WalSettings::from(&self.options),
            uploader,
            WalStart {
                last_seq: self.recovered.last_seq,
                flushed_seq: self.manifest.current().last_l0_seq,
                next_wal_id: self.recovered.next_wal_id,
                writer_epoch: self.manifest.epoch().unwrap_or(0),
                lease: self.lease.clone(),
                manifests: self.manifests.clone(),
                memtable: self.recovered.memtable.clone(),
            },
        )
    }

    /// The L0 writer's settings: it tells the WAL writer what it retired
    /// and wakes the embedded compactor, if any.
    fn l0_settings(&self, wal: &talus_actors::Addr<WalMsg, Error>, wake_compactor: Option<OnCommit>) -> L0Settings {
        let wal = wal.clone();
        L0Settings {
            lease: self.lease.clone(),
            poll_interval: self.options.manifest_poll_interval,
            max_l0_tables: self.options.max_l0_tables,
            tables: self.tables.clone(),
            wake_compactor,
            retired: Box::new(move |through_seq| {
                let _ = wal.try_send(WalMsg::MemtableRetired { through_seq });
            }),
        }
    }
}

#[cfg(feature = "smol")]
fn default_runtime() -> Result<Runtime, Error> {
    Runtime::smol().map_err(|error| Error::internal(format!("cannot start the smol executor: {error}")))
}

#[cfg(not(feature = "smol"))]
fn default_runtime() -> Result<Runtime, Error> {
    Err(Error::invalid(
        "no executor: pass one with DbBuilder::runtime (the `smol` feature is off)",
    ))
}
