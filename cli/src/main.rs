//! `talus`: the command-line tool for talusdb databases — read and write
//! keys, inspect the manifest, manage checkpoints, and run the load
//! benchmark. See `docs/cli.md`.

/// Writes one line to stdout, handling a closed pipe and write errors
/// (`out::line`).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}

mod bench;
mod commands;
mod encoding;
mod human;
mod out;
mod stores;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use talusdb::{Error, ErrorKind};

/// talusdb: an embedded key-value store whose durable home is object storage.
#[derive(Debug, Parser)]
#[command(name = "talus", version)]
struct Cli {
    /// Where the database lives: `file:///dir` or `local:<dir>` (a local
    /// directory), `memory://` (gone when the command ends), or
    /// `s3://bucket/prefix`.
    #[arg(long, global = true, default_value = "file://./talus-data")]
    store: String,
    /// The database inside the store.
    #[arg(long, global = true, default_value = "db")]
    path: String,
    /// A store of its own for the database's WAL tables (same URL forms as
    /// `--store`); the database's first writer records that its WAL is
    /// there, and every later command on it needs the same flag.
    #[arg(long, global = true)]
    wal_store: Option<String>,
    /// Print one JSON object instead of human-readable text.
    #[arg(long, global = true)]
    json: bool,
    /// The S3-compatible server to use for `s3://` stores (for example
    /// `http://127.0.0.1:9000`); default: AWS, or `AWS_ENDPOINT`.
    #[arg(long, global = true)]
    s3_endpoint: Option<String>,
    /// Permit a plain-HTTP `--s3-endpoint`.
    #[arg(long, global = true)]
    allow_http: bool,
    /// The executor the engine's actors run on: `smol` (talus's own pool
    /// with smol's timers and blocking pool, the library's default) or
    /// `tokio` (a multi-threaded tokio runtime), one thread per core.
    #[arg(long, global = true, value_enum, default_value_t = Executor::Smol)]
    executor: Executor,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Executor {
    Smol,
    Tokio,
}

/// The runtime `executor` names, and the tokio runtime behind it (kept
/// alive for the command).
fn start_executor(executor: Executor) -> std::io::Result<(talusdb::actors::Runtime, Option<tokio::runtime::Runtime>)> {
    match executor {
        Executor::Smol => Ok((talusdb::actors::Runtime::smol()?, None)),
        Executor::Tokio => {
            let tokio = tokio::runtime::Builder::new_multi_thread()
                .thread_name("talus-tokio")
                .enable_all()
                .build()?;
            Ok((talusdb::actors::Runtime::tokio(tokio.handle().clone()), Some(tokio)))
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Db(DbCommand),
    /// The load benchmark.
    Bench(bench::BenchArgs),
}

/// Commands on one database.
#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Writes KEY = VALUE (durably) and exits. VALUE `-` reads the value
    /// from stdin and `@FILE` from a file, byte for byte (whatever
    /// `--value-format` says; give a value that is literally `-` or starts
    /// with `@` in hex or base64).
    Put {
        key: OsString,
        value: OsString,
        #[command(flatten)]
        formats: commands::Formats,
    },
    /// Prints KEY's value; exits with 1 if it is absent.
    Get {
        key: OsString,
        #[command(flatten)]
        formats: commands::Formats,
        #[command(flatten)]
        at: commands::ReadAt,
    },
    /// Deletes KEY (durably).
    Delete {
        key: OsString,
        #[command(flatten)]
        formats: commands::Formats,
    },
    /// Prints live keys in order, one row per line.
    Scan(commands::ScanArgs),
    /// Writes every live row (of the newest state, or of a checkpoint) as
    /// JSON Lines, TSV or CSV, consistently: one pinned version.
    Export(commands::ExportArgs),
    /// Writes the rows of a file (or stdin) in the format `export` wrote,
    /// in batches, then makes them durable; prints the count.
    Import(commands::ImportArgs),
    /// Creates the database at `--path` as a clone of the database at
    /// FROM in the same store: it lists FROM's tables without copying
    /// them, and holds a checkpoint in FROM (named `clone <path>`) until
    /// its own compaction has replaced them. Writes to either never change
    /// the other.
    Clone {
        /// The source database's path in the store.
        from: String,
        /// Clone at this live checkpoint of FROM (default: FROM's newest
        /// state, including WAL tables not yet in L0).
        #[arg(long)]
        checkpoint: Option<String>,
    },
    /// Inspects manifest versions.
    Manifest {
        #[command(subcommand)]
        command: commands::ManifestCommand,
    },
    /// Inspects the compactor's state.
    Compactions {
        #[command(subcommand)]
        command: commands::CompactionsCommand,
    },
    /// Manages checkpoints.
    Checkpoint {
        #[command(subcommand)]
        command: commands::CheckpointCommand,
    },
    /// Collects garbage: old WAL tables, unreferenced tables, old
    /// manifest and compactions versions, expired checkpoints.
    Gc {
        #[command(subcommand)]
        command: commands::GcCommand,
    },
    /// Runs a compactor and a garbage collector for the database until
    /// SIGINT or SIGTERM (the long-running compaction process beside a
    /// writer opened with `compactor: None`).
    Compactor {
        #[command(subcommand)]
        command: commands::CompactorCommand,
    },
    /// Compacts all of L0 and every sorted run into one run, as a
    /// standalone compactor (it fences any running compactor, including
    /// one embedded in a running database, which then stops compacting).
    Compact,
    /// Opens the database even if WAL tables are damaged: each one is moved
    /// to `<path>/lost/wal/`, the sequence numbers it may have held are
    /// recorded in the manifest, and what was lost is printed. Nothing is
    /// deleted; an undamaged database is left as it is.
    Repair,
}

impl DbCommand {
    /// Whether the command may create the database (and its directory);
    /// every other command needs one and creates nothing.
    fn may_create(&self) -> bool {
        matches!(
            self,
            DbCommand::Put { .. } | DbCommand::Delete { .. } | DbCommand::Clone { .. } | DbCommand::Import(_)
        )
    }
}

/// A failure, and the exit code it gets.
#[derive(Debug)]
pub enum CliError {
    /// A wrong argument: a bad URL, a missing database (exit code 2).
    Usage(String),
    /// What the database reported.
    Db(Error),
    /// The benchmark got a wrong answer (exit code 6).
    WrongAnswer(String),
    /// SIGINT or SIGTERM stopped the command (exit code 130, as
    /// `128 + SIGINT`); the message says what was cleaned up.
    Interrupted(String),
}

impl From<Error> for CliError {
    fn from(error: Error) -> Self {
        CliError::Db(error)
    }
}

/// The first error of type `T` in `error`'s chain of sources.
fn find_source<T: std::error::Error + 'static>(error: &Error) -> Option<&T> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

impl CliError {
    /// `no database at <path>` for an error that says there is none.
    fn naming_the_database(self, path: &str) -> CliError {
        match &self {
            CliError::Db(error)
                if matches!(
                    find_source::<talusdb::manifest::ManifestError>(error),
                    Some(talusdb::manifest::ManifestError::Missing { .. })
                ) =>
            {
                CliError::Usage(format!("no database at {path}"))
            }
            _ => self,
        }
    }

    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::WrongAnswer(_) => 6,
            CliError::Interrupted(_) => 130,
            CliError::Db(error) if error.is_fenced() => 3,
            // An object the database lists is gone: as damaged as a
            // corrupt one, and no retry brings it back.
            CliError::Db(error)
                if matches!(
                    find_source::<talusdb::store::StoreError>(error),
                    Some(talusdb::store::StoreError::NotFound { .. })
                ) =>
            {
                4
            }
            CliError::Db(error) => match error.kind() {
                // A sequence number (`--at-seq`) older than what is kept
                // is a bad argument too.
                ErrorKind::InvalidArgument | ErrorKind::OutsideRetention => 2,
                ErrorKind::Corruption | ErrorKind::Unsupported => 4,
                ErrorKind::Unavailable => 5,
                _ => 1,
            },
        }
    }

