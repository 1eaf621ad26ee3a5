//! Sorted tables (SSTs): data blocks, an index of them, an optional bloom
//! filter, a metadata block with the table's statistics, and a fixed-size
//! footer. Layout: `docs/format.md`.
//!
//! Owns: [`SstBuilder`] (rows → table bytes) and the decoders of each part
//! ([`Footer`], [`TableMeta`], [`Index`]); [`SstBytes`] reads a table held
//! entirely in memory. Does not own: fetching parts from object storage (the
//! table store reads the tail, then the index, filter and blocks it needs).
//!
//! Invariants: every part carries its own checksum; every offset and length
//! read from a table is checked against the table's size before use.

use std::ops::Range;

use bytes::Bytes;

use super::block::{Block, BlockBuilder, DEFAULT_BLOCK_SIZE_BYTES, DEFAULT_RESTART_INTERVAL};
use super::bloom::{self, BloomFilter, DEFAULT_BITS_PER_KEY, DEFAULT_MIN_KEYS, FilterLayout};
use super::codec::{Cursor, put_u32, put_varint, seal, unseal};
use super::compression::Compression;
use super::range::{self, RangeTombstone};
use super::{FormatError, Row, RowValue};

/// "TALUSSST" in ASCII, the last 8 bytes of every table.
pub const MAGIC: [u8; 8] = *b"TALUSSST";
/// The newest table format this build writes and reads. Version 2 added
/// the WAL stamp to the metadata of WAL tables, version 3 the blocked bloom
/// filter, version 4 merge operands (row flag bit 3), version 5 range
/// tombstones (a section of the metadata block). A table is written as
/// the oldest version that can hold what it holds (3 without operands or
/// range tombstones, 4 with operands only), so that older builds still
/// read it, and refuse (`Unsupported`) one they cannot. This build reads
/// versions 1 to 5; a version 1 WAL table reads as [`WalStamp::default`]
/// (no claims), and the filter of a version 1 or 2 table as
/// [`FilterLayout::Classic`].
pub const FORMAT_VERSION: u32 = 5;
/// The version of a table with merge operands and no range tombstones.
pub const MERGE_FORMAT_VERSION: u32 = 4;
/// The version of a table without merge operands or range tombstones.
pub const PLAIN_FORMAT_VERSION: u32 = 3;
/// The oldest table format this build reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// Size of the footer at the end of every table.
pub const FOOTER_SIZE: usize = 32;

/// What a table holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    /// L0 and sorted-run tables: rows in table order.
    Sorted = 0,
    /// WAL tables: rows in sequence order.
    Wal = 1,
}

/// What part a WAL table plays in the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WalRole {
    /// A writer's rows (possibly none).
    #[default]
    Data = 0,
    /// The empty table a recovering writer places above everything it
    /// found, fencing older writers.
    Fence = 1,
    /// An empty table a recovering writer placed at an id nobody had
    /// written: whatever its writer meant to put there was never durable,
    /// so replay stops below it.
    Filler = 2,
}

/// What a WAL table says about itself and the log below it (format
/// version 2; `docs/format.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStamp {
    /// What the table is in the log (see [`WalRole`]).
    pub role: WalRole,
    /// The writer epoch of the writer that wrote it (0: unknown).
    pub writer_epoch: u64,
    /// Every WAL id at or below this held its writer's rows durably when
    /// this table was sealed (0: no claim). Recovery uses it to tell a
    /// table lost after it was acknowledged from one never written.
    pub durable_through_wal_id: u64,
}

/// How tables are cut and filtered.
#[derive(Clone, Debug)]
pub struct SstOptions {
    /// A block is closed once its rows reach this size.
    pub block_size_bytes: usize,
    /// Rows between restart points inside a block.
    pub restart_interval: usize,
    /// Bloom filter bits per distinct key (0: no filter).
    pub bloom_bits_per_key: u32,
    /// Tables with fewer distinct keys get no filter.
    pub bloom_min_keys: usize,
    /// Compression of data blocks (a block that does not shrink is stored raw).
    pub compression: Compression,
}

