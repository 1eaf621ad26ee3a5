//! One compaction job: merge the rows of its sources (L0 tables and whole
//! sorted runs) and write them as the tables of one sorted run.
//!
//! What survives, per key (versions newest first):
//! - every version newer than `retain_seq` (a live snapshot or checkpoint
//!   at or above `retain_seq` may read any of them), and the newest version
//!   at or below it (what a reader at `retain_seq` sees); older versions
//!   are shadowed for every reader and dropped;
//! - a tombstone that is the oldest survivor and at or below `retain_seq`
//!   is dropped too when the output is the oldest run (`bottom`): nothing
//!   older can exist beneath it. Elsewhere it stays, to hide older data.
//!
//! A range tombstone of an input acts on each key it covers as a tombstone
//! at its sequence number among the key's versions: the versions it
//! shadows for every reader go. The range tombstone itself stays in the
//! output (in its last table) unless the output is the bottom run and
//! every reader sees it (`seq <= retain_seq`): then nothing it covers can
//! remain below it.
//!
//! Output tables are cut at `target_table_bytes`, only between keys: every
//! version of a key lands in one table, so a lookup reads one table per run.

use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, ErrorKind};
use crate::format::sst::TableKind;
use crate::format::{RangeDeletes, RangeTombstone, Row, RowValue};
use crate::manifest::TableHandle;
use crate::read::LazyTable;
use crate::read::merge::{Merge, RowSource, ScanBounds, merge_sources};
use crate::read::operator::Operator;
use crate::store::{Pacer, ScanOptions, TableStore};

/// What a job reads and how it writes.
#[derive(Clone, Debug)]
pub struct JobInput {
    /// Each source in key order: one L0 table, or a sorted run's tables.
    /// Newest source first (order breaks no ties: sequence numbers do).
    pub sources: Vec<Vec<TableHandle>>,
    /// The oldest sequence number a live snapshot or checkpoint reads.
    pub retain_seq: u64,
    /// Rows that expire at or before this time (the job's start, by the
    /// compactor's clock) are written as tombstones: every read from then
    /// on sees them as deleted, at any sequence number, so the tombstone
    /// reads the same and still hides what they overwrote.
    pub expire_before_ms: u64,
    /// Folds merge operands (`None`: they are kept as they are).
    pub merge_operator: Operator,
    /// Whether the output is the oldest run (tombstones may go).
    pub bottom: bool,
    /// Output tables are cut once they reach this size.
    pub target_table_bytes: usize,
    /// Blocks fetched per read while scanning the inputs.
    pub read_ahead_blocks: usize,
    /// The share of wall-clock time the job may use while foreground
    /// reads are busy (see [`crate::store::pace`]).
    pub busy_share: f64,
}

/// What a job wrote and what it cost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobOutput {
    /// The output tables, in key order.
    pub tables: Vec<TableHandle>,
    pub rows_in: u64,
    pub rows_out: u64,
    /// Sizes of the input tables.
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// `row`, or a tombstone in its place if it expired at or before
/// `expire_before_ms`.
pub fn expire(row: Row, expire_before_ms: u64) -> Row {
    if row.value == RowValue::Tombstone || !row.expired(expire_before_ms) {
        return row;
    }
    Row {
        value: RowValue::Tombstone,
        expire_ms: None,
        ..row
    }
}

/// The versions of one key (newest first) that survive: every version
/// above `retain_seq` as it is, and one row for what a reader at
/// `retain_seq` sees (the newest version at or below it, with merge
/// operands folded by `operator` into a value, or, without the version
/// below them, into one operand if the operator can). A tombstone left
/// as the oldest survivor of the bottom run goes.
pub fn surviving(versions: &[Row], retain_seq: u64, bottom: bool, operator: &Operator) -> Vec<Row> {
    let visible = versions
        .iter()
        .position(|row| row.seq <= retain_seq)
        .unwrap_or(versions.len());
    let mut kept = versions[..visible].to_vec();
    kept.extend(fold_visible(&versions[visible..], bottom, operator));
    match kept.last() {
        Some(oldest) if bottom && oldest.seq <= retain_seq && oldest.value == RowValue::Tombstone => {
            kept.pop();
        }
        _ => {}
    }
    kept
}

