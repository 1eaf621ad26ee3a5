//! The message queue under a mailbox: a fixed ring for the common case and,
//! for an unbounded mailbox, a locked overflow list for bursts the ring
//! cannot hold.
//!
//! Owns: the queued messages. Does not own: waking anybody (see the parent
//! module's wait lists).
//!
//! Why not one unbounded lock-free queue: its segmented design pays a fence
//! and two more locked operations per message than a ring does (measured: 5
//! against 2 per send-and-receive), and a mailbox is nearly always short.
//!
//! Invariant (per-sender order): while the overflow holds messages,
//! `spilled` is set and every push goes to the overflow; a receiver takes
//! from the overflow only under its lock and after finding the ring empty
//! under that same lock, and clears `spilled` when it takes the last one.
//! So a sender's message in the overflow is never overtaken by one it sent
//! later into the ring, nor taken before one it sent earlier into the ring.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use concurrent_queue::{ConcurrentQueue, PopError, PushError};

/// Ring slots of an unbounded mailbox: enough for the usual backlog without
/// preallocating much per actor.
pub(super) const UNBOUNDED_RING_SLOTS: usize = 128;

pub(super) struct Queue<M> {
    ring: ConcurrentQueue<M>,
    /// `None` for a bounded mailbox: a full ring makes senders wait.
    overflow: Option<Overflow<M>>,
}

struct Overflow<M> {
    spilled: AtomicBool,
    list: Mutex<VecDeque<M>>,
}

impl<M> Overflow<M> {
    fn lock(&self) -> MutexGuard<'_, VecDeque<M>> {
        self.list.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<M> Queue<M> {
    /// A queue holding at most `capacity` messages.
    pub(super) fn bounded(capacity: usize) -> Self {
        Queue {
            ring: ConcurrentQueue::bounded(capacity.max(1)),
            overflow: None,
        }
    }

    /// A queue that never refuses a message for lack of room.
    pub(super) fn unbounded(ring_slots: usize) -> Self {
        Queue {
            ring: ConcurrentQueue::bounded(ring_slots.max(1)),
            overflow: Some(Overflow {
                spilled: AtomicBool::new(false),
                list: Mutex::new(VecDeque::new()),
            }),
        }
    }

    #[inline]
    pub(super) fn push(&self, msg: M) -> Result<(), PushError<M>> {
        let Some(overflow) = &self.overflow else {
            return self.ring.push(msg);
        };
        let msg = if overflow.spilled.load(Ordering::Acquire) {
            msg
        } else {
            match self.ring.push(msg) {
                Err(PushError::Full(msg)) => msg,
                done => return done,
            }
        };
        self.spill(overflow, msg)
    }

    fn spill(&self, overflow: &Overflow<M>, msg: M) -> Result<(), PushError<M>> {
        let mut list = overflow.lock();
        if self.ring.is_closed() {
            return Err(PushError::Closed(msg));
        }
        list.push_back(msg);
        overflow.spilled.store(true, Ordering::Release);
        Ok(())
    }

    #[inline]
    pub(super) fn pop(&self) -> Result<M, PopError> {
        let empty = match self.ring.pop() {
            Ok(msg) => return Ok(msg),
            Err(empty) => empty,
        };
        let Some(overflow) = &self.overflow else {
            return Err(empty);
        };
        if !overflow.spilled.load(Ordering::Acquire) {
            return Err(empty);
        }
        let mut list = overflow.lock();
        // Again under the lock: a message a sender put in the ring before
        // spilling must come out first.
        let empty = match self.ring.pop() {
            Ok(msg) => return Ok(msg),
            Err(empty) => empty,
        };
        let Some(msg) = list.pop_front() else {
            overflow.spilled.store(false, Ordering::Release);
            return Err(empty);
        };
        if list.is_empty() {
            overflow.spilled.store(false, Ordering::Release);
        }
        Ok(msg)
    }

    /// No message queued (a look, without taking anything).
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.ring.is_empty()
            && self
                .overflow
                .as_ref()
                .is_none_or(|overflow| !overflow.spilled.load(Ordering::Acquire))
    }

    pub(super) fn len(&self) -> usize {
        let spilled = self.overflow.as_ref().map_or(0, |overflow| {
            if overflow.spilled.load(Ordering::Acquire) {
                overflow.lock().len()
            } else {
                0
            }
        });
        self.ring.len() + spilled
    }

    /// Refuses later pushes; true if this call closed it.
    pub(super) fn close(&self) -> bool {
        // Under the overflow's lock, so a spill either lands before the close
        // (and is received) or sees it (and is refused).
        let _list = self.overflow.as_ref().map(Overflow::lock);
        self.ring.close()
    }

    #[inline]
    pub(super) fn is_closed(&self) -> bool {
        self.ring.is_closed()
    }

    /// Senders of a bounded queue can find it full and wait for room.
    #[inline]
    pub(super) fn is_bounded(&self) -> bool {
        self.overflow.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(queue: &Queue<u32>) -> Vec<u32> {
        std::iter::from_fn(|| queue.pop().ok()).collect()
    }

    #[test]
    fn a_burst_beyond_the_ring_spills_and_comes_back_in_order() {
        let queue = Queue::unbounded(4);
        for value in 0..10 {
            assert!(queue.push(value).is_ok());
        }
        assert_eq!(queue.len(), 10);
        assert_eq!(drain(&queue)[..5], [0, 1, 2, 3, 4]);
        // Once the overflow is empty, the ring is used again.
        assert!(queue.is_empty());
        for value in 10..13 {
            assert!(queue.push(value).is_ok());
        }
        assert_eq!(drain(&queue), [10, 11, 12]);
    }

    #[test]
    fn while_spilled_new_messages_queue_behind_the_overflow() {
        let queue = Queue::unbounded(2);
        for value in 0..4 {
            assert!(queue.push(value).is_ok());
        }
        assert_eq!(queue.pop().ok(), Some(0));
        // The ring has room again, but 2 and 3 wait in the overflow.
        assert!(queue.push(4).is_ok());
        assert_eq!(drain(&queue), [1, 2, 3, 4]);
    }

    #[test]
    fn a_closed_queue_refuses_spills_and_still_hands_out_what_it_holds() {
        let queue = Queue::unbounded(1);
        assert!(queue.push(1).is_ok());
        assert!(queue.push(2).is_ok());
        assert!(queue.close());
        assert!(matches!(queue.push(3), Err(PushError::Closed(3))));
        assert_eq!(queue.pop().ok(), Some(1));
        assert_eq!(queue.pop().ok(), Some(2));
        assert!(matches!(queue.pop(), Err(PopError::Closed)));
    }

    #[test]
    fn a_bounded_queue_reports_full() {
        let queue = Queue::bounded(1);
        assert!(queue.push(1).is_ok());
        assert!(matches!(queue.push(2), Err(PushError::Full(2))));
    }
}
