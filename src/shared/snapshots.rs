//! Live snapshots, so compaction keeps the versions they read.
//!
//! The L0 writer records `retain_seq = min(oldest live snapshot, last L0
//! sequence)` with every manifest write, and the compactor keeps every
//! version above `retain_seq` plus the newest at or below it. A snapshot
//! taken after a manifest write reads at a sequence at or above that
//! write's last L0 sequence (everything in L0 was visible before it got
//! there), so it never needs a version that write let go.
//!
//! With a retention window, `retain_seq` also stays at or below the
//! sequence number written `retention` ago (by the time map the WAL writer
//! keeps), so that [`Db::snapshot_at`](crate::Db::snapshot_at) can read
//! any sequence inside the window. `retain_seq` never goes down: the
//! registry keeps the highest it gave out as the *floor*, and a snapshot at
//! a past sequence is refused below it, under the same lock.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::manifest::SeqTime;
use crate::read::Seqs;

/// The sequence numbers of live snapshots, with how many hold each.
#[derive(Debug, Default)]
pub(crate) struct Snapshots {
    live: Mutex<Live>,
    /// Open transactions (each also holds a snapshot pin).
    transactions: AtomicUsize,
    /// When sequence numbers were written.
    clock: Mutex<SeqClock>,
    /// How long superseded versions are kept, in milliseconds.
    retention_ms: u64,
}

#[derive(Debug, Default)]
struct Live {
    pins: BTreeMap<u64, usize>,
    /// The highest `retain_seq` handed out: no version above it may be
    /// gone, versions at or below it may.
    floor: u64,
}

/// The time map: points `(time, seq)` meaning "every write up to `seq`
/// had been made by `time`", at most one per `step_ms` of wall-clock time
/// (the latest of each step), over the retention window and a quarter (as
/// far back as `retain_seq` looks) plus one point before it.
#[derive(Debug, Default)]
pub(crate) struct SeqClock {
    points: VecDeque<SeqTime>,
    step_ms: u64,
    window_ms: u64,
}

/// The most points a time map holds across its window.
const CLOCK_POINTS: u64 = 256;

impl SeqClock {
    fn new(retention_ms: u64, points: &[SeqTime]) -> SeqClock {
        SeqClock {
            points: points.iter().copied().collect(),
            step_ms: (retention_ms / CLOCK_POINTS).max(1000),
            // `retain_seq` looks up to a quarter window (its step) further
            // back than the window's start.
            window_ms: retention_ms + (retention_ms / 4).max(1000),
        }
    }

    /// Records that every write up to `seq` had been made by `now_ms`.
    fn record(&mut self, now_ms: u64, seq: u64) {
        match self.points.back_mut() {
            Some(last) if seq <= last.seq => {}
            Some(last) if now_ms / self.step_ms == last.time_ms / self.step_ms => {
                *last = SeqTime {
                    time_ms: now_ms.max(last.time_ms),
                    seq,
                };
            }
            _ => {
                let time_ms = self.points.back().map_or(now_ms, |last| now_ms.max(last.time_ms));
                self.points.push_back(SeqTime { time_ms, seq });
                let oldest_needed = now_ms.saturating_sub(self.window_ms + self.step_ms);
                // Keep one point at or before the window's start.
                while self.points.len() > 2 && self.points[1].time_ms <= oldest_needed {
                    self.points.pop_front();
                }
            }
        }
    }

    /// The newest sequence known to have been written by `time_ms`.
    fn seq_at(&self, time_ms: u64) -> Option<u64> {
        let after = self.points.partition_point(|point| point.time_ms <= time_ms);
        after.checked_sub(1).map(|at| self.points[at].seq)
    }
}

/// Holds one snapshot's sequence in the registry until dropped.
#[derive(Debug)]
pub(crate) struct SnapshotPin {
    registry: Arc<Snapshots>,
    seq: u64,
}

impl SnapshotPin {
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }
}

