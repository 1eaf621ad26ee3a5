//! Scans: one source per memtable, L0 table and sorted run, merged by key
//! with the newest version winning.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use super::operator::{Fold, Operator};
use super::{LazyTable, ReadView};
use crate::error::Error;
use crate::format::{RangeDeletes, RangeTombstone, Row, RowValue};
use crate::mem::Memtable;
use crate::store::{ScanOptions, TableScan, TableStore};

const MEMTABLE_BATCH: usize = 256;

/// Covered rows in a row from one table after which a scan jumps to the
/// end of the deleted range instead of reading on (a jump drops the
/// blocks read ahead, so short ranges are read through).
const COVERED_BEFORE_SKIP: u32 = 256;

/// One ordered stream of rows: key ascending, newest version first; or, for
/// a reverse scan, the exact reverse (key descending, oldest first).
pub enum RowSource {
    Memtable {
        table: Arc<Memtable>,
        buffer: VecDeque<Row>,
        last: Option<(Bytes, u64)>,
        done: bool,
    },
    /// Tables in key order (one L0 table, or a sorted run), read one after
    /// another.
    Tables {
        tables: Vec<Arc<LazyTable>>,
        /// How many tables the scan has started (from the end, in reverse).
        next: usize,
        /// The table being read: its position and its scan.
        current: Option<(usize, Box<TableScan>)>,
    },
}

impl std::fmt::Debug for RowSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowSource::Memtable { buffer, .. } => write!(f, "Memtable({} buffered)", buffer.len()),
            RowSource::Tables { tables, next, .. } => write!(f, "Tables({next}/{})", tables.len()),
        }
    }
}

/// What every source of one scan shares.
#[derive(Clone, Debug)]
pub struct ScanBounds {
    pub start: Bound<Bytes>,
    pub end: Bound<Bytes>,
    pub max_seq: u64,
    /// Rows that expire at or before this read as tombstones.
    pub now_ms: u64,
    /// Folds merge operands.
    pub operator: Operator,
    pub options: ScanOptions,
    /// Keys descending.
    pub reverse: bool,
    /// The range tombstones a live scan honours (set by the merge once it
    /// has loaded them; compaction, which reads every version, has none).
    pub range_deletes: Option<Arc<RangeDeletes>>,
}

impl RowSource {
    async fn next(&mut self, tables: &TableStore, bounds: &ScanBounds) -> Result<Option<Row>, Error> {
        loop {
            let row = match self {
                RowSource::Memtable {
                    table,
                    buffer,
                    last,
                    done,
                } => {
                    if buffer.is_empty() && !*done {
                        let from = last.as_ref().map(|(key, seq)| (key, *seq));
                        let batch = if bounds.reverse {
                            table.rows_before(from, &bounds.start, &bounds.end, MEMTABLE_BATCH)
                        } else {
                            table.rows_after(from, &bounds.start, &bounds.end, MEMTABLE_BATCH)
                        };
                        *done = batch.len() < MEMTABLE_BATCH;
                        if let Some(row) = batch.last() {
                            *last = Some((row.key.clone(), row.seq));
                        }
                        buffer.extend(batch);
                    }
                    buffer.pop_front()
                }
                RowSource::Tables {
                    tables: list,
                    next,
                    current,
                } => {
                    if current.is_none() {
                        let position = if bounds.reverse {
                            list.len().checked_sub(*next + 1)
                        } else {
                            Some(*next)
                        };
                        let Some((position, table)) =
                            position.and_then(|position| Some((position, list.get(position)?)))
                        else {
                            return Ok(None);
                        };
                        *next += 1;
                        if table.handle.min_seq > bounds.max_seq || !overlaps(table, bounds) || buried(table, bounds) {
                            continue;
                        }
                        let reader = table.reader(tables).await?;
                        let range = (bounds.start.clone(), bounds.end.clone());
                        let scan = if bounds.reverse {
                            reader.scan_reverse(range, bounds.options)
                        } else {
                            reader.scan(range, bounds.options)
                        };
                        *current = Some((position, Box::new(scan)));
                    }
                    let (_, scan) = current.as_mut().ok_or_else(|| Error::internal("scan lost its table"))?;
                    match scan.next().await? {
                        Some(row) => Some(row),
                        None => {
                            *current = None;
                            continue;
                        }
                    }
                }
            };
            match row {
                Some(row) if row.seq > bounds.max_seq => continue,
                other => return Ok(other),
            }
        }
    }
}

