//! The errors of object I/O. Every variant names the object it is about, so a
//! message says which object failed and how.

use std::fmt;
use std::sync::Arc;

use object_store::path::Path;

use crate::format::FormatError;

/// The kinds of request an object store serves; wrappers count them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// A whole-object read.
    Get,
    /// A read of a byte range or a suffix.
    GetRange,
    /// A metadata read.
    Head,
    /// A single-request write.
    Put,
    /// One part of a multipart upload.
    MultipartPart,
    /// A listing of a prefix.
    List,
    /// A delete.
    Delete,
}

impl Op {
    /// Every kind.
    pub const ALL: [Op; 7] = [
        Op::Get,
        Op::GetRange,
        Op::Head,
        Op::Put,
        Op::MultipartPart,
        Op::List,
        Op::Delete,
    ];

    /// The name in metrics and reports (`get_range`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::GetRange => "get_range",
            Op::Head => "head",
            Op::Put => "put",
            Op::MultipartPart => "multipart part",
            Op::List => "list",
            Op::Delete => "delete",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What went wrong with an object.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The object's bytes are damaged or are not a talusdb object.
    #[error("object {path}: {part} is corrupt: {detail}")]
    Corruption {
        /// The object.
        path: Path,
        /// What was being decoded.
        part: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The object needs something this build lacks (a compression feature).
    #[error("object {path}: {part} cannot be read by this build: {detail}")]
    Unsupported {
        /// The object.
        path: Path,
        /// What was being decoded.
        part: &'static str,
        /// What it needs.
        detail: String,
    },
    /// The object does not exist.
    #[error("object {path} does not exist")]
    NotFound {
        /// The object.
        path: Path,
    },
    /// A conditional create met an object written by someone else.
    #[error("object {path} already exists")]
    AlreadyExists {
        /// The object.
        path: Path,
    },
    /// Another writer created the WAL table this writer meant to write: a
    /// newer writer has fenced this one out.
    #[error("fenced: WAL table {path} was written by another writer")]
    Fenced {
        /// The WAL table.
        path: Path,
    },
    /// The store failed or timed out; retrying later may succeed.
    #[error("{op} {path} failed: {detail}")]
    Unavailable {
        /// The request.
        op: Op,
        /// The object.
        path: Path,
        /// What the store said.
        detail: String,
        /// The store client's own error, when there is one.
        source: Option<Arc<object_store::Error>>,
    },
    /// A caller asked for something impossible (a bad range, say).
    #[error("{op} {path}: invalid request: {detail}")]
    InvalidRequest {
        /// The request.
        op: Op,
        /// The object.
        path: Path,
        /// What is impossible about it.
        detail: String,
    },
    /// The store cannot be set up as configured (a bad bucket name or
    /// endpoint, say); the detail names what.
    #[error("store {path}: {detail}")]
    Config {
        /// The store's root.
        path: Path,
        /// What is wrong.
        detail: String,
    },
}

/// What to tell the user about an error no retry can fix, found anywhere
/// in its chain of causes: a file system that refuses writes, a server
/// where nothing listens, credentials that cannot be found.
fn permanent_cause(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let chain = || std::iter::successors(Some(error), |cause| cause.source());
    // The instance-metadata endpoint is where the S3 client looks for
    // credentials when none are configured; failing there means none exist.
    let no_credentials = chain().any(|cause| {
        let text = cause.to_string();
        text.contains("/latest/api/token")
            || text.contains("/latest/meta-data")
            || text.contains("rror getting credentials")
    });
    if no_credentials {
        return Some(
            "no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where instance metadata \
             provides credentials",
        );
    }
    for cause in chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ReadOnlyFilesystem => {
                    return Some("the file system is read-only: open the database on a writable one");
                }
                std::io::ErrorKind::PermissionDenied => {
                    return Some("permission denied: the directory must be writable by this user");
                }
                std::io::ErrorKind::ConnectionRefused => {
                    return Some("nothing listens at the endpoint: is the server running, and is the address right?");
                }
                _ => {}
            }
        }
        if cause.to_string().contains("builder error") {
            return Some("the HTTP client refused the endpoint (for a plain http:// endpoint use --allow-http)");
        }
    }
    None
}

impl StoreError {
    /// Adds the object's path to a decoder's error.
    pub fn format(path: &Path, error: FormatError) -> Self {
        match error {
            FormatError::Corrupt { part, detail } => StoreError::Corruption {
                path: path.clone(),
                part,
                detail,
            },
            FormatError::Unsupported { part, detail } => StoreError::Unsupported {
                path: path.clone(),
                part,
                detail,
            },
        }
    }

    /// Translates an `object_store` error for request `op` on `path`.
    pub fn from_object_store(op: Op, path: &Path, error: object_store::Error) -> Self {
        match error {
            object_store::Error::NotFound { .. } => StoreError::NotFound { path: path.clone() },
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
                StoreError::AlreadyExists { path: path.clone() }
            }
            object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. } => {
                StoreError::InvalidRequest {
                    op,
                    path: path.clone(),
                    detail: error.to_string(),
                }
            }
            // S3 names a missing bucket only in its response body; no retry
            // will make one appear.
            other if other.to_string().contains("NoSuchBucket") => StoreError::Config {
                path: path.clone(),
                detail: format!("the bucket does not exist: {other}"),
            },
            other @ (object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }) => {
                StoreError::Config {
                    path: path.clone(),
                    detail: format!("{op} was refused: check the credentials and the bucket's policy: {other}"),
                }
            }
            other => match permanent_cause(&other) {
                Some(hint) => StoreError::Config {
                    path: path.clone(),
                    detail: format!("{hint}: {other}"),
                },
                None => StoreError::Unavailable {
                    op,
                    path: path.clone(),
                    detail: other.to_string(),
                    source: Some(Arc::new(other)),
                },
            },
        }
    }

    /// An `Unavailable` error without an underlying `object_store` error.
    pub fn unavailable(op: Op, path: &Path, detail: impl Into<String>) -> Self {
        StoreError::Unavailable {
            op,
            path: path.clone(),
            detail: detail.into(),
            source: None,
        }
    }

    /// Whether retrying the same request may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    /// The object the error is about.
    pub fn path(&self) -> &Path {
        match self {
            StoreError::Corruption { path, .. }
            | StoreError::Unsupported { path, .. }
            | StoreError::NotFound { path }
            | StoreError::AlreadyExists { path }
            | StoreError::Fenced { path }
            | StoreError::Unavailable { path, .. }
            | StoreError::InvalidRequest { path, .. }
            | StoreError::Config { path, .. } => path,
        }
    }
}