impl Snapshots {
    /// A registry for a database whose manifest says `retain_seq` and
    /// `seq_times`, keeping versions for `retention_ms`.
    pub(crate) fn new(retention_ms: u64, retain_seq: u64, seq_times: &[SeqTime]) -> Snapshots {
        Snapshots {
            live: Mutex::new(Live {
                pins: BTreeMap::new(),
                floor: retain_seq,
            }),
            transactions: AtomicUsize::new(0),
            clock: Mutex::new(SeqClock::new(retention_ms, seq_times)),
            retention_ms,
        }
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        // Every critical section leaves the map consistent.
        self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn clock(&self) -> MutexGuard<'_, SeqClock> {
        self.clock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a snapshot at the visible sequence. Reading the sequence
    /// under the lock orders it against `oldest`.
    pub(crate) fn pin(self: &Arc<Self>, seqs: &Seqs) -> SnapshotPin {
        let mut live = self.live();
        let seq = seqs.visible();
        *live.pins.entry(seq).or_default() += 1;
        SnapshotPin {
            registry: self.clone(),
            seq,
        }
    }

    /// Registers a snapshot at `seq` (at or below the visible sequence) if
    /// every version it reads is still kept; otherwise returns the oldest
    /// sequence that can be read.
    pub(crate) fn pin_at(self: &Arc<Self>, seq: u64) -> Result<SnapshotPin, u64> {
        let mut live = self.live();
        if seq < live.floor {
            return Err(live.floor);
        }
        *live.pins.entry(seq).or_default() += 1;
        Ok(SnapshotPin {
            registry: self.clone(),
            seq,
        })
    }

    /// The oldest sequence a snapshot can be pinned at now.
    pub(crate) fn floor(&self) -> u64 {
        self.live().floor
    }

    /// The oldest live snapshot's sequence.
    pub(crate) fn oldest(&self) -> Option<u64> {
        self.live().pins.keys().next().copied()
    }

    /// What the manifest's `retain_seq` should be with `last_l0_seq` in L0
    /// at `now_ms`: the oldest live snapshot's sequence, or the sequence
    /// written a retention window ago, if lower; never lower than one
    /// given out before. The window's start moves in steps of a quarter
    /// window (at least a second), so that a database being written does
    /// not record a new `retain_seq` on every poll.
    pub(crate) fn retain_seq(&self, last_l0_seq: u64, now_ms: u64) -> u64 {
        let window = if self.retention_ms == 0 {
            None
        } else {
            let step = (self.retention_ms / 4).max(1000);
            let start = (now_ms - now_ms % step).saturating_sub(self.retention_ms);
            // Nothing known that old: hold where it is.
            Some(self.clock().seq_at(start))
        };
        let mut live = self.live();
        let mut retain = live
            .pins
            .keys()
            .next()
            .map_or(last_l0_seq, |oldest| (*oldest).min(last_l0_seq));
        match window {
            Some(Some(seq)) => retain = retain.min(seq),
            Some(None) => retain = retain.min(live.floor),
            None => {}
        }
        live.floor = live.floor.max(retain);
        live.floor
    }

    /// Records that every write up to `seq` had been made by `now_ms`
    /// (the WAL writer, as writes become visible).
    pub(crate) fn record_time(&self, now_ms: u64, seq: u64) {
        self.clock().record(now_ms, seq);
    }

    /// The newest sequence known to have been written by `time_ms`.
    pub(crate) fn seq_at_time(&self, time_ms: u64) -> Option<u64> {
        self.clock().seq_at(time_ms)
    }

    /// The time points a manifest with `last_l0_seq` in L0 records: none
    /// without a retention window.
    pub(crate) fn seq_times(&self, last_l0_seq: u64) -> Vec<SeqTime> {
        if self.retention_ms == 0 {
            return Vec::new();
        }
        let clock = self.clock();
        clock
            .points
            .iter()
            .take_while(|point| point.seq <= last_l0_seq)
            .copied()
            .collect()
    }
}

/// A transaction's snapshot, counted as an open transaction until dropped:
/// while one is open, the WAL writer records what it writes so that commits
/// can be checked (`wal::conflicts`).
#[derive(Debug)]
pub(crate) struct TransactionPin {
    pin: SnapshotPin,
}

impl TransactionPin {
    pub(crate) fn seq(&self) -> u64 {
        self.pin.seq
    }
}

impl Snapshots {
    /// Opens a transaction at the visible sequence. The count goes up
    /// before the sequence is read, and the WAL writer publishes a write's
    /// sequence before it reads the count (both behind a `SeqCst` fence):
    /// so either the writer sees this transaction and records the write, or
    /// the write is at or below this transaction's snapshot.
    pub(crate) fn pin_transaction(self: &Arc<Self>, seqs: &Seqs) -> TransactionPin {
        self.transactions.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        TransactionPin { pin: self.pin(seqs) }
    }

