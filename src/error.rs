//! The errors of the public API: one [`Error`] with a small [`ErrorKind`],
//! converted once at the boundary from the subsystems' own errors.

use std::fmt;
use std::sync::Arc;

use talus_actors::ActorError;

use crate::manifest::ManifestError;
use crate::store::StoreError;

/// What kind of failure an [`Error`] is. More kinds may come: match with a
/// wildcard arm.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The database is closed; `cause` says why (`None` after `close`).
    Closed {
        /// The first fatal error, which closed it.
        cause: Option<Arc<Error>>,
    },
    /// Another writer opened the database; this one can no longer write.
    Fenced,
    /// The object store failed or timed out (retryable later).
    Unavailable,
    /// An object is damaged or not ours.
    Corruption,
    /// An object was written in a format version newer than this build
    /// reads (upgrade the reader; nothing is damaged).
    Unsupported,
    /// The caller asked for something impossible.
    InvalidArgument,
    /// A transaction's commit met a write made after its snapshot (or the
    /// transaction is older than conflict tracking reaches): nothing of it
    /// was applied; run it again.
    TransactionConflict,
    /// A read at a past sequence number or time that the retention window
    /// no longer covers: compaction may have dropped versions it needs
    /// (see [`DbOptions::retention`](crate::DbOptions::retention)).
    OutsideRetention,
    /// The merge operator could not fold a key's operands: the read that
    /// needed the value fails, the database goes on.
    MergeFailed,
    /// A bug in talusdb.
    Internal,
}

/// An error from the database API: a kind to match on, a message that
/// names what failed, and (for failures of the store, the manifest or the
/// formats underneath) the typed error it came from, through
/// [`std::error::Error::source`]. The message already includes the
/// source's text, so printing the error alone says everything; two errors
/// are equal when their kinds and messages are.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for Error {}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Error");
        debug.field("kind", &self.kind).field("message", &self.message);
        if let Some(source) = &self.source {
            debug.field("source", source);
        }
        debug.finish()
    }
}

impl Error {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source`.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// What happened, naming the object or argument involved.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the database is closed ([`ErrorKind::Closed`]).
    pub fn is_closed(&self) -> bool {
        matches!(self.kind, ErrorKind::Closed { .. })
    }

    /// Fenced, or closed because of a fence.
    pub fn is_fenced(&self) -> bool {
        match &self.kind {
            ErrorKind::Fenced => true,
            ErrorKind::Closed { cause: Some(cause) } => cause.is_fenced(),
            _ => false,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    /// What a caller hears once the engine has stopped with `result`:
    /// `Closed` after a clean shutdown, `Closed { cause }` otherwise.
    pub(crate) fn from_closed_result(result: &Result<(), ActorError<Error>>) -> Self {
        match result {
            Ok(()) => Error::from(ActorError::<Error>::Closed),
            Err(error) => Error::from(error.clone()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Closed { cause: Some(cause) } => write!(f, "{}: {cause}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match (&self.kind, &self.source) {
            (_, Some(source)) => Some(source.as_ref()),
            (ErrorKind::Closed { cause: Some(cause) }, None) => Some(cause.as_ref()),
            _ => None,
        }
    }
}

/// The kind a store error is at the API.
fn store_kind(error: &StoreError) -> ErrorKind {
    match error {
        StoreError::Corruption { .. } => ErrorKind::Corruption,
        StoreError::Unsupported { .. } => ErrorKind::Unsupported,
        StoreError::Fenced { .. } => ErrorKind::Fenced,
        StoreError::Unavailable { .. } | StoreError::NotFound { .. } | StoreError::AlreadyExists { .. } => {
            ErrorKind::Unavailable
        }
        StoreError::InvalidRequest { .. } => ErrorKind::Internal,
        StoreError::Config { .. } => ErrorKind::InvalidArgument,
    }
}

/// The kind a manifest error is at the API.
fn manifest_kind(error: &ManifestError) -> ErrorKind {
    match error {
        ManifestError::Store(store) => store_kind(store),
        ManifestError::Fenced { .. } => ErrorKind::Fenced,
        ManifestError::Missing { .. }
        | ManifestError::CheckpointNotFound { .. }
        | ManifestError::CheckpointHeld { .. }
        | ManifestError::WalStore { .. } => ErrorKind::InvalidArgument,
        ManifestError::Timeout { .. } => ErrorKind::Unavailable,
        ManifestError::InvalidChange { .. } => ErrorKind::Internal,
        ManifestError::Lost { .. } => ErrorKind::Corruption,
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        Error::new(store_kind(&error), error.to_string()).with_source(error)
    }
}

impl From<ManifestError> for Error {
    fn from(error: ManifestError) -> Self {
        match error {
            // The store's error itself is the source, not its wrapper.
            ManifestError::Store(store) => store.into(),
            other => Error::new(manifest_kind(&other), other.to_string()).with_source(other),
        }
    }
}

/// The closed result of the engine's actor system, as an API error.
impl From<ActorError<Error>> for Error {
    fn from(error: ActorError<Error>) -> Self {
        match error {
            ActorError::Closed => Error::new(ErrorKind::Closed { cause: None }, "the database is closed"),
            ActorError::Failed { error, .. } => closed_by(error),
            ActorError::Panicked { actor, message } => {
                closed_by(Error::internal(format!("actor {actor} panicked: {message}")))
            }
            ActorError::NoReply { actor } => Error::internal(format!("actor {actor} dropped a request")),
        }
    }
}

fn closed_by(cause: Error) -> Error {
    if cause.is_closed() {
        return cause;
    }
    Error::new(
        ErrorKind::Closed {
            cause: Some(Arc::new(cause)),
        },
        "the database is closed",
    )
}

/// A key for an error message: as text when it is printable UTF-8, else hex.
pub(crate) fn printable(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) if !text.chars().any(char::is_control) => format!("{text:?}"),
        _ => format!("0x{}", key.iter().map(|byte| format!("{byte:02x}")).collect::<String>()),
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    /// A table from a newer build is `Unsupported`, not `Corruption`, and
    /// the store's typed error comes back through `source`.
    #[test]
    fn a_newer_format_is_unsupported_and_the_cause_is_the_source() {
        let store = StoreError::Unsupported {
            path: "db/compacted/x.sst".into(),
            part: "footer",
            detail: "table format version 9 is newer than this build's (1 to 3)".into(),
        };
        let error = Error::from(store);
        assert_eq!(*error.kind(), ErrorKind::Unsupported);
        assert!(error.to_string().contains("db/compacted/x.sst"), "{error}");
        let source = error.source().expect("a source");
        assert!(
            matches!(
                source.downcast_ref::<StoreError>(),
                Some(StoreError::Unsupported { part: "footer", .. })
            ),
            "{source:?}"
        );
        // Equality ignores the source; a plain error has none.
        assert_eq!(error.clone(), error);
        assert!(Error::invalid("no").source().is_none());
    }

    /// A closed database's error names its cause through `source` too.
    #[test]
    fn a_closed_error_has_its_cause_as_source() {
        let closed = closed_by(Error::new(ErrorKind::Fenced, "a newer writer fenced this one"));
        let cause = closed.source().expect("the cause").to_string();
        assert_eq!(cause, "a newer writer fenced this one");
        assert!(closed.is_fenced());
    }
}