/// The rows that stand for `below` (a key's versions at or below
/// `retain_seq`, newest first): its newest version, with any operands on
/// top of it folded. Operands stay as they are when folding would change
/// a later answer (the version below them has a TTL still to run), when
/// the operator fails, or when there is no operator.
fn fold_visible(below: &[Row], bottom: bool, operator: &Operator) -> Vec<Row> {
    let Some(newest) = below.first() else {
        return Vec::new();
    };
    if !matches!(newest.value, RowValue::Merge(_)) {
        return vec![newest.clone()];
    }
    let base_at = below.iter().position(|row| !matches!(row.value, RowValue::Merge(_)));
    let operands: Vec<&[u8]> = below[..base_at.unwrap_or(below.len())]
        .iter()
        .rev()
        .filter_map(|row| row.value.bytes().map(|bytes| bytes.as_ref()))
        .collect();
    let unfolded = || below[..base_at.map_or(below.len(), |at| at + 1)].to_vec();
    let Some(merge) = operator else {
        return unfolded();
    };
    let row = |value: RowValue| Row {
        key: newest.key.clone(),
        value,
        seq: newest.seq,
        create_ms: None,
        expire_ms: None,
    };
    let base = match base_at.map(|at| &below[at]) {
        Some(base) if base.expire_ms.is_some() => return unfolded(),
        Some(base) => Some(base.value.bytes().map(|bytes| bytes.as_ref())),
        None if bottom => Some(None),
        None => None,
    };
    match base {
        Some(base) => match merge.full_merge(&newest.key, base, &operands) {
            Ok(value) => vec![row(RowValue::Value(value))],
            Err(_) => unfolded(),
        },
        None => match merge.partial_merge(&newest.key, &operands) {
            Some(Ok(operand)) => vec![row(RowValue::Merge(operand))],
            Some(Err(_)) | None => unfolded(),
        },
    }
}

/// Told of each output table a job has written.
pub type OnTable = Box<dyn Fn(&TableHandle) + Send + Sync>;

/// How a running job talks back: told to stop, telling of each table.
#[derive(Default)]
pub struct JobHooks {
    /// Set to stop the job between keys (it then fails with `Closed`).
    pub cancel: Arc<AtomicBool>,
    /// Called with each output table once it is in the store, so the
    /// compactor can list it before the job ends.
    pub on_table: Option<OnTable>,
}

