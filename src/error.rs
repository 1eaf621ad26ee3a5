//! The errors of the public API: one [`Error`] with a small [`ErrorKind`],
//! converted once at the boundary from the subsystems' own errors.

use std::fmt;
use std::sync::Arc;

use talus_actors::ActorError;

use crate::manifest::ManifestError;
use crate::store::StoreError;

/// What kind of failure an [`Error`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The database is closed; `cause` says why (`None` after `close`).
    Closed { cause: Option<Arc<Error>> },
    /// Another writer opened the database; this one can no longer write.
    Fenced,
    /// The object store failed or timed out (retryable later).
    Unavailable,
    /// An object is damaged or not ours.
    Corruption,
    /// The caller asked for something impossible.
    InvalidArgument,
    /// A bug in talusdb.
    Internal,
}

/// An error from the database API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

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

impl std::error::Error for Error {}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        let kind = match &error {
            StoreError::Corruption { .. } | StoreError::Unsupported { .. } => ErrorKind::Corruption,
            StoreError::Fenced { .. } => ErrorKind::Fenced,
            StoreError::Unavailable { .. } | StoreError::NotFound { .. } | StoreError::AlreadyExists { .. } => {
                ErrorKind::Unavailable
            }
            StoreError::InvalidRequest { .. } => ErrorKind::Internal,
            StoreError::Config { .. } => ErrorKind::InvalidArgument,
        };
        Error::new(kind, error.to_string())
    }
}

impl From<ManifestError> for Error {
    fn from(error: ManifestError) -> Self {
        match error {
            ManifestError::Store(store) => store.into(),
            ManifestError::Fenced { .. } => Error::new(ErrorKind::Fenced, error.to_string()),
            ManifestError::Missing { .. } | ManifestError::CheckpointNotFound { .. } => {
                Error::new(ErrorKind::InvalidArgument, error.to_string())
            }
            ManifestError::Timeout { .. } => Error::new(ErrorKind::Unavailable, error.to_string()),
            ManifestError::InvalidChange { .. } => Error::new(ErrorKind::Internal, error.to_string()),
            ManifestError::Lost { .. } => Error::new(ErrorKind::Corruption, error.to_string()),
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