    /// Whether a transaction is open; the caller has just published a
    /// write's sequence (see [`Snapshots::pin_transaction`]).
    pub(crate) fn transactions_open(&self) -> bool {
        fence(Ordering::SeqCst);
        self.transactions.load(Ordering::SeqCst) > 0
    }
}

impl Drop for TransactionPin {
    fn drop(&mut self) {
        self.pin.registry.transactions.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for SnapshotPin {
    fn drop(&mut self) {
        let mut live = self.registry.live();
        if let Some(count) = live.pins.get_mut(&self.seq) {
            *count -= 1;
            if *count == 0 {
                live.pins.remove(&self.seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_pin_bounds_retention_until_dropped() {
        let registry = Arc::new(Snapshots::default());
        let seqs = Seqs::new(10);
        let first = registry.pin(&seqs);
        seqs.visible.store(20, std::sync::atomic::Ordering::Release);
        let second = registry.pin(&seqs);
        let twin = registry.pin(&seqs);
        assert_eq!((first.seq(), second.seq()), (10, 20));
        assert_eq!(registry.retain_seq(15, 0), 10);
        drop(first);
        assert_eq!(registry.retain_seq(25, 0), 20);
        drop(second);
        assert_eq!(registry.oldest(), Some(20), "the twin still holds 20");
        drop(twin);
        assert_eq!(registry.retain_seq(25, 0), 25);
    }

    #[test]
    fn a_retention_window_holds_retain_seq_at_what_was_written_that_long_ago() {
        let minute = 60_000;
        let registry = Arc::new(Snapshots::new(minute, 0, &[]));
        // Seq 10 by 0:10, 20 by 0:40, 30 by 1:10 and 40 by 1:30.
        for (time_ms, seq) in [(10_000, 10), (40_000, 20), (70_000, 30), (90_000, 40)] {
            registry.record_time(time_ms, seq);
        }
        assert_eq!(registry.seq_at_time(39_999), Some(10));
        assert_eq!(registry.seq_at_time(40_000), Some(20));
        assert_eq!(registry.seq_at_time(5_000), None, "nothing known that early");
        // At 0:50 nothing is a minute old: nothing may be let go.
        assert_eq!(registry.retain_seq(40, 50_000), 0);
        // At 1:45 the window (in 15 s steps) starts at 0:45: seq 20.
        assert_eq!(registry.retain_seq(40, 105_000), 20);
        assert_eq!(registry.pin_at(19).map(|_| ()), Err(20), "below the floor");
        let pinned = registry.pin_at(25).expect("inside the window");
        // Later the window has moved past everything, but the pin holds.
        assert_eq!(registry.retain_seq(40, 1_000_000), 25);
        drop(pinned);
        assert_eq!(registry.retain_seq(40, 1_000_000), 40, "only L0 bounds it now");
        // It never goes back, even if L0 says less (a reopened writer).
        assert_eq!(registry.retain_seq(35, 1_000_000), 40);
        assert_eq!(registry.floor(), 40);
        // The map keeps the window plus one point before it.
        let points = registry.seq_times(u64::MAX);
        assert!(!points.is_empty() && points.len() <= 4, "{points:?}");
    }

    #[test]
    fn the_time_map_stays_small_however_often_it_is_written() {
        let registry = Snapshots::new(10 * 60_000, 0, &[]);
        for n in 0..100_000u64 {
            registry.record_time(n * 100, n + 1);
        }
        let points = registry.seq_times(u64::MAX);
        // A point a step over the window and a quarter, and one before.
        assert!(
            points.len() <= (CLOCK_POINTS * 5 / 4) as usize + 4,
            "{} points",
            points.len()
        );
        assert!(
            points
                .windows(2)
                .all(|pair| pair[0].time_ms < pair[1].time_ms && pair[0].seq < pair[1].seq)
        );
        // Accurate to a step: 10 minutes / 256 is under 2.4 s.
        let at = 9_500_000;
        let seq = registry.seq_at_time(at).expect("inside the window");
        assert!(seq <= at / 100 + 1 && seq + 24 >= at / 100, "{seq}");
    }
}
