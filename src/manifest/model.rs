//! The manifest: which tables make up the database, who may write it, and
//! which versions are pinned by checkpoints. Encoding in `docs/format.md`.
//!
//! Owns: the in-memory model and its stable binary encoding. Does not own:
//! storage, versions or fencing (`versioned`, `fenced`).
//!
//! Invariants: L0 tables are newest first (by sequence range); sorted runs
//! are newest first (by run id) and each run's tables are ordered by key
//! range; checkpoint ids are unique.

use bytes::Bytes;

use super::versioned::{ENVELOPE_VERSION, Versioned};
use crate::format::FormatError;
use crate::format::codec::{Cursor, put_bytes, put_u128, put_varint};
use crate::store::{TableId, Ulid, WrittenTable};

const PART: &str = "manifest";

/// A sorted table as the manifest records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableHandle {
    /// The table's id (its object is `compacted/<id>.sst`).
    pub id: Ulid,
    /// Object size in bytes (checked when the table is opened).
    pub size: u64,
    /// The smallest key in it.
    pub first_key: Bytes,
    /// The largest key in it.
    pub last_key: Bytes,
    /// The smallest sequence number in it.
    pub min_seq: u64,
    /// The largest sequence number in it.
    pub max_seq: u64,
    /// Rows in it.
    pub rows: u64,
    /// Tombstones among them.
    pub tombstones: u64,
    /// Range tombstones in it (format version 5 tables; a read consults
    /// the table's range tombstones only if this is not 0).
    pub range_deletes: u64,
}

impl TableHandle {
    /// The handle of a sorted table just written; `None` for a WAL table.
    pub fn from_written(table: &WrittenTable) -> Option<TableHandle> {
        let TableId::Compacted(id) = table.id else {
            return None;
        };
        let stats = &table.meta.stats;
        Some(TableHandle {
            id,
            size: table.size,
            first_key: stats.first_key.clone(),
            last_key: stats.last_key.clone(),
            min_seq: stats.min_seq,
            max_seq: stats.max_seq,
            rows: stats.rows,
            tombstones: stats.tombstones,
            range_deletes: table.meta.range_tombstones.len() as u64,
        })
    }

    /// The table's id as the table store names it.
    pub fn table_id(&self) -> TableId {
        TableId::Compacted(self.id)
    }

    /// Appends the handle; `range_deletes` says whether the format it goes
    /// into has the range-tombstone count (manifest envelope version 4,
    /// compactions version 2).
    pub(crate) fn encode(&self, out: &mut Vec<u8>, range_deletes: bool) {
        put_u128(out, self.id.0);
        put_varint(out, self.size);
        put_bytes(out, &self.first_key);
        put_bytes(out, &self.last_key);
        for value in [self.min_seq, self.max_seq, self.rows, self.tombstones] {
            put_varint(out, value);
        }
        if range_deletes {
            put_varint(out, self.range_deletes);
        }
    }

    /// Fewest bytes one handle takes: id, then one byte per other field.
    pub(crate) const MIN_BYTES: usize = 16 + 7;

    pub(crate) fn decode(cursor: &mut Cursor<'_>, range_deletes: bool) -> Result<TableHandle, FormatError> {
        let id = Ulid(cursor.u128()?);
        let size = cursor.varint()?;
        let first_key = Bytes::copy_from_slice(cursor.bytes()?);
        let last_key = Bytes::copy_from_slice(cursor.bytes()?);
        let (min_seq, max_seq, rows, tombstones) =
            (cursor.varint()?, cursor.varint()?, cursor.varint()?, cursor.varint()?);
        let range_deletes = if range_deletes { cursor.varint()? } else { 0 };
        if min_seq > max_seq || (rows > 0 && first_key > last_key) {
            return Err(FormatError::corrupt(
                cursor.part(),
                format!("table {id} has inverted ranges"),
            ));
        }
        Ok(TableHandle {
            id,
            size,
            first_key,
            last_key,
            min_seq,
            max_seq,
            rows,
            tombstones,
            range_deletes,
        })
    }
}

