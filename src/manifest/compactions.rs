//! The compactions file: what the compactor has been asked to do, what it is
//! doing and what it last finished. Encoding in `docs/format.md`.
//!
//! Owns: the model, its encoding, and the restart rules (running entries go
//! back to submitted; only active entries and the last finished one are
//! kept). Does not own: scheduling (the compactor actor) or the order of
//! manifest and compactions writes (`compactor_state`).

use super::model::TableHandle;
use super::versioned::Versioned;
use crate::format::FormatError;
use crate::format::codec::{Cursor, put_u128, put_varint};
use crate::store::Ulid;

const PART: &str = "compactions";

/// One input of a compaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// An L0 table.
    L0(Ulid),
    /// A whole sorted run.
    Run(u64),
}

/// What to merge, and into which sorted run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionSpec {
    /// The L0 tables and sorted runs to merge.
    pub sources: Vec<Source>,
    /// The sorted run the output becomes.
    pub destination: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// Where a compaction is in its life.
pub enum CompactionStatus {
    /// Recorded, not started.
    Submitted = 0,
    /// A job is merging it.
    Running = 1,
    /// Its output is in the manifest.
    Completed = 2,
    /// Abandoned; its sources are unchanged.
    Failed = 3,
}

impl CompactionStatus {
    /// Completed or failed.
    pub fn is_finished(self) -> bool {
        matches!(self, CompactionStatus::Completed | CompactionStatus::Failed)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
/// One compaction in the compactions file.
pub struct Compaction {
    /// Its id.
    pub id: Ulid,
    /// What it merges, and into which run.
    pub spec: CompactionSpec,
    /// Where it is.
    pub status: CompactionStatus,
    /// Tables written so far (all of them once completed). Kept when a
    /// running job is reset, so the garbage collector leaves them alone.
    pub outputs: Vec<TableHandle>,
}

/// The compactor's state, one version per change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compactions {
    /// Mirrors the manifest's compactor epoch.
    pub compactor_epoch: u64,
    /// In submission order.
    pub entries: Vec<Compaction>,
    /// The entry that finished most recently.
    pub last_finished: Option<Ulid>,
}

impl Compactions {
    /// The entry with `id`.
    pub fn get(&self, id: Ulid) -> Option<&Compaction> {
        self.entries.iter().find(|entry| entry.id == id)
    }

    /// The entry with `id`, to change.
    pub fn get_mut(&mut self, id: Ulid) -> Option<&mut Compaction> {
        self.entries.iter_mut().find(|entry| entry.id == id)
    }

    /// Appends a submitted entry (ignored if `id` is already there).
    pub fn submit(&mut self, id: Ulid, spec: CompactionSpec) {
        if self.get(id).is_some() {
            return;
        }
        self.entries.push(Compaction {
            id,
            spec,
            status: CompactionStatus::Submitted,
            outputs: Vec::new(),
        });
    }

    /// Sets an entry's status, remembering it as the last finished if the
    /// status is final. `false` if there is no such entry.
    pub fn set_status(&mut self, id: Ulid, status: CompactionStatus) -> bool {
        let Some(entry) = self.get_mut(id) else {
            return false;
        };
        entry.status = status;
        if status.is_finished() {
            self.last_finished = Some(id);
        }
        true
    }

    /// Entries not finished yet.
    pub fn active(&self) -> impl Iterator<Item = &Compaction> {
        self.entries.iter().filter(|entry| !entry.status.is_finished())
    }

    /// What a restarted compactor does first: jobs that were running when
    /// the last one stopped are submitted again (their outputs kept), and
    /// of the finished entries only the newest stays.
    pub fn recover_after_restart(&mut self) {
        for entry in &mut self.entries {
            if entry.status == CompactionStatus::Running {
                entry.status = CompactionStatus::Submitted;
            }
        }
        self.retain_active_and_last_finished();
    }

    /// Drops finished entries except the one that finished last.
    pub fn retain_active_and_last_finished(&mut self) {
        let last_finished = self.last_finished;
        self.entries
            .retain(|entry| !entry.status.is_finished() || Some(entry.id) == last_finished);
    }