    /// The message on one line (a store's error may carry a multi-line
    /// response body).
    fn line(&self) -> String {
        let message = match self {
            CliError::Usage(message) => message.clone(),
            CliError::WrongAnswer(message) => format!("wrong answer: {message}"),
            CliError::Interrupted(message) => message.clone(),
            CliError::Db(error) => error.to_string(),
        };
        message.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (runtime, _tokio) = match start_executor(cli.executor) {
        Ok(started) => started,
        Err(error) => {
            eprintln!("error: cannot start the executor: {error}");
            return ExitCode::from(1);
        }
    };
    let json = cli.json;
    let s3 = stores::S3Flags {
        endpoint: cli.s3_endpoint,
        allow_http: cli.allow_http,
    };
    let outcome = futures::executor::block_on(async {
        match cli.command {
            Command::Bench(args) => bench::run(args, &cli.store, cli.wal_store.as_deref(), &s3, runtime, json).await,
            Command::Db(command) => {
                let path = cli.path.clone();
                if !command.may_create()
                    && let Some(dir) = stores::missing_dir(&cli.store)
                {
                    return Err(CliError::Usage(format!(
                        "no database at {path}: the directory {dir} does not exist"
                    )));
                }
                let store = stores::open(&cli.store, &s3, &runtime)?;
                let wal_store = match &cli.wal_store {
                    Some(url) => Some(stores::open(url, &s3, &runtime)?),
                    None => None,
                };
                let db = commands::Target {
                    store,
                    wal_store,
                    path: cli.path,
                    runtime,
                    json,
                };
                match command {
                    DbCommand::Put { key, value, formats } => db.put(&key, &value, formats).await,
                    DbCommand::Get { key, formats, at } => db.get(&key, formats, at).await,
                    DbCommand::Delete { key, formats } => db.delete(&key, formats).await,
                    DbCommand::Scan(args) => db.scan(args).await,
                    DbCommand::Export(args) => db.export(args).await,
                    DbCommand::Import(args) => db.import(args).await,
                    DbCommand::Clone { from, checkpoint } => db.clone_from(from, checkpoint).await,
                    DbCommand::Manifest { command } => db.manifest(command).await,
                    DbCommand::Checkpoint { command } => db.checkpoint(command).await,
                    DbCommand::Compactions { command } => db.compactions(command).await,
                    DbCommand::Gc { command } => db.gc(command).await,
                    DbCommand::Compact => db.compact().await,
                    DbCommand::Compactor { command } => db.compactor(command).await,
                    DbCommand::Repair => db.repair().await,
                }
                .map_err(|error| error.naming_the_database(&path))
            }
        }
    });
    out::flush();
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", error.line());
            ExitCode::from(error.exit_code())
        }
    }
}
