//! talusdb: an embedded key-value storage engine whose durable home is object
//! storage (S3-compatible stores, or a local directory by default).
//!
//! **Status.** The engine works: [`Db`] (puts, deletes, atomic batches,
//! gets, scans, snapshots, flushes, checkpoints, crash recovery, fencing,
//! backpressure) on any object store, plus a read-only [`DbReader`], with
//! a background [`Compactor`] (size-tiered; also runnable on its own) and
//! garbage collector. The README says what works.
//!
//! A first program, on a local directory:
//!
//! ```
//! use std::sync::Arc;
//! use talusdb::actors::Runtime;
//! use talusdb::store::ObjectStoreAdapter;
//! use talusdb::Db;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("talusdb-doc-{}", std::process::id()));
//! let runtime = Runtime::smol()?;
//! let store = Arc::new(ObjectStoreAdapter::local_dir(&dir, runtime.clone())?);
//! smol::block_on(async {
//!     let db = Db::builder("db", store).runtime(runtime).open().await?;
//!     db.put("hello", "world").await?; // durable when it returns
//!     assert_eq!(db.get("hello").await?.as_deref(), Some(&b"world"[..]));
//!     db.close().await
//! })?;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! Where things are: [`Db`], [`DbBuilder`] and their options at the root;
//! object stores and their test wrappers in [`store`]; the metadata types
//! (manifests, checkpoints, compactions) in [`manifest`]; the compactor in
//! [`compactor`], the garbage collector in [`gc`], metric names in
//! [`metrics`]. Every fallible call documents its errors; [`ErrorKind`]
//! says what kind of failure an [`Error`] is.
//!
//! The engine's subsystems are actors on the runtime re-exported here as
//! [`actors`] (the `talus-actors` crate), so a database runs inside a smol,
//! tokio or actix application, or deterministically under the `sim`
//! executor. The default executor is smol's (feature `smol`); without it,
//! pass one with [`DbBuilder::runtime`].

#![warn(missing_docs)]
#![warn(clippy::missing_errors_doc)]

pub use talus_actors as actors;

pub mod compactor;
mod db;
mod error;
mod format;
pub mod gc;
mod l0;
pub mod manifest;
mod mem;
pub mod metrics;
mod read;
mod shared;
pub mod store;
mod waiters;
mod wal;

#[doc(hidden)]
pub mod internals;

pub use compactor::{Compactor, CompactorOptions};
pub use db::{
    CloseOptions, Db, DbBuilder, DbIterator, DbOptions, DbReader, DbStats, Durability, IsolationLevel, MemoryStats,
    ReadOptions, ReaderOptions, Restored, ScanOptions, ScanOrder, Snapshot, Transaction, TreeShape, Ttl, WriteBatch,
    WriteOptions, WriteReceipt,
};
pub use error::{Error, ErrorKind};
pub use format::compression::Compression;
pub use gc::{GcMode, GcOptions, GcReport};
pub use manifest::WalLoss;
pub use read::operator::{MergeError, MergeOperator};
