//! Sending to actors: [`Addr`], request/reply with [`Addr::ask`] and the
//! [`Reply`] half that travels inside a message.
//!
//! An `Addr` does not keep its actor alive or running: once the system has
//! stopped, every send returns the system's closed result — the real cause —
//! instead of a bare "channel closed".

use std::fmt;
use std::sync::Arc;

// tokio's oneshot is runtime-agnostic and measured ~20% faster per ask than
// futures' (see docs/actors.md, Performance).
use tokio::sync::oneshot;

use crate::error::{ActorError, TrySendError};
use crate::mailbox;
use crate::system::status::Status;

/// A cloneable, `Send` handle to an actor's (or a pool's) mailbox.
pub struct Addr<M, E> {
    name: Arc<str>,
    sender: mailbox::Sender<M>,
    status: Arc<Status<E>>,
}

impl<M, E> Clone for Addr<M, E> {
    fn clone(&self) -> Self {
        Addr {
            name: self.name.clone(),
            sender: self.sender.clone(),
            status: self.status.clone(),
        }
    }
}

impl<M, E> fmt::Debug for Addr<M, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Addr")
            .field("actor", &self.name)
            .field("queued", &self.sender.len())
            .finish()
    }
}

impl<M: Send, E: Clone> Addr<M, E> {
    pub(crate) fn new(name: Arc<str>, sender: mailbox::Sender<M>, status: Arc<Status<E>>) -> Self {
        Addr { name, sender, status }
    }

    /// The actor's (or pool's) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queues `msg`, waiting while a bounded mailbox is full (backpressure).
    ///
    /// # Errors
    ///
    /// [`ActorError::Closed`] if the system stopped cleanly, else the
    /// failure that stopped it.
    pub async fn send(&self, msg: M) -> Result<(), ActorError<E>> {
        // Most sends find room: skip building the waiting machinery.
        let msg = match self.sender.try_send(msg) {
            Ok(()) => return Ok(()),
            Err(mailbox::SendError::Closed(_)) => return Err(self.status.closed_error()),
            Err(mailbox::SendError::Full(msg)) => msg,
        };
        self.sender.send(msg).await.map_err(|_| self.status.closed_error())
    }

    /// Queues `msg` if there is room now.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] (with the message back) when a bounded mailbox
    /// has no room; [`TrySendError::Closed`] once the system has stopped.
    pub fn try_send(&self, msg: M) -> Result<(), TrySendError<M, E>> {
        self.sender.try_send(msg).map_err(|error| match error {
            mailbox::SendError::Full(msg) => TrySendError::Full(msg),
            mailbox::SendError::Closed(_) => TrySendError::Closed(self.status.closed_error()),
        })
    }

    /// Sends the message `make` builds around a [`Reply`] and awaits the
    /// answer. If the actor stops first, the answer is the closed result.
    ///
    /// # Errors
    ///
    /// The system's closed result if it stops before the actor answers;
    /// [`ActorError::NoReply`] if the actor drops the reply unanswered.
    pub async fn ask<R>(&self, make: impl FnOnce(Reply<R>) -> M) -> Result<R, ActorError<E>> {
        let (sender, receiver) = oneshot::channel();
        self.send(make(Reply { sender: Some(sender) })).await?;
        receiver.await.map_err(|_| match self.status.result() {
            Some(error) => error.clone(),
            None => ActorError::NoReply {
                actor: self.name.clone(),
            },
        })
    }

    /// Messages waiting in the mailbox.
    pub fn queued(&self) -> usize {
        self.sender.len()
    }

    /// True once the mailbox takes no more messages.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    pub(crate) fn close(&self) {
        self.sender.close();
    }
}

/// The answering half of a request, carried inside a message. Dropping it
/// unanswered makes the asker see the closed result (or
/// [`ActorError::NoReply`] if the system is still running).
pub struct Reply<R> {
    sender: Option<oneshot::Sender<R>>,
}

impl<R> Reply<R> {
    /// A reply nobody waits for: what a decoder builds when replaying a
    /// recorded request.
    pub fn detached() -> Self {
        Reply { sender: None }
    }

    /// Answers the request. An asker that gave up is not an error.
    pub fn send(mut self, answer: R) {
        if let Some(sender) = self.sender.take() {
            let _ = sender.send(answer);
        }
    }

    /// True while somebody still waits for the answer.
    pub fn is_waiting(&self) -> bool {
        self.sender.as_ref().is_some_and(|sender| !sender.is_closed())
    }
}

impl<R> fmt::Debug for Reply<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reply")
    }
}
