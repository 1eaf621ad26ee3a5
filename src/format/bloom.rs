//! Bloom filters: "definitely absent" or "maybe present" for a key, so a
//! point lookup skips tables that cannot hold it.
//!
//! Owns: the filter's build, its stored form and its probe. The hash is
//! XXH3-64 (a frozen, specified algorithm), so a filter written by one
//! version reads the same in every later one. Layout: `docs/format.md`.
//!
//! Invariant: no false negatives: every key added probes "maybe present".

use std::sync::Arc;

use bytes::Bytes;
use xxhash_rust::xxh3::xxh3_64;

use super::FormatError;
use super::codec::{seal, unseal_tagged};

/// Default filter size per key: about 0.3% false positives in the blocked
/// layout (12 bits give about 0.55%, 10 about 1%: keeping a key's probes in
/// one cache line costs some accuracy, which two more bits buy back).
/// Every false positive is an object-store read (20 ms and a request
/// charge on S3); the bits cost 17.5 MB of memory per 10 million keys.
pub const DEFAULT_BITS_PER_KEY: u32 = 14;
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

/// How a filter's bits are laid out, which the table's format version
/// decides (`docs/format.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterLayout {
    /// Tables of format versions 1 and 2: probes anywhere in the filter,
    /// one cache miss each.
    Classic,
    /// Tables of format version 3 on: every probe of a key within one
    /// 64-byte block (one cache line), chosen by the hash.
    Blocked,
}

/// Bytes in one block of a [`FilterLayout::Blocked`] filter.
pub const BLOCK_BYTES: usize = 64;
const BLOCK_BITS: u64 = BLOCK_BYTES as u64 * 8;

/// The probe count for `bits_per_key`: k = ln 2 · bits per key minimises
/// false positives.
fn probes_for(bits_per_key: u32) -> u8 {
    ((f64::from(bits_per_key) * 0.69).round() as u8).clamp(1, MAX_PROBES)
}

/// Builds the stored form of a blocked filter over `hashes` (from
/// [`key_hash`]), the layout this version writes.
pub fn build(hashes: &[u64], bits_per_key: u32) -> Vec<u8> {
    let bits_per_key = bits_per_key.max(1);
    let blocks = (hashes.len() as u64 * u64::from(bits_per_key))
        .div_ceil(BLOCK_BITS)
        .max(1);
    let probes = probes_for(bits_per_key);
    let mut stored = vec![0u8; (blocks * BLOCK_BITS / 8) as usize];
    for &hash in hashes {
        let block = &mut stored[block_of(hash, blocks) * BLOCK_BYTES..][..BLOCK_BYTES];
        for position in block_positions(hash, probes) {
            block[position / 8] |= 1 << (position % 8);
        }
    }
    stored.push(probes);
    seal(&mut stored);
    stored
}

