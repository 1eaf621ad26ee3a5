//! Data blocks: rows in table order, keys prefix-compressed against the
//! previous key, with restart points for binary search, and a trailer that
//! names the compression and carries a CRC32.
//!
//! Owns: [`BlockBuilder`] (rows → stored bytes) and [`Block`] /
//! [`BlockIter`] (stored bytes → rows, `seek`). Layout: `docs/format.md`.
//!
//! Invariants: a stored block's checksum covers every byte before it; a
//! restart entry stores its whole key; rows come out in the order they went
//! in.

use bytes::Bytes;

use super::codec::{Cursor, put_u32, put_varint, seal, u32_at, unseal_tagged};
use super::compression::{self, Compression};
use super::{FormatError, Row, RowValue};

/// Default target size of a block before compression.
pub const DEFAULT_BLOCK_SIZE_BYTES: usize = 4096;
/// Default number of rows between restart points.
pub const DEFAULT_RESTART_INTERVAL: usize = 16;

const FLAG_TOMBSTONE: u8 = 1;
const FLAG_CREATE_TIME: u8 = 1 << 1;
const FLAG_EXPIRE_TIME: u8 = 1 << 2;
const FLAG_MERGE: u8 = 1 << 3;
/// Bits 3..=7 are reserved (merge operands will take one); a reader that
/// meets one refuses the row rather than misreading it.
const KNOWN_FLAGS: u8 = FLAG_TOMBSTONE | FLAG_CREATE_TIME | FLAG_EXPIRE_TIME | FLAG_MERGE;

const PART: &str = "block";

/// Accumulates rows (in table order) into one block.
#[derive(Debug)]
pub struct BlockBuilder {
    buffer: Vec<u8>,
    restarts: Vec<u32>,
    last_key: Vec<u8>,
    rows: usize,
    restart_interval: usize,
}

impl Default for BlockBuilder {
    fn default() -> Self {
        Self::new(DEFAULT_RESTART_INTERVAL)
    }
}

impl BlockBuilder {
    /// A builder placing a restart point every `restart_interval` rows (at least 1).
    pub fn new(restart_interval: usize) -> Self {
        BlockBuilder {
            buffer: Vec::new(),
            restarts: Vec::new(),
            last_key: Vec::new(),
            rows: 0,
            restart_interval: restart_interval.max(1),
        }
    }

