//! Interrupting a benchmark: a store layer that fails every request once
//! it is halted, and the removal of the benchmark's database.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use talusdb::Error;
use talusdb::store::Store;

/// Deletes every object under `path` in each of `stores`.
pub(super) async fn remove_database(path: &str, stores: &[Arc<dyn Store>]) -> Result<(), Error> {
    let prefix = path.into();
    for store in stores {
        for object in store.list(&prefix).await.map_err(Error::from)? {
            store.delete(&object.path).await.map_err(Error::from)?;
        }
    }
    Ok(())
}

/// The benchmark's stores, with a switch that fails every later request
/// once the benchmark is interrupted: the workloads' tasks, detached when
/// their futures are dropped, then write nothing more while the clean-up
/// removes the database (which it does on the stores underneath).
#[derive(Debug)]
pub(super) struct Halt {
    pub(super) inner: Arc<dyn Store>,
    pub(super) halted: Arc<AtomicBool>,
}

impl talusdb::store::Layer for Halt {
    fn around<T: talusdb::store::Payload>(
        &self,
        op: talusdb::store::Op,
        path: &object_store::path::Path,
        _requests: talusdb::store::Requests,
        request: impl FnOnce(&dyn Store) -> futures::future::BoxFuture<'static, talusdb::store::StoreResult<T>>,
    ) -> futures::future::BoxFuture<'static, talusdb::store::StoreResult<T>> {
        if self.halted.load(Ordering::Acquire) {
            let error = talusdb::store::StoreError::unavailable(op, path, "the benchmark was interrupted");
            return Box::pin(futures::future::ready(Err(error)));
        }
        request(&*self.inner)
    }
}