/// A sorted run: tables with disjoint key ranges, in key order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortedRun {
    /// The run's id (higher is newer data).
    pub id: u64,
    /// Its tables, in key order.
    pub tables: Vec<TableHandle>,
}

/// A named or anonymous pin on one manifest version: the garbage collector
/// keeps every object that version references until the checkpoint expires
/// or is deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The checkpoint's id.
    pub id: Ulid,
    /// The manifest version it pins.
    pub manifest_id: u64,
    /// When it was made (wall clock, ms).
    pub create_ms: u64,
    /// Wall-clock expiry; `None` lives until deleted.
    pub expire_ms: Option<u64>,
    /// Its name, if it was given one.
    pub name: Option<String>,
}

impl Checkpoint {
    /// Whether it has not expired at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expire_ms.is_none_or(|expire| now_ms < expire)
    }
}

/// Tables of another database that a clone's manifest lists without
/// copying them (see `docs/scale-out.md`, "Clones"). The clone holds a
/// checkpoint in that database pinning a version that lists them all, so
/// that database's collector keeps them; the clone's collector never
/// deletes them (they are not under its root) and releases the checkpoint
/// once no version it keeps lists any of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloneSource {
    /// The other database's root in the same store.
    pub root: String,
    /// The checkpoint the clone holds in it (named `clone <clone root>`).
    pub checkpoint: Ulid,
    /// The sorted tables of that database the clone may still list; empty
    /// once the checkpoint is released (the entry stays as the clone's
    /// record of where it came from).
    pub tables: Vec<Ulid>,
}

/// The prefix of the name of a checkpoint a clone holds in its source;
/// the clone's root follows it.
pub const CLONE_CHECKPOINT_PREFIX: &str = "clone ";

/// A WAL table that could not be read and was moved aside by a salvaging
/// open (`DbBuilder::salvage`): what it may have held is lost for good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalLoss {
    /// The damaged table's id.
    pub wal_id: u64,
    /// The sequence numbers it may have held: after the last readable table
    /// below it, before the first readable one above it (`None`: none is
    /// above, the end is unknown).
    pub first_seq: u64,
    /// The last sequence number it may have held (`None`: unknown).
    pub last_seq: Option<u64>,
    /// When the salvage found it (wall clock, ms).
    pub found_ms: u64,
    /// Where its bytes are now, relative to the store.
    pub moved_to: String,
    /// Why it could not be read.
    pub reason: String,
}

/// The envelope version of a manifest that records WAL losses.
const LOSSES_VERSION: u32 = 2;

/// The envelope version of a manifest that records when sequence numbers
/// were written or the name of the merge operator (its losses, and either
/// of those, may then be none).
const SEQ_TIMES_VERSION: u32 = 3;

/// The envelope version of a manifest with a table holding range
/// tombstones: every table handle carries its range-tombstone count.
pub(crate) const RANGE_DELETES_VERSION: u32 = 4;

/// The envelope version of a clone's manifest: it ends with the databases
/// whose tables it lists ([`CloneSource`]), and is otherwise version 4.
pub(crate) const CLONE_VERSION: u32 = 5;

/// The envelope version of a manifest whose WAL tables are in a store of
/// their own: version 5's layout (with maybe no clone source), then a flag.
pub(crate) const WAL_STORE_VERSION: u32 = 6;

/// A point of the map from wall-clock time to sequence numbers: every
/// write up to `seq` had been made by `time_ms`. What
/// [`Db::snapshot_at_time`](crate::Db::snapshot_at_time) reads, and how
/// the retention window becomes a sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqTime {
    /// Milliseconds since the Unix epoch, by the writer's clock.
    pub time_ms: u64,
    /// The newest sequence number written by then.
    pub seq: u64,
}

