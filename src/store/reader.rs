//! Reading one table: [`TableReader`] (an opened table: point lookups, the
//! lazily loaded index and filter, blocks from the cache or in runs of
//! reads) and [`TableScan`] (a forward scan reading several blocks per
//! request). [`super::table::TableStore::open`] makes readers.

// Reachable from outside only through the hidden `internals` module, whose
// callers (fuzz targets, benches, white-box tests) need no error sections.
#![allow(clippy::missing_errors_doc)]

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;

use super::cache::{MetaKind, MetaPart, Opened, TableCaches};
use super::error::StoreError;
use super::object::{ByteRange, Fetched, Store};
use super::paths::TableId;
use crate::format::block::{Block, BlockIter};
use crate::format::bloom::BloomFilter;
use crate::format::sst::{Extent, Footer, Index, TableKind, TableMeta};
use crate::format::{RangeDeletes, Row};

type Result<T> = std::result::Result<T, StoreError>;

/// The bytes of `handle` if `fetched` holds all of them.
pub(super) fn slice_of(fetched: &Fetched, handle: Extent) -> Option<Bytes> {
    let start = handle.offset.checked_sub(fetched.offset)?;
    let end = start.checked_add(handle.len)?;
    (end <= fetched.bytes.len() as u64).then(|| fetched.bytes.slice(start as usize..end as usize))
}

/// Reads exactly the bytes of `handle`.
pub(super) async fn read_extent(store: &Arc<dyn Store>, path: &Path, handle: Extent) -> Result<Bytes> {
    if handle.len == 0 {
        return Ok(Bytes::new());
    }
    let end = handle.offset.saturating_add(handle.len);
    let fetched = store.get(path, ByteRange::Range(handle.offset..end)).await?;
    if fetched.bytes.len() as u64 != handle.len {
        return Err(StoreError::Corruption {
            path: path.clone(),
            part: "object",
            detail: format!(
                "asked for {} bytes at {}, got {}",
                handle.len,
                handle.offset,
                fetched.bytes.len()
            ),
        });
    }
    Ok(fetched.bytes)
}

/// An open table. Cheap to clone; readers on any thread share it.
#[derive(Clone, Debug)]
pub struct TableReader {
    inner: Arc<ReaderInner>,
}

#[derive(Debug)]
struct ReaderInner {
    id: TableId,
    path: Path,
    size: u64,
    footer: Footer,
    meta: TableMeta,
    /// The table's range tombstones, fragmented once at open.
    range_deletes: RangeDeletes,
    store: Arc<dyn Store>,
    caches: TableCaches,
}

/// How a scan reads.
#[derive(Clone, Copy, Debug)]
pub struct ScanOptions {
    /// Blocks fetched per request (at least 1).
    pub read_ahead_blocks: usize,
    /// Whether blocks read by the scan enter the block cache (off by
    /// default, so one long scan does not evict the hot set).
    pub fill_cache: bool,
}

impl TableReader {
    pub(super) fn new(id: TableId, path: Path, opened: &Opened, store: Arc<dyn Store>, caches: TableCaches) -> Self {
        TableReader {
            inner: Arc::new(ReaderInner {
                id,
                path,
                size: opened.size,
                footer: opened.footer,
                meta: opened.meta.clone(),
                range_deletes: RangeDeletes::new(&opened.meta.range_tombstones),
                store,
                caches,
            }),
        }
    }

    /// The table's id.
    pub fn id(&self) -> TableId {
        self.inner.id
    }