impl RowSource {
    /// Starts the source again at the start of `bounds` (the end, in
    /// reverse). A table it is reading and will read again is repositioned,
    /// not reopened; tables wholly before the new start are skipped
    /// without a look.
    fn seek(&mut self, bounds: &ScanBounds) {
        match self {
            RowSource::Memtable { buffer, last, done, .. } => {
                buffer.clear();
                *last = None;
                *done = false;
            }
            RowSource::Tables { tables, next, current } => {
                // The position of the first table to read.
                let first = if bounds.reverse {
                    match &bounds.end {
                        Bound::Included(end) | Bound::Excluded(end) => {
                            tables.partition_point(|table| table.handle.first_key <= *end)
                        }
                        Bound::Unbounded => tables.len(),
                    }
                    .checked_sub(1)
                } else {
                    Some(match &bounds.start {
                        Bound::Included(start) | Bound::Excluded(start) => {
                            tables.partition_point(|table| table.handle.last_key < *start)
                        }
                        Bound::Unbounded => 0,
                    })
                };
                let reuse = match (current.take(), first) {
                    (Some((position, mut scan)), Some(first)) if position == first => {
                        scan.restart((bounds.start.clone(), bounds.end.clone()));
                        Some((position, scan))
                    }
                    _ => None,
                };
                *next = match first {
                    Some(first) if bounds.reverse => tables.len() - first - 1,
                    Some(first) => first,
                    None => tables.len(),
                };
                if reuse.is_some() {
                    *next += 1;
                }
                *current = reuse;
            }
        }
    }
}

impl RowSource {
    /// Moves the table being read past the deleted range `start..end`, if
    /// the table holds nothing a tombstone at `cover` leaves standing (all
    /// of its rows there are below it). Only the current table: the next
    /// one of a run may hold newer rows in the range, and is read as usual.
    fn skip_covered(&mut self, cover: u64, start: &Bytes, end: Option<&Bytes>, bounds: &ScanBounds) {
        let RowSource::Tables { tables, current, .. } = self else {
            return;
        };
        let Some((position, scan)) = current else {
            return;
        };
        if tables.get(*position).is_none_or(|table| table.handle.max_seq >= cover) {
            return;
        }
        if bounds.reverse {
            scan.restart((bounds.start.clone(), Bound::Excluded(start.clone())));
        } else {
            match end {
                Some(end) => scan.restart((Bound::Included(end.clone()), bounds.end.clone())),
                // Covered to the end: nothing more of this table is read.
                None => *current = None,
            }
        }
    }
}

/// Whether every row of `table` lies under one deleted range whose
/// tombstone is newer than all of them: then the table is not even opened.
fn buried(table: &LazyTable, bounds: &ScanBounds) -> bool {
    let Some(deletes) = &bounds.range_deletes else {
        return false;
    };
    let handle = &table.handle;
    if handle.rows == 0 {
        return false;
    }
    let mut hint = 0;
    let cover = deletes.covering_near(&handle.first_key, &mut hint).first().copied();
    let reaches = deletes
        .fragment(&handle.first_key)
        .is_some_and(|(_, end)| end.is_none_or(|end| handle.last_key < *end));
    reaches && cover.is_some_and(|cover| handle.max_seq < cover)
}