impl Default for SstOptions {
    fn default() -> Self {
        SstOptions {
            block_size_bytes: DEFAULT_BLOCK_SIZE_BYTES,
            restart_interval: DEFAULT_RESTART_INTERVAL,
            bloom_bits_per_key: DEFAULT_BITS_PER_KEY,
            bloom_min_keys: DEFAULT_MIN_KEYS,
            compression: Compression::None,
        }
    }
}

/// Where a part sits in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Byte offset in the table.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

impl Extent {
    /// The byte range, if it lies within `bound`.
    pub fn range_within(&self, bound: u64, part: &'static str) -> Result<Range<usize>, FormatError> {
        let end = self
            .offset
            .checked_add(self.len)
            .filter(|end| *end <= bound)
            .ok_or_else(|| {
                FormatError::corrupt(part, format!("{}+{} lies outside {bound} bytes", self.offset, self.len))
            })?;
        let start = usize::try_from(self.offset).map_err(|_| FormatError::corrupt(part, "offset too large"))?;
        let end = usize::try_from(end).map_err(|_| FormatError::corrupt(part, "offset too large"))?;
        Ok(start..end)
    }
}

/// What the metadata block says about the rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Rows (every version of every key).
    pub rows: u64,
    /// Rows that are tombstones.
    pub tombstones: u64,
    /// The smallest key.
    pub first_key: Bytes,
    /// The largest key.
    pub last_key: Bytes,
    /// The smallest sequence number.
    pub min_seq: u64,
    /// The largest sequence number.
    pub max_seq: u64,
    /// Bytes of all keys.
    pub key_bytes: u64,
    /// Bytes of all values.
    pub value_bytes: u64,
    /// Data blocks.
    pub blocks: u64,
}

/// Builds one table in memory.
#[derive(Debug)]
pub struct SstBuilder {
    options: SstOptions,
    kind: TableKind,
    out: Vec<u8>,
    block: BlockBuilder,
    block_first_key: Option<Bytes>,
    index: Vec<(Bytes, Extent)>,
    hashes: Vec<u64>,
    stats: TableStats,
    put_id: u128,
    wal_stamp: Option<WalStamp>,
    range_tombstones: Vec<RangeTombstone>,
    /// The format version written: [`FORMAT_VERSION`], or an older one in
    /// compatibility tests.
    version: u32,
}

impl SstBuilder {
    /// A builder of a `kind` table cut and filtered by `options`.
    pub fn new(kind: TableKind, options: SstOptions) -> Self {
        let block = BlockBuilder::new(options.restart_interval);
        SstBuilder {
            options,
            kind,
            out: Vec::new(),
            block,
            block_first_key: None,
            index: Vec::new(),
            hashes: Vec::new(),
            stats: TableStats::default(),
            put_id: 0,
            wal_stamp: None,
            range_tombstones: Vec::new(),
            version: PLAIN_FORMAT_VERSION,
        }
    }

    /// Writes format version 2 (a classic bloom filter), as the builds
    /// before version 3 did, for tests that older tables still read.
    #[cfg(test)]
    pub fn write_version_2(&mut self) {
        self.version = 2;
    }

    fn build_filter(&self) -> Vec<u8> {
        #[cfg(test)]
        if self.version < 3 {
            return bloom::build_classic(&self.hashes, self.options.bloom_bits_per_key);
        }
        bloom::build(&self.hashes, self.options.bloom_bits_per_key)
    }

