//! Fenced updates of a versioned object: the one way the manifest and the
//! compactions file change.
//!
//! Owns: roles and their epochs, the refresh–reapply–retry loop, and the
//! ownership rules (which role may change which fields). Does not own: what
//! a change means (the callers' closures).
//!
//! How a change merges with others: a change is a closure applied to the
//! newest version. When our create of version `id + 1` meets someone
//! else's, we read the newer versions and apply the closure again on top of
//! the newest. Fields owned by another role therefore always come from the
//! newest version, never from our stale copy; `Fenceable::check_change`
//! rejects a closure that touches fields its role does not own.
//!
//! Invariants: our epoch never changes after open; a stored epoch above ours
//! is `Fenced`, and a fenced handle stays fenced; each version id is written
//! exactly once.

use std::fmt;

use super::ManifestError;
use super::versioned::{Created, Versioned, VersionedStore};

/// Who is changing the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The database writer: L0 additions, WAL ids, its own epoch.
    Writer,
    /// The compactor: sorted runs, L0 removals, its own epoch, the
    /// compactions file.
    Compactor,
    /// Anyone else (the CLI, a tool): checkpoints, submissions. Has no
    /// epoch, fences no one and is fenced by no one.
    Admin,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Writer => "writer",
            Role::Compactor => "compactor",
            Role::Admin => "admin",
        })
    }
}

/// A payload whose updates are fenced by per-role epochs.
pub trait Fenceable: Versioned + Default + PartialEq {
    /// The stored epoch of `role`, if the role has one in this object.
    fn epoch(&self, role: Role) -> Option<u64>;
    /// Records `epoch` as `role`'s.
    fn set_epoch(&mut self, role: Role, epoch: u64);
    /// `Err(why)` if `after` changes a field `role` does not own.
    ///
    /// # Errors
    ///
    /// `Err(why)` names the field `role` may not change.
    fn check_change(role: Role, before: &Self, after: &Self) -> Result<(), String>;
}

/// One role's handle on a versioned object: the newest version it knows,
/// and its epoch.
#[derive(Debug)]
pub struct Fenced<P> {
    store: VersionedStore<P>,
    role: Role,
    epoch: Option<u64>,
    id: u64,
    current: P,
    fenced: Option<ManifestError>,
}

/// Whether opening may create the first version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfMissing {
    /// Create it (a new database).
    Create,
    /// Fail with [`crate::manifest::ManifestError::Missing`].
    Fail,
}

impl<P: Fenceable> Fenced<P> {
    /// Opens as `role`, raising the role's epoch by one: every handle opened
    /// earlier with that role is fenced from now on.
    ///
    /// # Errors
    ///
    /// A [`ManifestError`]: `Store` if the store failed or a version is corrupt;
    /// `Fenced` if a newer handle of the same role took over during the open;
    /// `Missing` if there is no version and `if_missing` is `Fail`.
    pub async fn open(store: VersionedStore<P>, role: Role, if_missing: IfMissing) -> Result<Self, ManifestError> {
        Self::open_at(store, role, None, if_missing).await
    }

    /// Opens as `role` with a given epoch (the compactor mirrors its
    /// manifest epoch into the compactions file): fenced if the stored
    /// epoch is already higher.
    ///
    /// # Errors
    ///
    /// A [`ManifestError`]: `Store` if the store failed or a version is corrupt;
    /// `Fenced` if a newer handle of the same role took over (its epoch is above `epoch`);
    /// `Missing` if there is no version and `if_missing` is `Fail`.
    pub async fn open_with_epoch(
        store: VersionedStore<P>,
        role: Role,
        epoch: u64,
        if_missing: IfMissing,
    ) -> Result<Self, ManifestError> {
        Self::open_at(store, role, Some(epoch), if_missing).await
    }

    /// Loads the newest version without claiming an epoch (for `Admin`
    /// handles and read-only views).
    ///
    /// # Errors
    ///
    /// `Store` if the store failed or the version is corrupt; `Missing` if
    /// there is no version.
    pub async fn load(store: VersionedStore<P>, role: Role) -> Result<Self, ManifestError> {
        let Some((id, current)) = store.read_latest().await? else {
            return Err(ManifestError::Missing { path: store.path(1) });
        };
        Ok(Fenced {
            store,
            role,
            epoch: None,
            id,
            current,
            fenced: None,
        })
    }

    async fn open_at(
        store: VersionedStore<P>,
        role: Role,
        wanted: Option<u64>,
        if_missing: IfMissing,
    ) -> Result<Self, ManifestError> {
        let deadline = store.runtime().now() + store.options().update_timeout;
        loop {
            let (id, base) = match store.read_latest().await? {
                Some(latest) => latest,
                None if if_missing == IfMissing::Create => (0, P::default()),
                None => {
                    return Err(ManifestError::Missing { path: store.path(1) });
                }
            };
            let stored = base.epoch(role).unwrap_or(0);
            let epoch = match wanted {
                None => stored + 1,
                Some(wanted) if stored > wanted => {
                    return Err(ManifestError::Fenced {
                        role,
                        ours: wanted,
                        stored,
                        path: store.path(id),
                    });
                }
                Some(wanted) => wanted,
            };
            if id > 0 && epoch == stored {
                return Ok(Self::opened(store, role, epoch, id, base));
            }
            let mut next = base.clone();
            next.set_epoch(role, epoch);
            match store.create(id + 1, &next, deadline).await? {
                Created::Written => return Ok(Self::opened(store, role, epoch, id + 1, next)),
                Created::Conflict => Self::conflict_pause(&store, id + 1, deadline).await?,
            }
        }
    }

