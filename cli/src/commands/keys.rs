//! The commands on keys: `put`, `get`, `delete` and `scan`, in any
//! bytes (`--key-format`, `--value-format`).

use std::ffi::{OsStr, OsString};
use std::ops::Bound;
use std::process::ExitCode;

use futures::StreamExt;
use serde_json::{Value, json};
use talusdb::DbReader;

use super::{Target, parse_ulid, print};
use crate::CliError;
use crate::encoding::{Encoding, base64_encode, tsv_escape};

/// How a command's keys and values are written and printed.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct Formats {
    /// The form of keys, in arguments and output.
    #[arg(long, value_enum, default_value_t = Encoding::Utf8)]
    pub key_format: Encoding,
    /// The form of values, in arguments and output (`raw`: `get` prints
    /// the value's bytes and nothing else).
    #[arg(long, value_enum, default_value_t = Encoding::Utf8)]
    pub value_format: Encoding,
}

/// One row per line: TSV (`key<TAB>value`, text escaped so that every
/// line is one row) or JSON Lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RowFormat {
    /// `key<TAB>value`; in UTF-8 form a backslash, tab, newline and
    /// carriage return are written `\\`, `\t`, `\n`, `\r`, and other
    /// control characters and bytes that are not UTF-8 `\xNN`.
    Tsv,
    /// `{"key": …, "value": …}`; in UTF-8 form a key or value that is not
    /// UTF-8 goes as `key_base64` or `value_base64` instead.
    Jsonl,
}

/// What a scan prints of each value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ValueShow {
    /// The value.
    Full,
    /// Its length in bytes.
    Len,
    /// Nothing: keys only.
    None,
}

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// First key (inclusive).
    #[arg(long)]
    start: Option<OsString>,
    /// End key (exclusive).
    #[arg(long)]
    end: Option<OsString>,
    /// Only keys that start with this (with --start and --end, within
    /// both).
    #[arg(long)]
    prefix: Option<OsString>,
    /// At most this many rows.
    #[arg(long)]
    limit: Option<usize>,
    /// Keys in descending order.
    #[arg(long)]
    reverse: bool,
    /// Print only the number of rows.
    #[arg(long)]
    count: bool,
    /// What to print of each value.
    #[arg(long, value_enum, default_value_t = ValueShow::Full)]
    values: ValueShow,
    /// The line format (`--json` prints one object with every row instead).
    #[arg(long, value_enum, default_value_t = RowFormat::Tsv)]
    format: RowFormat,
    #[command(flatten)]
    at: ReadAt,
    #[command(flatten)]
    formats: Formats,
}

/// Which state a read command reads: the newest (default), a live
/// checkpoint's, and either at a past sequence number.
#[derive(Debug, Default, clap::Args)]
pub struct ReadAt {
    /// Read at this live checkpoint instead of the newest state.
    #[arg(long)]
    pub at_checkpoint: Option<String>,
    /// Read as of this sequence number: every write up to it and none
    /// after (at or above the manifest's `retain_seq`; the writer's
    /// `DbOptions::retention` keeps older ones readable).
    #[arg(long)]
    pub at_seq: Option<u64>,
}

/// `bytes` as a TSV field in `encoding`.
pub(super) fn tsv_field(bytes: &[u8], encoding: Encoding) -> String {
    match encoding {
        Encoding::Utf8 | Encoding::Raw => tsv_escape(bytes),
        encoding => encoding.encode_text(bytes).unwrap_or_default(),
    }
}

/// Adds `bytes` to `row` as `name` in `encoding`, or as `<name>_base64`
/// when UTF-8 form was asked for and the bytes are not UTF-8.
pub(super) fn json_field(row: &mut serde_json::Map<String, Value>, name: &str, bytes: &[u8], encoding: Encoding) {
    match encoding.encode_text(bytes) {
        Some(text) => row.insert(name.to_owned(), Value::String(text)),
        None => row.insert(format!("{name}_base64"), Value::String(base64_encode(bytes))),
    };
}

/// The value a `put` argument stands for: stdin for `-`, a file's bytes
/// for `@path`, else the argument in `encoding`.
fn read_value(arg: &OsStr, encoding: Encoding) -> Result<Vec<u8>, CliError> {
    use std::io::Read;
    if arg == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|error| CliError::Usage(format!("value: cannot read stdin: {error}")))?;
        return Ok(bytes);
    }
    if let Some(path) = arg.to_str().and_then(|text| text.strip_prefix('@')) {
        return std::fs::read(path).map_err(|error| CliError::Usage(format!("value: cannot read {path}: {error}")));
    }
    encoding.decode("value", arg)
}

