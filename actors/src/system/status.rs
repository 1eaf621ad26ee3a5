//! The closed result and the signals every actor of a system watches.
//!
//! Owns: the write-once closed result, the stop signal (fired on the first
//! failure, on drop, and at the end of a clean shutdown), the count of running
//! workers and the "terminated" latch that [`crate::System::closed`] awaits.
//!
//! Invariants: the closed result is written once and the first writer wins;
//! it is written before the stop signal fires, so anybody who sees an actor
//! stopped can read the cause; "terminated" fires only once the result is
//! written and no worker is running.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use crate::doorbell::Doorbell;
use crate::error::ActorError;

pub(crate) struct Status<E> {
    result: OnceLock<ActorError<E>>,
    /// Set (after the result) when every actor must stop; each worker checks
    /// it whenever its doorbell rings.
    stopping: AtomicBool,
    doorbells: Mutex<Vec<Weak<Doorbell>>>,
    // Closing a channel wakes every receiver: a broadcast that needs no
    // bookkeeping and that a late listener still sees.
    terminated_sender: async_channel::Sender<()>,
    terminated_receiver: async_channel::Receiver<()>,
    running: AtomicUsize,
}

impl<E: Clone> Status<E> {
    pub(crate) fn new() -> Self {
        let (terminated_sender, terminated_receiver) = async_channel::bounded(1);
        Status {
            result: OnceLock::new(),
            stopping: AtomicBool::new(false),
            doorbells: Mutex::new(Vec::new()),
            terminated_sender,
            terminated_receiver,
            running: AtomicUsize::new(0),
        }
    }

    /// Records `error` as the closed result unless one is already recorded,
    /// then stops every actor. Returns whether this call's error won.
    pub(crate) fn close_with(&self, error: ActorError<E>) -> bool {
        let won = self.result.set(error).is_ok();
        self.stopping.store(true, Ordering::SeqCst);
        let doorbells = std::mem::take(&mut *self.lock_doorbells());
        for doorbell in doorbells.iter().filter_map(Weak::upgrade) {
            doorbell.ring();
        }
        if self.running.load(Ordering::Acquire) == 0 {
            self.terminated_sender.close();
        }
        won
    }

    /// The error a sender sees now: the closed result once written, else
    /// `Closed` (a mailbox closed by a shutdown still under way).
    pub(crate) fn closed_error(&self) -> ActorError<E> {
        self.result.get().cloned().unwrap_or(ActorError::Closed)
    }

    pub(crate) fn result(&self) -> Option<&ActorError<E>> {
        self.result.get()
    }

    /// True once every actor must stop.
    #[inline]
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Has `doorbell` rung when the system stops. A worker registers before
    /// its first poll, and checks [`Status::is_stopping`] after registering
    /// its waker, so a stop is never missed.
    pub(crate) fn watch(&self, doorbell: &Arc<Doorbell>) {
        let mut doorbells = self.lock_doorbells();
        doorbells.retain(|watched| watched.strong_count() > 0);
        doorbells.push(Arc::downgrade(doorbell));
        drop(doorbells);
        if self.is_stopping() {
            doorbell.ring();
        }
    }

    fn lock_doorbells(&self) -> MutexGuard<'_, Vec<Weak<Doorbell>>> {
        self.doorbells.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn worker_started(&self) {
        self.running.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn worker_finished(&self) {
        if self.running.fetch_sub(1, Ordering::AcqRel) == 1 && self.result.get().is_some() {
            self.terminated_sender.close();
        }
    }

    /// Completes once the result is written and every worker has stopped.
    pub(crate) async fn terminated(&self) -> Result<(), ActorError<E>> {
        // `recv` fails exactly when the latch has been closed.
        let _ = self.terminated_receiver.recv().await;
        match self.closed_error() {
            ActorError::Closed => Ok(()),
            error => Err(error),
        }
    }
}
