//! Database options, every one with its default.

use std::time::Duration;

use crate::compactor::CompactorOptions;
use crate::format::compression::Compression;
use crate::gc::GcOptions;
use crate::store::TableStoreOptions;

/// How a database runs. `Default` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// A memtable is frozen and uploaded as an L0 table at this size
    /// (default 64 MiB).
    pub memtable_bytes: usize,
    /// The open WAL buffer is uploaded at this size (default 4 MiB).
    pub wal_buffer_bytes: usize,
    /// The open WAL buffer is uploaded at least this often (default 100 ms).
    /// It is also sealed sooner when a durable writer waits for a row in
    /// it and an upload slot is free (after `group_commit_window`), at
    /// `wal_buffer_bytes`, on `Db::flush`, and before a memtable freezes.
    pub flush_interval: Duration,
    /// WAL uploads in flight at once (default 4).
    pub max_inflight_wal_uploads: usize,
    /// How long a durable write that finds an upload slot free waits for
    /// company before its WAL table is sealed (default 1 ms; zero seals at
    /// once). Writers acknowledged together come back together; the
    /// window lets them share one PUT.
    pub group_commit_window: Duration,
    /// L0 tables built and uploaded in parallel (default 2).
    pub l0_upload_parallelism: usize,
    /// Writes wait while memtables not yet in L0 hold more than this
    /// (default 256 MiB; at least `memtable_bytes`).
    pub max_unflushed_bytes: usize,
    /// Memtable flushes wait while L0 holds this many tables (default 16):
    /// unflushed bytes then grow until writers stall, so a compactor that
    /// falls behind slows writers down instead of letting reads degrade.
    pub max_l0_tables: usize,
    /// The embedded compactor (default on, with [`CompactorOptions`]'
    /// defaults). Turn it off only if a [`crate::Compactor`] runs
    /// elsewhere: without one, L0 fills up and writes stall.
    pub compactor: Option<CompactorOptions>,
    /// The embedded garbage collector (default on, with [`GcOptions`]'
    /// defaults).
    pub gc: Option<GcOptions>,
    /// How often the writer re-reads the manifest for the compactor's
    /// changes (default 1 s).
    pub manifest_poll_interval: Duration,
    /// Bounds every object-store request (default 30 s).
    pub request_timeout: Duration,
    /// Bound on one manifest update, conflicts included (default 60 s).
    pub manifest_update_timeout: Duration,
    /// Table layout, caches and write retries (block size, bloom bits per
    /// key, compression, block and metadata cache bytes, ...).
    pub tables: TableStoreOptions,
    /// Written keys the WAL writer remembers to check transaction commits
    /// against (default 100,000; about 100 bytes each plus the key). Only
    /// writes made while a transaction is open are remembered, and those
    /// no open transaction can conflict with are forgotten first; a
    /// transaction whose snapshot is older than what is still remembered
    /// fails to commit with
    /// [`ErrorKind::TransactionConflict`](crate::ErrorKind::TransactionConflict)
    /// ("too old") and is never committed unchecked.
    pub transaction_tracking_keys: usize,
    /// How long superseded versions are kept for
    /// [`Db::snapshot_at`](crate::Db::snapshot_at) and
    /// [`Db::snapshot_at_time`](crate::Db::snapshot_at_time) (default
    /// zero: only what live snapshots and the memtables hold). Compaction
    /// keeps every version written in the last `retention` (a little more:
    /// the window moves in steps of a quarter of it), and the manifest
    /// records when sequence numbers were written, so that reads at a past
    /// time survive a reopen. Storage grows with the versions kept.
    pub retention: Duration,
    /// How long a put lives when neither it nor its write says (default
    /// `None`: forever). See [`Ttl`].
    pub default_ttl: Option<Duration>,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            memtable_bytes: 64 << 20,
            wal_buffer_bytes: 4 << 20,
            flush_interval: Duration::from_millis(100),
            max_inflight_wal_uploads: 4,
            group_commit_window: Duration::from_millis(1),
            l0_upload_parallelism: 2,
            max_unflushed_bytes: 256 << 20,
            max_l0_tables: 16,
            compactor: Some(CompactorOptions::default()),
            gc: Some(GcOptions::default()),
            manifest_poll_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            manifest_update_timeout: Duration::from_secs(60),
            tables: TableStoreOptions::default(),
            transaction_tracking_keys: 100_000,
            retention: Duration::ZERO,
            default_ttl: None,
        }
    }
}