/// The smallest key above every key that starts with `prefix` (`None`: no
/// such key, the prefix is all `0xff`).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl Target {
    pub async fn put(&self, key: &OsStr, value: &OsStr, formats: Formats) -> Result<ExitCode, CliError> {
        let key = formats.key_format.decode("key", key)?;
        let value = read_value(value, formats.value_format)?;
        let size = value.len();
        self.write(async |db| db.put(key.clone(), value).await.map(drop))
            .await?;
        let mut row = serde_json::Map::new();
        json_field(&mut row, "put", &key, formats.key_format);
        row.insert("bytes".into(), json!(size));
        print(self.json, Value::Object(row), String::new);
        Ok(ExitCode::SUCCESS)
    }

    pub async fn delete(&self, key: &OsStr, formats: Formats) -> Result<ExitCode, CliError> {
        let key = formats.key_format.decode("key", key)?;
        self.write(async |db| db.delete(key.clone()).await.map(drop)).await?;
        let mut row = serde_json::Map::new();
        json_field(&mut row, "deleted", &key, formats.key_format);
        print(self.json, Value::Object(row), String::new);
        Ok(ExitCode::SUCCESS)
    }

    /// A reader of the newest state, or of what `at` names and nothing
    /// else.
    pub(super) async fn reader_at(&self, at: &ReadAt) -> Result<DbReader, CliError> {
        if at.at_checkpoint.is_none() && at.at_seq.is_none() {
            return self.reader().await;
        }
        let options = talusdb::ReaderOptions {
            at_checkpoint: at.at_checkpoint.as_deref().map(parse_ulid).transpose()?,
            at_seq: at.at_seq,
            refresh_interval: None,
            ..talusdb::ReaderOptions::default()
        };
        Ok(self.builder().open_reader(options).await?)
    }

    pub async fn get(&self, key: &OsStr, formats: Formats, at: ReadAt) -> Result<ExitCode, CliError> {
        let key_arg = key.to_string_lossy().into_owned();
        let key = formats.key_format.decode("key", key)?;
        let reader = self.reader_at(&at).await?;
        let value = reader.get(&key).await;
        reader.close().await?;
        let value = value?;
        let found = value.is_some();
        if self.json {
            let mut row = serde_json::Map::new();
            json_field(&mut row, "key", &key, formats.key_format);
            match &value {
                Some(value) => json_field(&mut row, "value", value, formats.value_format),
                None => {
                    row.insert("value".into(), Value::Null);
                }
            }
            outln!("{}", Value::Object(row));
        } else {
            match (&value, formats.value_format) {
                (None, _) => outln!("{key_arg}: not found"),
                (Some(value), Encoding::Raw) => crate::out::bytes(value),
                (Some(value), encoding) => outln!("{}", tsv_field(value, encoding)),
            }
        }
        Ok(if found { ExitCode::SUCCESS } else { ExitCode::from(1) })
    }

    pub async fn scan(&self, args: ScanArgs) -> Result<ExitCode, CliError> {
        let formats = args.formats;
        if formats.key_format == Encoding::Raw || (formats.value_format == Encoding::Raw && !args.count) {
            return Err(CliError::Usage(
                "scan: --key-format and --value-format raw are for single values (get); use utf8, hex or base64".into(),
            ));
        }
        let bound = |arg: &Option<OsString>, what: &str| -> Result<Option<Vec<u8>>, CliError> {
            arg.as_deref()
                .map(|arg| formats.key_format.decode(what, arg))
                .transpose()
        };
        let mut start = bound(&args.start, "start")?;
        let mut end = bound(&args.end, "end")?;
        if let Some(prefix) = bound(&args.prefix, "prefix")? {
            if start.as_ref().is_none_or(|start| *start < prefix) {
                start = Some(prefix.clone());
            }
            if let Some(prefix_end) = prefix_end(&prefix)
                && end.as_ref().is_none_or(|end| *end > prefix_end)
            {
                end = Some(prefix_end);
            }
        }
        let reader = self.reader_at(&args.at).await?;
        let range = (
            start.map_or(Bound::Unbounded, Bound::Included),
            end.map_or(Bound::Unbounded, Bound::Excluded),
        );
        let options = talusdb::ScanOptions {
            order: if args.reverse {
                talusdb::ScanOrder::Reverse
            } else {
                talusdb::ScanOrder::Forward
            },
            ..talusdb::ScanOptions::default()
        };
        let scanned = self.print_rows(&reader, range, options, &args).await;
        reader.close().await?;
        let count = scanned?;
        if args.count {
            print(self.json, json!({ "count": count }), || count.to_string());
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Prints the rows of `range` as `args` say; returns how many.
    async fn print_rows(
        &self,
        reader: &DbReader,
        range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
        options: talusdb::ScanOptions,
        args: &ScanArgs,
    ) -> Result<usize, CliError> {
        let formats = args.formats;
        let mut rows = Box::pin(reader.scan_with_options(range, options));
        let mut listed = Vec::new();
        let mut count = 0;
        while count < args.limit.unwrap_or(usize::MAX) {
            let Some(row) = rows.next().await else { break };
            let (key, value) = row?;
            count += 1;
            if args.count {
                continue;
            }
            if self.json || args.format == RowFormat::Jsonl {
                let mut row = serde_json::Map::new();
                json_field(&mut row, "key", &key, formats.key_format);
                match args.values {
                    ValueShow::Full => json_field(&mut row, "value", &value, formats.value_format),
                    ValueShow::Len => {
                        row.insert("len".into(), json!(value.len()));
                    }
                    ValueShow::None => {}
                }
                if self.json {
                    listed.push(Value::Object(row));
                } else {
                    outln!("{}", Value::Object(row));
                }
            } else {
                let key = tsv_field(&key, formats.key_format);
                match args.values {
                    ValueShow::Full => outln!("{key}\t{}", tsv_field(&value, formats.value_format)),
                    ValueShow::Len => outln!("{key}\t{}", value.len()),
                    ValueShow::None => outln!("{key}"),
                }
            }
        }
        if self.json && !args.count {
            outln!("{}", json!({ "rows": listed }));
        }
        Ok(count)
    }
}
