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

pub use talus_actors as actors;

pub mod compactor;
pub mod db;
pub mod error;
pub mod flush;
pub mod format;
pub mod gc;
pub mod manifest;
pub mod mem;
pub mod metrics;
pub mod read;
pub mod store;
mod waiters;
pub mod wal;

pub use compactor::Compactor;
pub use db::{
    Db, DbBuilder, DbOptions, DbReader, DbStats, Durability, MemoryStats, ReadOptions, ScanOptions, Snapshot,
    TreeShape, WriteBatch, WriteOptions,
};
pub use error::{Error, ErrorKind};
pub use gc::{GcOptions, GcReport};
pub use manifest::WalLoss;