/// Builds the stored form of a classic filter (format versions 1 and 2),
/// for tests of old tables.
#[cfg(test)]
pub fn build_classic(hashes: &[u64], bits_per_key: u32) -> Vec<u8> {
    let bits_per_key = bits_per_key.max(1);
    let bits = (hashes.len() as u64 * u64::from(bits_per_key)).max(64);
    let bytes = bits.div_ceil(8);
    let bits = bytes * 8;
    let probes = probes_for(bits_per_key);
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

/// Classic bit positions for `hash`: double hashing, `h1 + i·h2 mod bits`.
fn probe_positions(hash: u64, probes: u8, bits: u64) -> impl Iterator<Item = u64> {
    let (h1, h2) = (hash & 0xffff_ffff, (hash >> 32) | 1);
    (0..u64::from(probes)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % bits)
}

/// The block a blocked filter keeps `hash` in: the high 32 bits scaled to
/// the block count.
fn block_of(hash: u64, blocks: u64) -> usize {
    (((hash >> 32) * blocks) >> 32) as usize
}

/// Bit positions within a block for `hash`: double hashing on the low 18
/// bits, `a + i·b mod 512` with `a = h & 511`, `b = ((h >> 9) & 511) | 1`
/// (odd, so the positions of one key differ).
fn block_positions(hash: u64, probes: u8) -> impl Iterator<Item = usize> {
    let (a, b) = (hash & 511, ((hash >> 9) & 511) | 1);
    (0..u64::from(probes)).map(move |i| (a.wrapping_add(i.wrapping_mul(b)) % BLOCK_BITS) as usize)
}

/// One cache line of a blocked filter.
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
struct Line([u8; BLOCK_BYTES]);

/// The bits of a decoded filter.
#[derive(Clone, Debug)]
enum Bits {
    Classic(Bytes),
    /// Copied into cache-line-aligned blocks, so a probe touches one line.
    Blocked(Arc<[Line]>),
}

/// A decoded filter.
#[derive(Clone, Debug)]
pub struct BloomFilter {
    bits: Bits,
    probes: u8,
}

impl BloomFilter {
    /// Checks and opens a stored filter of `layout`.
    pub fn decode(stored: Bytes, layout: FilterLayout) -> Result<BloomFilter, FormatError> {
        let (bits_len, probes) = unseal_tagged(&stored, PART, "probe count")?;
        if probes == 0 || probes > MAX_PROBES {
            return Err(FormatError::corrupt(PART, format!("{probes} probes is out of range")));
        }
        if bits_len == 0 {
            return Err(FormatError::corrupt(PART, "no bits"));
        }
        let bits = match layout {
            FilterLayout::Classic => Bits::Classic(stored.slice(..bits_len)),
            FilterLayout::Blocked => {
                if !bits_len.is_multiple_of(BLOCK_BYTES) {
                    return Err(FormatError::corrupt(
                        PART,
                        format!("{bits_len} bytes of bits is not a whole number of {BLOCK_BYTES}-byte blocks"),
                    ));
                }
                Bits::Blocked(
                    stored[..bits_len]
                        .chunks_exact(BLOCK_BYTES)
                        .map(|chunk| Line(chunk.try_into().unwrap_or([0; BLOCK_BYTES])))
                        .collect(),
                )
            }
        };
        Ok(BloomFilter { bits, probes })
    }

    /// Bytes held in memory.
    pub fn size(&self) -> usize {
        match &self.bits {
            Bits::Classic(bits) => bits.len(),
            Bits::Blocked(lines) => lines.len() * BLOCK_BYTES,
        }
    }

    /// False only if the key is certainly absent.
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.may_contain_hash(key_hash(key))
    }

    /// [`BloomFilter::may_contain`] for a precomputed [`key_hash`].
    pub fn may_contain_hash(&self, hash: u64) -> bool {
        match &self.bits {
            Bits::Classic(bits) => probe_positions(hash, self.probes, bits.len() as u64 * 8)
                .all(|position| bits[(position / 8) as usize] & (1 << (position % 8)) != 0),
            Bits::Blocked(lines) => {
                let Line(block) = &lines[block_of(hash, lines.len() as u64)];
                block_positions(hash, self.probes).all(|position| block[position / 8] & (1 << (position % 8)) != 0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(index: u64) -> Vec<u8> {
        format!("{index:016}").into_bytes()
    }

    /// The false-positive rate of a filter over 10,000 keys, after
    /// checking that it has no false negatives.
    fn false_positive_rate(stored: Vec<u8>, layout: FilterLayout) -> f64 {
        let filter = BloomFilter::decode(Bytes::from(stored), layout).unwrap();
        for index in 0..10_000 {
            assert!(filter.may_contain(&key(2 * index)), "false negative for key {index}");
        }
        let probes = 200_000;
        let false_positives = (0..probes)
            .filter(|index| filter.may_contain(&key(2 * index + 1)))
            .count();
        false_positives as f64 / probes as f64
    }

    fn hashes() -> Vec<u64> {
        (0..10_000).map(|index| key_hash(&key(2 * index))).collect()
    }

    #[test]
    fn no_false_negatives_and_under_half_a_percent_false_positives() {
        let blocked = false_positive_rate(build(&hashes(), DEFAULT_BITS_PER_KEY), FilterLayout::Blocked);
        assert!(
            blocked <= 0.005,
            "false-positive rate {blocked:.4} at {DEFAULT_BITS_PER_KEY} bits per key"
        );
        let classic = false_positive_rate(build_classic(&hashes(), 12), FilterLayout::Classic);
        assert!(classic <= 0.005, "classic at 12 bits per key: {classic:.4}");
        let ten = false_positive_rate(build(&hashes(), 10), FilterLayout::Blocked);
        assert!(ten <= 0.015, "blocked at 10 bits per key: {ten:.4}");
    }

    /// A blocked filter's bits are whole 64-byte blocks; anything else is
    /// damage.
    #[test]
    fn a_blocked_filter_needs_whole_blocks() {
        let stored = build(&hashes(), 12);
        assert!(BloomFilter::decode(Bytes::from(stored.clone()), FilterLayout::Blocked).is_ok());
        let small = build_classic(&hashes()[..10], 12);
        let error = BloomFilter::decode(Bytes::from(small), FilterLayout::Blocked).unwrap_err();
        assert!(error.to_string().contains("64-byte blocks"), "{error}");
    }

    #[test]
    fn the_hash_is_fixed_forever() {
        // XXH3-64's published vector for empty input; pins the stored format.
        assert_eq!(key_hash(b""), 0x2D06_8005_38D3_94C2);
    }

    #[test]
    fn damaged_filters_are_errors() {
        let stored = build(&[key_hash(b"a")], 10);
        for layout in [FilterLayout::Classic, FilterLayout::Blocked] {
            for cut in 0..stored.len() {
                assert!(BloomFilter::decode(Bytes::copy_from_slice(&stored[..cut]), layout).is_err());
            }
            for index in 0..stored.len() {
                let mut flipped = stored.clone();
                flipped[index] ^= 1;
                assert!(BloomFilter::decode(Bytes::from(flipped), layout).is_err());
            }
        }
    }
}
