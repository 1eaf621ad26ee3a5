//! Object I/O: the engine's view of an object store ([`Store`]), the adapter
//! for `object_store` implementations, object names, the table store with its
//! caches, and store wrappers for tests and benchmarks. `docs/store.md` says
//! how the pieces fit and why.

pub mod cache;
pub mod error;
pub mod in_flight;
pub mod local;
pub mod object;
pub mod pace;
pub mod paths;
pub mod reader;
pub mod table;
pub mod wrappers;

pub use cache::TableCaches;
pub use error::{Op, StoreError};
pub use in_flight::InFlight;
#[cfg(feature = "aws")]
pub use object::S3Options;
pub use object::{
    ByteRange, Created, Driver, Fetched, ObjectInfo, ObjectStoreAdapter, PutMode, Store, StoreResult, TokioThread,
    UNKNOWN_MODIFIED_MS, create_once,
};
pub use pace::{Pace, Pacer};
pub use paths::{TableId, Ulid};
pub use table::{
    ScanOptions, TableReader, TableScan, TableStore, TableStoreOptions, WalConflict, WalTable, WrittenTable,
};
pub use wrappers::{
    Fault, FaultyStore, GateStore, LatencyStore, Layer, Payload, RequestCounts, Requests, TimeoutStore,
};
