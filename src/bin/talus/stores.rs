//! Choosing a store from the `--store` URL.

use std::sync::Arc;

use talusdb::actors::Runtime;
use talusdb::store::{ObjectStoreAdapter, Store};

use crate::CliError;

/// Opens the store `url` names: `memory` / `memory://`, `local:<dir>` /
/// `file://<dir>` (created if missing), or `s3://bucket/prefix`.
pub fn open(url: &str, runtime: &Runtime) -> Result<Arc<dyn Store>, CliError> {
    if url == "memory" || url == "memory://" {
        return Ok(Arc::new(ObjectStoreAdapter::in_memory()));
    }
    if let Some(dir) = url.strip_prefix("local:").or_else(|| url.strip_prefix("file://")) {
        if dir.is_empty() {
            return Err(CliError::Usage(format!("--store {url}: the directory is missing")));
        }
        std::fs::create_dir_all(dir)
            .map_err(|error| CliError::Usage(format!("--store {url}: cannot create directory {dir}: {error}")))?;
        let store = ObjectStoreAdapter::local_dir(dir, runtime.clone())
            .map_err(|error| CliError::Usage(format!("--store {url}: cannot open directory {dir}: {error}")))?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("s3://") {
        return Err(CliError::Usage(format!(
            "--store {url}: S3 is not supported by this build yet (only file://, local: and memory://)"
        )));
    }
    Err(CliError::Usage(format!(
        "--store {url}: not a store URL (expected file:///dir, local:<dir>, memory:// or s3://bucket/prefix)"
    )))
}