    /// Appends `row`: in table order for a sorted table, in sequence order
    /// for a WAL table.
    pub fn add(&mut self, row: &Row) {
        let stats = &mut self.stats;
        if stats.rows == 0 {
            stats.first_key = row.key.clone();
            stats.min_seq = row.seq;
        }
        if stats.last_key != row.key || stats.rows == 0 {
            self.hashes.push(bloom::key_hash(&row.key));
        }
        stats.rows += 1;
        stats.last_key = row.key.clone();
        stats.min_seq = stats.min_seq.min(row.seq);
        stats.max_seq = stats.max_seq.max(row.seq);
        stats.key_bytes += row.key.len() as u64;
        match &row.value {
            RowValue::Value(value) => stats.value_bytes += value.len() as u64,
            RowValue::Tombstone => stats.tombstones += 1,
            RowValue::Merge(operand) => {
                stats.value_bytes += operand.len() as u64;
                self.version = self.version.max(MERGE_FORMAT_VERSION);
            }
        }
        if self.block_first_key.is_none() {
            // WAL tables are indexed by sequence number; big-endian bytes
            // order the same way the numbers do.
            self.block_first_key = Some(match self.kind {
                TableKind::Sorted => row.key.clone(),
                TableKind::Wal => Bytes::copy_from_slice(&row.seq.to_be_bytes()),
            });
        }
        self.block.add(row);
        if self.block.estimated_size() >= self.options.block_size_bytes {
            self.close_block();
        }
    }

    fn close_block(&mut self) {
        let Some(first_key) = self.block_first_key.take() else {
            return;
        };
        let block = std::mem::replace(&mut self.block, BlockBuilder::new(self.options.restart_interval));
        let stored = block.finish(self.options.compression);
        let handle = Extent {
            offset: self.out.len() as u64,
            len: stored.len() as u64,
        };
        self.out.extend_from_slice(&stored);
        self.index.push((first_key, handle));
        self.stats.blocks += 1;
    }

    /// Adds a range tombstone (any order: they are not rows; a sorted
    /// table lists them by start key). The table is then written as
    /// version 5.
    pub fn add_range_tombstone(&mut self, tombstone: RangeTombstone) {
        self.range_tombstones.push(tombstone);
        self.version = FORMAT_VERSION;
    }

    /// Range tombstones added so far.
    pub fn range_tombstones(&self) -> usize {
        self.range_tombstones.len()
    }

    /// Rows added so far.
    pub fn rows(&self) -> u64 {
        self.stats.rows
    }

    /// Stamps the table with the writer's put id, stored in the metadata.
    pub fn set_put_id(&mut self, put_id: u128) {
        self.put_id = put_id;
    }

    /// Stamps a WAL table with its role, epoch and durable watermark.
    pub fn set_wal_stamp(&mut self, stamp: WalStamp) {
        self.wal_stamp = Some(stamp);
    }

    /// Bytes written so far (closed blocks only).
    pub fn estimated_size(&self) -> usize {
        self.out.len() + self.block.estimated_size()
    }

    /// The finished table.
    pub fn finish(self) -> Bytes {
        self.finish_with_meta().0
    }

    /// The finished table and its metadata block, as a reader would decode
    /// it (so a writer need not decode what it just wrote).
    pub fn finish_with_meta(mut self) -> (Bytes, TableMeta) {
        self.close_block();
        let index = self.append_part(encode_index(&self.index));
        let filter = (self.hashes.len() >= self.options.bloom_min_keys)
            .then(|| self.build_filter())
            .map(|filter| self.append_part(filter));
        let mut stats = std::mem::take(&mut self.stats);
        // A range tombstone is a write: the table's sequence range covers it.
        let seqs = self.range_tombstones.iter().map(|tombstone| tombstone.seq);
        if let (Some(min), Some(max)) = (seqs.clone().min(), seqs.max()) {
            (stats.min_seq, stats.max_seq) = if stats.rows == 0 {
                (min, max)
            } else {
                (stats.min_seq.min(min), stats.max_seq.max(max))
            };
        }
        if self.kind == TableKind::Sorted {
            self.range_tombstones
                .sort_by(|a, b| a.start.cmp(&b.start).then(b.seq.cmp(&a.seq)));
        }
        let table_meta = TableMeta {
            index,
            filter,
            stats,
            put_id: self.put_id,
            wal_stamp: self.wal_stamp.filter(|_| self.kind == TableKind::Wal),
            range_tombstones: std::mem::take(&mut self.range_tombstones),
        };
        let meta = self.append_part(encode_meta(&table_meta, self.version));
        let mut footer = Vec::with_capacity(FOOTER_SIZE);
        footer.extend_from_slice(&meta.offset.to_le_bytes());
        put_u32(&mut footer, meta.len as u32);
        footer.extend_from_slice(&[self.kind as u8, 0, 0, 0]);
        put_u32(&mut footer, self.version);
        seal(&mut footer);
        footer.extend_from_slice(&MAGIC);
        self.out.extend_from_slice(&footer);
        (Bytes::from(self.out), table_meta)
    }

