//! Foreground pressure that background work yields to.
//!
//! A database marks each read it serves on its table store's [`Pace`]; a
//! compaction job asks its [`Pacer`], between pieces of work, whether to
//! rest. While reads keep arriving, a job runs at most its busy share of
//! the wall-clock time, so that on a machine with few cores the reads keep
//! their throughput and tail latency while a long compaction runs. Nothing
//! is paced while L0 is under pressure (flushes are about to wait for the
//! compactor), when no read arrived during the last slice, or when the
//! share is 1.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How long a job works between two looks at the foreground.
pub const SLICE: Duration = Duration::from_millis(1);

/// The longest single rest, whatever the slice before it took.
pub const MAX_PAUSE: Duration = Duration::from_millis(20);

/// What the foreground is doing, shared by everything using one table
/// store.
#[derive(Debug, Default)]
pub struct Pace {
    reads: AtomicU64,
    urgent: AtomicBool,
}

impl Pace {
    /// Marks one foreground read (a get or the start of a scan).
    pub fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    /// Foreground reads marked so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Says whether background work must run at full speed (L0 is filling
    /// up and writes would soon wait for the compactor).
    pub fn set_urgent(&self, urgent: bool) {
        self.urgent.store(urgent, Ordering::Relaxed);
    }

    /// Whether background work runs at full speed now.
    pub fn is_urgent(&self) -> bool {
        self.urgent.load(Ordering::Relaxed)
    }
}

/// One background job's side of a [`Pace`].
#[derive(Debug)]
pub struct Pacer<'a> {
    pace: &'a Pace,
    share: f64,
    reads_seen: u64,
    slice_start: Duration,
}

impl<'a> Pacer<'a> {
    /// A pacer for a job that may use `share` (0 to 1) of the wall-clock
    /// time while reads are busy, starting its first slice at `now`.
    pub fn new(pace: &'a Pace, share: f64, now: Duration) -> Self {
        Pacer {
            pace,
            share: share.clamp(0.01, 1.0),
            reads_seen: pace.reads(),
            slice_start: now,
        }
    }

    /// Called between pieces of work at time `now`: how long to rest
    /// before the next one, if at all. After a rest, call
    /// [`resumed`](Self::resumed).
    pub fn pause(&mut self, now: Duration) -> Option<Duration> {
        let ran = now.saturating_sub(self.slice_start);
        if ran < SLICE {
            return None;
        }
        let reads = self.pace.reads();
        let busy = reads != self.reads_seen;
        self.reads_seen = reads;
        self.slice_start = now;
        if !busy || self.share >= 1.0 || self.pace.is_urgent() {
            return None;
        }
        Some(ran.mul_f64((1.0 - self.share) / self.share).min(MAX_PAUSE))
    }

    /// Starts the next slice at `now` (after a rest).
    pub fn resumed(&mut self, now: Duration) {
        self.slice_start = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    #[test]
    fn a_job_rests_in_proportion_to_its_work_only_while_reads_arrive() {
        let pace = Pace::default();
        let mut pacer = Pacer::new(&pace, 0.25, ms(0));
        // Too short a slice: no look at all.
        assert_eq!(pacer.pause(Duration::from_micros(500)), None);
        // A whole slice without reads: no rest.
        assert_eq!(pacer.pause(ms(2)), None);
        pace.read();
        // 2 ms of work at a quarter share: 6 ms of rest.
        assert_eq!(pacer.pause(ms(4)), Some(ms(6)));
        pacer.resumed(ms(10));
        // No read during the last slice: back to full speed.
        assert_eq!(pacer.pause(ms(12)), None);
        // A long slice rests at most MAX_PAUSE.
        pace.read();
        assert_eq!(pacer.pause(ms(112)), Some(MAX_PAUSE));
    }

    #[test]
    fn nothing_is_paced_when_urgent_or_at_a_full_share() {
        let pace = Pace::default();
        let mut pacer = Pacer::new(&pace, 0.5, ms(0));
        pace.set_urgent(true);
        pace.read();
        assert_eq!(pacer.pause(ms(2)), None);
        pace.set_urgent(false);
        pace.read();
        assert_eq!(pacer.pause(ms(4)), Some(ms(2)));
        let mut full = Pacer::new(&pace, 1.0, ms(0));
        pace.read();
        assert_eq!(full.pause(ms(2)), None);
    }
}