    /// Its object.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.inner.size
    }

    /// A WAL or a sorted table.
    pub fn kind(&self) -> TableKind {
        self.inner.footer.kind
    }

    /// Its metadata block.
    pub fn meta(&self) -> &TableMeta {
        &self.inner.meta
    }

    /// Its range tombstones (format version 5), ready for lookups.
    pub fn range_deletes(&self) -> &RangeDeletes {
        &self.inner.range_deletes
    }

    fn format_error(&self, error: crate::format::FormatError) -> StoreError {
        StoreError::format(&self.inner.path, error)
    }

    /// Puts the index and filter into the cache if `tail` covers them.
    pub(super) fn seed_from(&self, tail: &Fetched) -> Result<()> {
        let meta = &self.inner.meta;
        if let Some(bytes) = slice_of(tail, meta.index) {
            self.decode_index(&bytes)?;
        }
        if let Some(bytes) = meta.filter.and_then(|filter| slice_of(tail, filter)) {
            // A copy: a slice would keep the whole opening read alive.
            self.decode_filter(Bytes::copy_from_slice(&bytes))?;
        }
        Ok(())
    }

    fn decode_index(&self, bytes: &[u8]) -> Result<Arc<Index>> {
        let index = Arc::new(Index::decode(bytes, self.inner.meta.index.offset).map_err(|e| self.format_error(e))?);
        self.inner
            .caches
            .insert_meta(self.inner.id, MetaPart::Index(index.clone()));
        Ok(index)
    }

    fn decode_filter(&self, bytes: Bytes) -> Result<Arc<BloomFilter>> {
        let filter =
            Arc::new(BloomFilter::decode(bytes, self.inner.footer.filter_layout()).map_err(|e| self.format_error(e))?);
        self.inner
            .caches
            .insert_meta(self.inner.id, MetaPart::Filter(filter.clone()));
        Ok(filter)
    }

    /// The block index, from the cache or one read.
    pub async fn index(&self) -> Result<Arc<Index>> {
        if let Some(MetaPart::Index(index)) = self.inner.caches.meta(self.inner.id, MetaKind::Index) {
            return Ok(index);
        }
        let bytes = read_extent(&self.inner.store, &self.inner.path, self.inner.meta.index).await?;
        self.decode_index(&bytes)
    }

    /// The bloom filter (`None` if the table has none), from the cache or
    /// one read.
    pub async fn filter(&self) -> Result<Option<Arc<BloomFilter>>> {
        let Some(handle) = self.inner.meta.filter else {
            return Ok(None);
        };
        if let Some(MetaPart::Filter(filter)) = self.inner.caches.meta(self.inner.id, MetaKind::Filter) {
            return Ok(Some(filter));
        }
        let bytes = read_extent(&self.inner.store, &self.inner.path, handle).await?;
        self.decode_filter(bytes).map(Some)
    }

    /// False only if the table certainly has no row for `key`.
    pub async fn may_contain(&self, key: &[u8]) -> Result<bool> {
        let stats = &self.inner.meta.stats;
        if self.inner.meta.stats.rows == 0 || key < stats.first_key.as_ref() || key > stats.last_key.as_ref() {
            return Ok(false);
        }
        Ok(self.filter().await?.is_none_or(|filter| filter.may_contain(key)))
    }

    /// The newest version of `key` with sequence number `<= max_seq`.
    pub async fn get(&self, key: &[u8], max_seq: u64) -> Result<Option<Row>> {
        let Some(mut rows) = self.key_scan(key).await? else {
            return Ok(None);
        };
        while let Some(row) = rows.next().await? {
            if row.seq <= max_seq {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }

    /// Every version of `key` with sequence number `<= max_seq`, newest
    /// first.
    pub async fn versions(&self, key: &[u8], max_seq: u64) -> Result<Vec<Row>> {
        let mut versions = Vec::new();
        if let Some(mut rows) = self.key_scan(key).await? {
            while let Some(row) = rows.next().await? {
                if row.seq <= max_seq {
                    versions.push(row);
                }
            }
        }
        Ok(versions)
    }

    /// A scan of `key`'s versions, newest first, its blocks read one at a
    /// time into the cache; `None` if the table certainly has none.
    async fn key_scan(&self, key: &[u8]) -> Result<Option<TableScan>> {
        if !self.may_contain(key).await? {
            return Ok(None);
        }
        let key = Bytes::copy_from_slice(key);
        let options = ScanOptions {
            read_ahead_blocks: 1,
            fill_cache: true,
        };
        Ok(Some(
            self.scan((Bound::Included(key.clone()), Bound::Included(key)), options),
        ))
    }

    /// Rows with keys in `range`, in table order.
    pub fn scan(&self, range: (Bound<Bytes>, Bound<Bytes>), options: ScanOptions) -> TableScan {
        TableScan {
            reader: self.clone(),
            index: None,
            start: range.0,
            end: range.1,
            options,
            next_block: None,
            pending: VecDeque::new(),
            current: None,
            done: false,
            reverse: None,
        }
    }

    /// A scan of `range` in reverse table order: keys descending, the
    /// versions of a key oldest first. Blocks are read backwards,
    /// `read_ahead_blocks` per request; each block is decoded once.
    pub fn scan_reverse(&self, range: (Bound<Bytes>, Bound<Bytes>), options: ScanOptions) -> TableScan {
        TableScan {
            reverse: Some(Reverse {
                rows: Vec::new(),
                block: None,
                below: None,
            }),
            ..self.scan(range, options)
        }
    }

    /// Loads the blocks `first..` (up to `count` of them, stopping at the
    /// first cached one after the first) with as few reads as possible.
    async fn load_blocks(&self, index: &Index, first: usize, count: usize, fill_cache: bool) -> Result<Vec<Block>> {
        let id = self.inner.id;
        let caches = &self.inner.caches;
        if let Some(block) = caches.block(id, first as u64) {
            return Ok(vec![block]);
        }
        let handle_of = |number: usize| {
            index.extent(number).ok_or_else(|| {
                self.format_error(crate::format::FormatError::corrupt(
                    "index",
                    format!("no block {number}"),
                ))
            })
        };
        let mut handles = vec![handle_of(first)?];
        while handles.len() < count.max(1) {
            let number = first + handles.len();
            let Some(next) = index.extent(number) else { break };
            let previous = handles[handles.len() - 1];
            if next.offset != previous.offset + previous.len || caches.block(id, number as u64).is_some() {
                break;
            }
            handles.push(next);
        }
        let run = Extent {
            offset: handles[0].offset,
            len: handles.iter().map(|handle| handle.len).sum(),
        };
        let bytes = read_extent(&self.inner.store, &self.inner.path, run).await?;
        let mut blocks = Vec::with_capacity(handles.len());
        let mut at = 0;
        for (number, handle) in (first..).zip(&handles) {
            // The handles are consecutive, so each block follows the last.
            let end = at + handle.len as usize;
            let block = Block::decode(bytes.slice(at..end)).map_err(|e| self.format_error(e))?;
            at = end;
            if fill_cache {
                caches.insert_block(id, number as u64, block.clone());
            }
            blocks.push(block);
        }
        Ok(blocks)
    }
}

/// A forward scan over one table. `next` reads blocks as it goes,
/// `read_ahead_blocks` per request.
#[derive(Debug)]
pub struct TableScan {
    reader: TableReader,
    index: Option<Arc<Index>>,
    start: Bound<Bytes>,
    end: Bound<Bytes>,
    options: ScanOptions,
    /// The next block to load; `None` until positioned.
    next_block: Option<usize>,
    pending: VecDeque<Block>,
    current: Option<BlockIter>,
    done: bool,
    /// Set for a reverse scan.
    reverse: Option<Reverse>,
}

/// Where a reverse scan is: the rows of the current restart interval
/// (taken from the back), the block they are in with the intervals still
/// below them, and the blocks still below that. A block is decoded one
/// interval at a time, so a scan that ends inside it decodes little more
/// than it returns.
#[derive(Debug)]
struct Reverse {
    rows: Vec<Row>,
    /// The current block and how many of its intervals are left (the
    /// ones before the current).
    block: Option<(Block, usize)>,
    /// The blocks left to load are `0..below`; `None` until positioned.
    below: Option<usize>,
}

impl TableScan {
    /// Moves the scan to the first row with key `>= key` (keeping the end
    /// bound). A scan may seek forwards or backwards.
    pub fn seek(&mut self, key: &[u8]) {
        let end = std::mem::replace(&mut self.end, Bound::Unbounded);
        self.restart((Bound::Included(Bytes::copy_from_slice(key)), end));
    }

    /// Starts the scan again over `range`, from its start (or its end, in
    /// reverse), keeping the table's index: what a seek in a merged scan
    /// does to the table it is in.
    pub fn restart(&mut self, range: (Bound<Bytes>, Bound<Bytes>)) {
        (self.start, self.end) = range;
        self.next_block = None;
        self.pending.clear();
        self.current = None;
        self.done = false;
        if let Some(reverse) = &mut self.reverse {
            reverse.rows.clear();
            reverse.block = None;
            reverse.below = None;
        }
    }

    fn before_start(&self, key: &[u8]) -> bool {
        match &self.start {
            Bound::Included(start) => key < start.as_ref(),
            Bound::Excluded(start) => key <= start.as_ref(),
            Bound::Unbounded => false,
        }
    }

    fn after_end(&self, key: &[u8]) -> bool {
        match &self.end {
            Bound::Included(end) => key > end.as_ref(),
            Bound::Excluded(end) => key >= end.as_ref(),
            Bound::Unbounded => false,
        }
    }

    /// The next row in range, or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Row>> {
        if self.reverse.is_some() {
            return self.next_reverse().await;
        }
        loop {
            if let Some(rows) = &mut self.current {
                match rows.next() {
                    Some(Ok(row)) if self.before_start(&row.key) => continue,
                    Some(Ok(row)) if self.after_end(&row.key) => {
                        self.finish();
                        return Ok(None);
                    }
                    Some(Ok(row)) => return Ok(Some(row)),
                    Some(Err(error)) => {
                        self.finish();
                        return Err(self.reader.format_error(error));
                    }
                    None => self.current = None,
                }
            }
            if self.done {
                return Ok(None);
            }
            if let Some(block) = self.pending.pop_front() {
                let mut rows = block.iter();
                if let Bound::Included(start) | Bound::Excluded(start) = &self.start
                    && let Err(error) = rows.seek(start)
                {
                    self.finish();
                    return Err(self.reader.format_error(error));
                }
                self.current = Some(rows);
                continue;
            }
            if let Err(error) = self.load_more().await {
                self.finish();
                return Err(error);
            }
        }
    }

    fn finish(&mut self) {
        self.done = true;
        self.current = None;
        self.pending.clear();
        if let Some(reverse) = &mut self.reverse {
            reverse.rows.clear();
            reverse.block = None;
        }
    }

    /// The table's index, loaded on first use.
    async fn loaded_index(&mut self) -> Result<Arc<Index>> {
        if let Some(index) = &self.index {
            return Ok(index.clone());
        }
        let index = self.reader.index().await?;
        self.index = Some(index.clone());
        Ok(index)
    }

    /// [`TableScan::next`] of a reverse scan.
    async fn next_reverse(&mut self) -> Result<Option<Row>> {
        loop {
            let Some(reverse) = &mut self.reverse else {
                return Ok(None);
            };
            if let Some(row) = reverse.rows.pop() {
                if self.after_end(&row.key) {
                    continue;
                }
                if self.before_start(&row.key) {
                    self.finish();
                    return Ok(None);
                }
                return Ok(Some(row));
            }
            if self.done {
                return Ok(None);
            }
            let decoded = match &mut reverse.block {
                Some((block, left)) if *left > 0 => {
                    *left -= 1;
                    Some(block.interval(*left))
                }
                _ => None,
            };
            if let Some(decoded) = decoded {
                match decoded {
                    Ok(rows) => reverse.rows = rows,
                    Err(error) => {
                        self.finish();
                        return Err(self.reader.format_error(error));
                    }
                }
                continue;
            }
            if let Some(block) = self.pending.pop_front() {
                // Intervals wholly above the end bound are never decoded.
                let through = match &self.end {
                    Bound::Included(end) => block.intervals_through(end, true),
                    Bound::Excluded(end) => block.intervals_through(end, false),
                    Bound::Unbounded => Ok(block.intervals()),
                };
                match through {
                    Ok(through) => reverse.block = Some((block, through)),
                    Err(error) => {
                        self.finish();
                        return Err(self.reader.format_error(error));
                    }
                }
                continue;
            }
            if let Err(error) = self.load_below().await {
                self.finish();
                return Err(error);
            }
        }
    }

    /// Loads the next run of blocks downwards (up to `read_ahead_blocks`),
    /// queued highest first.
    async fn load_below(&mut self) -> Result<()> {
        let index = self.loaded_index().await?;
        let below = match self.reverse.as_ref().and_then(|reverse| reverse.below) {
            Some(below) => below,
            None => match &self.end {
                Bound::Included(end) => index.last_block_before(end, true).map_or(0, |block| block + 1),
                Bound::Excluded(end) => index.last_block_before(end, false).map_or(0, |block| block + 1),
                Bound::Unbounded => index.len(),
            },
        };
        if below == 0 {
            self.finish();
            return Ok(());
        }
        let first = below.saturating_sub(self.options.read_ahead_blocks.max(1));
        let mut blocks = Vec::with_capacity(below - first);
        while first + blocks.len() < below {
            let next = first + blocks.len();
            let loaded = self
                .reader
                .load_blocks(&index, next, below - next, self.options.fill_cache)
                .await?;
            if loaded.is_empty() {
                return Err(self.reader.format_error(crate::format::FormatError::corrupt(
                    "index",
                    format!("block {next} could not be read"),
                )));
            }
            blocks.extend(loaded);
        }
        self.pending.extend(blocks.into_iter().rev());
        if let Some(reverse) = &mut self.reverse {
            reverse.below = Some(first);
        }
        Ok(())
    }

    async fn load_more(&mut self) -> Result<()> {
        let index = self.loaded_index().await?;
        let next = match self.next_block {
            Some(next) => next,
            None => match &self.start {
                Bound::Included(start) | Bound::Excluded(start) => index.seek_block(start),
                Bound::Unbounded => 0,
            },
        };
        if next >= index.len() {
            self.finish();
            return Ok(());
        }
        let blocks = self
            .reader
            .load_blocks(&index, next, self.options.read_ahead_blocks, self.options.fill_cache)
            .await?;
        self.next_block = Some(next + blocks.len());
        self.pending.extend(blocks);
        Ok(())
    }
}
