//! The metadata protocol: the manifest (which tables make up the database),
//! the compactions file, their numbered versions, fencing by epochs, and
//! checkpoints. The rules are written down in `docs/protocol.md`; the
//! encodings in `docs/format.md`.

pub(crate) mod checkpoints;
pub(crate) mod compactions;
pub(crate) mod compactor_state;
pub(crate) mod fenced;
pub(crate) mod lease;
pub(crate) mod model;
pub(crate) mod rules;
pub(crate) mod versioned;

use std::time::Duration;

use object_store::path::Path;

pub use checkpoints::CheckpointOptions;
pub use compactions::{Compaction, CompactionSpec, CompactionStatus, Compactions, Source};
pub(crate) use compactor_state::CompactorState;
pub use fenced::{Fenceable, Fenced, IfMissing, Role};
pub use lease::EpochLease;
pub use model::{CLONE_CHECKPOINT_PREFIX, Checkpoint, CloneSource, Manifest, SeqTime, SortedRun, TableHandle, WalLoss};
pub use versioned::{Created, Versioned, VersionedOptions, VersionedStore};

use crate::store::{StoreError, Ulid};

/// What can go wrong reading or updating metadata.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The store failed, or an object is corrupt (the error names it).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Someone opened the same role with a higher epoch; final for this
    /// handle.
    #[error("fenced: this {role} has epoch {ours}, but {path} holds epoch {stored}")]
    Fenced {
        /// The role that was fenced.
        role: Role,
        /// This handle's epoch.
        ours: u64,
        /// The epoch the store holds.
        stored: u64,
        /// The version that holds it.
        path: Path,
    },
    /// There is no version at all.
    #[error("{path} does not exist: no database here")]
    Missing {
        /// Where the first version would be.
        path: Path,
    },
    /// Writing a new version kept failing for the whole write timeout.
    #[error("gave up writing {path} after {waited:?}: {last}")]
    Timeout {
        /// The version being written.
        path: Path,
        /// How long it tried.
        waited: Duration,
        /// The last failure.
        last: String,
    },
    /// A change touched fields its role does not own (a programming error
    /// in the caller, reported rather than written).
    #[error("the {role} may not make this change: {detail}")]
    InvalidChange {
        /// The role that tried.
        role: Role,
        /// What it touched.
        detail: String,
    },
    /// No checkpoint has this id (it expired, was deleted or never was).
    #[error("checkpoint {id} does not exist")]
    CheckpointNotFound {
        /// The id asked for.
        id: Ulid,
    },
    /// The checkpoint is held by a clone that still lists this database's
    /// tables through it (see `docs/scale-out.md`, "Clones").
    #[error(
        "checkpoint {id} keeps the tables the clone at {clone} lists from this database: the clone's garbage \
         collector releases it once compaction there no longer lists them (or delete the clone first)"
    )]
    CheckpointHeld {
        /// The checkpoint.
        id: Ulid,
        /// The clone's root.
        clone: String,
    },
    /// The database keeps its WAL tables elsewhere than this handle was
    /// opened to look (see `DbBuilder::wal_store`).
    #[error(
        "the database at {root} keeps its WAL tables {}",
        if *separate {
            "in a store of their own: open it with that store (DbBuilder::wal_store, talus --wal-store URL)"
        } else {
            "in its main store: open it without a WAL store"
        }
    )]
    WalStore {
        /// The database root.
        root: Path,
        /// Whether the manifest says the WAL is in a store of its own.
        separate: bool,
    },
    /// Tables or WAL objects are there but no manifest version is: the
    /// manifest was moved or deleted. Nothing may write or collect there.
    #[error(
        "{root} holds {wal} WAL and {sorted} sorted table objects but no manifest: the manifest was lost \
         (moved or deleted). Refusing to create a new database over them, or to collect anything there; \
         restore the objects under {root}/manifest/"
    )]
    Lost {
        /// The database root.
        root: Path,
        /// WAL table objects found.
        wal: usize,
        /// Sorted table objects found.
        sorted: usize,
    },
}

/// Fails with [`ManifestError::Lost`] if `root` holds WAL or sorted tables
/// but no manifest version; `Ok` if there is a manifest or nothing at all
/// (a new database). A manifest created while we listed (another process's
/// first open: it writes the manifest before any table) counts as found.
pub(crate) async fn refuse_lost_manifest(
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

/// Fails with [`ManifestError::WalStore`] unless `tables` keeps WAL
/// tables where `manifest` says they are (in a store of their own, or in
/// the main store).
pub(crate) fn check_wal_store(manifest: &Manifest, tables: &crate::store::TableStore) -> Result<(), ManifestError> {
    if manifest.separate_wal == tables.has_wal_store() {
        return Ok(());
    }
    Err(ManifestError::WalStore {
        root: tables.root().clone(),
        separate: manifest.separate_wal,
    })
}

impl ManifestError {
    /// Whether this is [`ManifestError::Fenced`].
    pub fn is_fenced(&self) -> bool {
        matches!(self, ManifestError::Fenced { .. })
    }
}
