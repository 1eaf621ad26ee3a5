//! The block cache and the metadata cache (each table's footer and
//! metadata block, index and bloom filter), both bounded in bytes, both
//! keyed by table id: tables never change once written, so an entry is
//! valid until its table is deleted. Entries weigh what they hold in
//! memory (decoded, copied out of the read that fetched them), not the
//! size of that read.
//!
//! Built on `moka`'s concurrent cache (TinyLFU admission, LRU eviction),
//! which readers on any thread share without a lock of ours.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use moka::sync::Cache;

use super::paths::TableId;
use crate::format::block::Block;
use crate::format::bloom::BloomFilter;
use crate::format::sst::{Footer, Index, TableMeta};

/// Default bytes of decoded data blocks kept in memory.
pub const DEFAULT_BLOCK_CACHE_BYTES: u64 = 128 << 20;
/// Default bytes of decoded indexes and filters kept in memory.
pub const DEFAULT_META_CACHE_BYTES: u64 = 256 << 20;

/// What opening a table reads: its footer and metadata block.
#[derive(Clone, Debug)]
pub struct Opened {
    pub size: u64,
    pub footer: Footer,
    pub meta: TableMeta,
}

/// A cached metadata part of one table.
#[derive(Clone, Debug)]
pub enum MetaPart {
    Opened(Arc<Opened>),
    Index(Arc<Index>),
    Filter(Arc<BloomFilter>),
}

impl MetaPart {
    fn size(&self) -> usize {
        match self {
            MetaPart::Opened(opened) => {
                let stats = &opened.meta.stats;
                std::mem::size_of::<Opened>() + stats.first_key.len() + stats.last_key.len()
            }
            MetaPart::Index(index) => index.size(),
            MetaPart::Filter(filter) => filter.size(),
        }
    }

    fn kind(&self) -> MetaKind {
        match self {
            MetaPart::Opened(_) => MetaKind::Opened,
            MetaPart::Index(_) => MetaKind::Index,
            MetaPart::Filter(_) => MetaKind::Filter,
        }
    }
}

/// Which metadata part a key names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetaKind {
    Opened,
    Index,
    Filter,
}

/// Hashes the caches' keys: a few integers (a table id, an offset or a
/// part), which the engine makes itself, so no attacker chooses them and a
/// multiply-and-mix hash serves where SipHash cost several percent of a
/// point lookup.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyHash;

impl BuildHasher for KeyHash {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

/// The hasher [`KeyHash`] builds.
#[derive(Debug)]
pub struct KeyHasher(u64);

impl KeyHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(23) ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_u128(&mut self, value: u128) {
        self.add(value as u64);
        self.add((value >> 64) as u64);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn write_isize(&mut self, value: isize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        // The final mix of MurmurHash3: every input bit reaches every
        // output bit, so the cache's shards and sketch see spread values.
        let mut hash = self.0;
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        hash ^ (hash >> 33)
    }
}

/// Both caches. Cheap to share: hold it in an `Arc`.
#[derive(Clone)]
pub struct TableCaches {
    blocks: Cache<(TableId, u64), Block, KeyHash>,
    meta: Cache<(TableId, MetaKind), MetaPart, KeyHash>,
}

impl std::fmt::Debug for TableCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableCaches")
            .field("block_bytes", &self.blocks.weighted_size())
            .field("meta_bytes", &self.meta.weighted_size())
            .finish()
    }
}

/// A cache weight: bytes plus a fixed per-entry overhead, within `u32`.
fn weight(bytes: usize) -> u32 {
    u32::try_from(bytes.saturating_add(64)).unwrap_or(u32::MAX)
}

impl TableCaches {
    /// Caches holding at most `block_bytes` and `meta_bytes`; 0 disables one.
    pub fn new(block_bytes: u64, meta_bytes: u64) -> Self {
        TableCaches {
            blocks: Cache::builder()
                .max_capacity(block_bytes)
                .weigher(|_, block: &Block| weight(block.size()))
                .build_with_hasher(KeyHash),
            meta: Cache::builder()
                .max_capacity(meta_bytes)
                .weigher(|_, part: &MetaPart| weight(part.size()))
                .build_with_hasher(KeyHash),
        }
    }

    /// The cached block `block` of `table`.
    pub fn block(&self, table: TableId, block: u64) -> Option<Block> {
        let found = self.blocks.get(&(table, block));
        crate::metrics::cache_lookup("block", found.is_some());
        found
    }

    /// Caches a decoded block.
    pub fn insert_block(&self, table: TableId, block: u64, decoded: Block) {
        self.blocks.insert((table, block), decoded);
    }

    /// The cached index or filter of `table`.
    pub fn meta(&self, table: TableId, kind: MetaKind) -> Option<MetaPart> {
        let found = self.meta.get(&(table, kind));
        crate::metrics::cache_lookup("meta", found.is_some());
        found
    }

    /// Caches an index or filter.
    pub fn insert_meta(&self, table: TableId, part: MetaPart) {
        self.meta.insert((table, part.kind()), part);
    }

    /// Drops every entry of a deleted table (its metadata now; blocks age
    /// out, since their keys are never asked for again).
    pub fn forget(&self, table: TableId) {
        for kind in [MetaKind::Opened, MetaKind::Index, MetaKind::Filter] {
            self.meta.invalidate(&(table, kind));
        }
    }

    /// Bytes held: (blocks, metadata), once pending evictions are done.
    pub fn weighted_sizes(&self) -> (u64, u64) {
        self.settle();
        (self.blocks.weighted_size(), self.meta.weighted_size())
    }

    /// Applies pending evictions (for tests and reports).
    pub fn settle(&self) {
        self.blocks.run_pending_tasks();
        self.meta.run_pending_tasks();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Ulid;

    /// Block keys of a few tables, as the cache sees them, spread evenly
    /// over the low bits (which pick a shard and a bucket).
    #[test]
    fn key_hashes_spread_over_the_low_bits() {
        let tables = [
            TableId::Wal(7),
            TableId::Compacted(Ulid(1 << 80)),
            TableId::Compacted(Ulid((1 << 80) + 1)),
        ];
        let mut buckets = vec![0u32; 256];
        let mut keys = 0;
        for table in tables {
            for offset in (0..40_000u64).map(|block| block * 4096) {
                buckets[(KeyHash.hash_one((table, offset)) & 0xff) as usize] += 1;
                keys += 1;
            }
        }
        let expected = keys / 256;
        for (bucket, count) in buckets.iter().enumerate() {
            assert!(
                count.abs_diff(expected) < expected / 4,
                "bucket {bucket} holds {count} keys, expected about {expected}"
            );
        }
        assert_ne!(
            KeyHash.hash_one((tables[0], MetaKind::Index)),
            KeyHash.hash_one((tables[0], MetaKind::Filter))
        );
    }
}