    /// Appends `row`, which must follow the previous one in table order.
    pub fn add(&mut self, row: &Row) {
        let shared = if self.rows.is_multiple_of(self.restart_interval) {
            // Offsets are u32: a block is far below 4 GiB by construction.
            self.restarts.push(self.buffer.len() as u32);
            0
        } else {
            common_prefix(&self.last_key, &row.key)
        };
        let suffix = &row.key[shared..];
        let mut flags = 0;
        match row.value {
            RowValue::Tombstone => flags |= FLAG_TOMBSTONE,
            RowValue::Merge(_) => flags |= FLAG_MERGE,
            RowValue::Value(_) => {}
        }
        if row.create_ms.is_some() {
            flags |= FLAG_CREATE_TIME;
        }
        if row.expire_ms.is_some() {
            flags |= FLAG_EXPIRE_TIME;
        }
        put_varint(&mut self.buffer, shared as u64);
        put_varint(&mut self.buffer, suffix.len() as u64);
        self.buffer.push(flags);
        put_varint(&mut self.buffer, row.seq);
        for time in [row.create_ms, row.expire_ms].into_iter().flatten() {
            put_varint(&mut self.buffer, time);
        }
        if let Some(value) = row.value.bytes() {
            put_varint(&mut self.buffer, value.len() as u64);
        }
        self.buffer.extend_from_slice(suffix);
        if let Some(value) = row.value.bytes() {
            self.buffer.extend_from_slice(value);
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(&row.key);
        self.rows += 1;
    }

    /// Rows added so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes the block would take now, before compression and trailer.
    pub fn estimated_size(&self) -> usize {
        self.buffer.len() + 4 * self.restarts.len() + 4
    }

    /// The stored block: entries, restart offsets and their count (compressed
    /// if that makes them smaller), the compression byte, and a CRC32 of all
    /// of it.
    pub fn finish(mut self, compression: Compression) -> Vec<u8> {
        for restart in &self.restarts {
            put_u32(&mut self.buffer, *restart);
        }
        put_u32(&mut self.buffer, self.restarts.len() as u32);
        let (code, mut stored) = compression::compress(compression, self.buffer);
        stored.push(code);
        seal(&mut stored);
        stored
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A decoded block, ready to iterate. Cheap to clone (shares the bytes).
#[derive(Clone, Debug)]
pub struct Block {
    /// Entries followed by the restart array and its count.
    data: Bytes,
    entries_end: usize,
    restarts: usize,
}

impl Block {
    /// Checks and opens a stored block.
    pub fn decode(stored: Bytes) -> Result<Block, FormatError> {
        let (payload_len, code) = unseal_tagged(&stored, PART, "compression byte")?;
        let data = match compression::decompress(code, &stored[..payload_len], PART)? {
            None => stored.slice(..payload_len),
            Some(payload) => Bytes::from(payload),
        };
        let payload_len = data.len();
        let Some(count_at) = payload_len.checked_sub(4) else {
            return Err(FormatError::corrupt(PART, "no restart count"));
        };
        let restarts = u32_at(&data, count_at) as usize;
        let entries_end = restarts
            .checked_mul(4)
            .and_then(|array| count_at.checked_sub(array))
            .ok_or_else(|| FormatError::corrupt(PART, format!("{restarts} restarts do not fit in the block")))?;
        let block = Block {
            data,
            entries_end,
            restarts,
        };
        if restarts == 0 {
            if entries_end > 0 {
                return Err(FormatError::corrupt(PART, "rows but no restart point"));
            }
            return Ok(block);
        }
        if block.restart(0) != 0 {
            return Err(FormatError::corrupt(PART, "the first row is not a restart point"));
        }
        for index in 1..restarts {
            let (previous, offset) = (block.restart(index - 1), block.restart(index));
            if offset <= previous || offset >= entries_end {
                return Err(FormatError::corrupt(
                    PART,
                    format!("restart {index} points to {offset}, out of order or range"),
                ));
            }
        }
        Ok(block)
    }

    /// Bytes held in memory (the decompressed payload).
    pub fn size(&self) -> usize {
        self.data.len()
    }

    fn restart(&self, index: usize) -> usize {
        let at = self.entries_end + 4 * index;
        u32_at(&self.data, at) as usize
    }

    /// An iterator positioned before the first row.
    pub fn iter(&self) -> BlockIter {
        BlockIter {
            block: self.clone(),
            position: 0,
            key: Vec::new(),
            peeked: None,
        }
    }

    /// Decodes every row (for tests and small blocks).
    pub fn rows(&self) -> Result<Vec<Row>, FormatError> {
        self.iter().collect()
    }

    /// How many restart intervals the block has (runs of rows that start
    /// with a whole key and can be decoded on their own).
    pub fn intervals(&self) -> usize {
        self.restarts
    }

    /// How many intervals, from the first, can hold a row with key at or
    /// below `end` (below it, unless `inclusive`): a reverse scan's start.
    pub fn intervals_through(&self, end: &[u8], inclusive: bool) -> Result<usize, FormatError> {
        let (mut low, mut high) = (0, self.restarts);
        while low < high {
            let middle = (low + high) / 2;
            let key = self.restart_key(middle)?;
            if key < end || (inclusive && key == end) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        Ok(low)
    }

    /// The rows of restart interval `index`, in order (what a reverse scan
    /// decodes, one interval at a time, instead of the whole block).
    pub fn interval(&self, index: usize) -> Result<Vec<Row>, FormatError> {
        if index >= self.restarts {
            return Ok(Vec::new());
        }
        let end = if index + 1 < self.restarts {
            self.restart(index + 1)
        } else {
            self.entries_end
        };
        let mut rows = BlockIter {
            block: self.clone(),
            position: self.restart(index),
            key: Vec::new(),
            peeked: None,
        };
        let mut out = Vec::new();
        while rows.position < end {
            let (row, next) = rows.decode_at(rows.position)?;
            rows.position = next;
            out.push(row);
        }
        Ok(out)
    }

    /// The full key stored at restart point `index`.
    fn restart_key(&self, index: usize) -> Result<&[u8], FormatError> {
        let offset = self.restart(index);
        let mut cursor = Cursor::new(&self.data[offset..self.entries_end], PART);
        let shared = cursor.length()?;
        let unshared = cursor.length()?;
        if shared != 0 {
            return Err(FormatError::corrupt(
                PART,
                format!("restart row at {offset} shares a prefix"),
            ));
        }
        let flags = checked_flags(cursor.u8()?, offset)?;
        cursor.varint()?;
        for flag in [FLAG_CREATE_TIME, FLAG_EXPIRE_TIME] {
            if flags & flag != 0 {
                cursor.varint()?;
            }
        }
        if flags & FLAG_TOMBSTONE == 0 {
            cursor.length()?;
        }
        cursor.take(unshared)
    }
}

fn checked_flags(flags: u8, offset: usize) -> Result<u8, FormatError> {
    if flags & FLAG_TOMBSTONE != 0 && flags & FLAG_MERGE != 0 {
        return Err(FormatError::corrupt(
            PART,
            format!("row at {offset} is both a tombstone and a merge operand"),
        ));
    }
    if flags & !KNOWN_FLAGS != 0 {
        return Err(FormatError::corrupt(
            PART,
            format!("row at {offset} has unknown flags {flags:#04x}"),
        ));
    }
    Ok(flags)
}

/// Walks a block's rows in order; [`BlockIter::seek`] jumps by binary search.
#[derive(Debug)]
pub struct BlockIter {
    block: Block,
    position: usize,
    /// The key of the row last decoded (later rows share a prefix with it).
    key: Vec<u8>,
    /// The row `seek` stopped at, returned by the next `next`.
    peeked: Option<Row>,
}

impl BlockIter {
    /// Positions the iterator at the first row whose key is `>= target`
    /// (the newest version of `target`, if present).
    pub fn seek(&mut self, target: &[u8]) -> Result<(), FormatError> {
        // The scan starts at the last restart whose key is below the target.
        let (mut low, mut high) = (0, self.block.restarts);
        while low < high {
            let middle = (low + high) / 2;
            if self.block.restart_key(middle)? < target {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        self.position = if low == 0 { 0 } else { self.block.restart(low - 1) };
        self.key.clear();
        self.peeked = None;
        while self.position < self.block.entries_end {
            let (row, next) = self.decode_at(self.position)?;
            self.position = next;
            if row.key.as_ref() >= target {
                self.peeked = Some(row);
                break;
            }
        }
        Ok(())
    }

    /// Decodes the row at `offset` (its key relative to `self.key`, which it
    /// replaces), returning it and the offset of the next row.
    fn decode_at(&mut self, offset: usize) -> Result<(Row, usize), FormatError> {
        let entries = self.block.data.slice(..self.block.entries_end);
        let mut cursor = Cursor::new(&entries[offset..], PART);
        let shared = cursor.length()?;
        let unshared = cursor.length()?;
        if shared > self.key.len() {
            return Err(FormatError::corrupt(
                PART,
                format!("row at {offset} shares more than the previous key"),
            ));
        }
        let flags = checked_flags(cursor.u8()?, offset)?;
        let seq = cursor.varint()?;
        let create_ms = if flags & FLAG_CREATE_TIME != 0 {
            Some(cursor.varint()?)
        } else {
            None
        };
        let expire_ms = if flags & FLAG_EXPIRE_TIME != 0 {
            Some(cursor.varint()?)
        } else {
            None
        };
        let value_len = if flags & FLAG_TOMBSTONE == 0 {
            Some(cursor.length()?)
        } else {
            None
        };
        let suffix = cursor.take(unshared)?;
        self.key.truncate(shared);
        self.key.extend_from_slice(suffix);
        let value = match value_len {
            None => RowValue::Tombstone,
            Some(len) => {
                let start = offset + cursor.position();
                cursor.take(len)?;
                let bytes = entries.slice(start..start + len);
                if flags & FLAG_MERGE != 0 {
                    RowValue::Merge(bytes)
                } else {
                    RowValue::Value(bytes)
                }
            }
        };
        let key = Bytes::copy_from_slice(&self.key);
        Ok((
            Row {
                key,
                value,
                seq,
                create_ms,
                expire_ms,
            },
            offset + cursor.position(),
        ))
    }
}

impl Iterator for BlockIter {
    type Item = Result<Row, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(row) = self.peeked.take() {
            return Some(Ok(row));
        }
        if self.position >= self.block.entries_end {
            return None;
        }
        match self.decode_at(self.position) {
            Ok((row, next)) => {
                self.position = next;
                Some(Ok(row))
            }
            Err(error) => {
                // Stop after an error: what follows cannot be trusted.
                self.position = self.block.entries_end;
                Some(Err(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn build(rows: &[Row], restart_interval: usize, compression: Compression) -> Block {
        let mut builder = BlockBuilder::new(restart_interval);
        for row in rows {
            builder.add(row);
        }
        Block::decode(Bytes::from(builder.finish(compression))).expect("a fresh block decodes")
    }

    fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
        rows.sort_by(Row::table_order);
        rows.dedup_by(|later, earlier| later.key == earlier.key && later.seq == earlier.seq);
        rows
    }

    fn any_row() -> impl Strategy<Value = Row> {
        (
            proptest::collection::vec(0u8..4, 0..6),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            0u64..1_000,
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(|(key, value, seq, create_ms, expire_ms)| Row {
                key: Bytes::from(key),
                value: value.map_or(RowValue::Tombstone, |value| RowValue::Value(Bytes::from(value))),
                seq,
                create_ms,
                expire_ms,
            })
    }

    proptest! {
        #[test]
        fn rows_round_trip(
            rows in proptest::collection::vec(any_row(), 0..80),
            interval in 1usize..20,
            compression in proptest::sample::select(Compression::available()),
        ) {
            let rows = sorted(rows);
            prop_assert_eq!(build(&rows, interval, compression).rows().unwrap(), rows);
        }

        #[test]
        fn seek_agrees_with_a_sorted_map(
            rows in proptest::collection::vec(any_row(), 0..80),
            interval in 1usize..20,
            target in proptest::collection::vec(0u8..4, 0..6),
            compression in proptest::sample::select(Compression::available()),
        ) {
            let rows = sorted(rows);
            let model: BTreeMap<(Vec<u8>, std::cmp::Reverse<u64>), Row> =
                rows.iter().map(|row| ((row.key.to_vec(), std::cmp::Reverse(row.seq)), row.clone())).collect();
            let expected: Vec<Row> = model
                .range((target.clone(), std::cmp::Reverse(u64::MAX))..)
                .map(|(_, row)| row.clone())
                .collect();
            let mut iter = build(&rows, interval, compression).iter();
            iter.seek(&target).unwrap();
            let found: Vec<Row> = iter.collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(found, expected);
        }

        #[test]
        fn intervals_hold_the_rows_in_order_and_bound_a_reverse_start(
            rows in proptest::collection::vec(any_row(), 0..80),
            interval in 1usize..20,
            end in proptest::collection::vec(0u8..4, 0..6),
            inclusive in any::<bool>(),
        ) {
            let rows = sorted(rows);
            let block = build(&rows, interval, Compression::None);
            let joined: Vec<Row> = (0..block.intervals())
                .map(|index| block.interval(index).unwrap())
                .inspect(|part| assert!(!part.is_empty() && part.len() <= interval))
                .flatten()
                .collect();
            prop_assert_eq!(&joined, &rows);
            // Every row at or below the end lies in the first `through`
            // intervals, and the interval after them starts above the end.
            let through = block.intervals_through(&end, inclusive).unwrap();
            let below_end = |row: &Row| row.key.as_ref() < end.as_slice() || (inclusive && row.key.as_ref() == end.as_slice());
            let covered: usize = (0..through).map(|index| block.interval(index).unwrap().len()).sum();
            prop_assert!(rows.iter().filter(|row| below_end(row)).count() <= covered);
            if let Some(first) = block.interval(through).unwrap().first() {
                prop_assert!(!below_end(first));
            }
        }
    }

    #[test]
    fn an_empty_block_has_no_rows() {
        for compression in Compression::available() {
            assert!(build(&[], 16, compression).rows().unwrap().is_empty());
        }
    }

    /// Flip every byte and cut at every length: decoding either fails with a
    /// corruption error or (for a flip the checksum cannot see, which CRC32
    /// rules out for single bytes) returns the right rows. Never a panic.
    #[test]
    fn every_damaged_copy_is_refused() {
        let rows: Vec<Row> = (0..40u64)
            .map(|index| {
                let mut row = Row::value(format!("key-{:03}", index / 2), format!("value {index}"), 100 - index);
                row.expire_ms = (index % 3 == 0).then_some(index * 1000);
                row
            })
            .collect();
        let rows = sorted(rows);
        for compression in Compression::available() {
            let mut builder = BlockBuilder::new(4);
            for row in &rows {
                builder.add(row);
            }
            let stored = builder.finish(compression);
            for cut in 0..stored.len() {
                assert!(
                    Block::decode(Bytes::copy_from_slice(&stored[..cut])).is_err(),
                    "cut at {cut} accepted"
                );
            }
            for index in 0..stored.len() {
                for bit in [0x01u8, 0x80] {
                    let mut flipped = stored.clone();
                    flipped[index] ^= bit;
                    match Block::decode(Bytes::from(flipped)) {
                        Err(FormatError::Corrupt { part: "block", .. }) => {}
                        Err(other) => panic!("unexpected error {other:?}"),
                        Ok(block) => assert_eq!(block.rows().unwrap(), rows, "flip at {index} changed the rows"),
                    }
                }
            }
        }
    }

    /// The checksum is not the only guard: a block whose checksum is valid but
    /// whose structure lies is refused too, without panicking.
    #[test]
    fn structurally_bad_blocks_with_valid_checksums_are_refused() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("restart count too large", vec![0xff, 0xff, 0xff, 0x0f]),
            ("rows without restarts", vec![0, 1, 0, 1, b'k', 0, 0, 0, 0]),
            ("unknown flags", vec![0, 1, 0x80, 1, b'k', 0, 0, 0, 0, 1, 0, 0, 0]),
            (
                "value runs past the end",
                vec![0, 1, 0, 1, 200, b'k', 0, 0, 0, 0, 1, 0, 0, 0],
            ),
            (
                "shares a prefix at a restart",
                vec![3, 1, 0, 1, 0, b'k', 0, 0, 0, 0, 1, 0, 0, 0],
            ),
        ];
        for (name, mut payload) in cases {
            payload.push(0);
            seal(&mut payload);
            let outcome = Block::decode(Bytes::from(payload)).and_then(|block| {
                let mut iter = block.iter();
                iter.seek(b"k")?;
                block.rows()
            });
            assert!(outcome.is_err(), "{name}: accepted as {outcome:?}");
        }
    }
}
