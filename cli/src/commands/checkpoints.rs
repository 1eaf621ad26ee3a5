//! The checkpoint commands: create, list, refresh, delete and restore,
//! with times in RFC 3339 and lifetimes as durations.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use serde_json::{Value, json};
use talusdb::manifest::{Checkpoint, CheckpointOptions};
use talusdb::{Error, Restored};

use super::{Target, parse_ulid, print};
use crate::CliError;
use crate::human::{parse_duration, rfc3339};

#[derive(Debug, Subcommand)]
pub enum CheckpointCommand {
    /// Pins the current manifest version (what is in L0 and sorted runs).
    Create {
        /// Expires after this long: `90s`, `15m`, `7d`, a number of
        /// seconds (default: never).
        #[arg(long, alias = "lifetime-s", value_parser = parse_duration)]
        lifetime: Option<Duration>,
        #[arg(long)]
        name: Option<String>,
    },
    /// Lists live checkpoints.
    List {
        /// Only those with this name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Moves a checkpoint's expiry to `--lifetime` from now.
    Refresh {
        id: String,
        /// `90s`, `15m`, `7d`, a number of seconds.
        #[arg(long, alias = "lifetime-s", value_parser = parse_duration)]
        lifetime: Duration,
    },
    /// Removes a checkpoint.
    Delete { id: String },
    /// Makes a live checkpoint's state the current one, as a new manifest
    /// version: every write after the checkpoint is dropped, and the
    /// running writer and compactor are fenced. The checkpoint stays.
    Restore {
        id: String,
        /// Restores (without it, the command only says what it would do
        /// and exits 2).
        #[arg(long)]
        yes: bool,
    },
}

pub(super) fn checkpoint_json(checkpoint: &Checkpoint) -> Value {
    json!({
        "id": checkpoint.id.to_string(),
        "manifest_id": checkpoint.manifest_id,
        "create_ms": checkpoint.create_ms,
        "expire_ms": checkpoint.expire_ms,
        "name": checkpoint.name,
    })
}

pub(super) fn checkpoint_line(checkpoint: &Checkpoint) -> String {
    let line = format!(
        "{}  manifest {}  created {}  expires {}",
        checkpoint.id,
        checkpoint.manifest_id,
        rfc3339(checkpoint.create_ms),
        checkpoint.expire_ms.map_or("never".to_owned(), rfc3339),
    );
    match &checkpoint.name {
        Some(name) => format!("{line}  {name}"),
        None => line,
    }
}

fn restored_json(restored: &Restored) -> Value {
    json!({
        "checkpoint": restored.checkpoint.to_string(),
        "pinned_version": restored.pinned_version,
        "version": restored.version,
        "replaced_version": restored.replaced_version,
        "l0_tables": restored.l0_tables,
        "sorted_runs": restored.sorted_runs,
        "held_wal_rows": restored.held_wal_rows,
        "dropped_wal_rows": restored.dropped_wal_rows,
        "dropped_wal_tables": restored.dropped_wal_tables,
        "failed_compactions": restored.failed_compactions,
    })
}

impl Target {
    pub async fn checkpoint(&self, command: CheckpointCommand) -> Result<ExitCode, CliError> {
        let mut manifest = self.admin().await?;
        match command {
            CheckpointCommand::Create { lifetime, name } => {
                let options = CheckpointOptions {
                    lifetime,
                    name,
                    pin: None,
                };
                let made = manifest.create_checkpoint(options).await.map_err(Error::from)?;
                print(self.json, checkpoint_json(&made), || checkpoint_line(&made));
            }
            CheckpointCommand::List { name } => {
                let mut live = manifest.list_checkpoints();
                if let Some(name) = &name {
                    live.retain(|checkpoint| checkpoint.name.as_ref() == Some(name));
                }
                print(
                    self.json,
                    json!({ "checkpoints": live.iter().map(checkpoint_json).collect::<Vec<_>>() }),
                    || live.iter().map(checkpoint_line).collect::<Vec<_>>().join("\n"),
                );
            }
            CheckpointCommand::Refresh { id, lifetime } => {
                let id = parse_ulid(&id)?;
                let refreshed = manifest.refresh_checkpoint(id, lifetime).await.map_err(Error::from)?;
                print(self.json, checkpoint_json(&refreshed), || checkpoint_line(&refreshed));
            }
            CheckpointCommand::Restore { id, yes } => {
                let id = parse_ulid(&id)?;
                let Some(checkpoint) = manifest.list_checkpoints().into_iter().find(|live| live.id == id) else {
                    return Err(CliError::Usage(format!(
                        "no live checkpoint {id} in the database at {}",
                        self.path
                    )));
                };
                if !yes {
                    return Err(CliError::Usage(format!(
                        "restoring checkpoint {id} (manifest {}, created {}) replaces the current state \
                         (manifest {}): every write after the checkpoint is dropped, and the running \
                         writer and compactor are fenced; pass --yes to restore",
                        checkpoint.manifest_id,
                        rfc3339(checkpoint.create_ms),
                        manifest.id(),
                    )));
                }
                let restored = self.builder().restore_checkpoint(id).await?;
                print(self.json, restored_json(&restored), || {
                    format!(
                        "restored checkpoint {id}: manifest {} lists manifest {}'s {} L0 tables and {} sorted \
                         runs (was manifest {}); dropped {} rows only in {} WAL tables; failed {} unfinished \
                         compactions",
                        restored.version,
                        restored.pinned_version,
                        restored.l0_tables,
                        restored.sorted_runs,
                        restored.replaced_version,
                        restored.dropped_wal_rows,
                        restored.dropped_wal_tables,
                        restored.failed_compactions
                    )
                });
            }
            CheckpointCommand::Delete { id } => {
                let id = parse_ulid(&id)?;
                manifest.delete_checkpoint(id).await.map_err(Error::from)?;
                print(self.json, json!({ "deleted": id.to_string() }), || {
                    format!("deleted {id}")
                });
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
