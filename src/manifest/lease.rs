//! The writer's lease on its epoch: when it last saw, in a manifest it
//! read, that no newer writer had opened.
//!
//! Owns: the time of the last confirmation and the two protocol bounds
//! ([`WRITER_LEASE`], [`FENCE_MARKER_RETENTION`]). Does not own: reading the
//! manifest (the L0 writer's poll and recovery confirm; the WAL writer
//! checks before acknowledging on a stale lease).
//!
//! Why: a writer learns it was fenced when its next WAL create meets the new
//! writer's fence or filler. If the writer is paused long enough for the new
//! writer to flush past that id and for the garbage collector to delete the
//! marker, its create succeeds and it would acknowledge writes no replay
//! reads. Markers are kept for [`FENCE_MARKER_RETENTION`]; a writer whose
//! last confirmation is older than [`WRITER_LEASE`] re-reads the manifest
//! before acknowledging anything. A marker deleted after its retention was
//! created after the paused writer's last confirmation, so that writer's
//! lease expired at least `FENCE_MARKER_RETENTION - WRITER_LEASE` before the
//! marker could go: the margin covers clock skew between the collector's
//! clock and the store's modification times.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a confirmation of the writer's epoch lets it acknowledge WAL
/// uploads without reading the manifest again.
pub const WRITER_LEASE: Duration = Duration::from_secs(30);

/// How long the garbage collector keeps a fence or filler WAL table (and
/// any WAL table as small as one), whatever its minimum WAL age.
pub const FENCE_MARKER_RETENTION: Duration = Duration::from_secs(120);

/// A WAL table at most this large may be a fence or a filler (an empty
/// table is about 100 bytes); the collector keeps such tables for
/// [`FENCE_MARKER_RETENTION`] without reading them.
pub const FENCE_MARKER_MAX_BYTES: u64 = 512;

/// When the writer last confirmed its epoch, on the runtime's monotonic
/// clock. Shared by the actors of one writer.
#[derive(Debug)]
pub struct EpochLease {
    confirmed_ns: AtomicU64,
}

impl EpochLease {
    /// A lease confirmed at `at`.
    pub fn new(at: Duration) -> Self {
        EpochLease {
            confirmed_ns: AtomicU64::new(nanos(at)),
        }
    }

    /// A manifest read that started at `at` showed our epoch current.
    pub fn confirm(&self, at: Duration) {
        self.confirmed_ns.fetch_max(nanos(at), Ordering::AcqRel);
    }

    /// Whether a confirmation started at or after `at`.
    pub fn confirmed_since(&self, at: Duration) -> bool {
        self.confirmed_ns.load(Ordering::Acquire) >= nanos(at)
    }

    /// Whether uploads observed at `now` may be acknowledged without a new
    /// confirmation.
    pub fn is_fresh(&self, now: Duration) -> bool {
        nanos(now).saturating_sub(self.confirmed_ns.load(Ordering::Acquire)) <= nanos(WRITER_LEASE)
    }
}

fn nanos(at: Duration) -> u64 {
    u64::try_from(at.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_expires_after_its_term_and_confirmations_never_move_it_back() {
        let lease = EpochLease::new(Duration::from_secs(10));
        assert!(lease.is_fresh(Duration::from_secs(10) + WRITER_LEASE));
        assert!(!lease.is_fresh(Duration::from_secs(11) + WRITER_LEASE));
        lease.confirm(Duration::from_secs(50));
        lease.confirm(Duration::from_secs(20));
        assert!(lease.is_fresh(Duration::from_secs(50) + WRITER_LEASE));
        assert!(!lease.is_fresh(Duration::from_secs(51) + WRITER_LEASE));
        assert!(lease.confirmed_since(Duration::from_secs(50)));
        assert!(
            !lease.confirmed_since(Duration::from_secs(51)),
            "a replacement after it needs another"
        );
        assert!(FENCE_MARKER_RETENTION > WRITER_LEASE * 2, "room for clock skew");
    }
}