/// One version of the database's table set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Raised by every writer that opens the database; a writer whose epoch
    /// is below the stored one is fenced.
    pub writer_epoch: u64,
    /// The same for compactors.
    pub compactor_epoch: u64,
    /// The id the writer will give its next WAL table.
    pub next_wal_id: u64,
    /// Every WAL table with an id at or below this is already in L0 or
    /// sorted runs; recovery replays only the ones above it.
    pub replay_after_wal_id: u64,
    /// The highest sequence number in L0 or sorted runs.
    pub last_l0_seq: u64,
    /// L0 tables, newest first.
    pub l0: Vec<TableHandle>,
    /// Sorted runs, newest first.
    pub sorted_runs: Vec<SortedRun>,
    /// Live and expired checkpoints (the collector removes expired ones).
    pub checkpoints: Vec<Checkpoint>,
    /// The oldest sequence number a live snapshot still reads: compaction
    /// keeps every version a snapshot at or above it can see.
    pub retain_seq: u64,
    /// Every WAL table a salvaging open gave up, oldest first; never
    /// shortened.
    pub losses: Vec<WalLoss>,
    /// When sequence numbers were written, oldest first, both ascending:
    /// points over the retention window (empty when it is zero).
    pub seq_times: Vec<SeqTime>,
    /// The name of the merge operator the database's operands are for,
    /// recorded by the first writer opened with one.
    pub merge_operator: Option<String>,
    /// The databases this one was cloned from, whose tables it may list
    /// (empty unless it is a clone).
    pub sources: Vec<CloneSource>,
    /// Whether the WAL tables are in a store of their own
    /// ([`DbBuilder::wal_store`](crate::DbBuilder::wal_store)), recorded
    /// by the database's first writer: every process must then open it
    /// with that store.
    pub separate_wal: bool,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            writer_epoch: 0,
            compactor_epoch: 0,
            next_wal_id: 1,
            replay_after_wal_id: 0,
            last_l0_seq: 0,
            l0: Vec::new(),
            sorted_runs: Vec::new(),
            checkpoints: Vec::new(),
            retain_seq: 0,
            losses: Vec::new(),
            seq_times: Vec::new(),
            merge_operator: None,
            sources: Vec::new(),
            separate_wal: false,
        }
    }
}

impl Manifest {
    /// Checkpoints that have not expired at `now_ms`: readers and the
    /// garbage collector ignore the rest.
    pub fn live_checkpoints(&self, now_ms: u64) -> impl Iterator<Item = &Checkpoint> {
        self.checkpoints
            .iter()
            .filter(move |checkpoint| checkpoint.is_live(now_ms))
    }

    /// The checkpoint with `id`, live or expired.
    pub fn checkpoint(&self, id: Ulid) -> Option<&Checkpoint> {
        self.checkpoints.iter().find(|checkpoint| checkpoint.id == id)
    }

    /// Every sorted table this version references.
    pub fn tables(&self) -> impl Iterator<Item = &TableHandle> {
        self.l0
            .iter()
            .chain(self.sorted_runs.iter().flat_map(|run| run.tables.iter()))
    }

    /// Whether a table it references holds range tombstones (then it is
    /// written as envelope version 4).
    pub fn has_range_deletes(&self) -> bool {
        self.tables().any(|table| table.range_deletes > 0)
    }

    /// The root of the database whose object table `id` is, if that is
    /// not this one (a clone's table from its source).
    pub fn source_of(&self, id: Ulid) -> Option<&str> {
        self.sources
            .iter()
            .find(|source| source.tables.contains(&id))
            .map(|source| source.root.as_str())
    }

    /// A run id no run in this version has.
    pub fn next_run_id(&self) -> u64 {
        self.sorted_runs.iter().map(|run| run.id + 1).max().unwrap_or(0)
    }
}

