//! Choosing a store from the `--store` URL.

use std::sync::Arc;

use talusdb::actors::Runtime;
use talusdb::store::{ObjectStoreAdapter, Store};

use crate::CliError;

/// How to reach an S3-compatible server (the CLI's `--s3-endpoint` and
/// `--allow-http`); credentials and region come from the AWS environment
/// variables.
#[derive(Clone, Debug, Default)]
pub struct S3Flags {
    pub endpoint: Option<String>,
    pub allow_http: bool,
}

/// Opens the store `url` names: `memory` / `memory://`, `local:<dir>` /
/// `file://<dir>` (created if missing), or `s3://bucket/prefix`.
pub fn open(url: &str, s3: &S3Flags, runtime: &Runtime) -> Result<Arc<dyn Store>, CliError> {
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
    if let Some(location) = url.strip_prefix("s3://") {
        return s3_store(url, location, s3);
    }
    Err(CliError::Usage(format!(
        "--store {url}: not a store URL (expected file:///dir, local:<dir>, memory:// or s3://bucket/prefix)"
    )))
}

/// The directory a local store URL names, if it does not exist.
pub fn missing_dir(url: &str) -> Option<&str> {
    let dir = url.strip_prefix("local:").or_else(|| url.strip_prefix("file://"))?;
    (!dir.is_empty() && !std::path::Path::new(dir).exists()).then_some(dir)
}

/// The `s3://bucket/prefix` store at `location` (the URL without its scheme).
#[cfg(feature = "aws")]
fn s3_store(url: &str, location: &str, s3: &S3Flags) -> Result<Arc<dyn Store>, CliError> {
    use talusdb::store::S3Options;

    let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
    if bucket.is_empty() {
        return Err(CliError::Usage(format!(
            "--store {url}: the bucket is missing (s3://bucket/prefix)"
        )));
    }
    let options = S3Options {
        bucket: bucket.to_owned(),
        prefix: Some(prefix.trim_matches('/').to_owned()).filter(|prefix| !prefix.is_empty()),
        endpoint: s3.endpoint.clone(),
        allow_http: s3.allow_http,
        ..S3Options::default()
    };
    let store = ObjectStoreAdapter::s3(&options).map_err(|error| CliError::Usage(format!("--store {url}: {error}")))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "aws"))]
fn s3_store(url: &str, _location: &str, _s3: &S3Flags) -> Result<Arc<dyn Store>, CliError> {
    Err(CliError::Usage(format!(
        "--store {url}: this build of talus has no S3 support (build talus-cli with the `aws` feature)"
    )))
}
