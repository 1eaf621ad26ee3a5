//! Requests waiting for a sequence number to be reached (durable in the WAL,
//! or flushed to L0): answered in sequence order, or all failed on stop.

use std::collections::BTreeMap;

use talus_actors::Reply;

use crate::error::Error;

/// Replies keyed by the sequence number each one waits for.
pub(crate) struct SeqWaiters<T> {
    waiting: BTreeMap<u64, Vec<Reply<Result<T, Error>>>>,
}

impl<T> Default for SeqWaiters<T> {
    fn default() -> Self {
        SeqWaiters {
            waiting: BTreeMap::new(),
        }
    }
}

impl<T> SeqWaiters<T> {
    pub(crate) fn wait(&mut self, seq: u64, reply: Reply<Result<T, Error>>) {
        self.waiting.entry(seq).or_default().push(reply);
    }

    /// Answers every waiter for a sequence at or below `reached`, with
    /// `answer(its sequence)`.
    pub(crate) fn release_through(&mut self, reached: u64, answer: impl Fn(u64) -> T) {
        let later = self.waiting.split_off(&reached.saturating_add(1));
        for (seq, replies) in std::mem::replace(&mut self.waiting, later) {
            for reply in replies {
                reply.send(Ok(answer(seq)));
            }
        }
    }

    /// The highest sequence anyone waits for.
    pub(crate) fn highest(&self) -> Option<u64> {
        self.waiting.last_key_value().map(|(seq, _)| *seq)
    }

    /// Answers every waiter with `error`.
    pub(crate) fn fail_all(&mut self, error: &Error) {
        for reply in std::mem::take(&mut self.waiting).into_values().flatten() {
            reply.send(Err(error.clone()));
        }
    }
}
