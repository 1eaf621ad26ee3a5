//! The metadata protocol: the manifest (which tables make up the database),
//! the compactions file, their numbered versions, fencing by epochs, and
//! checkpoints. The rules are written down in `docs/protocol.md`; the
//! encodings in `docs/format.md`.

pub mod checkpoints;
pub mod compactions;
pub mod compactor_state;
pub mod fenced;
pub mod lease;
pub mod model;
pub mod rules;
pub mod versioned;

use std::time::Duration;

use object_store::path::Path;

pub use checkpoints::CheckpointOptions;
pub use compactions::{Compaction, CompactionSpec, CompactionStatus, Compactions, Source};
pub use compactor_state::CompactorState;
pub use fenced::{Fenceable, Fenced, IfMissing, Role};
pub use lease::EpochLease;
pub use model::{Checkpoint, Manifest, SortedRun, TableHandle, WalLoss};
pub use versioned::{Created, Versioned, VersionedOptions, VersionedStore};

use crate::store::{StoreError, Ulid};

/// What can go wrong reading or updating metadata.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ManifestError {
    /// The store failed, or an object is corrupt (the error names it).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Someone opened the same role with a higher epoch; final for this
    /// handle.
    #[error("fenced: this {role} has epoch {ours}, but {path} holds epoch {stored}")]
    Fenced {
        role: Role,
        ours: u64,
        stored: u64,
        path: Path,
    },
    /// There is no version at all.
    #[error("{path} does not exist: no database here")]
    Missing { path: Path },
    #[error("gave up writing {path} after {waited:?}: {last}")]
    Timeout { path: Path, waited: Duration, last: String },
    /// A change touched fields its role does not own (a programming error
    /// in the caller, reported rather than written).
    #[error("the {role} may not make this change: {detail}")]
    InvalidChange { role: Role, detail: String },
    #[error("checkpoint {id} does not exist")]
    CheckpointNotFound { id: Ulid },
    /// Tables or WAL objects are there but no manifest version is: the
    /// manifest was moved or deleted. Nothing may write or collect there.
    #[error(
        "{root} holds {wal} WAL and {sorted} sorted table objects but no manifest: the manifest was lost \
         (moved or deleted). Refusing to create a new database over them, or to collect anything there; \
         restore the objects under {root}/manifest/"
    )]
    Lost { root: Path, wal: usize, sorted: usize },
}

/// Fails with [`ManifestError::Lost`] if `root` holds WAL or sorted tables
/// but no manifest version; `Ok` if there is a manifest or nothing at all
/// (a new database). A manifest created while we listed (another process's
/// first open: it writes the manifest before any table) counts as found.
pub async fn refuse_lost_manifest(
    manifests: &VersionedStore<Manifest>,
    tables: &crate::store::TableStore,
) -> Result<(), ManifestError> {
    if !manifests.ids().await?.is_empty() {
        return Ok(());
    }
    let wal = tables.list_wal().await?.len();
    let sorted = tables.list_sorted().await?.len();
    if wal + sorted == 0 || !manifests.ids().await?.is_empty() {
        return Ok(());
    }
    Err(ManifestError::Lost {
        root: manifests.root().clone(),
        wal,
        sorted,
    })
}

impl ManifestError {
    pub fn is_fenced(&self) -> bool {
        matches!(self, ManifestError::Fenced { .. })
    }
}
