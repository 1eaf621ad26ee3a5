//! The commands on one database: keys (in `keys`), checkpoints (in
//! `checkpoints`), import and export (in `transfer`), manifest, garbage
//! collection, compaction.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use futures::StreamExt;
use serde_json::{Value, json};
use talusdb::actors::Runtime;
use talusdb::compactor::{CompactorStats, SubmitSpec};
use talusdb::gc::{Class, GcMode};
use talusdb::manifest::{
    Compactions, Fenced, Manifest, Role, Source, TableHandle, Versioned, VersionedOptions, VersionedStore,
};
use talusdb::store::{Store, Ulid};
use talusdb::{Db, DbBuilder, DbOptions, DbReader, Error, GcOptions};

use crate::CliError;
use crate::human::parse_duration;

mod checkpoints;
mod keys;
mod transfer;

use checkpoints::{checkpoint_json, checkpoint_line};

pub use checkpoints::CheckpointCommand;
pub use keys::{Formats, ReadAt, ScanArgs};
pub use transfer::{ExportArgs, ImportArgs};

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Prints the latest manifest (or version `--id`).
    Show {
        #[arg(long)]
        id: Option<u64>,
    },
    /// Lists the stored manifest versions.
    List,
}

#[derive(Debug, Subcommand)]
pub enum CompactionsCommand {
    /// Lists the compactions file's entries (latest version).
    List,
}

#[derive(Debug, Subcommand)]
pub enum GcCommand {
    /// Collects every class once and reports what was deleted.
    Run {
        /// Reports what would be deleted, deleting nothing.
        #[arg(long)]
        dry_run: bool,
        /// Deletes only objects at least this old: `90s`, `15m`, `7d`, a
        /// number of seconds (default: each class's own minimum age, an
        /// hour for tables and metadata, a minute for WAL tables).
        #[arg(long, alias = "min-age-s", value_parser = parse_duration)]
        min_age: Option<Duration>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CompactorCommand {
    /// Compacts and collects garbage until SIGINT or SIGTERM, printing
    /// progress on stderr; a running job is abandoned at the signal (the
    /// next compactor redoes it). Opening it fences every other compactor,
    /// and another one opened later fences it (exit code 3).
    Run {
        /// Time between progress lines on stderr: `10s`, `1m`, a number of
        /// seconds (0: none).
        #[arg(long, alias = "progress-s", default_value = "10s", value_parser = parse_duration)]
        progress: Duration,
        /// Time between collections of each class: `30s`, `5m`, a number
        /// of seconds (default: each class's own interval, 5 minutes for
        /// tables and metadata, a minute for WAL tables and checkpoints).
        #[arg(long, alias = "gc-interval-s", value_parser = parse_duration)]
        gc_interval: Option<Duration>,
        /// Collects only objects at least this old: `90s`, `2h`, a number
        /// of seconds (default: each class's own minimum age, an hour for
        /// tables and metadata, a minute for WAL tables). With a live
        /// writer, keep it well above its longest upload or compaction.
        #[arg(long, alias = "gc-min-age-s", value_parser = parse_duration)]
        gc_min_age: Option<Duration>,
        /// Cut output tables at this many MiB (default 64).
        #[arg(long)]
        target_table_mib: Option<usize>,
    },
}

/// Collector options: the defaults, with every class's interval and
/// minimum age replaced where given.
fn gc_options(interval: Option<Duration>, min_age: Option<Duration>) -> GcOptions {
    let mut options = GcOptions::default();
    let interval = interval.map(|interval| interval.max(Duration::from_secs(1)));
    for class in [
        &mut options.wal,
        &mut options.tables,
        &mut options.manifests,
        &mut options.compactions,
    ] {
        if let Some(min_age) = min_age {
            class.min_age = min_age;
        }
        if let Some(interval) = interval {
            class.interval = interval;
        }
    }
    if let Some(interval) = interval {
        options.checkpoints.interval = interval;
    }
    options
}

/// A compactor's progress on one line.
fn progress_line(stats: &CompactorStats) -> String {
    format!(
        "compactor: {} compactions ({} failed, {} running), {} bytes read, {} bytes written; L0 {} tables, {} sorted runs; {} objects collected",
        stats.compactions,
        stats.failed_jobs,
        stats.running_jobs,
        stats.bytes_read,
        stats.bytes_written,
        stats.l0_tables,
        stats.sorted_runs,
        stats.collected
    )
}

/// The database a command works on.
pub struct Target {
    pub store: Arc<dyn Store>,
    /// The WAL's own store (`--wal-store`).
    pub wal_store: Option<Arc<dyn Store>>,
    pub path: String,
    pub runtime: Runtime,
    pub json: bool,
}

fn print(json: bool, value: Value, human: impl FnOnce() -> String) {
    if json {
        outln!("{value}");
    } else {
        let text = human();
        if !text.is_empty() {
            outln!("{text}");
        }
    }
}

/// Bytes as text when they are UTF-8, else as `0x…` hex.
fn show(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => format!(
            "0x{}",
            bytes.iter().map(|byte| format!("{byte:02x}")).collect::<String>()
        ),
    }
}

fn parse_ulid(id: &str) -> Result<Ulid, CliError> {
    Ulid::parse(id)
        .ok_or_else(|| CliError::Usage(format!("{id}: not a checkpoint id (26 characters of Crockford base32)")))
}

fn table_json(table: &TableHandle) -> Value {
    json!({
        "id": table.id.to_string(),
        "size": table.size,
        "rows": table.rows,
        "tombstones": table.tombstones,
        "first_key": show(&table.first_key),
        "last_key": show(&table.last_key),
        "min_seq": table.min_seq,
        "max_seq": table.max_seq,
    })
}

impl Target {
    fn builder(&self) -> DbBuilder {
        let builder = Db::builder(self.path.as_str(), self.store.clone()).runtime(self.runtime.clone());
        match &self.wal_store {
            Some(wal_store) => builder.wal_store(wal_store.clone()),
            None => builder,
        }
    }

