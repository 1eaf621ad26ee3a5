//! Range tombstones: one write that deletes every older version of every
//! key in `start..end`, and [`RangeDeletes`], the set a read consults.
//!
//! Owns: the tombstone's shape, its encoding inside a table's metadata
//! block (format version 5, `docs/format.md`), and the fragmented form that
//! answers "which tombstone covers this key" by binary search. Does not
//! own: where tombstones come from (memtables, tables) or when compaction
//! may drop one.
//!
//! Invariants: a tombstone's range is never empty (`start < end`); it
//! covers a row when the row's key is in its range and the row's sequence
//! number is below the tombstone's (a write batch gives each operation its
//! own number, so a put after a range delete in one batch survives it).

use std::ops::Bound;

use bytes::Bytes;

use super::FormatError;
use super::codec::{Cursor, put_bytes, put_varint};

/// Deletes every version below `seq` of every key in `start..end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeTombstone {
    /// The first key deleted.
    pub start: Bytes,
    /// The first key past the range (`None`: every key from `start` on).
    pub end: Option<Bytes>,
    /// The write's sequence number.
    pub seq: u64,
}

impl RangeTombstone {
    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.start.as_ref() <= key && self.end.as_ref().is_none_or(|end| key < end.as_ref())
    }

    /// The range as bounds: `start` included, `end` excluded.
    pub fn bounds(&self) -> (Bound<Bytes>, Bound<Bytes>) {
        (
            Bound::Included(self.start.clone()),
            self.end.clone().map_or(Bound::Unbounded, Bound::Excluded),
        )
    }

    /// The bytes it adds to a memtable's size.
    pub fn size(&self) -> usize {
        RangeTombstone::size_of(&self.start, self.end.as_deref())
    }

    /// The bytes a range tombstone of `start..end` adds to a memtable.
    pub fn size_of(start: &[u8], end: Option<&[u8]>) -> usize {
        start.len() + end.map_or(0, <[u8]>::len) + 48
    }
}

/// Fewest bytes one encoded tombstone takes: a start length, an end flag
/// and a sequence number.
const MIN_TOMBSTONE_BYTES: usize = 3;

/// Appends the range-tombstone section: a count, then each tombstone's
/// start (length, bytes), end flag (0: unbounded, 1: bounded, then length
/// and bytes) and sequence number.
pub(crate) fn encode_section(tombstones: &[RangeTombstone], out: &mut Vec<u8>) {
    put_varint(out, tombstones.len() as u64);
    for tombstone in tombstones {
        put_bytes(out, &tombstone.start);
        match &tombstone.end {
            None => out.push(0),
            Some(end) => {
                out.push(1);
                put_bytes(out, end);
            }
        }
        put_varint(out, tombstone.seq);
    }
}

/// Decodes the section [`encode_section`] writes.
pub(crate) fn decode_section(cursor: &mut Cursor<'_>) -> Result<Vec<RangeTombstone>, FormatError> {
    let count = cursor.count(MIN_TOMBSTONE_BYTES)?;
    let mut tombstones = Vec::with_capacity(count);
    for number in 0..count {
        let start = Bytes::copy_from_slice(cursor.bytes()?);
        let end = match cursor.u8()? {
            0 => None,
            1 => Some(Bytes::copy_from_slice(cursor.bytes()?)),
            flag => {
                return Err(FormatError::corrupt(
                    cursor.part(),
                    format!("range tombstone {number}: end flag {flag}"),
                ));
            }
        };
        if end.as_ref().is_some_and(|end| *end <= start) {
            return Err(FormatError::corrupt(
                cursor.part(),
                format!("range tombstone {number} has an empty range"),
            ));
        }
        let seq = cursor.varint()?;
        tombstones.push(RangeTombstone { start, end, seq });
    }
    Ok(tombstones)
}

