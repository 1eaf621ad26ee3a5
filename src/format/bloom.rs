//! Bloom filters: "definitely absent" or "maybe present" for a key, so a
//! point lookup skips tables that cannot hold it.
//!
//! Owns: the filter's build, its stored form and its probe. The hash is
//! XXH3-64 (a frozen, specified algorithm), so a filter written by one
//! version reads the same in every later one. Layout: `docs/format.md`.
//!
//! Invariant: no false negatives: every key added probes "maybe present".

use bytes::Bytes;
use xxhash_rust::xxh3::xxh3_64;

use super::FormatError;
use super::codec::{seal, unseal_tagged};

/// Default filter size per key: about 0.3% false positives (10 bits give
/// about 0.8%). Every false positive is an object-store read (20 ms and a
/// request charge on S3); two more bits per key cost 2.5 MB of memory per
/// 10 million keys and cut those reads by more than half.
pub const DEFAULT_BITS_PER_KEY: u32 = 12;
/// Below this many keys a table gets no filter: it would cost more to fetch
/// than it saves.
pub const DEFAULT_MIN_KEYS: usize = 16;
/// The most probes a filter may ask for; more would only slow lookups.
const MAX_PROBES: u8 = 30;

const PART: &str = "bloom filter";

/// The filter hash of a key.
pub fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// Builds the stored form of a filter over `hashes` (from [`key_hash`]).
pub fn build(hashes: &[u64], bits_per_key: u32) -> Vec<u8> {
    let bits_per_key = bits_per_key.max(1);
    let bits = (hashes.len() as u64 * u64::from(bits_per_key)).max(64);
    let bytes = bits.div_ceil(8);
    let bits = bytes * 8;
    // k = ln 2 · bits per key minimises false positives.
    let probes = ((f64::from(bits_per_key) * 0.69).round() as u8).clamp(1, MAX_PROBES);
    let mut stored = vec![0u8; bytes as usize];
    for &hash in hashes {
        for position in probe_positions(hash, probes, bits) {
            stored[(position / 8) as usize] |= 1 << (position % 8);
        }
    }
    stored.push(probes);
    seal(&mut stored);
    stored
}

/// Bit positions for `hash`: double hashing, `h1 + i·h2 mod bits`.
fn probe_positions(hash: u64, probes: u8, bits: u64) -> impl Iterator<Item = u64> {
    let (h1, h2) = (hash & 0xffff_ffff, (hash >> 32) | 1);
    (0..u64::from(probes)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % bits)
}

/// A decoded filter.
#[derive(Clone, Debug)]
pub struct BloomFilter {
    bits: Bytes,
    probes: u8,
}

impl BloomFilter {
    /// Checks and opens a stored filter.
    pub fn decode(stored: Bytes) -> Result<BloomFilter, FormatError> {
        let (bits_len, probes) = unseal_tagged(&stored, PART, "probe count")?;
        if probes == 0 || probes > MAX_PROBES {
            return Err(FormatError::corrupt(PART, format!("{probes} probes is out of range")));
        }
        if bits_len == 0 {
            return Err(FormatError::corrupt(PART, "no bits"));
        }
        Ok(BloomFilter {
            bits: stored.slice(..bits_len),
            probes,
        })
    }

    /// Bytes held in memory.
    pub fn size(&self) -> usize {
        self.bits.len()
    }

    /// False only if the key is certainly absent.
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.may_contain_hash(key_hash(key))
    }

    /// [`BloomFilter::may_contain`] for a precomputed [`key_hash`].
    pub fn may_contain_hash(&self, hash: u64) -> bool {
        let bits = self.bits.len() as u64 * 8;
        probe_positions(hash, self.probes, bits)
            .all(|position| self.bits[(position / 8) as usize] & (1 << (position % 8)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(index: u64) -> Vec<u8> {
        format!("{index:016}").into_bytes()
    }

    #[test]
    fn no_false_negatives_and_under_half_a_percent_false_positives() {
        let hashes: Vec<u64> = (0..10_000).map(|index| key_hash(&key(2 * index))).collect();
        let filter = BloomFilter::decode(Bytes::from(build(&hashes, DEFAULT_BITS_PER_KEY))).unwrap();
        for index in 0..10_000 {
            assert!(filter.may_contain(&key(2 * index)), "false negative for key {index}");
        }
        let probes = 100_000;
        let false_positives = (0..probes)
            .filter(|index| filter.may_contain(&key(2 * index + 1)))
            .count();
        let rate = false_positives as f64 / probes as f64;
        assert!(
            rate <= 0.005,
            "false-positive rate {rate:.4} at {DEFAULT_BITS_PER_KEY} bits per key"
        );
    }

    #[test]
    fn the_hash_is_fixed_forever() {
        // XXH3-64's published vector for empty input; pins the stored format.
        assert_eq!(key_hash(b""), 0x2D06_8005_38D3_94C2);
    }

    #[test]
    fn damaged_filters_are_errors() {
        let stored = build(&[key_hash(b"a")], 10);
        for cut in 0..stored.len() {
            assert!(BloomFilter::decode(Bytes::copy_from_slice(&stored[..cut])).is_err());
        }
        for index in 0..stored.len() {
            let mut flipped = stored.clone();
            flipped[index] ^= 1;
            assert!(BloomFilter::decode(Bytes::from(flipped)).is_err());
        }
    }
}