impl Versioned for Manifest {
    const DIR: &'static str = "manifest";
    const SUFFIX: &'static str = "manifest";
    const MAGIC: [u8; 8] = *b"TALUSMAN";
    const PART: &'static str = PART;
    const NEWEST_VERSION: u32 = super::versioned::NEWEST_ENVELOPE_VERSION;

    fn encode(&self, out: &mut Vec<u8>) {
        for value in [
            self.writer_epoch,
            self.compactor_epoch,
            self.next_wal_id,
            self.replay_after_wal_id,
            self.last_l0_seq,
            self.retain_seq,
        ] {
            put_varint(out, value);
        }
        // Versions 5 and 6 hold everything version 4 does.
        let version_5 = !self.sources.is_empty() || self.separate_wal;
        let version_4 = self.has_range_deletes() || version_5;
        put_varint(out, self.l0.len() as u64);
        for table in &self.l0 {
            table.encode(out, version_4);
        }
        put_varint(out, self.sorted_runs.len() as u64);
        for run in &self.sorted_runs {
            put_varint(out, run.id);
            put_varint(out, run.tables.len() as u64);
            for table in &run.tables {
                table.encode(out, version_4);
            }
        }
        put_varint(out, self.checkpoints.len() as u64);
        for checkpoint in &self.checkpoints {
            put_u128(out, checkpoint.id.0);
            put_varint(out, checkpoint.manifest_id);
            put_varint(out, checkpoint.create_ms);
            let flags = u8::from(checkpoint.expire_ms.is_some()) | (u8::from(checkpoint.name.is_some()) << 1);
            out.push(flags);
            if let Some(expire) = checkpoint.expire_ms {
                put_varint(out, expire);
            }
            if let Some(name) = &checkpoint.name {
                put_bytes(out, name.as_bytes());
            }
        }
        // Versions 2 and 3 only: a manifest without losses or times ends
        // here, so that it stays readable by builds that know version 1
        // alone (and one without times by builds that know 2).
        let version_3 = !self.seq_times.is_empty() || self.merge_operator.is_some() || version_4;
        if !self.losses.is_empty() || version_3 {
            put_varint(out, self.losses.len() as u64);
            for loss in &self.losses {
                put_varint(out, loss.wal_id);
                put_varint(out, loss.first_seq);
                out.push(u8::from(loss.last_seq.is_some()));
                if let Some(last) = loss.last_seq {
                    put_varint(out, last);
                }
                put_varint(out, loss.found_ms);
                put_bytes(out, loss.moved_to.as_bytes());
                put_bytes(out, loss.reason.as_bytes());
            }
            if version_3 {
                encode_seq_times(&self.seq_times, out);
                out.push(u8::from(self.merge_operator.is_some()));
                if let Some(name) = &self.merge_operator {
                    put_bytes(out, name.as_bytes());
                }
                if version_5 {
                    put_varint(out, self.sources.len() as u64);
                    for source in &self.sources {
                        put_bytes(out, source.root.as_bytes());
                        put_u128(out, source.checkpoint.0);
                        put_varint(out, source.tables.len() as u64);
                        for table in &source.tables {
                            put_u128(out, table.0);
                        }
                    }
                    if self.separate_wal {
                        out.push(1);
                    }
                }
            }
        }
    }

    fn format_version(&self) -> u32 {
        if self.separate_wal {
            WAL_STORE_VERSION
        } else if !self.sources.is_empty() {
            CLONE_VERSION
        } else if self.has_range_deletes() {
            RANGE_DELETES_VERSION
        } else if !self.seq_times.is_empty() || self.merge_operator.is_some() {
            SEQ_TIMES_VERSION
        } else if !self.losses.is_empty() {
            LOSSES_VERSION
        } else {
            ENVELOPE_VERSION
        }
    }