    fn append_part(&mut self, part: Vec<u8>) -> Extent {
        let handle = Extent {
            offset: self.out.len() as u64,
            len: part.len() as u64,
        };
        self.out.extend_from_slice(&part);
        handle
    }
}

fn encode_index(entries: &[(Bytes, Extent)]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, entries.len() as u64);
    for (first_key, handle) in entries {
        put_varint(&mut out, first_key.len() as u64);
        out.extend_from_slice(first_key);
        put_varint(&mut out, handle.offset);
        put_varint(&mut out, handle.len);
    }
    seal(&mut out);
    out
}

/// The footer: where the metadata block is, what the table is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    /// Where the metadata block is.
    pub meta: Extent,
    /// A WAL or a sorted table.
    pub kind: TableKind,
    /// The table's format version.
    pub version: u32,
}

impl Footer {
    /// How the table's bloom filter lays out its bits.
    pub fn filter_layout(&self) -> FilterLayout {
        if self.version >= 3 {
            FilterLayout::Blocked
        } else {
            FilterLayout::Classic
        }
    }

    /// Decodes the footer from the last bytes of a table of `table_len` bytes.
    pub fn decode(tail: &[u8], table_len: u64) -> Result<Footer, FormatError> {
        Footer::decode_up_to(tail, table_len, FORMAT_VERSION)
    }

    /// [`Footer::decode`] as a build whose newest format is `newest` does
    /// it (what tests of older builds' behaviour need).
    pub fn decode_up_to(tail: &[u8], table_len: u64, newest: u32) -> Result<Footer, FormatError> {
        const PART: &str = "footer";
        let start = tail
            .len()
            .checked_sub(FOOTER_SIZE)
            .ok_or_else(|| FormatError::corrupt(PART, format!("{} bytes is too short for a footer", tail.len())))?;
        let footer = &tail[start..];
        if footer[FOOTER_SIZE - 8..] != MAGIC {
            return Err(FormatError::corrupt(PART, "wrong magic: not a talusdb table"));
        }
        let body = unseal(&footer[..FOOTER_SIZE - 8], PART)?;
        let mut cursor = Cursor::new(body, PART);
        let meta_offset = u64::from_le_bytes(cursor.take(8)?.try_into().unwrap_or_default());
        let meta_len = u64::from(u32::from_le_bytes(cursor.take(4)?.try_into().unwrap_or_default()));
        let kind = match cursor.u8()? {
            0 => TableKind::Sorted,
            1 => TableKind::Wal,
            other => return Err(FormatError::corrupt(PART, format!("unknown table kind {other}"))),
        };
        if cursor.take(3)? != [0, 0, 0] {
            return Err(FormatError::corrupt(PART, "reserved bytes are not zero"));
        }
        let version = u32::from_le_bytes(cursor.take(4)?.try_into().unwrap_or_default());
        if version > newest {
            return Err(FormatError::Unsupported {
                part: PART,
                detail: format!(
                    "table format version {version} is newer than this build's ({OLDEST_FORMAT_VERSION} to {newest})"
                ),
            });
        }
        if version < OLDEST_FORMAT_VERSION {
            return Err(FormatError::corrupt(PART, format!("table format version {version}")));
        }
        let meta = Extent {
            offset: meta_offset,
            len: meta_len,
        };
        meta.range_within(table_len.saturating_sub(FOOTER_SIZE as u64), "footer")?;
        Ok(Footer { meta, kind, version })
    }
}