impl std::fmt::Debug for JobHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHooks")
            .field("cancel", &self.cancel.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Runs the job: reads every source once, writes the output tables with
/// conditional creates.
pub async fn run(tables: &TableStore, input: &JobInput, hooks: &JobHooks) -> Result<JobOutput, Error> {
    let mut output = JobOutput {
        bytes_in: input.sources.iter().flatten().map(|table| table.size).sum(),
        ..JobOutput::default()
    };
    let sources = input
        .sources
        .iter()
        .map(|source| RowSource::Tables {
            tables: source
                .iter()
                .map(|handle| Arc::new(LazyTable::new(handle.clone())))
                .collect(),
            next: 0,
            current: None,
        })
        .collect();
    let bounds = ScanBounds {
        start: Bound::Unbounded,
        end: Bound::Unbounded,
        max_seq: u64::MAX,
        // Compaction reads every version (`next_version`); expiry is
        // applied below, at `expire_before_ms`.
        now_ms: 0,
        operator: None,
        options: ScanOptions {
            read_ahead_blocks: input.read_ahead_blocks.max(1),
            fill_cache: false,
        },
        reverse: false,
        range_deletes: None,
    };
    let mut merge = merge_sources(tables.clone(), bounds, sources);
    let mut writer = RunWriter::new(tables, input.target_table_bytes, hooks);
    let result = match input_range_tombstones(tables, input).await {
        Ok(range_tombstones) => merge_into(&mut merge, &mut writer, input, &range_tombstones, &mut output).await,
        Err(error) => Err(error),
    };
    if result.is_err() {
        // What a failed job wrote is garbage: let the collector have it.
        for table in &writer.written {
            tables.in_flight().remove(table.id);
        }
    }
    result.map(|()| output)
}

/// Every range tombstone of the job's input tables.
async fn input_range_tombstones(tables: &TableStore, input: &JobInput) -> Result<Vec<RangeTombstone>, Error> {
    let mut tombstones = Vec::new();
    for handle in input.sources.iter().flatten().filter(|handle| handle.range_deletes > 0) {
        let reader = tables.open(handle.table_id(), Some(handle.size)).await?;
        tombstones.extend(reader.meta().range_tombstones.iter().cloned());
    }
    Ok(tombstones)
}

/// The surviving versions of one key (newest first) under the input's
/// range tombstones: each covering tombstone stands among the versions as
/// a tombstone row at its sequence number while [`surviving`] decides, and
/// is left out of what is written (the range tombstone itself carries it).
fn surviving_under(versions: &[Row], deletes: &RangeDeletes, input: &JobInput) -> Vec<Row> {
    let covering = match versions.first() {
        Some(first) if !deletes.is_empty() => deletes.covering(&first.key),
        _ => &[],
    };
    if covering.is_empty() {
        return surviving(versions, input.retain_seq, input.bottom, &input.merge_operator);
    }
    let key = versions[0].key.clone();
    let mut rows: Vec<Row> = versions.to_vec();
    rows.extend(covering.iter().map(|seq| Row::tombstone(key.clone(), *seq)));
    rows.sort_by_key(|row| std::cmp::Reverse(row.seq));
    // No row shares a sequence number with a range tombstone: each write
    // of a batch has its own.
    surviving(&rows, input.retain_seq, input.bottom, &input.merge_operator)
        .into_iter()
        .filter(|row| !(row.value == RowValue::Tombstone && covering.contains(&row.seq)))
        .collect()
}

/// Feeds every key's surviving versions from `merge` to `writer`, then the
/// range tombstones that survive.
async fn merge_into(
    merge: &mut Merge,
    writer: &mut RunWriter<'_>,
    input: &JobInput,
    range_tombstones: &[RangeTombstone],
    output: &mut JobOutput,
) -> Result<(), Error> {
    let runtime = writer.tables.runtime().clone();
    let mut pacer = Pacer::new(writer.tables.pace(), input.busy_share, runtime.now());
    let deletes = RangeDeletes::new(range_tombstones);
    let mut versions: Vec<Row> = Vec::new();
    while let Some(row) = merge.next_version().await? {
        output.rows_in += 1;
        if output.rows_in.is_multiple_of(ROWS_PER_YIELD) {
            match pacer.pause(runtime.now()) {
                Some(rest) => {
                    runtime.sleep(rest).await;
                    pacer.resumed(runtime.now());
                }
                None => talus_actors::runtime::yield_now().await,
            }
        }
        if versions.last().is_some_and(|last| last.key != row.key) {
            if writer.hooks.cancel.load(Ordering::Relaxed) {
                return Err(Error::new(
                    ErrorKind::Closed { cause: None },
                    "the compaction was cancelled",
                ));
            }
            output.rows_out += writer.add_key(&surviving_under(&versions, &deletes, input)).await?;
            versions.clear();
        }
        versions.push(expire(row, input.expire_before_ms));
    }
    output.rows_out += writer.add_key(&surviving_under(&versions, &deletes, input)).await?;
    let kept = range_tombstones
        .iter()
        .filter(|tombstone| !(input.bottom && tombstone.seq <= input.retain_seq));
    writer.add_range_tombstones(kept.cloned());
    writer.cut().await?;
    output.tables = writer.written.clone();
    output.bytes_out = output.tables.iter().map(|table| table.size).sum();
    Ok(())
}

/// Rows a job merges between two yields to the executor. Blocks already
/// read make `next_version` ready at once, so without a yield a job would
/// hold its executor thread for a whole read-ahead (thousands of rows,
/// milliseconds) while gets queued behind it wait; 512 rows take tens of
/// microseconds.
const ROWS_PER_YIELD: u64 = 512;

/// Builds output tables, cutting between keys at the target size.
struct RunWriter<'a> {
    tables: &'a TableStore,
    hooks: &'a JobHooks,
    target: usize,
    builder: Option<crate::format::sst::SstBuilder>,
    written: Vec<TableHandle>,
}