    /// A writer for one command: no compactor or collector of its own (it
    /// lives for one write; `compact` and `gc run` do that work).
    async fn writer(&self) -> Result<Db, CliError> {
        self.writer_salvaging(false).await
    }

    /// A writer as [`Target::writer`], salvaging damaged WAL tables if
    /// `salvage` (see `DbBuilder::salvage`).
    async fn writer_salvaging(&self, salvage: bool) -> Result<Db, CliError> {
        Ok(self
            .builder()
            .options(DbOptions {
                compactor: None,
                gc: None,
                ..DbOptions::default()
            })
            .salvage(salvage)
            .open()
            .await?)
    }

    /// Whether any manifest version is there.
    async fn has_manifest(&self) -> Result<bool, CliError> {
        let latest = self.versions::<Manifest>().read_latest().await.map_err(Error::from)?;
        Ok(latest.is_some())
    }

    /// Fails unless a database is at our path: `no database at <path>`
    /// (exit 2), or a lost manifest (exit 4) when its tables are there
    /// without one.
    async fn require_database(&self) -> Result<(), CliError> {
        if !self.has_manifest().await? {
            // Opening a reader tells a lost manifest from no database.
            self.reader().await?.close().await?;
        }
        Ok(())
    }

    async fn reader(&self) -> Result<DbReader, CliError> {
        Ok(self.builder().open_read_only().await?)
    }

    /// The stored versions of the manifest or the compactions file.
    fn versions<P: Versioned>(&self) -> VersionedStore<P> {
        VersionedStore::new(
            self.store.clone(),
            self.path.as_str().into(),
            self.runtime.clone(),
            VersionedOptions::default(),
        )
    }

