//! Who owns which fields: the ownership rules every fenced update is checked
//! against (`docs/protocol.md`, "Merge rules").
//!
//! | field | writer | compactor | admin |
//! |---|---|---|---|
//! | writer epoch | open only | – | – |
//! | compactor epoch | – | open only | – |
//! | next WAL id, replay-after WAL id, last L0 seq | yes | – | – |
//! | L0 tables | add | remove | – |
//! | sorted runs | – | yes | – |
//! | checkpoints, retain seq | yes | yes | yes |
//! | clone sources | release | release | release |
//! | separate WAL | – (recorded in version 1) | – | – |
//! | compactions: entries | submit | yes | submit |

use std::collections::HashSet;

use super::compactions::{CompactionStatus, Compactions};
use super::fenced::{Fenceable, Role};
use super::model::{CloneSource, Manifest};

fn unchanged<T: PartialEq>(field: &str, before: &T, after: &T) -> Result<(), String> {
    if before == after {
        Ok(())
    } else {
        Err(format!("{field} is not the role's to change"))
    }
}

impl Fenceable for Manifest {
    fn epoch(&self, role: Role) -> Option<u64> {
        match role {
            Role::Writer => Some(self.writer_epoch),
            Role::Compactor => Some(self.compactor_epoch),
            Role::Admin => None,
        }
    }

    fn set_epoch(&mut self, role: Role, epoch: u64) {
        match role {
            Role::Writer => self.writer_epoch = epoch,
            Role::Compactor => self.compactor_epoch = epoch,
            Role::Admin => {}
        }
    }

    fn check_change(role: Role, before: &Manifest, after: &Manifest) -> Result<(), String> {
        unchanged("the writer epoch", &before.writer_epoch, &after.writer_epoch)?;
        unchanged("the compactor epoch", &before.compactor_epoch, &after.compactor_epoch)?;
        let before_l0: HashSet<_> = before.l0.iter().map(|table| table.id).collect();
        let after_l0: HashSet<_> = after.l0.iter().map(|table| table.id).collect();
        let writer_fields = |m: &Manifest| (m.next_wal_id, m.replay_after_wal_id, m.last_l0_seq);
        match role {
            Role::Writer => {
                unchanged("sorted runs", &before.sorted_runs, &after.sorted_runs)?;
                if !before_l0.is_subset(&after_l0) {
                    return Err("the writer may add L0 tables, not remove them".into());
                }
                if after.next_wal_id < before.next_wal_id || after.replay_after_wal_id < before.replay_after_wal_id {
                    return Err("WAL ids only move forward".into());
                }
            }
            Role::Compactor => {
                unchanged(
                    "the WAL ids and last L0 sequence",
                    &writer_fields(before),
                    &writer_fields(after),
                )?;
                if !after_l0.is_subset(&before_l0) {
                    return Err("the compactor may remove L0 tables, not add them".into());
                }
            }
            Role::Admin => {
                unchanged(
                    "the WAL ids and last L0 sequence",
                    &writer_fields(before),
                    &writer_fields(after),
                )?;
                unchanged("L0 tables", &before.l0, &after.l0)?;
                unchanged("sorted runs", &before.sorted_runs, &after.sorted_runs)?;
            }
        }
        let appended = after.losses.starts_with(&before.losses);
        if role == Role::Writer && !appended {
            return Err("recorded WAL losses are never changed or removed".into());
        }
        if role != Role::Writer {
            unchanged("the recorded WAL losses", &before.losses, &after.losses)?;
        }
        if after.replay_after_wal_id >= after.next_wal_id {
            return Err("replay_after_wal_id must stay below next_wal_id".into());
        }
        // Recorded in a database's first version, never changed.
        unchanged("where the WAL tables are", &before.separate_wal, &after.separate_wal)?;
        // A clone's first version names its sources; later ones may only
        // release one (clear its tables).
        let released = |(before, after): (&CloneSource, &CloneSource)| {
            before.root == after.root
                && before.checkpoint == after.checkpoint
                && (after.tables == before.tables || after.tables.is_empty())
        };
        if before.sources.len() != after.sources.len() || !before.sources.iter().zip(&after.sources).all(released) {
            return Err("a clone's sources are never added or changed, only released".into());
        }
        Ok(())
    }
}

/// The rules for a restore (`DbBuilder::restore_checkpoint`), written by
/// a handle holding the newest writer epoch while the newest compactor
/// epoch is held too: the tables may be replaced by any set, the WAL ids
/// and the last L0 sequence only move forward, and what no role changes
/// (epochs, losses, where the WAL is, clone sources) stays.
pub(crate) fn check_restore(before: &Manifest, after: &Manifest) -> Result<(), String> {
    unchanged("the writer epoch", &before.writer_epoch, &after.writer_epoch)?;
    unchanged("the compactor epoch", &before.compactor_epoch, &after.compactor_epoch)?;
    if after.next_wal_id < before.next_wal_id
        || after.replay_after_wal_id < before.replay_after_wal_id
        || after.last_l0_seq < before.last_l0_seq
    {
        return Err("WAL ids and the last L0 sequence only move forward".into());
    }
    if after.replay_after_wal_id >= after.next_wal_id {
        return Err("replay_after_wal_id must stay below next_wal_id".into());
    }
    unchanged("the recorded WAL losses", &before.losses, &after.losses)?;
    unchanged("where the WAL tables are", &before.separate_wal, &after.separate_wal)?;
    unchanged("a clone's sources", &before.sources, &after.sources)?;
    Ok(())
}

impl Fenceable for Compactions {
    fn epoch(&self, role: Role) -> Option<u64> {
        (role == Role::Compactor).then_some(self.compactor_epoch)
    }

    fn set_epoch(&mut self, role: Role, epoch: u64) {
        if role == Role::Compactor {
            self.compactor_epoch = epoch;
        }
    }

    fn check_change(role: Role, before: &Compactions, after: &Compactions) -> Result<(), String> {
        unchanged("the compactor epoch", &before.compactor_epoch, &after.compactor_epoch)?;
        if role == Role::Compactor {
            return Ok(());
        }
        unchanged(
            "the last finished compaction",
            &before.last_finished,
            &after.last_finished,
        )?;
        for entry in &before.entries {
            if after.get(entry.id) != Some(entry) {
                return Err(format!("only the compactor changes compaction {}", entry.id));
            }
        }
        for entry in &after.entries {
            if before.get(entry.id).is_none() && entry.status != CompactionStatus::Submitted {
                return Err(format!(
                    "compaction {} must be submitted, not {:?}",
                    entry.id, entry.status
                ));
            }
        }
        Ok(())
    }
}