impl<'a> RunWriter<'a> {
    fn new(tables: &'a TableStore, target: usize, hooks: &'a JobHooks) -> Self {
        RunWriter {
            tables,
            hooks,
            target: target.max(1),
            builder: None,
            written: Vec::new(),
        }
    }

    /// Adds every surviving version of one key; returns how many. A table
    /// that reached the target is cut before the key goes in, so the last
    /// table stays open for the range tombstones.
    async fn add_key(&mut self, versions: &[Row]) -> Result<u64, Error> {
        if versions.is_empty() {
            return Ok(0);
        }
        if self
            .builder
            .as_ref()
            .is_some_and(|builder| builder.estimated_size() >= self.target)
        {
            self.cut().await?;
        }
        let builder = self
            .builder
            .get_or_insert_with(|| self.tables.builder(TableKind::Sorted));
        for row in versions {
            builder.add(row);
        }
        Ok(versions.len() as u64)
    }

    /// Adds the surviving range tombstones to the last table (a table of
    /// nothing else if no row survived).
    fn add_range_tombstones(&mut self, tombstones: impl Iterator<Item = RangeTombstone>) {
        let mut tombstones = tombstones.peekable();
        if tombstones.peek().is_none() {
            return;
        }
        let builder = self
            .builder
            .get_or_insert_with(|| self.tables.builder(TableKind::Sorted));
        for tombstone in tombstones {
            builder.add_range_tombstone(tombstone);
        }
    }