/// The metadata block: where the index and filter are, and the statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableMeta {
    /// Where the block index is.
    pub index: Extent,
    /// Where the bloom filter is (`None`: no filter).
    pub filter: Option<Extent>,
    /// What the rows are.
    pub stats: TableStats,
    /// Set by the writer to tell its own upload from anyone else's (0: none).
    pub put_id: u128,
    /// WAL tables of format version 2 only.
    pub wal_stamp: Option<WalStamp>,
    /// Tables of format version 5 only: in key order in a sorted table,
    /// in sequence order in a WAL table.
    pub range_tombstones: Vec<RangeTombstone>,
}

fn encode_meta(meta: &TableMeta, version: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let filter = meta.filter.unwrap_or(Extent { offset: 0, len: 0 });
    for value in [meta.index.offset, meta.index.len, filter.offset, filter.len] {
        put_varint(&mut out, value);
    }
    let stats = &meta.stats;
    for value in [
        stats.rows,
        stats.tombstones,
        stats.min_seq,
        stats.max_seq,
        stats.key_bytes,
        stats.value_bytes,
        stats.blocks,
    ] {
        put_varint(&mut out, value);
    }
    for key in [&stats.first_key, &stats.last_key] {
        put_varint(&mut out, key.len() as u64);
        out.extend_from_slice(key);
    }
    out.extend_from_slice(&meta.put_id.to_le_bytes());
    if version >= FORMAT_VERSION {
        range::encode_section(&meta.range_tombstones, &mut out);
    }
    if let Some(stamp) = meta.wal_stamp {
        out.push(stamp.role as u8);
        put_varint(&mut out, stamp.writer_epoch);
        put_varint(&mut out, stamp.durable_through_wal_id);
    }
    seal(&mut out);
    out
}

impl TableMeta {
    /// Decodes a metadata block of a table of format `version` whose data,
    /// index and filter end at `parts_end` (the metadata's own offset).
    pub fn decode(stored: &[u8], parts_end: u64, version: u32) -> Result<TableMeta, FormatError> {
        const PART: &str = "metadata";
        let mut cursor = Cursor::new(unseal(stored, PART)?, PART);
        let index = Extent {
            offset: cursor.varint()?,
            len: cursor.varint()?,
        };
        let filter = Extent {
            offset: cursor.varint()?,
            len: cursor.varint()?,
        };
        index.range_within(parts_end, "index handle")?;
        let filter = (filter.len > 0).then_some(filter);
        if let Some(filter) = filter {
            filter.range_within(parts_end, "filter handle")?;
        }
        let mut numbers = [0u64; 7];
        for number in &mut numbers {
            *number = cursor.varint()?;
        }
        let [rows, tombstones, min_seq, max_seq, key_bytes, value_bytes, blocks] = numbers;
        let first_key_len = cursor.length()?;
        let first_key = Bytes::copy_from_slice(cursor.take(first_key_len)?);
        let last_key_len = cursor.length()?;
        let last_key = Bytes::copy_from_slice(cursor.take(last_key_len)?);
        let put_id = u128::from_le_bytes(cursor.take(16)?.try_into().unwrap_or_default());
        let range_tombstones = if version >= FORMAT_VERSION {
            range::decode_section(&mut cursor)?
        } else {
            Vec::new()
        };
        // Only WAL tables of version 2 on carry a stamp: it is whatever
        // follows the put id.
        let wal_stamp = if cursor.remaining() > 0 {
            let role = match cursor.u8()? {
                0 => WalRole::Data,
                1 => WalRole::Fence,
                2 => WalRole::Filler,
                other => return Err(FormatError::corrupt(PART, format!("unknown WAL role {other}"))),
            };
            Some(WalStamp {
                role,
                writer_epoch: cursor.varint()?,
                durable_through_wal_id: cursor.varint()?,
            })
        } else {
            None
        };
        cursor.finish()?;
        let stats = TableStats {
            rows,
            tombstones,
            first_key,
            last_key,
            min_seq,
            max_seq,
            key_bytes,
            value_bytes,
            blocks,
        };
        Ok(TableMeta {
            index,
            filter,
            stats,
            put_id,
            wal_stamp,
            range_tombstones,
        })
    }
}