fn overlaps(table: &LazyTable, bounds: &ScanBounds) -> bool {
    let after_end = match &bounds.end {
        Bound::Included(end) => table.handle.first_key > *end,
        Bound::Excluded(end) => table.handle.first_key >= *end,
        Bound::Unbounded => false,
    };
    let before_start = match &bounds.start {
        Bound::Included(start) => table.handle.last_key < *start,
        Bound::Excluded(start) => table.handle.last_key <= *start,
        Bound::Unbounded => false,
    };
    !after_end && !before_start
}

/// The sources of `view`, newest first.
pub fn sources_for(view: &ReadView) -> Vec<RowSource> {
    let memtable = |table: &Arc<Memtable>| RowSource::Memtable {
        table: table.clone(),
        buffer: VecDeque::new(),
        last: None,
        done: false,
    };
    let mut sources = vec![memtable(&view.memtable)];
    sources.extend(view.frozen.iter().map(|frozen| memtable(&frozen.table)));
    sources.extend(view.l0.iter().map(|table| RowSource::Tables {
        tables: vec![table.clone()],
        next: 0,
        current: None,
    }));
    sources.extend(view.runs.iter().map(|run| RowSource::Tables {
        tables: run.clone(),
        next: 0,
        current: None,
    }));
    sources
}

/// The merge state of one scan.
#[derive(Debug)]
pub struct Merge {
    tables: TableStore,
    bounds: ScanBounds,
    /// The range the scan was created with (seeks narrow `bounds` inside
    /// it).
    range: (Bound<Bytes>, Bound<Bytes>),
    sources: Vec<RowSource>,
    heads: Vec<Option<Row>>,
    started: bool,
    /// Whether the range tombstones at or below the scan's sequence number
    /// are loaded (into `bounds`, on the first live read; compaction, which
    /// reads every version, never loads them).
    range_deletes_loaded: bool,
    /// Range tombstones laid over the sources (a transaction's own).
    extra_range_deletes: Vec<RangeTombstone>,
    /// Per source, covered rows read in a row.
    covered_in_a_row: Vec<u32>,
    /// Per source, where its last row was among the range deletes'
    /// fragments.
    fragment_hints: Vec<usize>,
}

/// Merges `sources` into live key/value pairs in key order.
pub fn merge_sources(tables: TableStore, bounds: ScanBounds, sources: Vec<RowSource>) -> Merge {
    let heads = sources.iter().map(|_| None).collect();
    Merge {
        tables,
        range: (bounds.start.clone(), bounds.end.clone()),
        bounds,
        sources,
        heads,
        started: false,
        range_deletes_loaded: false,
        extra_range_deletes: Vec::new(),
        covered_in_a_row: Vec::new(),
        fragment_hints: Vec::new(),
    }
}

impl Merge {
    async fn start(&mut self) -> Result<(), Error> {
        if !self.started {
            for index in 0..self.sources.len() {
                self.advance(index).await?;
            }
            self.started = true;
        }
        Ok(())
    }

    /// Lays `tombstones` over the sources: rows they cover read as deleted.
    #[must_use]
    pub fn with_range_tombstones(mut self, tombstones: Vec<RangeTombstone>) -> Merge {
        self.extra_range_deletes = tombstones;
        self
    }

    /// Refills source `index`'s head; a row a range tombstone covers comes
    /// out as a tombstone. After many covered rows in a row from a table
    /// holding nothing newer than the tombstone, the source jumps past the
    /// deleted range.
    async fn advance(&mut self, index: usize) -> Result<(), Error> {
        let mut row = self.sources[index].next(&self.tables, &self.bounds).await?;
        if let (Some(deletes), Some(head)) = (&self.bounds.range_deletes, &mut row) {
            // Loaded at or below the scan's sequence number: the highest
            // covering tombstone is the one that counts.
            let hint = &mut self.fragment_hints[index];
            let cover = deletes.covering_near(&head.key, hint).first().copied().unwrap_or(0);
            let in_a_row = &mut self.covered_in_a_row[index];
            if head.seq < cover {
                head.value = RowValue::Tombstone;
                head.expire_ms = None;
                *in_a_row += 1;
                if *in_a_row >= COVERED_BEFORE_SKIP {
                    *in_a_row = 0;
                    if let Some((start, end)) = deletes.fragment(&head.key) {
                        self.sources[index].skip_covered(cover, start, end, &self.bounds);
                    }
                }
            } else {
                *in_a_row = 0;
            }
        }
        self.heads[index] = row;
        Ok(())
    }

