//! A store that checks every delete against the metadata at that moment:
//! nothing referenced by the current manifest, a live checkpoint's
//! manifest or an active compaction may go.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::path::Path;
use talusdb::actors::Runtime;
use talusdb::manifest::{Compactions, Manifest, VersionedOptions, VersionedStore};
use talusdb::store::{Layer, Op, Payload, Requests, Store, StoreResult, TableId};

#[derive(Clone)]
pub struct AuditStore {
    inner: Arc<dyn Store>,
    /// Where the manifest and compactions file are (`inner` itself, unless
    /// it is a WAL store of its own).
    metadata: Arc<dyn Store>,
    root: Path,
    runtime: Runtime,
    violations: Arc<Mutex<Vec<String>>>,
    deletes: Arc<Mutex<u64>>,
}

impl fmt::Debug for AuditStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditStore").field("root", &self.root).finish()
    }
}

impl AuditStore {
    pub fn new(inner: Arc<dyn Store>, root: &str, runtime: Runtime) -> Self {
        AuditStore::watching(inner.clone(), inner, root, runtime)
    }

    /// Audits deletes from `inner` (a WAL store of its own) against the
    /// metadata in `metadata`.
    pub fn watching(inner: Arc<dyn Store>, metadata: Arc<dyn Store>, root: &str, runtime: Runtime) -> Self {
        AuditStore {
            inner,
            metadata,
            root: Path::from(root),
            runtime,
            violations: Arc::default(),
            deletes: Arc::default(),
        }
    }

    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().expect("lock").clone()
    }

    /// Deletes checked so far.
    pub fn deletes(&self) -> u64 {
        *self.deletes.lock().expect("lock")
    }

    /// Why deleting `path` now would be wrong, if it would.
    async fn check(&self, path: &Path) -> Option<String> {
        let options = VersionedOptions::default();
        let manifests = VersionedStore::<Manifest>::new(
            self.metadata.clone(),
            self.root.clone(),
            self.runtime.clone(),
            options.clone(),
        );
        let compactions =
            VersionedStore::<Compactions>::new(self.metadata.clone(), self.root.clone(), self.runtime.clone(), options);
        let (manifest_id, manifest) = match manifests.read_latest().await {
            Ok(Some(latest)) => latest,
            Ok(None) => return None,
            Err(error) => return Some(format!("cannot read the manifest while deleting {path}: {error}")),
        };
        let now_ms = self.runtime.wall_ms();
        let mut versions = vec![manifest.clone()];
        let mut pinned = HashSet::new();
        for checkpoint in manifest.live_checkpoints(now_ms) {
            pinned.insert(checkpoint.manifest_id);
            if checkpoint.manifest_id != manifest_id {
                match manifests.read(checkpoint.manifest_id).await {
                    Ok(version) => versions.push(version),
                    Err(error) => return Some(format!("live checkpoint {} lost its manifest: {error}", checkpoint.id)),
                }
            }
        }
        let active = match compactions.read_latest().await {
            Ok(Some((id, state))) => Some((id, state)),
            Ok(None) => None,
            Err(error) => return Some(format!("cannot read compactions while deleting {path}: {error}")),
        };
        if let Some(id) = TableId::parse(&self.root, path) {
            return match id {
                TableId::Compacted(table) => {
                    let in_manifest = versions.iter().any(|version| version.tables().any(|t| t.id == table));
                    let in_compaction = active.as_ref().is_some_and(|(_, state)| {
                        state
                            .active()
                            .any(|entry| entry.outputs.iter().any(|output| output.id == table))
                    });
                    (in_manifest || in_compaction).then(|| format!("deleted referenced table {path}"))
                }
                TableId::Wal(wal) => {
                    let floor = versions.iter().map(|v| v.replay_after_wal_id).min().unwrap_or(0);
                    (wal > floor).then(|| format!("deleted WAL table {wal} above the replay point {floor}"))
                }
            };
        }
        if let Some(id) = manifests.parse_id(path) {
            return (id >= manifest_id || pinned.contains(&id)).then(|| format!("deleted live manifest {id}"));
        }
        if let Some(id) = compactions.parse_id(path) {
            return active
                .is_some_and(|(latest, _)| id >= latest)
                .then(|| format!("deleted the latest compactions version {id}"));
        }
        None
    }
}

impl Layer for AuditStore {
    fn around<T: Payload>(
        &self,
        op: Op,
        path: &Path,
        _requests: Requests,
        request: impl FnOnce(&dyn Store) -> BoxFuture<'static, StoreResult<T>>,
    ) -> BoxFuture<'static, StoreResult<T>> {
        let request = request(&*self.inner);
        if op != Op::Delete {
            return request;
        }
        let (audit, path) = (self.clone(), path.clone());
        async move {
            *audit.deletes.lock().expect("lock") += 1;
            if let Some(violation) = audit.check(&path).await {
                audit.violations.lock().expect("lock").push(violation);
            }
            request.await
        }
        .boxed()
    }
}