impl From<&DbOptions> for crate::wal::writer::WalSettings {
    fn from(options: &DbOptions) -> Self {
        crate::wal::writer::WalSettings {
            wal_buffer_bytes: options.wal_buffer_bytes,
            group_commit_window: options.group_commit_window,
            flush_interval: options.flush_interval,
            max_inflight_wal_uploads: options.max_inflight_wal_uploads,
            memtable_bytes: options.memtable_bytes,
            max_unflushed_bytes: options.max_unflushed_bytes,
            transaction_tracking_keys: options.transaction_tracking_keys,
        }
    }
}

impl DbOptions {
    /// The same options with data blocks compressed by `compression`.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.tables.sst.compression = compression;
        self
    }

    /// Checks the options against each other.
    ///
    /// # Errors
    ///
    /// `Err(why)` names the option that is out of range or inconsistent
    /// with another.
    pub fn validate(&self) -> Result<(), String> {
        if self.memtable_bytes == 0 || self.wal_buffer_bytes == 0 {
            return Err("memtable_bytes and wal_buffer_bytes must be positive".into());
        }
        if self.max_unflushed_bytes < self.memtable_bytes {
            return Err(format!(
                "max_unflushed_bytes ({}) must be at least memtable_bytes ({})",
                self.max_unflushed_bytes, self.memtable_bytes
            ));
        }
        if self.max_inflight_wal_uploads == 0 || self.l0_upload_parallelism == 0 {
            return Err("max_inflight_wal_uploads and l0_upload_parallelism must be at least 1".into());
        }
        if self.flush_interval.is_zero() || self.manifest_poll_interval.is_zero() {
            return Err("flush_interval and manifest_poll_interval must be positive".into());
        }
        if self.max_l0_tables == 0 {
            return Err("max_l0_tables must be at least 1".into());
        }
        if self.transaction_tracking_keys == 0 {
            return Err("transaction_tracking_keys must be at least 1".into());
        }
        if let Some(compactor) = &self.compactor {
            compactor.validate()?;
            let trigger = compactor.strategy.l0_trigger();
            if self.max_l0_tables < trigger {
                return Err(format!(
                    "max_l0_tables ({}) is below the compactor's L0 trigger ({trigger}): flushes would wait forever",
                    self.max_l0_tables
                ));
            }
        }
        if let Some(gc) = &self.gc {
            gc.validate()?;
        }
        Ok(())
    }
}

/// How [`crate::Db::close_with`] closes.
#[derive(Clone, Copy, Debug, Default)]
pub struct CloseOptions {
    /// Move the memtable into L0 first (default false), so that the next
    /// open replays no WAL; otherwise the memtable's rows stay in durable
    /// WAL tables.
    pub flush_memtable: bool,
}

/// How a write is acknowledged, and how long its puts live.
#[derive(Clone, Copy, Debug)]
pub struct WriteOptions {
    /// `true` (default): return once the write is in a durable WAL table.
    /// `false`: return once it is in the memtable.
    pub await_durable: bool,
    /// How long the write's puts stay visible (default
    /// [`Ttl::Default`]: [`DbOptions::default_ttl`]). A put in a batch or
    /// a transaction with a TTL of its own keeps that one.
    pub ttl: Ttl,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            await_durable: true,
            ttl: Ttl::Default,
        }
    }
}

/// How long a put stays visible. An expired row reads as deleted from the
/// moment it expires, by the database's clock (virtual under the sim
/// executor), in every read, snapshots included; it still hides the
/// versions it overwrote, and compaction turns it into a tombstone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ttl {
    /// What the write's options say, else [`DbOptions::default_ttl`].
    #[default]
    Default,
    /// Never expires, whatever the defaults.
    Never,
    /// Expires this long after the write is applied.
    After(Duration),
}

impl Ttl {
    /// `self`, or `fallback` if `self` is [`Ttl::Default`].
    pub fn or(self, fallback: Ttl) -> Ttl {
        match self {
            Ttl::Default => fallback,
            set => set,
        }
    }

