//! The real clock and the seeded random source.
//!
//! Owns: [`SystemClock`] (the operating system's time) and [`SeededRng`]
//! (SplitMix64, chosen because its output for a seed is fixed forever, so a
//! recorded seed replays the same run in any later version).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Clock, Rng};

/// The operating system's clocks: `Instant` for monotonic time, the system
/// time for wall-clock milliseconds.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose monotonic origin is now.
    #[allow(clippy::disallowed_methods, reason = "the one place real time enters the runtime")]
    pub fn new() -> Self {
        SystemClock { origin: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods, reason = "the one place real time enters the runtime")]
    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }

    #[allow(clippy::disallowed_methods, reason = "the one place real time enters the runtime")]
    fn wall_ms(&self) -> u64 {
        // A system clock set before 1970 reads as the epoch rather than failing.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 over an atomic counter: lock-free, shareable, and a pure
/// function of the seed and the number of draws.
#[derive(Debug)]
pub struct SeededRng {
    state: AtomicU64,
}

impl SeededRng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        SeededRng {
            state: AtomicU64::new(seed),
        }
    }

    /// A generator seeded from the wall clock and the process's address
    /// space, for runs that need not repeat.
    #[allow(clippy::disallowed_methods, reason = "an unrepeatable seed is the point here")]
    pub fn from_entropy() -> Self {
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_nanos() as u64)
            .unwrap_or(0);
        let local = 0u8;
        let address = std::ptr::addr_of!(local) as u64;
        let calls = CALLS.fetch_add(1, Ordering::Relaxed);
        SeededRng::new(mix(nanos ^ address.rotate_left(32) ^ calls.wrapping_mul(GOLDEN_GAMMA)))
    }
}

impl Rng for SeededRng {
    fn next_u64(&self) -> u64 {
        let state = self.state.fetch_add(GOLDEN_GAMMA, Ordering::Relaxed);
        mix(state.wrapping_add(GOLDEN_GAMMA))
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform draw in `0..bound` by rejection (no modulo bias); 0 for bound 0.
pub(crate) fn below(rng: &dyn Rng, bound: u64) -> u64 {
    if bound == 0 {
        return 0;
    }
    let zone = u64::MAX - (u64::MAX % bound);
    loop {
        let draw = rng.next_u64();
        if draw < zone {
            return draw % bound;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_sequence_is_fixed_by_the_seed() {
        let first: Vec<u64> = {
            let rng = SeededRng::new(1);
            (0..4).map(|_| rng.next_u64()).collect()
        };
        let again: Vec<u64> = {
            let rng = SeededRng::new(1);
            (0..4).map(|_| rng.next_u64()).collect()
        };
        let other: Vec<u64> = {
            let rng = SeededRng::new(2);
            (0..4).map(|_| rng.next_u64()).collect()
        };
        assert_eq!(first, again);
        assert_ne!(first, other);
        // SplitMix64's published first output for seed 1; pins the algorithm.
        assert_eq!(first[0], 0x910A_2DEC_8902_5CC1);
    }

    #[test]
    fn below_stays_in_range() {
        let rng = SeededRng::new(9);
        for bound in [1u64, 2, 3, 10, 1000, u64::MAX] {
            for _ in 0..200 {
                assert!(below(&rng, bound) < bound);
            }
        }
        assert_eq!(below(&rng, 0), 0);
    }

    #[test]
    fn an_injected_clock_and_seed_replace_the_backends() {
        struct Frozen;
        impl Clock for Frozen {
            fn monotonic(&self) -> Duration {
                Duration::from_secs(5)
            }
            fn wall_ms(&self) -> u64 {
                1_234
            }
        }
        let sim = crate::runtime::Sim::new(0);
        let runtime = sim.runtime().with_clock(std::sync::Arc::new(Frozen)).with_seed(1);
        assert_eq!((runtime.now(), runtime.wall_ms()), (Duration::from_secs(5), 1_234));
        assert_eq!(runtime.next_u64(), SeededRng::new(1).next_u64());
    }

    #[test]
    fn system_clock_moves_forward() {
        let clock = SystemClock::new();
        let first = clock.monotonic();
        assert!(clock.monotonic() >= first);
        assert!(clock.wall_ms() > 1_600_000_000_000);
    }
}