/// The block index: the first key and place of every data block.
///
/// Held in memory as three flat arrays (every first key back to back, where
/// each ends, each block's handle), so it costs its key bytes plus 20 bytes
/// per block and two allocations, whatever the number of blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Index {
    keys: Vec<u8>,
    /// Where block `n`'s first key ends in `keys` (it starts where block
    /// `n - 1`'s ends).
    key_ends: Vec<u32>,
    handles: Vec<Extent>,
}

impl Index {
    /// Decodes an index whose blocks must lie within the first `data_end`
    /// bytes of the table.
    pub fn decode(stored: &[u8], data_end: u64) -> Result<Index, FormatError> {
        const PART: &str = "index";
        let body = unseal(stored, PART)?;
        let mut cursor = Cursor::new(body, PART);
        let count = cursor.length()?;
        // Each entry takes at least 3 bytes: a claimed count beyond that is a lie.
        if count > body.len() / 3 {
            return Err(FormatError::corrupt(
                PART,
                format!("{count} entries cannot fit in {} bytes", body.len()),
            ));
        }
        let mut index = Index {
            // The stored index is the keys plus a few bytes per entry.
            keys: Vec::with_capacity(body.len().saturating_sub(3 * count)),
            key_ends: Vec::with_capacity(count),
            handles: Vec::with_capacity(count),
        };
        for number in 0..count {
            let key_len = cursor.length()?;
            let key = cursor.take(key_len)?;
            let handle = Extent {
                offset: cursor.varint()?,
                len: cursor.varint()?,
            };
            handle.range_within(data_end, PART)?;
            if number > 0 && index.key(number - 1) > key {
                return Err(FormatError::corrupt(PART, format!("entry {number} is out of order")));
            }
            index.keys.extend_from_slice(key);
            let end = u32::try_from(index.keys.len())
                .map_err(|_| FormatError::corrupt(PART, "more than 4 GiB of keys".to_string()))?;
            index.key_ends.push(end);
            index.handles.push(handle);
        }
        index.keys.shrink_to_fit();
        Ok(index)
    }

    /// Data blocks indexed.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Whether the index lists no block.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Bytes held in memory: the key bytes, 20 bytes per block, and the
    /// structure itself.
    pub fn size(&self) -> usize {
        std::mem::size_of::<Index>()
            + self.keys.capacity()
            + self.key_ends.capacity() * std::mem::size_of::<u32>()
            + self.handles.capacity() * std::mem::size_of::<Extent>()
    }

    /// The first key of block `block` (which must exist).
    fn key(&self, block: usize) -> &[u8] {
        let start = if block == 0 {
            0
        } else {
            self.key_ends[block - 1] as usize
        };
        &self.keys[start..self.key_ends[block] as usize]
    }

    /// Where block `block` is (`None` past the end).
    pub fn extent(&self, block: usize) -> Option<Extent> {
        self.handles.get(block).copied()
    }

