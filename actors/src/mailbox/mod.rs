//! The mailbox channel: a multi-producer, multi-consumer queue whose hot path
//! touches no lock, and the per-task [`Doorbell`] it wakes.
//!
//! Owns: the message queue (bounded or unbounded) and the wait lists of
//! parked receivers (workers) and parked senders (full bounded mailbox).
//!
//! Why not a general-purpose async channel: those notify their waiters on
//! every send and every receive, taking a lock each time even when nobody
//! waits, and allocate a listener for every wait. Here a side that finds
//! nobody parked pays one fence and one atomic load; a parked waiter is
//! *claimed* by exactly one notifier, so a burst of sends to a sleeping actor
//! wakes it once; and a worker parks with its own long-lived doorbell, which
//! its job completions and the system's stop signal ring too, so one waker
//! registration covers everything a worker waits for.
//!
//! Invariant (no lost wake-up): a waiter registers its waker, parks its
//! doorbell on the wait list, then re-checks the queue; a notifier changes
//! the queue, then looks for parked doorbells. `SeqCst` fences separate the
//! two steps on both sides, so at least one side sees the other. A claimed
//! receiver is awake and keeps taking messages until it finds the queue
//! empty after parking again, so nothing is stranded.
//!
//! Closing: explicitly ([`Receiver::close`], the system's shutdown) or when
//! the last receiver is dropped. A closed mailbox refuses new messages; the
//! ones already queued can still be received.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use concurrent_queue::{PopError, PushError};

use self::queue::Queue;
use crate::doorbell::{Doorbell, Registration};

mod queue;

struct Channel<M> {
    queue: Queue<M>,
    receivers: WaitList,
    senders: WaitList,
    receiver_count: AtomicUsize,
}

impl<M> Channel<M> {
    fn close(&self) {
        if self.queue.close() {
            self.receivers.wake_all();
            self.senders.wake_all();
        }
    }
}

/// Parked doorbells. The mailbox's first receiver (the only one, unless the
/// mailbox serves a pool) has a slot of its own: parking it is one store and
/// claiming it one compare-and-swap. Further receivers queue behind a lock in
/// arrival order, counted so that a notifier can skip the lock when none waits.
#[derive(Default)]
struct WaitList {
    primary: Option<Arc<Doorbell>>,
    others: Mutex<VecDeque<Arc<Doorbell>>>,
    others_parked: AtomicUsize,
}

impl WaitList {
    fn with_primary(doorbell: &Arc<Doorbell>) -> Self {
        WaitList {
            primary: Some(doorbell.clone()),
            ..WaitList::default()
        }
    }