    async fn cut(&mut self) -> Result<(), Error> {
        if let Some(builder) = self.builder.take() {
            let written = self.tables.write_sorted(builder).await?;
            let handle = TableHandle::from_written(&written)
                .ok_or_else(|| Error::internal("a compaction output got a WAL id"))?;
            if let Some(on_table) = &self.hooks.on_table {
                on_table(&handle);
            }
            self.written.push(handle);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use bytes::Bytes;
    use talus_actors::runtime::Sim;

    use super::*;
    use crate::store::{LatencyStore, ObjectStoreAdapter, TableStoreOptions};

    fn versions(key: &str, seqs: &[(u64, bool)]) -> Vec<Row> {
        seqs.iter()
            .map(|&(seq, tombstone)| {
                if tombstone {
                    Row::tombstone(key.to_owned(), seq)
                } else {
                    Row::value(key.to_owned(), format!("v{seq}"), seq)
                }
            })
            .collect()
    }

    fn seqs(rows: &[Row]) -> Vec<u64> {
        rows.iter().map(|row| row.seq).collect()
    }

    #[test]
    fn shadowed_versions_go_and_snapshot_versions_stay() {
        let rows = versions("k", &[(50, false), (40, false), (30, false), (20, false)]);
        assert_eq!(
            seqs(&surviving(&rows, 100, false, &None)),
            vec![50],
            "no snapshot: newest only"
        );
        assert_eq!(
            seqs(&surviving(&rows, 35, false, &None)),
            vec![50, 40, 30],
            "a reader at 35 sees 30"
        );
        assert_eq!(seqs(&surviving(&rows, 40, false, &None)), vec![50, 40]);
        assert_eq!(
            seqs(&surviving(&rows, 10, false, &None)),
            vec![50, 40, 30, 20],
            "everything is newer"
        );
    }

    #[test]
    fn tombstones_go_only_at_the_bottom_and_only_when_every_reader_sees_them() {
        let rows = versions("k", &[(50, true), (40, false)]);
        assert_eq!(
            seqs(&surviving(&rows, 100, false, &None)),
            vec![50],
            "kept above older runs"
        );
        assert!(surviving(&rows, 100, true, &None).is_empty(), "gone at the bottom");
        assert_eq!(
            seqs(&surviving(&rows, 45, true, &None)),
            vec![50, 40],
            "a reader at 45 still sees 40"
        );
        let rows = versions("k", &[(60, false), (50, true), (40, false)]);
        assert_eq!(
            seqs(&surviving(&rows, 55, true, &None)),
            vec![60],
            "the tombstone under a newer value"
        );
    }

    /// A range tombstone at 45 over a key's versions: what no reader at
    /// `retain_seq` or above can see goes, what a reader between them sees
    /// stays, and the tombstone itself never becomes a row.
    #[test]
    fn a_covering_range_tombstone_shadows_versions_like_a_tombstone() {
        let deletes = RangeDeletes::new(&[RangeTombstone {
            start: Bytes::from_static(b"a"),
            end: Some(Bytes::from_static(b"m")),
            seq: 45,
        }]);
        let input = |retain_seq: u64, bottom: bool| JobInput {
            sources: Vec::new(),
            retain_seq,
            expire_before_ms: 0,
            merge_operator: None,
            bottom,
            target_table_bytes: 1 << 20,
            read_ahead_blocks: 1,
            busy_share: 1.0,
        };
        let rows = versions("k", &[(50, false), (40, false), (30, false)]);
        assert_eq!(seqs(&surviving_under(&rows, &deletes, &input(100, false))), vec![50]);
        assert_eq!(
            seqs(&surviving_under(&rows, &deletes, &input(42, false))),
            vec![50, 40],
            "a reader at 42 reads 40, under the range tombstone"
        );
        let old = versions("k", &[(40, false), (30, false)]);
        assert!(surviving_under(&old, &deletes, &input(100, true)).is_empty());
        assert!(surviving_under(&old, &deletes, &input(100, false)).is_empty());
        let outside = versions("x", &[(40, false), (30, false)]);
        assert_eq!(seqs(&surviving_under(&outside, &deletes, &input(100, false))), vec![40]);
    }

    /// Appends operands; partial merges join them (unless told not to).
    #[derive(Debug)]
    struct Append {
        partial: bool,
    }

    impl crate::read::operator::MergeOperator for Append {
        fn name(&self) -> &str {
            "append"
        }

        fn full_merge(
            &self,
            _key: &[u8],
            base: Option<&[u8]>,
            operands: &[&[u8]],
        ) -> Result<bytes::Bytes, crate::read::operator::MergeError> {
            let mut value = base.unwrap_or(b"-").to_vec();
            for operand in operands {
                if operand == b"bad" {
                    return Err(crate::read::operator::MergeError::new("bad operand"));
                }
                value.extend_from_slice(operand);
            }
            Ok(value.into())
        }

        fn partial_merge(
            &self,
            _key: &[u8],
            operands: &[&[u8]],
        ) -> Option<Result<bytes::Bytes, crate::read::operator::MergeError>> {
            self.partial.then(|| Ok(operands.concat().into()))
        }
    }

    fn operand(seq: u64, bytes: &str) -> Row {
        Row {
            key: "k".into(),
            value: RowValue::Merge(bytes::Bytes::copy_from_slice(bytes.as_bytes())),
            seq,
            create_ms: None,
            expire_ms: None,
        }
    }

    fn values(rows: &[Row]) -> Vec<(u64, RowValue)> {
        rows.iter().map(|row| (row.seq, row.value.clone())).collect()
    }

    #[test]
    fn operands_below_every_reader_fold_into_one_row() {
        let append: Operator = Some(Arc::new(Append { partial: false }));
        let value = |text: &str| RowValue::Value(bytes::Bytes::copy_from_slice(text.as_bytes()));
        let rows = vec![
            operand(50, "c"),
            operand(40, "b"),
            Row::value("k", "a", 30),
            operand(20, "z"),
        ];
        assert_eq!(values(&surviving(&rows, 100, false, &append)), [(50, value("abc"))]);
        // A reader at 45 sees "ab": the operand above it stays.
        assert_eq!(
            values(&surviving(&rows, 45, false, &append)),
            [(50, RowValue::Merge("c".into())), (40, value("ab"))]
        );
        // No base in the input: folded over nothing at the bottom only...
        let operands = vec![operand(50, "c"), operand(40, "b")];
        assert_eq!(values(&surviving(&operands, 100, true, &append)), [(50, value("-bc"))]);
        assert_eq!(values(&surviving(&operands, 100, false, &append)), values(&operands));
        // ...or joined by a partial merge.
        let partial: Operator = Some(Arc::new(Append { partial: true }));
        assert_eq!(
            values(&surviving(&operands, 100, false, &partial)),
            [(50, RowValue::Merge("bc".into()))]
        );
        // Over a tombstone: folded over nothing.
        let rows = vec![operand(50, "c"), Row::tombstone("k", 40), Row::value("k", "a", 30)];
        assert_eq!(values(&surviving(&rows, 100, false, &append)), [(50, value("-c"))]);
    }

    #[test]
    fn operands_stay_when_folding_could_change_an_answer() {
        let append: Operator = Some(Arc::new(Append { partial: true }));
        let rows = vec![operand(50, "c"), Row::value("k", "a", 30)];
        assert_eq!(
            values(&surviving(&rows, 100, false, &None)),
            values(&rows),
            "no operator"
        );
        let failing = vec![operand(50, "bad"), Row::value("k", "a", 30)];
        assert_eq!(
            values(&surviving(&failing, 100, false, &append)),
            values(&failing),
            "it fails"
        );
        let mut expiring = rows.clone();
        expiring[1].expire_ms = Some(1_000);
        assert_eq!(
            values(&surviving(&expiring, 100, false, &append)),
            values(&expiring),
            "the base still has a TTL to run"
        );
    }

    /// A bottom job over one table of `rows` distinct keys, written first.
    async fn one_table_job(tables: &TableStore, rows: u64, read_ahead_blocks: usize, busy_share: f64) -> JobInput {
        let mut builder = tables.builder(TableKind::Sorted);
        for key in 0..rows {
            builder.add(&Row::value(format!("key{key:08}"), "v", key + 1));
        }
        let written = tables.write_sorted(builder).await.expect("input");
        JobInput {
            sources: vec![vec![TableHandle::from_written(&written).expect("sorted")]],
            retain_seq: 0,
            expire_before_ms: 0,
            merge_operator: None,
            bottom: true,
            target_table_bytes: 64 << 20,
            read_ahead_blocks,
            busy_share,
        }
    }

    /// A job over rows that are all at hand (an in-memory store answers at
    /// once) still lets other tasks run every `ROWS_PER_YIELD` rows.
    #[test]
    fn a_job_yields_to_other_tasks_while_it_merges() {
        let sim = Sim::new(4);
        let runtime = sim.runtime();
        sim.block_on(async move {
            let tables = TableStore::new(
                Arc::new(ObjectStoreAdapter::in_memory()),
                "db".into(),
                runtime.clone(),
                TableStoreOptions::default(),
            );
            let rows = 20 * ROWS_PER_YIELD;
            let input = one_table_job(&tables, rows, 1024, 1.0).await;
            let done = Arc::new(AtomicBool::new(false));
            let turns = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let (other_done, other_turns) = (done.clone(), turns.clone());
            let other = runtime.spawn(async move {
                while !other_done.load(Ordering::Relaxed) {
                    other_turns.fetch_add(1, Ordering::Relaxed);
                    talus_actors::runtime::yield_now().await;
                }
            });
            let output = run(&tables, &input, &JobHooks::default()).await.expect("job");
            let during = turns.load(Ordering::Relaxed);
            done.store(true, Ordering::Relaxed);
            other.await.expect("the other task");
            assert_eq!(output.rows_out, rows);
            assert!(
                during >= rows / ROWS_PER_YIELD / 2,
                "the other task ran {during} times while {rows} rows merged"
            );
        });
    }

    /// The virtual time a job takes over a store answering in 1 ms, while
    /// another task marks a foreground read every 100 us (when `reads`).
    fn paced_job_time(busy_share: f64, reads: bool, urgent: bool) -> Duration {
        let sim = Sim::new(5);
        let runtime = sim.runtime();
        sim.block_on(async move {
            let slow = LatencyStore::new(
                Arc::new(ObjectStoreAdapter::in_memory()),
                runtime.clone(),
                Duration::from_millis(1),
            );
            let tables = TableStore::new(
                Arc::new(slow),
                "db".into(),
                runtime.clone(),
                TableStoreOptions::default(),
            );
            let rows = 40 * ROWS_PER_YIELD;
            let input = one_table_job(&tables, rows, 2, busy_share).await;
            tables.pace().set_urgent(urgent);
            let done = Arc::new(AtomicBool::new(false));
            let (reader_done, reader_tables, reader_runtime) = (done.clone(), tables.clone(), runtime.clone());
            let reader = runtime.spawn(async move {
                while reads && !reader_done.load(Ordering::Relaxed) {
                    reader_tables.pace().read();
                    reader_runtime.sleep(Duration::from_micros(100)).await;
                }
            });
            let started = runtime.now();
            let output = run(&tables, &input, &JobHooks::default()).await.expect("job");
            let took = runtime.now() - started;
            done.store(true, Ordering::Relaxed);
            reader.await.expect("the reader");
            assert_eq!(output.rows_out, rows);
            took
        })
    }

    /// While reads arrive, a job at a quarter share takes about four times
    /// as long as at full speed; without reads, or while L0 is urgent, it
    /// is not slowed at all.
    #[test]
    fn a_job_rests_while_foreground_reads_are_busy() {
        let full = paced_job_time(1.0, true, false);
        let quiet = paced_job_time(0.25, false, false);
        let urgent = paced_job_time(0.25, true, true);
        let paced = paced_job_time(0.25, true, false);
        assert!(full >= Duration::from_millis(10), "the inputs took {full:?} to read");
        assert_eq!(quiet, full, "no reads: no rest");
        assert_eq!(urgent, full, "urgent: no rest");
        assert!(
            paced >= full * 3 && paced <= full * 5,
            "paced {paced:?} against {full:?} at full speed"
        );
    }

    /// Three overlapping inputs merge into a run of several tables, cut
    /// between keys, holding exactly the surviving versions.
    #[test]
    fn a_job_merges_inputs_into_a_run_cut_between_keys() {
        let sim = Sim::new(3);
        let runtime = sim.runtime();
        sim.block_on(async move {
            let tables = TableStore::new(
                Arc::new(ObjectStoreAdapter::in_memory()),
                "db".into(),
                runtime,
                TableStoreOptions::default(),
            );
            // Input n holds keys 0..300 at sequence 1000*n + key; every
            // third key is a tombstone in the newest input.
            let mut inputs = Vec::new();
            for n in 1..=3u64 {
                let mut builder = tables.builder(TableKind::Sorted);
                for key in 0..300u64 {
                    let seq = 1000 * n + key;
                    let name = format!("key{key:04}");
                    builder.add(&if n == 3 && key % 3 == 0 {
                        Row::tombstone(name, seq)
                    } else {
                        Row::value(name, format!("{n}-{}", "x".repeat(50)), seq)
                    });
                }
                let written = tables.write_sorted(builder).await.expect("input");
                inputs.push(vec![TableHandle::from_written(&written).expect("sorted")]);
            }
            inputs.reverse();
            let input = JobInput {
                sources: inputs,
                retain_seq: 2500,
                expire_before_ms: 0,
                merge_operator: None,
                bottom: true,
                target_table_bytes: 8 << 10,
                read_ahead_blocks: 4,
                busy_share: 1.0,
            };
            let output = run(&tables, &input, &JobHooks::default()).await.expect("job");
            assert_eq!(output.rows_in, 900);
            assert!(output.tables.len() > 1, "cut at the target size");
            for pair in output.tables.windows(2) {
                assert!(
                    pair[0].last_key < pair[1].first_key,
                    "tables in key order, no key split"
                );
            }

            let mut found: BTreeMap<Bytes, Vec<u64>> = BTreeMap::new();
            for handle in &output.tables {
                let reader = tables.open(handle.table_id(), Some(handle.size)).await.expect("open");
                let mut scan = reader.scan(
                    (Bound::Unbounded, Bound::Unbounded),
                    ScanOptions {
                        read_ahead_blocks: 8,
                        fill_cache: false,
                    },
                );
                while let Some(row) = scan.next().await.expect("scan") {
                    found.entry(row.key).or_default().push(row.seq);
                }
            }
            for key in 0..300u64 {
                let name = Bytes::from(format!("key{key:04}"));
                // Input 3 (seq 3000+key) is newer than retain_seq; input 2
                // (2000+key) is what a reader at 2500 sees; input 1 is
                // shadowed. A tombstone above retain_seq stays.
                let expected = vec![3000 + key, 2000 + key];
                assert_eq!(found.get(&name), Some(&expected), "{name:?}");
            }
            assert_eq!(output.rows_out, 600);
            assert_eq!(
                output.bytes_out,
                output.tables.iter().map(|table| table.size).sum::<u64>()
            );
        });
    }
}