    /// Loads the range tombstones of every source visible at the scan's
    /// sequence number, once (before the first head is read).
    async fn load_range_deletes(&mut self) -> Result<(), Error> {
        if self.range_deletes_loaded {
            return Ok(());
        }
        let max_seq = self.bounds.max_seq;
        let mut tombstones = Vec::new();
        for source in &self.sources {
            match source {
                RowSource::Memtable { table, .. } => tombstones.extend(table.range_tombstones()),
                RowSource::Tables { tables: list, .. } => {
                    let holding = list
                        .iter()
                        .filter(|table| table.handle.range_deletes > 0 && table.handle.min_seq <= max_seq);
                    for table in holding {
                        let reader = table.reader(&self.tables).await?;
                        tombstones.extend(reader.meta().range_tombstones.iter().cloned());
                    }
                }
            }
        }
        tombstones.retain(|tombstone| tombstone.seq <= max_seq);
        // Laid over the snapshot whatever their sequence numbers.
        tombstones.extend(self.extra_range_deletes.iter().cloned());
        let deletes = RangeDeletes::new(&tombstones);
        self.covered_in_a_row = vec![0; self.sources.len()];
        self.fragment_hints = vec![0; self.sources.len()];
        if !deletes.is_empty() && self.started {
            // Heads read before the load would escape it.
            self.seek_to_current();
        }
        self.range_deletes_loaded = true;
        self.bounds.range_deletes = (!deletes.is_empty()).then(|| Arc::new(deletes));
        Ok(())
    }

    /// Starts the sources again where the scan's bounds say.
    fn seek_to_current(&mut self) {
        for source in &mut self.sources {
            source.seek(&self.bounds);
        }
        self.heads.iter_mut().for_each(|head| *head = None);
        self.started = false;
    }

    /// Whether keys come in descending order.
    pub fn is_reverse(&self) -> bool {
        self.bounds.reverse
    }

    /// Moves the scan so that the next key it returns is the first at or
    /// after `key` (at or before, in reverse), within the range it was
    /// created with: a key before that range starts it again, one past it
    /// ends it. Seeks may go either way; they reopen no table.
    pub fn seek(&mut self, key: &[u8]) {
        let key = Bytes::copy_from_slice(key);
        if self.bounds.reverse {
            let inside = match &self.range.1 {
                Bound::Included(end) | Bound::Excluded(end) => key < *end,
                Bound::Unbounded => true,
            };
            self.bounds.end = if inside {
                Bound::Included(key)
            } else {
                self.range.1.clone()
            };
        } else {
            let inside = match &self.range.0 {
                Bound::Included(start) | Bound::Excluded(start) => key > *start,
                Bound::Unbounded => true,
            };
            self.bounds.start = if inside {
                Bound::Included(key)
            } else {
                self.range.0.clone()
            };
        }
        self.seek_to_current();
    }

    /// The source whose head comes first in table order (smallest key,
    /// then newest version).
    fn first_head(&self) -> Option<usize> {
        let mut best: Option<(usize, &Row)> = None;
        for (index, head) in self.heads.iter().enumerate() {
            let Some(row) = head else { continue };
            let better = best.is_none_or(|(_, current)| {
                (row.key.as_ref(), std::cmp::Reverse(row.seq)) < (current.key.as_ref(), std::cmp::Reverse(current.seq))
            });
            if better {
                best = Some((index, row));
            }
        }
        best.map(|(index, _)| index)
    }