    fn opened(store: VersionedStore<P>, role: Role, epoch: u64, id: u64, current: P) -> Self {
        tracing::debug!(%role, epoch, id, kind = P::PART, "opened");
        Fenced {
            store,
            role,
            epoch: Some(epoch),
            id,
            current,
            fenced: None,
        }
    }

    async fn conflict_pause(
        store: &VersionedStore<P>,
        id: u64,
        deadline: std::time::Duration,
    ) -> Result<(), ManifestError> {
        if store.runtime().now() >= deadline {
            return Err(ManifestError::Timeout {
                path: store.path(id),
                waited: store.options().update_timeout,
                last: "every attempt met a newer version".into(),
            });
        }
        store.pause().await;
        Ok(())
    }

    /// The role this handle acts as.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Our epoch (`None` for handles that claimed none).
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// The id of the newest version we know.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The newest version we know.
    pub fn current(&self) -> &P {
        &self.current
    }

    /// Where its versions are.
    pub fn store(&self) -> &VersionedStore<P> {
        &self.store
    }

    fn check_fence(&mut self) -> Result<(), ManifestError> {
        if let Some(fenced) = &self.fenced {
            return Err(fenced.clone());
        }
        let (Some(ours), Some(stored)) = (self.epoch, self.current.epoch(self.role)) else {
            return Ok(());
        };
        if stored > ours {
            let fenced = ManifestError::Fenced {
                role: self.role,
                ours,
                stored,
                path: self.store.path(self.id),
            };
            tracing::warn!(%fenced, "fenced");
            self.fenced = Some(fenced.clone());
            return Err(fenced);
        }
        Ok(())
    }

    /// Catches up with versions written by others.
    ///
    /// # Errors
    ///
    /// A [`ManifestError`]: `Store` if the store failed or a version is corrupt;
    /// `Fenced` if a newer handle of the same role took over.
    pub async fn refresh(&mut self) -> Result<(), ManifestError> {
        self.check_fence()?;
        // A listing, not a probe of id + 1, id + 2, ...: versions in between
        // may have been collected while older, pinned ones remain.
        if let Some((id, current)) = self.store.read_newer_than(Some(self.id)).await? {
            self.id = id;
            self.current = current;
        }
        self.check_fence()
    }

    /// Applies `change` to the newest version and writes the result as the
    /// next version, re-applying it on top of anyone else's newer version
    /// until it lands or `update_timeout` passes. `change` receives the id
    /// the version will have. Returns that id (the current id if `change`
    /// changed nothing, in which case nothing is written).
    ///
    /// # Errors
    ///
    /// A [`ManifestError`]: `Store` if the store failed or a version is corrupt;
    /// `Fenced` if a newer handle of the same role took over; `Timeout` if
    /// the write kept failing for `update_timeout`; whatever `change` returns.
    pub async fn update<F>(&mut self, change: F) -> Result<u64, ManifestError>
    where
        F: FnMut(&mut P, u64) -> Result<(), ManifestError>,
    {
        let role = self.role;
        self.update_checked(change, |before, after| P::check_change(role, before, after))
            .await
    }

    /// [`Fenced::update`], with the change judged by `check` instead of
    /// the role's ownership rules (a restore replaces what several roles
    /// own; see `rules::check_restore`).
    pub(crate) async fn update_checked<F, C>(&mut self, mut change: F, check: C) -> Result<u64, ManifestError>
    where
        F: FnMut(&mut P, u64) -> Result<(), ManifestError>,
        C: Fn(&P, &P) -> Result<(), String>,
    {
        let deadline = self.store.runtime().now() + self.store.options().update_timeout;
        loop {
            // Read the newest version first (one listing, and a read only if
            // someone wrote): a create of `id + 1` by a stale handle would
            // land even if `id + 1` had been written and collected since,
            // as an orphan below the newest version, and its change would
            // be lost. Listed just before the create, such an orphan needs
            // a version collected younger than the collector's minimum age
            // (`docs/protocol.md`, "Manifest versions and the collector").
            self.refresh().await?;
            let next_id = self.id + 1;
            let mut next = self.current.clone();
            change(&mut next, next_id)?;
            check(&self.current, &next).map_err(|detail| ManifestError::InvalidChange {
                role: self.role,
                detail,
            })?;
            if next == self.current {
                return Ok(self.id);
            }
            match self.store.create(next_id, &next, deadline).await? {
                Created::Written => {
                    self.id = next_id;
                    self.current = next;
                    return Ok(next_id);
                }
                Created::Conflict => Self::conflict_pause(&self.store, next_id, deadline).await?,
            }
        }
    }
}