/// A set of range tombstones cut into disjoint fragments, so that the
/// tombstones covering a key are found by one binary search.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeDeletes {
    /// Disjoint, in key order; no fragment is empty.
    fragments: Vec<Fragment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Fragment {
    start: Bytes,
    end: Option<Bytes>,
    /// The sequence numbers of the tombstones covering it, highest first.
    seqs: Vec<u64>,
}

impl RangeDeletes {
    /// The fragmented form of `tombstones` (any order, overlaps allowed).
    pub fn new<'a>(tombstones: impl IntoIterator<Item = &'a RangeTombstone>) -> RangeDeletes {
        let tombstones: Vec<&RangeTombstone> = tombstones.into_iter().collect();
        if tombstones.is_empty() {
            return RangeDeletes::default();
        }
        // Every start and bounded end cuts the key space; between two cuts
        // the same tombstones cover every key.
        let mut cuts: Vec<&Bytes> = tombstones
            .iter()
            .flat_map(|tombstone| std::iter::once(&tombstone.start).chain(tombstone.end.as_ref()))
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut fragments: Vec<Fragment> = cuts
            .iter()
            .enumerate()
            .map(|(at, start)| Fragment {
                start: (*start).clone(),
                end: cuts.get(at + 1).map(|end| (*end).clone()),
                seqs: Vec::new(),
            })
            .collect();
        for tombstone in &tombstones {
            let first = cuts.partition_point(|cut| **cut < tombstone.start);
            let past = match &tombstone.end {
                Some(end) => cuts.partition_point(|cut| *cut < end),
                None => cuts.len(),
            };
            for fragment in &mut fragments[first..past] {
                fragment.seqs.push(tombstone.seq);
            }
        }
        fragments.retain(|fragment| !fragment.seqs.is_empty());
        for fragment in &mut fragments {
            fragment.seqs.sort_unstable_by(|a, b| b.cmp(a));
            fragment.seqs.dedup();
        }
        RangeDeletes { fragments }
    }

    /// Whether no key is covered.
    pub fn is_empty(&self) -> bool {
        self.fragments.is_empty()
    }

    /// The highest sequence number at or below `max_seq` of a tombstone
    /// covering `key`, or 0 (no row has sequence number 0, so 0 covers
    /// nothing). A row of `key` is deleted when its sequence is below it.
    pub fn cover(&self, key: &[u8], max_seq: u64) -> u64 {
        self.covering(key)
            .iter()
            .copied()
            .find(|seq| *seq <= max_seq)
            .unwrap_or(0)
    }

    /// The sequence numbers of every tombstone covering `key`, highest
    /// first (what compaction weighs against the key's versions).
    pub fn covering(&self, key: &[u8]) -> &[u64] {
        let mut hint = 0;
        self.covering_near(key, &mut hint)
    }

    /// [`RangeDeletes::covering`] starting from `hint`, where the last
    /// lookup of the same stream ended (updated): keys that come in order,
    /// as a scan's do, cost a comparison or two instead of a search.
    pub fn covering_near(&self, key: &[u8], hint: &mut usize) -> &[u64] {
        match self.holding(key, hint) {
            Some(fragment) => &fragment.seqs,
            None => &[],
        }
    }

    /// The fragment holding `key`, found from `hint` (see
    /// [`RangeDeletes::covering_near`]).
    fn holding(&self, key: &[u8], hint: &mut usize) -> Option<&Fragment> {
        let count = self.fragments.len();
        // `at` is right when every fragment before it starts at or below
        // `key` and none from it on does.
        let right = |at: usize| {
            (at == 0 || self.fragments[at - 1].start.as_ref() <= key)
                && (at == count || key < self.fragments[at].start.as_ref())
        };
        let guess = (*hint).min(count);
        let at = [guess, guess + 1, guess.wrapping_sub(1)]
            .into_iter()
            .find(|at| *at <= count && right(*at))
            .unwrap_or_else(|| {
                self.fragments
                    .partition_point(|fragment| fragment.start.as_ref() <= key)
            });
        *hint = at;
        let fragment = &self.fragments[at.checked_sub(1)?];
        fragment
            .end
            .as_ref()
            .is_none_or(|end| key < end.as_ref())
            .then_some(fragment)
    }

    /// The fragment holding `key`: its start and its end (`None`: no end).
    pub fn fragment(&self, key: &[u8]) -> Option<(&Bytes, Option<&Bytes>)> {
        let mut hint = 0;
        self.holding(key, &mut hint)
            .map(|fragment| (&fragment.start, fragment.end.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tombstone(start: &str, end: Option<&str>, seq: u64) -> RangeTombstone {
        RangeTombstone {
            start: Bytes::copy_from_slice(start.as_bytes()),
            end: end.map(|end| Bytes::copy_from_slice(end.as_bytes())),
            seq,
        }
    }

    #[test]
    fn overlapping_tombstones_cover_by_the_newest_visible_one() {
        let set = [
            tombstone("b", Some("f"), 10),
            tombstone("d", Some("h"), 20),
            tombstone("x", None, 5),
        ];
        let deletes = RangeDeletes::new(&set);
        assert_eq!(deletes.cover(b"a", u64::MAX), 0, "before every range");
        assert_eq!(deletes.cover(b"b", u64::MAX), 10, "the start is inside");
        assert_eq!(deletes.cover(b"e", u64::MAX), 20, "both cover e, the newer wins");
        assert_eq!(deletes.cover(b"e", 15), 10, "a snapshot below 20 sees only the older");
        assert_eq!(deletes.cover(b"e", 9), 0, "a snapshot below both sees neither");
        assert_eq!(deletes.cover(b"f", u64::MAX), 20, "the end of one is inside the other");
        assert_eq!(deletes.cover(b"h", u64::MAX), 0, "the end is outside");
        assert_eq!(deletes.cover(b"zzz", u64::MAX), 5, "an unbounded end");
        assert!(9 < deletes.cover(b"c", u64::MAX));
        assert!(
            10 >= deletes.cover(b"c", u64::MAX),
            "a row of the same write is not covered"
        );
        assert!(RangeDeletes::new(&[]).is_empty());
        // From any hint, in any order, the same answers as a search.
        let keys: Vec<&[u8]> = vec![b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h", b"x", b"zz"];
        for start in 0..6 {
            let mut hint = start;
            for key in keys.iter().chain(keys.iter().rev()) {
                let mut fresh = 0;
                assert_eq!(
                    deletes.covering_near(key, &mut hint),
                    deletes.covering_near(key, &mut fresh)
                );
            }
        }
        assert_eq!(deletes.covering(b"e"), [20, 10]);
        let fragment = deletes.fragment(b"e").map(|(start, end)| (start.clone(), end.cloned()));
        assert_eq!(fragment, Some((Bytes::from("d"), Some(Bytes::from("f")))));
        assert_eq!(deletes.fragment(b"a"), None);
        assert_eq!(deletes.fragment(b"zz").map(|(_, end)| end), Some(None));
        assert!(deletes.covering(b"h").is_empty());
    }

    #[test]
    fn the_section_round_trips_and_rejects_empty_ranges() {
        let set = vec![tombstone("a", Some("c"), 3), tombstone("", None, 9)];
        let mut out = Vec::new();
        encode_section(&set, &mut out);
        let mut cursor = Cursor::new(&out, "metadata");
        assert_eq!(decode_section(&mut cursor).unwrap(), set);
        cursor.finish().unwrap();

        let mut empty = Vec::new();
        encode_section(&[tombstone("c", Some("c"), 1)], &mut empty);
        let error = decode_section(&mut Cursor::new(&empty, "metadata")).unwrap_err();
        assert!(error.to_string().contains("empty range"), "{error}");
        for cut in 0..out.len() {
            assert!(decode_section(&mut Cursor::new(&out[..cut], "metadata")).is_err());
        }
    }
}