    fn is_primary(&self, doorbell: &Arc<Doorbell>) -> bool {
        self.primary
            .as_ref()
            .is_some_and(|primary| Arc::ptr_eq(primary, doorbell))
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Arc<Doorbell>>> {
        self.others.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Puts `doorbell` on the list (once). The caller must re-check its
    /// condition afterwards before it sleeps.
    #[inline]
    fn park(&self, doorbell: &Arc<Doorbell>) {
        if doorbell.parked.load(Ordering::Relaxed) {
            return;
        }
        if self.is_primary(doorbell) {
            // Only the owner sets the flag, and only while it is clear (a
            // notifier only clears it): a plain store is enough.
            doorbell.parked.store(true, Ordering::Relaxed);
        } else {
            let mut others = self.lock();
            if !doorbell.parked.swap(true, Ordering::Relaxed) {
                others.push_back(doorbell.clone());
                self.others_parked.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Pairs with the fence in `wake_one`: either the notifier sees this
        // doorbell parked, or the caller's re-check sees the notifier's change.
        fence(Ordering::SeqCst);
    }

    /// Takes `doorbell` off the list if it is still there.
    #[inline]
    fn unpark(&self, doorbell: &Arc<Doorbell>) {
        if !doorbell.parked.load(Ordering::Relaxed) {
            return;
        }
        if self.is_primary(doorbell) {
            doorbell.parked.store(false, Ordering::Relaxed);
            return;
        }
        let mut others = self.lock();
        if doorbell.parked.swap(false, Ordering::Relaxed) {
            others.retain(|other| !Arc::ptr_eq(other, doorbell));
            self.others_parked.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Claims and rings one parked doorbell (the primary first, then the
    /// longest-parked other); two loads when none is parked.
    #[inline]
    fn wake_one(&self) {
        fence(Ordering::SeqCst);
        if let Some(primary) = &self.primary
            && primary.parked.load(Ordering::Relaxed)
            && primary
                .parked
                .compare_exchange(true, false, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            primary.ring_fenced();
            return;
        }
        if self.others_parked.load(Ordering::Relaxed) == 0 {
            return;
        }
        let claimed = {
            let mut others = self.lock();
            let claimed = others.pop_front();
            if let Some(doorbell) = &claimed {
                doorbell.parked.store(false, Ordering::Relaxed);
                self.others_parked.fetch_sub(1, Ordering::Relaxed);
            }
            claimed
        };
        if let Some(doorbell) = claimed {
            doorbell.ring_fenced();
        }
    }

    fn wake_all(&self) {
        let mut all: Vec<Arc<Doorbell>> = self.lock().drain(..).collect();
        self.others_parked.store(0, Ordering::Relaxed);
        all.extend(self.primary.iter().cloned());
        for doorbell in all {
            doorbell.parked.store(false, Ordering::Relaxed);
            doorbell.ring();
        }
    }
}

/// Creates a mailbox holding at most `capacity` messages (`None`: unbounded).
pub(crate) fn channel<M>(capacity: Option<usize>) -> (Sender<M>, Receiver<M>) {
    match capacity {
        Some(capacity) => channel_on(Queue::bounded(capacity)),
        None => channel_on(Queue::unbounded(queue::UNBOUNDED_RING_SLOTS)),
    }
}

fn channel_on<M>(queue: Queue<M>) -> (Sender<M>, Receiver<M>) {
    let doorbell = Arc::new(Doorbell::default());
    let channel = Arc::new(Channel {
        queue,
        receivers: WaitList::with_primary(&doorbell),
        senders: WaitList::default(),
        receiver_count: AtomicUsize::new(1),
    });
    (
        Sender {
            channel: channel.clone(),
        },
        Receiver {
            channel,
            registration: Registration::new(doorbell),
        },
    )
}

/// The sending side. Senders do not keep a mailbox open: it closes when it
/// is closed explicitly or its last receiver goes.
pub(crate) struct Sender<M> {
    channel: Arc<Channel<M>>,
}

impl<M> Clone for Sender<M> {
    fn clone(&self) -> Self {
        Sender {
            channel: self.channel.clone(),
        }
    }
}

/// Why a message was not queued; it comes back with the error.
pub(crate) enum SendError<M> {
    Full(M),
    Closed(M),
}

impl<M> Sender<M> {
    /// Queues `msg` if there is room now.
    #[inline]
    pub(crate) fn try_send(&self, msg: M) -> Result<(), SendError<M>> {
        match self.channel.queue.push(msg) {
            Ok(()) => {
                self.channel.receivers.wake_one();
                Ok(())
            }
            Err(PushError::Full(msg)) => Err(SendError::Full(msg)),
            Err(PushError::Closed(msg)) => Err(SendError::Closed(msg)),
        }
    }

    /// Queues `msg`, waiting for room in a full bounded mailbox. Gives the
    /// message back if the mailbox is (or gets) closed.
    pub(crate) async fn send(&self, msg: M) -> Result<(), M> {
        // Unparks on every way out, including this future being dropped.
        let mut waiting = ParkedSender {
            list: &self.channel.senders,
            registration: Registration::new(Arc::default()),
        };
        let mut msg = Some(msg);
        std::future::poll_fn(|cx| {
            let Some(next) = msg.take() else {
                return Poll::Ready(Ok(()));
            };
            match self.try_send(next) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(SendError::Closed(returned)) => Poll::Ready(Err(returned)),
                Err(SendError::Full(returned)) => {
                    waiting.registration.register(cx);
                    waiting.list.park(waiting.registration.doorbell());
                    match self.try_send(returned) {
                        Ok(()) => Poll::Ready(Ok(())),
                        Err(SendError::Closed(returned)) => Poll::Ready(Err(returned)),
                        Err(SendError::Full(returned)) => {
                            msg = Some(returned);
                            Poll::Pending
                        }
                    }
                }
            }
        })
        .await
    }

    pub(crate) fn close(&self) {
        self.channel.close();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.channel.queue.is_closed()
    }

    pub(crate) fn len(&self) -> usize {
        self.channel.queue.len()
    }
}

struct ParkedSender<'a> {
    list: &'a WaitList,
    registration: Registration,
}

impl Drop for ParkedSender<'_> {
    fn drop(&mut self) {
        self.list.unpark(self.registration.doorbell());
    }
}

/// The receiving side; each of a pool's workers holds a clone, with a
/// doorbell of its own.
pub(crate) struct Receiver<M> {
    channel: Arc<Channel<M>>,
    registration: Registration,
}

impl<M> Clone for Receiver<M> {
    fn clone(&self) -> Self {
        self.channel.receiver_count.fetch_add(1, Ordering::AcqRel);
        Receiver {
            channel: self.channel.clone(),
            registration: Registration::new(Arc::default()),
        }
    }
}

impl<M> Drop for Receiver<M> {
    fn drop(&mut self) {
        self.channel.receivers.unpark(self.registration.doorbell());
        if self.channel.receiver_count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.channel.close();
        }
    }
}

/// What a receive found.
pub(crate) enum Received<M> {
    Message(M),
    Empty,
    /// Closed and drained: nothing more will come.
    Closed,
}

impl<M> Receiver<M> {
    /// This receiver's doorbell, for other wake-up sources to share.
    pub(crate) fn doorbell(&self) -> &Arc<Doorbell> {
        self.registration.doorbell()
    }

    /// Makes every later ring of this receiver's doorbell wake the task
    /// polling with `cx`. Only the receiver's owner registers, hence `&mut`.
    #[inline]
    pub(crate) fn register(&mut self, cx: &Context<'_>) {
        self.registration.register(cx);
    }

    /// Takes the next message without waiting.
    #[inline]
    pub(crate) fn try_recv(&mut self) -> Received<M> {
        // `pop` fences even on an empty queue; a plain look is enough to say
        // "empty", since a message pushed right after it rings the doorbell.
        if self.channel.queue.is_empty() && !self.channel.queue.is_closed() {
            return Received::Empty;
        }
        match self.channel.queue.pop() {
            Ok(msg) => {
                self.channel.receivers.unpark(self.registration.doorbell());
                // Only a bounded mailbox ever has senders waiting for room;
                // skipping the check spares an unbounded one a fence per message.
                if self.channel.queue.is_bounded() {
                    self.channel.senders.wake_one();
                }
                Received::Message(msg)
            }
            Err(PopError::Empty) => Received::Empty,
            Err(PopError::Closed) => Received::Closed,
        }
    }

    /// The next message (`Some`), the end of a closed, drained mailbox
    /// (`None`), or `Pending` with the doorbell parked. The caller registers
    /// its waker with [`Receiver::register`] first (a worker does so once for
    /// all its wake-up sources).
    #[inline]
    pub(crate) fn poll_recv(&mut self) -> Poll<Option<M>> {
        match self.try_recv() {
            Received::Message(msg) => Poll::Ready(Some(msg)),
            Received::Closed => Poll::Ready(None),
            Received::Empty => self.park_and_recv(),
        }
    }

    /// Like [`Receiver::poll_recv`], for a caller that has just found the
    /// mailbox empty: parks at once, then checks again.
    #[inline]
    pub(crate) fn park_and_recv(&mut self) -> Poll<Option<M>> {
        self.channel.receivers.park(self.registration.doorbell());
        match self.try_recv() {
            Received::Message(msg) => Poll::Ready(Some(msg)),
            Received::Closed => Poll::Ready(None),
            Received::Empty => Poll::Pending,
        }
    }

    /// Takes this receiver off the wait list, when it stops waiting for
    /// mail to do something else.
    #[inline]
    pub(crate) fn unpark(&self) {
        self.channel.receivers.unpark(self.registration.doorbell());
    }

    /// Closes the mailbox; queued messages can still be received.
    pub(crate) fn close(&self) {
        self.channel.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_messages_survive_close_and_then_the_end_is_reported() {
        let (sender, mut receiver) = channel(None);
        sender.try_send(1).ok().unwrap();
        sender.try_send(2).ok().unwrap();
        receiver.close();
        assert!(matches!(sender.try_send(3), Err(SendError::Closed(3))));
        assert!(matches!(receiver.try_recv(), Received::Message(1)));
        assert!(matches!(receiver.try_recv(), Received::Message(2)));
        assert!(matches!(receiver.try_recv(), Received::Closed));
    }

    #[test]
    fn dropping_the_last_receiver_closes_the_mailbox() {
        let (sender, receiver) = channel::<u8>(Some(4));
        let second = receiver.clone();
        drop(receiver);
        assert!(!sender.is_closed());
        drop(second);
        assert!(sender.is_closed());
    }

    /// Four producers and `consumers` consumers park and wake thousands of
    /// times through a tiny bounded mailbox; every message arrives once. The
    /// first consumer uses the mailbox's own receiver (the lock-free slot),
    /// the others clones (the locked list).
    ///
    /// Each consumer also sees each producer's messages in the order sent.
    fn stress(consumers: usize, queue: Queue<u64>) {
        let (sender, receiver) = channel_on(queue);
        let producers: Vec<_> = (0..4u64)
            .map(|producer| {
                let sender = sender.clone();
                std::thread::spawn(move || {
                    smol::block_on(async {
                        for index in 0..5_000 {
                            assert!(sender.send(producer * 1_000_000 + index).await.is_ok());
                        }
                    })
                })
            })
            .collect();
        let mut receivers: Vec<Receiver<u64>> = (1..consumers).map(|_| receiver.clone()).collect();
        receivers.insert(0, receiver);
        let consumers: Vec<_> = receivers
            .into_iter()
            .map(|mut receiver| {
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    smol::block_on(std::future::poll_fn(|cx| {
                        loop {
                            receiver.register(cx);
                            match receiver.poll_recv() {
                                Poll::Ready(Some(value)) => got.push(value),
                                Poll::Ready(None) => return Poll::Ready(()),
                                Poll::Pending => return Poll::Pending,
                            }
                        }
                    }));
                    got
                })
            })
            .collect();
        for producer in producers {
            producer.join().unwrap();
        }
        sender.close();
        let received: Vec<Vec<u64>> = consumers.into_iter().map(|consumer| consumer.join().unwrap()).collect();
        for got in &received {
            for producer in 0..4u64 {
                let from_producer: Vec<u64> = got
                    .iter()
                    .copied()
                    .filter(|value| value / 1_000_000 == producer)
                    .collect();
                assert!(from_producer.is_sorted(), "producer {producer}'s messages out of order");
            }
        }
        let mut all: Vec<u64> = received.into_iter().flatten().collect();
        all.sort_unstable();
        let mut expected: Vec<u64> = (0..4u64)
            .flat_map(|p| (0..5_000).map(move |i| p * 1_000_000 + i))
            .collect();
        expected.sort_unstable();
        assert_eq!(all, expected);
    }

    #[test]
    fn one_consumer_loses_no_message_and_no_wake_up() {
        stress(1, Queue::bounded(2));
    }

    #[test]
    fn a_pool_of_consumers_loses_no_message_and_no_wake_up() {
        stress(3, Queue::bounded(2));
    }

    /// A three-slot ring makes the unbounded mailbox spill and unspill
    /// thousands of times under contention.
    #[test]
    fn an_unbounded_mailbox_that_keeps_spilling_loses_and_reorders_nothing() {
        stress(1, Queue::unbounded(3));
        stress(3, Queue::unbounded(3));
    }
}
