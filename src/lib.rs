//! talusdb: an embedded key-value storage engine whose durable home is object
//! storage (S3-compatible stores, or a local directory by default).
//!
//! **Status.** The engine works: [`Db`] (puts, deletes, atomic batches,
//! gets, scans, snapshots, flushes, checkpoints, crash recovery, fencing,
//! backpressure) on any object store, plus a read-only [`DbReader`], with
//! a background [`Compactor`] (size-tiered; also runnable on its own) and
//! garbage collector. The README says what works.
//!
//! The engine's subsystems are actors on the runtime re-exported here as
//! [`actors`] (the `talus-actors` crate), so a database runs inside a smol,
//! tokio or actix application, or deterministically under the `sim`
//! executor. The default backend is smol:
//!
//! ```
//! # fn main() -> std::io::Result<()> {
//! let runtime = talusdb::actors::Runtime::smol()?;
//! let (sender, receiver) = std::sync::mpsc::channel();
//! runtime.spawn_detached(Box::pin(async move {
//!     let _ = sender.send(6 * 7);
//! }));
//! assert_eq!(receiver.recv().ok(), Some(42));
//! # Ok(())
//! # }
//! ```

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
    CloseOptions, Db, DbBuilder, DbOptions, DbReader, DbStats, Durability, MemoryStats, ReadOptions, ScanOptions,
    Snapshot, TreeShape, WriteBatch, WriteOptions,
};
pub use error::{Error, ErrorKind};
pub use format::compression::Compression;
pub use gc::{GcMode, GcOptions, GcReport};
pub use manifest::WalLoss;
