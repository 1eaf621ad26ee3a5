//! The read path. Readers never message actors: they load the current
//! [`ReadView`] (published atomically by the WAL writer and the L0 manifest
//! writer) and search it newest source first.
//!
//! Owns: the view's shape, point lookups, and the k-way merge behind scans
//! (newest version per key, tombstones hidden, a sequence ceiling honoured).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

pub(crate) mod merge;
pub mod operator;
pub use merge::sources_for;
use operator::{Fold, Operator};

use crate::error::Error;
use crate::format::{Row, RowValue};
use crate::manifest::{Manifest, TableHandle};
use crate::mem::Memtable;
use crate::store::{TableReader, TableStore, Ulid};

/// A sorted table in the view, opened on first use.
#[derive(Debug)]
pub struct LazyTable {
    pub handle: TableHandle,
    reader: tokio::sync::OnceCell<TableReader>,
}

impl LazyTable {
    pub fn new(handle: TableHandle) -> Self {
        LazyTable {
            handle,
            reader: tokio::sync::OnceCell::new(),
        }
    }

    pub async fn reader(&self, tables: &TableStore) -> Result<&TableReader, Error> {
        self.reader
            .get_or_try_init(|| tables.open(self.handle.table_id(), Some(self.handle.size)))
            .await
            .map_err(Error::from)
    }

    fn may_hold(&self, key: &[u8], max_seq: u64) -> bool {
        self.handle.min_seq <= max_seq && self.handle.first_key.as_ref() <= key && key <= self.handle.last_key.as_ref()
    }
}

/// A frozen memtable waiting to become an L0 table.
#[derive(Clone, Debug)]
pub struct Frozen {
    pub table: Arc<Memtable>,
    pub last_seq: u64,
}

/// Everything a reader searches, newest first. Immutable once published.
#[derive(Clone, Debug)]
pub struct ReadView {
    pub memtable: Arc<Memtable>,
    pub frozen: Vec<Frozen>,
    pub l0: Vec<Arc<LazyTable>>,
    /// Sorted runs, newest first; each run's tables in key order.
    pub runs: Vec<Vec<Arc<LazyTable>>>,
}

impl ReadView {
    /// A view of `memtable` over `manifest`'s tables, nothing frozen (what
    /// an open starts from).
    pub fn new(memtable: Arc<Memtable>, manifest: &Manifest) -> ReadView {
        let empty = ReadView {
            memtable,
            frozen: Vec::new(),
            l0: Vec::new(),
            runs: Vec::new(),
        };
        empty.with_manifest(manifest)
    }

    /// The view's tables from `manifest`, reusing tables already open in
    /// `previous`.
    pub fn with_manifest(&self, manifest: &Manifest) -> ReadView {
        let open: HashMap<Ulid, &Arc<LazyTable>> = self
            .l0
            .iter()
            .chain(self.runs.iter().flatten())
            .map(|table| (table.handle.id, table))
            .collect();
        let known = |handle: &TableHandle| match open.get(&handle.id) {
            Some(table) => Arc::clone(table),
            None => Arc::new(LazyTable::new(handle.clone())),
        };
        ReadView {
            memtable: self.memtable.clone(),
            frozen: self
                .frozen
                .iter()
                .filter(|frozen| frozen.last_seq > manifest.last_l0_seq)
                .cloned()
                .collect(),
            l0: manifest.l0.iter().map(known).collect(),
            runs: manifest
                .sorted_runs
                .iter()
                .map(|run| run.tables.iter().map(known).collect())
                .collect(),
        }
    }

    /// The tables this view searches.
    pub fn shape(&self) -> TreeShape {
        let tables = self.l0.iter().chain(self.runs.iter().flatten());
        TreeShape {
            l0_tables: self.l0.len() as u64,
            sorted_runs: self.runs.len() as u64,
            run_tables: self.runs.iter().map(Vec::len).sum::<usize>() as u64,
            table_bytes: tables.map(|table| table.handle.size).sum(),
        }
    }

    /// Bytes in the memtable and the frozen ones.
    pub fn memtable_bytes(&self) -> u64 {
        let frozen: usize = self.frozen.iter().map(|frozen| frozen.table.size()).sum();
        (self.memtable.size() + frozen) as u64
    }
}