    fn decode(payload: &[u8], version: u32) -> Result<Manifest, FormatError> {
        let mut cursor = Cursor::new(payload, PART);
        let mut numbers = [0u64; 6];
        for number in &mut numbers {
            *number = cursor.varint()?;
        }
        let [
            writer_epoch,
            compactor_epoch,
            next_wal_id,
            replay_after_wal_id,
            last_l0_seq,
            retain_seq,
        ] = numbers;
        if replay_after_wal_id >= next_wal_id {
            return Err(FormatError::corrupt(
                PART,
                format!("replay_after_wal_id {replay_after_wal_id} is not below next_wal_id {next_wal_id}"),
            ));
        }
        let l0_count = cursor.count(TableHandle::MIN_BYTES)?;
        let mut l0 = Vec::with_capacity(l0_count);
        for _ in 0..l0_count {
            l0.push(TableHandle::decode(&mut cursor, version >= RANGE_DELETES_VERSION)?);
        }
        let run_count = cursor.count(2)?;
        let mut sorted_runs = Vec::with_capacity(run_count);
        for _ in 0..run_count {
            let id = cursor.varint()?;
            let table_count = cursor.count(TableHandle::MIN_BYTES)?;
            let mut tables = Vec::with_capacity(table_count);
            for _ in 0..table_count {
                tables.push(TableHandle::decode(&mut cursor, version >= RANGE_DELETES_VERSION)?);
            }
            sorted_runs.push(SortedRun { id, tables });
        }
        let checkpoint_count = cursor.count(16 + 3)?;
        let mut checkpoints = Vec::with_capacity(checkpoint_count);
        for _ in 0..checkpoint_count {
            checkpoints.push(decode_checkpoint(&mut cursor)?);
        }
        let losses = if version >= LOSSES_VERSION {
            decode_losses(&mut cursor, version)?
        } else {
            Vec::new()
        };
        let (seq_times, merge_operator) = if version >= SEQ_TIMES_VERSION {
            let seq_times = decode_seq_times(&mut cursor)?;
            let merge_operator = match cursor.u8()? {
                0 => None,
                1 => Some(
                    String::from_utf8(cursor.bytes()?.to_vec())
                        .map_err(|_| FormatError::corrupt(PART, "the merge operator's name is not UTF-8"))?,
                ),
                flag => return Err(FormatError::corrupt(PART, format!("merge operator flag {flag}"))),
            };
            (seq_times, merge_operator)
        } else {
            (Vec::new(), None)
        };
        let sources = if version >= CLONE_VERSION {
            decode_sources(&mut cursor, version)?
        } else {
            Vec::new()
        };
        let separate_wal = if version >= WAL_STORE_VERSION {
            match cursor.u8()? {
                1 => true,
                flag => return Err(FormatError::corrupt(PART, format!("WAL store flag {flag}"))),
            }
        } else {
            false
        };
        cursor.finish()?;
        Ok(Manifest {
            writer_epoch,
            compactor_epoch,
            next_wal_id,
            replay_after_wal_id,
            last_l0_seq,
            l0,
            sorted_runs,
            checkpoints,
            retain_seq,
            losses,
            seq_times,
            merge_operator,
            sources,
            separate_wal,
        })
    }
}

/// The clone sources of a version 5 manifest payload (at least one) or a
/// version 6 one (maybe none).
fn decode_sources(cursor: &mut Cursor<'_>, version: u32) -> Result<Vec<CloneSource>, FormatError> {
    let count = cursor.count(1 + 16 + 1)?;
    if count == 0 && version == CLONE_VERSION {
        return Err(FormatError::corrupt(PART, "a version 5 manifest with no clone source"));
    }
    let mut sources = Vec::with_capacity(count);
    for _ in 0..count {
        let root = String::from_utf8(cursor.bytes()?.to_vec())
            .map_err(|_| FormatError::corrupt(PART, "a clone source's root is not UTF-8"))?;
        let checkpoint = Ulid(cursor.u128()?);
        let table_count = cursor.count(16)?;
        let mut tables = Vec::with_capacity(table_count);
        for _ in 0..table_count {
            tables.push(Ulid(cursor.u128()?));
        }
        sources.push(CloneSource {
            root,
            checkpoint,
            tables,
        });
    }
    Ok(sources)
}

