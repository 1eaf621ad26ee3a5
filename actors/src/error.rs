//! The error every sender, asker and waiter sees once a system has stopped.
//!
//! Owns: [`ActorError`], generic over the application's own error type `E`.
//! The first fatal error of any actor becomes the system's closed result, and
//! this type is how that one cause reaches everybody.

use std::fmt;
use std::sync::Arc;

/// Why a message could not be delivered or answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActorError<E> {
    /// The system was shut down cleanly (or dropped); it takes no more messages.
    Closed,
    /// An actor's handler returned `error`; the whole system stopped.
    Failed {
        /// The actor's name.
        actor: Arc<str>,
        /// What its handler returned.
        error: E,
    },
    /// An actor's handler (or a task it spawned) panicked; the whole system stopped.
    Panicked {
        /// The actor's name.
        actor: Arc<str>,
        /// The panic's message.
        message: String,
    },
    /// The actor dropped a request's reply without answering while the system
    /// was still running: a bug in that actor.
    NoReply {
        /// The actor's name.
        actor: Arc<str>,
    },
}

impl<E> ActorError<E> {
    /// True for a clean shutdown rather than a failure.
    pub fn is_closed(&self) -> bool {
        matches!(self, ActorError::Closed)
    }

    /// The application error behind a failure, if that is what this is.
    pub fn failure(&self) -> Option<&E> {
        match self {
            ActorError::Failed { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The actor the error came from, when one did.
    pub fn actor(&self) -> Option<&str> {
        match self {
            ActorError::Closed => None,
            ActorError::Failed { actor, .. } | ActorError::Panicked { actor, .. } | ActorError::NoReply { actor } => {
                Some(actor)
            }
        }
    }
}

impl<E: fmt::Display> fmt::Display for ActorError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActorError::Closed => f.write_str("closed: the system was shut down"),
            ActorError::Failed { actor, error } => write!(f, "closed: actor {actor} failed: {error}"),
            ActorError::Panicked { actor, message } => write!(f, "closed: actor {actor} panicked: {message}"),
            ActorError::NoReply { actor } => write!(f, "actor {actor} dropped a request without answering it"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ActorError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.failure().map(|error| error as _)
    }
}

/// Returned by [`crate::Addr::try_send`].
#[derive(Debug)]
pub enum TrySendError<M, E> {
    /// A bounded mailbox is full; the message is handed back.
    Full(M),
    /// The actor has stopped; the system's closed result.
    Closed(ActorError<E>),
}

impl<M, E: fmt::Display> fmt::Display for TrySendError<M, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("mailbox is full"),
            TrySendError::Closed(error) => error.fmt(f),
        }
    }
}

impl<M: fmt::Debug, E: std::error::Error + 'static> std::error::Error for TrySendError<M, E> {}