    async fn admin(&self) -> Result<Fenced<Manifest>, CliError> {
        Ok(Fenced::load(self.versions(), Role::Admin).await.map_err(Error::from)?)
    }

    /// Runs `write` on a writer, moves its memtable to L0 and closes it:
    /// the write is in an L0 table, so a checkpoint taken from outside
    /// (`checkpoint create`) holds it, and the WAL does not grow with every
    /// command for the next writer to replay. When L0 is full (no
    /// compactor has run) the write stays in the WAL instead: a flush
    /// would wait for a compactor.
    async fn write(&self, write: impl AsyncFnOnce(&Db) -> Result<(), Error>) -> Result<(), CliError> {
        let db = self.writer().await?;
        let written = match write(&db).await {
            Ok(()) => {
                let max_l0_tables = DbOptions::default().max_l0_tables as u64;
                if db.stats().shape.l0_tables < max_l0_tables {
                    db.flush_memtable().await
                } else {
                    eprintln!(
                        "note: L0 holds {max_l0_tables} tables, so the write stays in the WAL (not in a checkpoint \
                         taken from outside) until a compactor runs (`talus compact`)"
                    );
                    Ok(())
                }
            }
            Err(error) => Err(error),
        };
        let closed = db.close().await;
        written?;
        closed?;
        Ok(())
    }

    /// Creates the database at our path as a clone of `from` (see
    /// `DbBuilder::clone_from`); refuses a path that holds a database.
    pub async fn clone_from(&self, from: String, checkpoint: Option<String>) -> Result<ExitCode, CliError> {
        let checkpoint = checkpoint.as_deref().map(parse_ulid).transpose()?;
        if self.has_manifest().await? {
            return Err(CliError::Usage(format!(
                "{} already holds a database: a clone needs a path with none",
                self.path
            )));
        }
        let db = self
            .builder()
            .options(DbOptions {
                compactor: None,
                gc: None,
                ..DbOptions::default()
            })
            .clone_from(from.as_str(), checkpoint)
            .open()
            .await?;
        db.close().await?;
        let manifest = self.admin().await?;
        let sources = &manifest.current().sources;
        let tables: usize = sources.iter().map(|source| source.tables.len()).sum();
        // A source with no table to share holds no checkpoint.
        let held: Vec<String> = sources
            .iter()
            .filter(|source| !source.tables.is_empty())
            .map(|source| source.checkpoint.to_string())
            .collect();
        print(
            self.json,
            json!({
                "clone": self.path,
                "source": from,
                "checkpoint": checkpoint.map(|id| id.to_string()),
                "source_tables": tables,
                "held_checkpoints": held,
            }),
            || {
                if held.is_empty() {
                    format!("cloned {from} into {}: no table shared, no checkpoint held", self.path)
                } else {
                    format!(
                        "cloned {from} into {}: {tables} tables shared, holding checkpoint {} in the source",
                        self.path,
                        held.join(", ")
                    )
                }
            },
        );
        Ok(ExitCode::SUCCESS)
    }