    /// The next row of any source in table order, every version of every
    /// key, tombstones included (what compaction reads).
    pub async fn next_version(&mut self) -> Result<Option<Row>, Error> {
        self.start().await?;
        let Some(best) = self.first_head() else {
            return Ok(None);
        };
        let row = self.heads[best].take();
        self.advance(best).await?;
        Ok(row)
    }

    /// The next live key and its newest visible value (the next smaller
    /// key in a reverse scan), merge operands folded.
    pub async fn next(&mut self) -> Result<Option<(Bytes, Bytes)>, Error> {
        self.load_range_deletes().await?;
        if self.bounds.reverse {
            return self.next_reverse().await;
        }
        self.start().await?;
        loop {
            // The smallest key; among equal keys the newest version.
            let Some(best) = self.first_head() else {
                return Ok(None);
            };
            let Some(row) = self.heads[best].take() else {
                return Ok(None);
            };
            self.advance(best).await?;
            let now_ms = self.bounds.now_ms;
            if !matches!(row.value, RowValue::Merge(_)) {
                self.skip_key(&row.key).await?;
                if let Some(value) = row.live_value(now_ms).cloned() {
                    return Ok(Some((row.key, value)));
                }
                continue;
            }
            // Operands: take the key's older versions newest first, across
            // sources, until the fold has its base.
            let mut fold = Fold::default();
            fold.push(&row, now_ms);
            while let Some(next) = self.first_head() {
                let same = self.heads[next].as_ref().is_some_and(|head| head.key == row.key);
                if !same {
                    break;
                }
                let version = self.heads[next].take();
                self.advance(next).await?;
                let wants_more = version.as_ref().is_some_and(|version| fold.push(version, now_ms));
                if !wants_more {
                    self.skip_key(&row.key).await?;
                    break;
                }
            }
            if let Some(value) = fold.finish(&row.key, &self.bounds.operator)? {
                return Ok(Some((row.key, value)));
            }
        }
    }

    /// Drops every remaining version of `key` from every source.
    async fn skip_key(&mut self, key: &Bytes) -> Result<(), Error> {
        for index in 0..self.sources.len() {
            while self.heads[index].as_ref().is_some_and(|head| head.key == *key) {
                self.advance(index).await?;
            }
        }
        Ok(())
    }

    /// [`Merge::next`] of a reverse scan: the largest key left, with its
    /// visible versions across every source (each source gives a key's
    /// versions oldest first) folded newest first.
    async fn next_reverse(&mut self) -> Result<Option<(Bytes, Bytes)>, Error> {
        self.start().await?;
        loop {
            let largest = self.heads.iter().flatten().map(|row| &row.key).max().cloned();
            let Some(key) = largest else {
                return Ok(None);
            };
            let mut newest: Option<Row> = None;
            let mut operands = false;
            let mut versions: Vec<Row> = Vec::new();
            for index in 0..self.sources.len() {
                while self.heads[index].as_ref().is_some_and(|head| head.key == key) {
                    let Some(row) = self.heads[index].take() else {
                        break;
                    };
                    self.advance(index).await?;
                    operands |= matches!(row.value, RowValue::Merge(_));
                    if operands {
                        versions.push(row);
                    } else if newest.as_ref().is_none_or(|best| row.seq > best.seq) {
                        newest = Some(row);
                    }
                }
            }
            let now_ms = self.bounds.now_ms;
            if !operands {
                if let Some(value) = newest.as_ref().and_then(|row| row.live_value(now_ms)) {
                    return Ok(Some((key, value.clone())));
                }
                continue;
            }
            versions.extend(newest);
            versions.sort_unstable_by_key(|row| std::cmp::Reverse(row.seq));
            let mut fold = Fold::default();
            for version in &versions {
                if !fold.push(version, now_ms) {
                    break;
                }
            }
            if let Some(value) = fold.finish(&key, &self.bounds.operator)? {
                return Ok(Some((key, value)));
            }
        }
    }
}