    /// The time to live once every default is applied (`None`: forever).
    pub(crate) fn resolve(self, default_ttl: Option<Duration>) -> Option<Duration> {
        match self {
            Ttl::Default => default_ttl,
            Ttl::Never => None,
            Ttl::After(ttl) => Some(ttl),
        }
    }
}

/// Which writes a read may see.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Everything in memory, durable or not (default).
    #[default]
    Memory,
    /// Only writes already durable in the object store.
    Durable,
}

/// How a point read reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOptions {
    /// Which writes the read may see (default: every acknowledged one).
    pub durability: Durability,
}

/// How a scan reads tables.
#[derive(Clone, Copy, Debug)]
pub struct ScanOptions {
    /// Which writes the scan may see (default: every acknowledged one).
    pub durability: Durability,
    /// Blocks read per request (default 8).
    pub read_ahead_blocks: usize,
    /// Whether scanned blocks enter the block cache (default false).
    pub fill_cache: bool,
    /// Keys ascending (default) or descending.
    pub order: ScanOrder,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            durability: Durability::Memory,
            read_ahead_blocks: 8,
            fill_cache: false,
            order: ScanOrder::Forward,
        }
    }
}

/// The order a scan returns keys in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScanOrder {
    /// Keys ascending (default).
    #[default]
    Forward,
    /// Keys descending. Tables are read backwards, `read_ahead_blocks`
    /// blocks per request from the end of the range down, each block
    /// decoded once: as cheap per row as a forward scan.
    Reverse,
}

/// How a [`crate::DbReader`] opened with [`crate::DbBuilder::open_reader`]
/// follows the writer. `Default` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct ReaderOptions {
    /// How often the reader looks for the writer's new WAL tables (default
    /// 1 s): one GET of the next WAL id when nothing was written. An
    /// acknowledged durable write is visible within about one interval.
    /// `None`: only [`crate::DbReader::refresh`] looks.
    pub refresh_interval: Option<Duration>,
    /// How often at most the reader moves to a newer manifest version
    /// while the WAL shows new writes (default 10 s): the move picks up
    /// memtables the writer moved to L0 and compaction results, and lets
    /// the reader drop the WAL rows it no longer needs.
    pub manifest_interval: Duration,
    /// Lifetime of the checkpoints that protect the tables the reader
    /// reads from the writer's garbage collector (default 2 min). The
    /// reader renews them at half their lifetime and deletes them at
    /// [`crate::DbReader::close`]; those of a reader that died expire on
    /// their own.
    pub checkpoint_lifetime: Duration,
    /// Open at this checkpoint and stay there: the reader reads what the
    /// checkpoint's manifest version describes (its tables and the WAL
    /// tables below its `next_wal_id`), never refreshes, and writes
    /// nothing (the named checkpoint protects what it reads; deleting it
    /// lets the collector remove those tables).
    pub at_checkpoint: Option<crate::store::Ulid>,
    /// Open at this sequence number of the newest state (or, with
    /// `at_checkpoint`, of the checkpoint's) and stay there: the reader
    /// sees every write up to it and none after, and never refreshes. It
    /// must be at or above the manifest's `retain_seq`, below which
    /// compaction may have merged versions away (`DbOptions::retention`
    /// keeps more), and at or below the newest written.
    pub at_seq: Option<u64>,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            refresh_interval: Some(Duration::from_secs(1)),
            manifest_interval: Duration::from_secs(10),
            checkpoint_lifetime: Duration::from_secs(120),
            at_checkpoint: None,
            at_seq: None,
        }
    }
}

impl ReaderOptions {
    /// `Err(why)` if a setting is unusable.
    ///
    /// # Errors
    ///
    /// `Err(why)` names the unusable setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.refresh_interval.is_some_and(|interval| interval.is_zero()) {
            return Err("reader refresh_interval must be positive (None turns refreshing off)".into());
        }
        if self.checkpoint_lifetime < Duration::from_secs(2) {
            return Err(format!(
                "reader checkpoint_lifetime must be at least 2 s, not {:?}: the reader renews its \
                 checkpoints at half their lifetime",
                self.checkpoint_lifetime
            ));
        }
        Ok(())
    }
}
