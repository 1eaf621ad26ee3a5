//! Object I/O: the engine's view of an object store ([`Store`]), the adapter
//! for `object_store` implementations, object names, the table store with its
//! caches, and store wrappers for tests and benchmarks. `docs/store.md` says
//! how the pieces fit and why.

pub(crate) mod cache;
pub(crate) mod error;
pub(crate) mod in_flight;
pub(crate) mod local;
pub(crate) mod object;
pub(crate) mod pace;
pub(crate) mod paths;
pub(crate) mod reader;
pub(crate) mod table;
pub(crate) mod wrappers;

pub use error::{Op, StoreError};
#[cfg(feature = "aws")]
pub use object::S3Options;
pub use object::{
    ByteRange, Created, Driver, Fetched, ObjectInfo, ObjectStoreAdapter, PutMode, Store, StoreResult, TokioThread,
    UNKNOWN_MODIFIED_MS, create_once,
};
pub(crate) use pace::Pacer;
pub use paths::{TableId, Ulid};
pub use table::TableStoreOptions;
pub(crate) use table::{ScanOptions, TableReader, TableScan, TableStore, WalConflict, WalTable, WrittenTable};
pub use wrappers::{
    Fault, FaultyStore, GateStore, LatencyStore, Layer, Payload, RequestCounts, Requests, TimeoutStore,
};

pub use crate::format::sst::SstOptions;
