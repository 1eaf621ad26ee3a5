//! The metrics talusdb emits through the `metrics` facade. Without an
//! installed recorder every call is a cheap no-op; install any recorder
//! (Prometheus, StatsD, ...) to collect them. The names and what they mean
//! are listed here and in `docs/metrics.md`.

/// Write batches accepted (counter).
pub const WRITES: &str = "talus_writes_total";
/// Bytes of keys and values written (counter).
pub const WRITE_BYTES: &str = "talus_write_bytes_total";
/// Writes that waited because unflushed memtables were full (counter).
pub const STALLED_WRITES: &str = "talus_stalled_writes_total";
/// Bytes in memtables not yet in L0 (gauge).
pub const UNFLUSHED_BYTES: &str = "talus_unflushed_bytes";
/// WAL tables uploaded (counter).
pub const WAL_UPLOADS: &str = "talus_wal_uploads_total";
/// Seconds one WAL table upload took, retries included (histogram).
pub const WAL_UPLOAD_SECONDS: &str = "talus_wal_upload_seconds";
/// Memtables frozen for upload to L0 (counter).
pub const MEMTABLES_FROZEN: &str = "talus_memtables_frozen_total";
/// L0 tables in the manifest (gauge).
pub const L0_TABLES: &str = "talus_l0_tables";
/// Block and metadata cache lookups that hit (counter; label `cache` is
/// `block` or `meta`).
pub const CACHE_HITS: &str = "talus_cache_hits_total";
/// Block and metadata cache lookups that missed (counter; label `cache`).
pub const CACHE_MISSES: &str = "talus_cache_misses_total";
/// Object-store requests the engine made (counter; label `op`: `get`,
/// `get_range`, `head`, `put`, `multipart part`, `list`, `delete`).
pub const STORE_REQUESTS: &str = "talus_store_requests_total";

/// Times an uploaded L0 table had to wait because L0 was full (counter).
pub const L0_STALLS: &str = "talus_l0_stalls_total";
/// Transaction commits refused by the conflict check (counter).
pub const TRANSACTION_CONFLICTS: &str = "talus_transaction_conflicts_total";
/// Compactions committed (counter).
pub const COMPACTIONS: &str = "talus_compactions_total";
/// Bytes of input tables compactions read (counter).
pub const COMPACTION_BYTES_READ: &str = "talus_compaction_bytes_read_total";
/// Bytes of output tables compactions wrote (counter).
pub const COMPACTION_BYTES_WRITTEN: &str = "talus_compaction_bytes_written_total";
/// Objects the garbage collector deleted (counter; label `class`: `wal`,
/// `table`, `manifest`, `compactions`, `checkpoint`).
pub const GC_DELETED: &str = "talus_gc_deleted_total";

/// Counts `count` store requests of the operation named `op`.
pub(crate) fn store_requests(op: &'static str, count: u64) {
    metrics::counter!(STORE_REQUESTS, "op" => op).increment(count);
}

pub(crate) fn cache_lookup(cache: &'static str, hit: bool) {
    if hit {
        metrics::counter!(CACHE_HITS, "cache" => cache).increment(1);
    } else {
        metrics::counter!(CACHE_MISSES, "cache" => cache).increment(1);
    }
}