impl ReadView {
    /// The value of `key` a read at `max_seq` and `now_ms` sees: its newest
    /// version, with any merge operands on top folded by `operator` over
    /// the first version below them that is not one.
    pub async fn get_value(
        &self,
        tables: &TableStore,
        key: &[u8],
        max_seq: u64,
        now_ms: u64,
        operator: &Operator,
    ) -> Result<Option<Bytes>, Error> {
        // Rows below the newest range tombstone covering the key read as
        // deleted: a source holding nothing newer is not searched, and in
        // the others the first covered row ends the read.
        let cover = self.range_cover(tables, key, max_seq).await?;
        // Sources newest first: memtables, then each L0 table, then the one
        // table of each run that can hold the key.
        let memtables = std::iter::once(&self.memtable)
            .chain(self.frozen.iter().map(|frozen| &frozen.table))
            .filter(|memtable| memtable.seq_range().is_some_and(|(_, last)| last >= cover))
            .map(|memtable| PointSource::Memtable(memtable));
        let runs = self.runs.iter().filter_map(|run| {
            let at = run.partition_point(|table| table.handle.last_key.as_ref() < key);
            run.get(at)
        });
        let tables_in_order = self
            .l0
            .iter()
            .chain(runs)
            .filter(|table| table.may_hold(key, max_seq) && table.handle.max_seq >= cover)
            .map(|table| PointSource::Table(table));
        let mut fold = Fold::default();
        for source in memtables.chain(tables_in_order) {
            // Most keys have no operands: the newest version is the answer,
            // and only an operand makes the read go on.
            let rows = if fold.is_empty() {
                match source.newest(tables, key, max_seq).await? {
                    None => continue,
                    Some(row) if row.seq < cover => return Ok(None),
                    Some(row) if !matches!(row.value, RowValue::Merge(_)) => {
                        return Ok(row.live_value(now_ms).cloned());
                    }
                    Some(_) => source.versions(tables, key, max_seq).await?,
                }
            } else {
                source.versions(tables, key, max_seq).await?
            };
            for row in &rows {
                let wants_more = if row.seq < cover {
                    fold.push(&Row::tombstone(row.key.clone(), row.seq), now_ms)
                } else {
                    fold.push(row, now_ms)
                };
                if !wants_more {
                    return fold.finish(key, operator);
                }
            }
        }
        fold.finish(key, operator)
    }

    /// The sequence number of the newest range tombstone at or below
    /// `max_seq` covering `key` in any memtable or table of the view (0:
    /// none). Only tables the manifest says hold range tombstones are
    /// opened for it.
    async fn range_cover(&self, tables: &TableStore, key: &[u8], max_seq: u64) -> Result<u64, Error> {
        let mut cover = 0;
        let memtables = std::iter::once(&self.memtable).chain(self.frozen.iter().map(|frozen| &frozen.table));
        for memtable in memtables {
            if let Some(deletes) = memtable.range_deletes() {
                cover = cover.max(deletes.cover(key, max_seq));
            }
        }
        let holding = self
            .l0
            .iter()
            .chain(self.runs.iter().flatten())
            .filter(|table| table.handle.range_deletes > 0 && table.handle.min_seq <= max_seq);
        for table in holding {
            let reader = table.reader(tables).await?;
            cover = cover.max(reader.range_deletes().cover(key, max_seq));
        }
        Ok(cover)
    }
}

/// A source a point lookup searches.
enum PointSource<'a> {
    Memtable(&'a Memtable),
    Table(&'a LazyTable),
}

impl PointSource<'_> {
    /// The newest version of `key` at or below `max_seq`.
    async fn newest(&self, tables: &TableStore, key: &[u8], max_seq: u64) -> Result<Option<Row>, Error> {
        match self {
            PointSource::Memtable(memtable) => Ok(memtable.get(key, max_seq)),
            PointSource::Table(table) => Ok(table.reader(tables).await?.get(key, max_seq).await?),
        }
    }

    /// Every version of `key` at or below `max_seq`, newest first.
    async fn versions(&self, tables: &TableStore, key: &[u8], max_seq: u64) -> Result<Vec<Row>, Error> {
        match self {
            PointSource::Memtable(memtable) => Ok(memtable.versions(key, max_seq)),
            PointSource::Table(table) => Ok(table.reader(tables).await?.versions(key, max_seq).await?),
        }
    }
}

/// The sequence numbers readers filter by.
#[derive(Debug, Default)]
pub struct Seqs {
    /// Every write at or below this is complete in the memtable.
    pub visible: AtomicU64,
    /// Every write at or below this is in a durable WAL table (or L0).
    pub durable: AtomicU64,
}

impl Seqs {
    pub fn new(both: u64) -> Self {
        Seqs {
            visible: AtomicU64::new(both),
            durable: AtomicU64::new(both),
        }
    }

    pub fn visible(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    pub fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }
}

/// A key and its value, as scans return them.
pub type KeyValue = (Bytes, Bytes);

/// The tables of the current read view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeShape {
    /// Tables in L0.
    pub l0_tables: u64,
    /// Sorted runs.
    pub sorted_runs: u64,
    /// Tables in all sorted runs.
    pub run_tables: u64,
    /// Bytes of every table in L0 and the runs (the live data).
    pub table_bytes: u64,
}