    /// The first block that may hold rows with keys `>= key`: the last block
    /// whose first key is below `key` (a key's versions may spill over from
    /// it), or block 0.
    pub fn seek_block(&self, key: &[u8]) -> usize {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = low + (high - low) / 2;
            if self.key(middle) < key {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low.saturating_sub(1)
    }

    /// The last block that may hold rows with keys at or below `key`
    /// (`inclusive`) or below it: the last block whose first key is at or
    /// below (below) `key`. `None` if every block starts above it.
    pub fn last_block_before(&self, key: &[u8], inclusive: bool) -> Option<usize> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = low + (high - low) / 2;
            let first = self.key(middle);
            let below = if inclusive { first <= key } else { first < key };
            if below {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low.checked_sub(1)
    }
}

/// A whole table held in memory: for tests, and for tables small enough to
/// fetch in one read.
#[derive(Clone, Debug)]
pub struct SstBytes {
    bytes: Bytes,
    /// The decoded footer.
    pub footer: Footer,
    /// The decoded metadata block.
    pub meta: TableMeta,
    /// The decoded block index.
    pub index: Index,
    /// The decoded filter, if the table has one.
    pub filter: Option<BloomFilter>,
}

impl SstBytes {
    /// Decodes the footer, metadata, index and filter of the whole table
    /// `bytes`, checking every checksum.
    pub fn open(bytes: Bytes) -> Result<SstBytes, FormatError> {
        let table_len = bytes.len() as u64;
        let footer = Footer::decode(&bytes, table_len)?;
        let meta_range = footer.meta.range_within(table_len, "metadata")?;
        let meta = TableMeta::decode(&bytes[meta_range], footer.meta.offset, footer.version)?;
        let index_range = meta.index.range_within(footer.meta.offset, "index")?;
        // Data blocks come first, so they end where the index starts.
        let index = Index::decode(&bytes[index_range], meta.index.offset)?;
        let filter = match meta.filter {
            Some(handle) => {
                let range = handle.range_within(footer.meta.offset, "filter")?;
                Some(BloomFilter::decode(bytes.slice(range), footer.filter_layout())?)
            }
            None => None,
        };
        Ok(SstBytes {
            bytes,
            footer,
            meta,
            index,
            filter,
        })
    }

    /// Decodes data block `block`.
    pub fn block(&self, block: usize) -> Result<Block, FormatError> {
        let handle = self
            .index
            .extent(block)
            .ok_or_else(|| FormatError::corrupt("index", format!("no block {block}")))?;
        Block::decode(
            self.bytes
                .slice(handle.range_within(self.bytes.len() as u64, "block handle")?),
        )
    }

    /// The newest version of `key`, if the table has one.
    pub fn get(&self, key: &[u8]) -> Result<Option<Row>, FormatError> {
        if self.filter.as_ref().is_some_and(|filter| !filter.may_contain(key)) {
            return Ok(None);
        }
        Ok(self
            .scan_from(key)
            .next()
            .transpose()?
            .filter(|row| row.key.as_ref() == key))
    }

    /// Every row of a WAL table with sequence number `>= seq`, in order.
    pub fn wal_rows_from(&self, seq: u64) -> impl Iterator<Item = Result<Row, FormatError>> + '_ {
        let first = self.index.seek_block(&seq.to_be_bytes());
        (first..self.index.len())
            .flat_map(move |block| self.block_rows(block, None))
            .filter(move |row| row.as_ref().map_or(true, |row| row.seq >= seq))
    }

    /// Every row with key `>= start`, in table order.
    pub fn scan_from(&self, start: &[u8]) -> impl Iterator<Item = Result<Row, FormatError>> + '_ {
        let first = self.index.seek_block(start);
        let start = start.to_vec();
        (first..self.index.len()).flat_map(move |block| self.block_rows(block, Some(&start)))
    }

    /// The rows of one block, from the first `>= start` if given; a damaged
    /// block yields its error as the one item.
    fn block_rows(&self, block: usize, start: Option<&[u8]>) -> Box<dyn Iterator<Item = Result<Row, FormatError>>> {
        let positioned = self.block(block).and_then(|decoded| {
            let mut rows = decoded.iter();
            if let Some(start) = start {
                rows.seek(start)?;
            }
            Ok(rows)
        });
        match positioned {
            Ok(rows) => Box::new(rows),
            Err(error) => Box::new(std::iter::once(Err(error))),
        }
    }
}

#[cfg(test)]
mod tests;
