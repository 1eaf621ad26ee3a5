//! Waking one task from many sources, cheaply for the task: a worker's
//! mailbox, its job completions and the system's stop signal all ring the same
//! [`Doorbell`], and so does [`AbortHandle::abort`] for a spawned task.
//!
//! Owns: the registered waker of one task. Does not own: deciding whom to
//! wake (the mailbox's wait lists claim parked doorbells; see `mailbox`).
//!
//! Why not `AtomicWaker`: it hands its waker over on every wake, so the task
//! must clone and register it again before it can sleep — two locked
//! operations and a reference count each time an actor goes idle. Here the
//! waker stays and is rung by reference; a task re-registers only when its
//! waker changes, which executors practically never do.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

/// Wakes one task: its mailbox, its job completions and the stop signal all
/// ring the same doorbell.
///
/// The waker stays in place after a ring (rung by reference), so a task that
/// parks again needs no new registration; its [`Registration`] remembers what
/// it left here and only writes when the task's waker changes.
///
/// The first waker is kept where a ring reads it without a lock. Should the
/// task's waker ever change (a future moved to another task), the doorbell
/// switches for good to a locked slot.
///
/// Invariant (no lost wake-up): the registrant writes its waker, then fences
/// (`SeqCst`), then checks its wake-up conditions; a ringer changes a
/// condition, fences, then reads which waker to wake. Whichever fence comes
/// second sees the other side's write.
#[derive(Debug, Default)]
pub(crate) struct Doorbell {
    /// The first waker registered; the one rung while `moved` is false.
    first: OnceLock<Waker>,
    /// Set once the registrant's waker changed or the registrant went away.
    moved: AtomicBool,
    /// The current waker once `moved` is set.
    moved_to: Mutex<Option<Waker>>,
    /// True while on a mailbox's wait list. For a list's primary slot it is
    /// set by the owner and cleared by a claiming compare-and-swap; for the
    /// others it changes only under the list's lock.
    pub(crate) parked: AtomicBool,
}

impl Doorbell {
    fn moved_to(&self) -> MutexGuard<'_, Option<Waker>> {
        self.moved_to.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes the registered task, if any, after the caller's change.
    pub(crate) fn ring(&self) {
        fence(Ordering::SeqCst);
        self.ring_fenced();
    }

    /// [`Doorbell::ring`] for a caller that has fenced (`SeqCst`) since its
    /// change already, as a mailbox's wait list does before it claims.
    #[inline]
    pub(crate) fn ring_fenced(&self) {
        if !self.moved.load(Ordering::Acquire) {
            if let Some(waker) = self.first.get() {
                waker.wake_by_ref();
            }
            return;
        }
        // Waking only schedules the task, so holding the lock meanwhile
        // cannot deadlock.
        if let Some(waker) = &*self.moved_to() {
            waker.wake_by_ref();
        }
    }
}

/// The one task that waits on a doorbell. It keeps a copy of the waker it
/// left there: registering the same task again is a comparison, with no
/// atomic operation, which matters because a worker re-registers every time
/// it goes idle.
///
/// After [`Registration::register`] returns, the doorbell holds a waker for
/// the registering task, so any ring that starts later wakes it.
pub(crate) struct Registration {
    doorbell: Arc<Doorbell>,
    left: Option<Waker>,
}

impl Registration {
    pub(crate) fn new(doorbell: Arc<Doorbell>) -> Self {
        Registration { doorbell, left: None }
    }

    pub(crate) fn doorbell(&self) -> &Arc<Doorbell> {
        &self.doorbell
    }

    /// Makes every later ring wake the task polling with `cx`.
    #[inline]
    pub(crate) fn register(&mut self, cx: &Context<'_>) {
        if self.left.as_ref().is_some_and(|left| left.will_wake(cx.waker())) {
            return;
        }
        let waker = cx.waker().clone();
        let first = self.left.is_none() && self.doorbell.first.set(waker.clone()).is_ok();
        if !first {
            self.move_to(Some(waker.clone()));
        }
        // Pairs with the ringer's fence; see `Doorbell`.
        fence(Ordering::SeqCst);
        self.left = Some(waker);
    }

    fn move_to(&self, waker: Option<Waker>) {
        *self.doorbell.moved_to() = waker;
        self.doorbell.moved.store(true, Ordering::Release);
    }
}

impl Drop for Registration {
    /// The doorbell can outlive its task (a mailbox's senders keep it):
    /// later rings wake nothing. (The first waker stays until the doorbell
    /// goes: a `OnceLock` cannot be emptied through a shared reference.)
    fn drop(&mut self) {
        if self.left.is_some() {
            self.move_to(None);
        }
    }
}

/// Stops an [`Abortable`] task at its next suspension point.
#[derive(Clone, Debug)]
pub(crate) struct AbortHandle {
    signal: Arc<AbortSignal>,
}

#[derive(Debug, Default)]
struct AbortSignal {
    aborted: AtomicBool,
    doorbell: Arc<Doorbell>,
}

impl AbortHandle {
    pub(crate) fn abort(&self) {
        self.signal.aborted.store(true, Ordering::Release);
        self.signal.doorbell.ring();
    }
}

/// What an aborted task returns instead of its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Aborted;

/// Wraps `future` so that the returned handle can stop it: the wrapper ends
/// early, with `Err(Aborted)`, at the first poll after the abort. Polling it
/// costs one load more than polling `future`.
pub(crate) fn abortable<F: Future>(future: F) -> (AbortHandle, impl Future<Output = Result<F::Output, Aborted>>) {
    let signal = Arc::new(AbortSignal::default());
    let handle = AbortHandle { signal: signal.clone() };
    let wrapped = async move {
        let mut future = std::pin::pin!(future);
        let mut registration = Registration::new(signal.doorbell.clone());
        std::future::poll_fn(|cx| {
            // Registered before the flag is read: an abort after the read rings us.
            registration.register(cx);
            if signal.aborted.load(Ordering::Acquire) {
                return Poll::Ready(Err(Aborted));
            }
            future.as_mut().poll(cx).map(Ok)
        })
        .await
    };
    (handle, wrapped)
}