/// One checkpoint of a manifest payload (`docs/format.md`).
fn decode_checkpoint(cursor: &mut Cursor<'_>) -> Result<Checkpoint, FormatError> {
    let id = Ulid(cursor.u128()?);
    let manifest_id = cursor.varint()?;
    let create_ms = cursor.varint()?;
    let flags = cursor.u8()?;
    if flags & !0b11 != 0 {
        return Err(FormatError::corrupt(
            PART,
            format!("checkpoint {id}: reserved flags {flags:#x}"),
        ));
    }
    let expire_ms = if flags & 1 != 0 { Some(cursor.varint()?) } else { None };
    let name = if flags & 2 != 0 {
        let bytes = cursor.bytes()?;
        Some(
            String::from_utf8(bytes.to_vec())
                .map_err(|_| FormatError::corrupt(PART, format!("checkpoint {id}: name is not UTF-8")))?,
        )
    } else {
        None
    };
    Ok(Checkpoint {
        id,
        manifest_id,
        create_ms,
        expire_ms,
        name,
    })
}

/// The WAL losses of a version 2 manifest payload (at least one) or a
/// version 3 one (maybe none).
fn decode_losses(cursor: &mut Cursor<'_>, version: u32) -> Result<Vec<WalLoss>, FormatError> {
    let count = cursor.count(6)?;
    if count == 0 && version == LOSSES_VERSION {
        return Err(FormatError::corrupt(PART, "a version 2 manifest with no losses"));
    }
    let text = |cursor: &mut Cursor<'_>, what: &str| {
        String::from_utf8(cursor.bytes()?.to_vec())
            .map_err(|_| FormatError::corrupt(PART, format!("a loss's {what} is not UTF-8")))
    };
    let mut losses = Vec::with_capacity(count);
    for _ in 0..count {
        let wal_id = cursor.varint()?;
        let first_seq = cursor.varint()?;
        let last_seq = match cursor.u8()? {
            0 => None,
            1 => Some(cursor.varint()?),
            flag => return Err(FormatError::corrupt(PART, format!("loss of WAL {wal_id}: flag {flag}"))),
        };
        let found_ms = cursor.varint()?;
        let moved_to = text(cursor, "moved_to")?;
        let reason = text(cursor, "reason")?;
        losses.push(WalLoss {
            wal_id,
            first_seq,
            last_seq,
            found_ms,
            moved_to,
            reason,
        });
    }
    Ok(losses)
}

/// The time map of a version 3 payload: a count, the first point's time
/// and sequence, then each later point as the two increases over the one
/// before.
fn encode_seq_times(points: &[SeqTime], out: &mut Vec<u8>) {
    put_varint(out, points.len() as u64);
    let mut before = SeqTime { time_ms: 0, seq: 0 };
    for point in points {
        put_varint(out, point.time_ms.saturating_sub(before.time_ms));
        put_varint(out, point.seq.saturating_sub(before.seq));
        before = *point;
    }
}

/// The time map of a version 3 manifest payload.
fn decode_seq_times(cursor: &mut Cursor<'_>) -> Result<Vec<SeqTime>, FormatError> {
    let count = cursor.count(2)?;
    let mut points = Vec::with_capacity(count);
    let mut before = SeqTime { time_ms: 0, seq: 0 };
    for _ in 0..count {
        let time_ms = before.time_ms.checked_add(cursor.varint()?);
        let seq = before.seq.checked_add(cursor.varint()?);
        let (Some(time_ms), Some(seq)) = (time_ms, seq) else {
            return Err(FormatError::corrupt(PART, "a time point overflows"));
        };
        before = SeqTime { time_ms, seq };
        points.push(before);
    }
    Ok(points)
}