    pub async fn manifest(&self, command: ManifestCommand) -> Result<ExitCode, CliError> {
        let versions = self.versions::<Manifest>();
        match command {
            ManifestCommand::List => {
                self.require_database().await?;
                let ids = versions.ids().await.map_err(Error::from)?;
                print(self.json, json!({ "versions": ids }), || {
                    ids.iter().map(u64::to_string).collect::<Vec<_>>().join("\n")
                });
            }
            ManifestCommand::Show { id } => {
                let (id, manifest) = match id {
                    Some(id) => match versions.read(id).await {
                        Ok(manifest) => (id, manifest),
                        Err(talusdb::manifest::ManifestError::Store(talusdb::store::StoreError::NotFound {
                            ..
                        })) => {
                            self.require_database().await?;
                            return Err(CliError::Usage(format!(
                                "no manifest version {id} at {} (`manifest list` lists them)",
                                self.path
                            )));
                        }
                        Err(error) => return Err(Error::from(error).into()),
                    },
                    None => versions
                        .read_latest()
                        .await
                        .map_err(Error::from)?
                        .ok_or_else(|| CliError::Usage(format!("no database at {} (no manifest)", self.path)))?,
                };
                let value = json!({
                    "id": id,
                    "writer_epoch": manifest.writer_epoch,
                    "compactor_epoch": manifest.compactor_epoch,
                    "next_wal_id": manifest.next_wal_id,
                    "replay_after_wal_id": manifest.replay_after_wal_id,
                    "last_l0_seq": manifest.last_l0_seq,
                    "retain_seq": manifest.retain_seq,
                    "l0": manifest.l0.iter().map(table_json).collect::<Vec<_>>(),
                    "sorted_runs": manifest.sorted_runs.iter().map(|run| json!({
                        "id": run.id,
                        "tables": run.tables.iter().map(table_json).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                    "checkpoints": manifest.checkpoints.iter().map(checkpoint_json).collect::<Vec<_>>(),
                    "separate_wal": manifest.separate_wal,
                    "sources": manifest.sources.iter().map(|source| json!({
                        "root": source.root,
                        "checkpoint": source.checkpoint.to_string(),
                        "tables": source.tables.iter().map(Ulid::to_string).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                });
                print(self.json, value, || {
                    let mut text = format!(
                        "manifest {id}\nwriter epoch {}, compactor epoch {}\nnext WAL id {}, replay after WAL id {}, last L0 seq {}, \
                         retain seq {}\n",
                        manifest.writer_epoch,
                        manifest.compactor_epoch,
                        manifest.next_wal_id,
                        manifest.replay_after_wal_id,
                        manifest.last_l0_seq,
                        manifest.retain_seq
                    );
                    if manifest.separate_wal {
                        text += "WAL tables in a store of their own (--wal-store)\n";
                    }
                    text += &format!("L0: {} tables\n", manifest.l0.len());
                    for table in &manifest.l0 {
                        text += &format!(
                            "  {}  {} bytes  {} rows  seq {}..={}\n",
                            table.id, table.size, table.rows, table.min_seq, table.max_seq
                        );
                    }
                    text += &format!("sorted runs: {}\n", manifest.sorted_runs.len());
                    for run in &manifest.sorted_runs {
                        let bytes: u64 = run.tables.iter().map(|table| table.size).sum();
                        text += &format!("  run {}  {} tables  {} bytes\n", run.id, run.tables.len(), bytes);
                    }
                    text += &format!("checkpoints: {}", manifest.checkpoints.len());
                    for checkpoint in &manifest.checkpoints {
                        text += &format!("\n  {}", checkpoint_line(checkpoint));
                    }
                    for source in &manifest.sources {
                        text += &format!(
                            "\ncloned from {}: lists {} of its tables, held by checkpoint {}{}",
                            source.root,
                            source.tables.len(),
                            source.checkpoint,
                            if source.tables.is_empty() { " (released)" } else { "" }
                        );
                    }
                    text
                });
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    pub async fn compactions(&self, command: CompactionsCommand) -> Result<ExitCode, CliError> {
        let CompactionsCommand::List = command;
        self.require_database().await?;
        let versions = self.versions::<Compactions>();
        let latest = versions.read_latest().await.map_err(Error::from)?;
        let (id, compactions) = latest.unwrap_or_default();
        let source = |source: &Source| match source {
            Source::L0(table) => format!("L0 {table}"),
            Source::Run(run) => format!("run {run}"),
        };
        let entries: Vec<Value> = compactions
            .entries
            .iter()
            .map(|entry| {
                json!({
                    "id": entry.id.to_string(),
                    "status": format!("{:?}", entry.status).to_lowercase(),
                    "sources": entry.spec.sources.iter().map(source).collect::<Vec<_>>(),
                    "destination": entry.spec.destination,
                    "outputs": entry.outputs.iter().map(table_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        print(
            self.json,
            json!({ "version": id, "compactor_epoch": compactions.compactor_epoch, "compactions": entries }),
            || {
                let mut text = format!(
                    "compactions version {id}, compactor epoch {}: {} entries",
                    compactions.compactor_epoch,
                    compactions.entries.len()
                );
                for entry in &compactions.entries {
                    text += &format!(
                        "\n  {}  {:?}  {} -> run {}  {} outputs",
                        entry.id,
                        entry.status,
                        entry.spec.sources.iter().map(source).collect::<Vec<_>>().join(", "),
                        entry.spec.destination,
                        entry.outputs.len()
                    );
                }
                text
            },
        );
        Ok(ExitCode::SUCCESS)
    }

    /// `compactor run`: serves until a signal, then prints what it did.
    pub async fn compactor(&self, command: CompactorCommand) -> Result<ExitCode, CliError> {
        use async_signal::{Signal, Signals};

        let CompactorCommand::Run {
            progress,
            gc_interval,
            gc_min_age,
            target_table_mib,
        } = command;
        let mut compactor_options = talusdb::CompactorOptions::default();
        if let Some(mib) = target_table_mib {
            if mib == 0 {
                return Err(CliError::Usage("--target-table-mib must be at least 1".into()));
            }
            compactor_options.target_table_bytes = mib << 20;
        }
        if !self.has_manifest().await? {
            return Err(CliError::Usage(format!("no database at {} (no manifest)", self.path)));
        }
        let mut signals = Signals::new([Signal::Int, Signal::Term])
            .map_err(|error| CliError::Usage(format!("cannot listen for SIGINT and SIGTERM: {error}")))?;
        let compactor = self
            .builder()
            .options(DbOptions {
                compactor: Some(compactor_options),
                gc: Some(gc_options(gc_interval, gc_min_age)),
                ..DbOptions::default()
            })
            .open_compactor_and_collector()
            .await?;
        eprintln!("compactor running on {} (SIGINT or SIGTERM stops it)", self.path);
        let mut stopped_by = None;
        let signal = async {
            if let Some(Ok(signal)) = signals.next().await {
                stopped_by = Some(signal);
            }
        };
        let progress_lines = async {
            if progress.is_zero() {
                return futures::future::pending().await;
            }
            loop {
                self.runtime.sleep(progress).await;
                eprintln!("{}", progress_line(&compactor.stats()));
            }
        };
        let stop = async {
            futures::future::select(std::pin::pin!(signal), std::pin::pin!(progress_lines)).await;
        };
        let served = compactor.run_until(stop).await;
        let stats = compactor.stats();
        let by = stopped_by.map(|signal| format!("{signal:?}").to_uppercase());
        print(
            self.json,
            json!({
                "stopped_by": by.as_ref().map(|name| format!("SIG{name}")),
                "compactions": stats.compactions,
                "failed_jobs": stats.failed_jobs,
                "bytes_read": stats.bytes_read,
                "bytes_written": stats.bytes_written,
                "l0_tables": stats.l0_tables,
                "sorted_runs": stats.sorted_runs,
                "collections": stats.collections,
                "collected": stats.collected,
            }),
            || match &by {
                Some(name) => format!("stopped by SIG{name}; {}", progress_line(&stats)),
                None => progress_line(&stats),
            },
        );
        served?;
        Ok(ExitCode::SUCCESS)
    }

    pub async fn gc(&self, command: GcCommand) -> Result<ExitCode, CliError> {
        let GcCommand::Run { dry_run, min_age } = command;
        let options = gc_options(None, min_age);
        let collector = self
            .builder()
            .options(DbOptions {
                gc: Some(options),
                ..DbOptions::default()
            })
            .collector()?;
        // The collector refuses a lost manifest (tables, no manifest) and
        // finds nothing on an empty path; say so then.
        let mode = if dry_run { GcMode::DryRun } else { GcMode::Delete };
        let report = collector.run(&Class::ALL, mode).await?;
        if !self.has_manifest().await? {
            return Err(CliError::Usage(format!("no database at {}", self.path)));
        }
        let ids = |ids: &[Ulid]| ids.iter().map(Ulid::to_string).collect::<Vec<_>>();
        print(
            self.json,
            json!({
                "dry_run": report.dry_run,
                "wal": report.wal,
                "tables": ids(&report.tables),
                "manifests": report.manifests,
                "compactions": report.compactions,
                "checkpoints": ids(&report.checkpoints),
                "released": report.released.iter().map(|released| json!({
                    "source": released.source,
                    "checkpoint": released.checkpoint.to_string(),
                })).collect::<Vec<_>>(),
            }),
            || {
                let mut line = format!(
                    "{} {} objects: {} WAL tables, {} tables, {} manifest versions, {} compactions versions; {} expired checkpoints",
                    if report.dry_run { "would delete" } else { "deleted" },
                    report.total() - report.checkpoints.len() - report.released.len(),
                    report.wal.len(),
                    report.tables.len(),
                    report.manifests.len(),
                    report.compactions.len(),
                    report.checkpoints.len()
                );
                for released in &report.released {
                    line.push_str(&format!(
                        "; {} the checkpoint {} held in the source {}",
                        if report.dry_run { "would release" } else { "released" },
                        released.checkpoint,
                        released.source
                    ));
                }
                line
            },
        );
        Ok(ExitCode::SUCCESS)
    }

    pub async fn repair(&self) -> Result<ExitCode, CliError> {
        // A repair never creates a database where there is none: a reader's
        // open says which (no database, or a lost manifest).
        if !self.has_manifest().await? {
            self.builder().open_read_only().await?;
        }
        let db = self.writer_salvaging(true).await?;
        let losses = db.salvaged().to_vec();
        db.close().await?;
        let described: Vec<_> = losses
            .iter()
            .map(|loss| {
                json!({
                    "wal_id": loss.wal_id,
                    "first_seq": loss.first_seq,
                    "last_seq": loss.last_seq,
                    "moved_to": loss.moved_to,
                    "reason": loss.reason,
                })
            })
            .collect();
        print(self.json, json!({ "salvaged": described }), || {
            if losses.is_empty() {
                return "nothing to repair: every WAL table reads".into();
            }
            losses
                .iter()
                .map(|loss| {
                    let last = loss.last_seq.map_or("?".to_owned(), |seq| seq.to_string());
                    format!(
                        "WAL table {} lost (sequence numbers {}..={last}), moved to {}: {}",
                        loss.wal_id, loss.first_seq, loss.moved_to, loss.reason
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        });
        Ok(ExitCode::SUCCESS)
    }

    pub async fn compact(&self) -> Result<ExitCode, CliError> {
        let compactor = self.builder().open_compactor().await?;
        let done = compactor.submit(SubmitSpec::Everything).await;
        let closed = compactor.close().await;
        let summary = done?;
        closed?;
        match summary {
            None => print(self.json, json!({ "compacted": false }), || "nothing to compact".into()),
            Some(summary) => print(
                self.json,
                json!({
                    "compacted": true,
                    "id": summary.id.to_string(),
                    "run": summary.destination,
                    "tables": summary.tables_out,
                    "rows_in": summary.rows_in,
                    "rows_out": summary.rows_out,
                    "bytes_in": summary.bytes_in,
                    "bytes_out": summary.bytes_out,
                }),
                || {
                    format!(
                        "compacted into run {}: {} tables, {} rows in, {} rows out, {} bytes in, {} bytes out",
                        summary.destination,
                        summary.tables_out,
                        summary.rows_in,
                        summary.rows_out,
                        summary.bytes_in,
                        summary.bytes_out
                    )
                },
            ),
        }
        Ok(ExitCode::SUCCESS)
    }
}