    /// Every table some entry lists as output (the garbage collector keeps
    /// them while their entry is active).
    pub fn outputs(&self) -> impl Iterator<Item = &TableHandle> {
        self.entries.iter().flat_map(|entry| entry.outputs.iter())
    }
}

/// The version of a compactions file with an output holding range
/// tombstones: every output handle carries its range-tombstone count.
const RANGE_DELETES_VERSION: u32 = 2;

impl Compactions {
    fn has_range_deletes(&self) -> bool {
        self.entries
            .iter()
            .flat_map(|entry| &entry.outputs)
            .any(|table| table.range_deletes > 0)
    }
}

impl Versioned for Compactions {
    const DIR: &'static str = "compactions";
    const SUFFIX: &'static str = "compactions";
    const MAGIC: [u8; 8] = *b"TALUSCMP";
    const PART: &'static str = PART;
    const NEWEST_VERSION: u32 = RANGE_DELETES_VERSION;

    fn format_version(&self) -> u32 {
        if self.has_range_deletes() {
            RANGE_DELETES_VERSION
        } else {
            super::versioned::ENVELOPE_VERSION
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let range_deletes = self.has_range_deletes();
        put_varint(out, self.compactor_epoch);
        match self.last_finished {
            Some(id) => {
                out.push(1);
                put_u128(out, id.0);
            }
            None => out.push(0),
        }
        put_varint(out, self.entries.len() as u64);
        for entry in &self.entries {
            put_u128(out, entry.id.0);
            put_varint(out, entry.spec.sources.len() as u64);
            for source in &entry.spec.sources {
                match source {
                    Source::L0(table) => {
                        out.push(0);
                        put_u128(out, table.0);
                    }
                    Source::Run(run) => {
                        out.push(1);
                        put_varint(out, *run);
                    }
                }
            }
            put_varint(out, entry.spec.destination);
            out.push(entry.status as u8);
            put_varint(out, entry.outputs.len() as u64);
            for table in &entry.outputs {
                table.encode(out, range_deletes);
            }
        }
    }

    fn decode(payload: &[u8], version: u32) -> Result<Compactions, FormatError> {
        if version != super::versioned::ENVELOPE_VERSION && version != RANGE_DELETES_VERSION {
            return Err(FormatError::Unsupported {
                part: PART,
                detail: format!("compactions format version {version}: upgrade talusdb"),
            });
        }
        let mut cursor = Cursor::new(payload, PART);
        let compactor_epoch = cursor.varint()?;
        let last_finished = match cursor.u8()? {
            0 => None,
            1 => Some(Ulid(cursor.u128()?)),
            other => return Err(FormatError::corrupt(PART, format!("last-finished flag {other}"))),
        };
        let count = cursor.count(16 + 4)?;
        let mut entries: Vec<Compaction> = Vec::with_capacity(count);
        for _ in 0..count {
            let id = Ulid(cursor.u128()?);
            let source_count = cursor.count(2)?;
            let mut sources = Vec::with_capacity(source_count);
            for _ in 0..source_count {
                sources.push(match cursor.u8()? {
                    0 => Source::L0(Ulid(cursor.u128()?)),
                    1 => Source::Run(cursor.varint()?),
                    other => {
                        return Err(FormatError::corrupt(
                            PART,
                            format!("compaction {id}: source kind {other}"),
                        ));
                    }
                });
            }
            let destination = cursor.varint()?;
            let status = match cursor.u8()? {
                0 => CompactionStatus::Submitted,
                1 => CompactionStatus::Running,
                2 => CompactionStatus::Completed,
                3 => CompactionStatus::Failed,
                other => return Err(FormatError::corrupt(PART, format!("compaction {id}: status {other}"))),
            };
            let output_count = cursor.count(TableHandle::MIN_BYTES)?;
            let mut outputs = Vec::with_capacity(output_count);
            for _ in 0..output_count {
                outputs.push(TableHandle::decode(&mut cursor, version == RANGE_DELETES_VERSION)?);
            }
            if entries.iter().any(|previous| previous.id == id) {
                return Err(FormatError::corrupt(PART, format!("compaction {id} appears twice")));
            }
            entries.push(Compaction {
                id,
                spec: CompactionSpec { sources, destination },
                status,
                outputs,
            });
        }
        cursor.finish()?;
        Ok(Compactions {
            compactor_epoch,
            entries,
            last_finished,
        })
    }
}
