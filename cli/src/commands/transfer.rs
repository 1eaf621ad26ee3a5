//! `talus export` and `talus import`: every live row as JSON Lines, TSV
//! or CSV, and back. What `export` writes, `import` reads back to the same
//! bytes, in every format and every `--key-format` / `--value-format`.

use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use talusdb::actors::Runtime;
use talusdb::{DbOptions, WriteBatch, WriteOptions};

use super::keys::{json_field, tsv_field};
use super::{Formats, Target, print};
use crate::CliError;
use crate::encoding::{Encoding, tsv_unescape};

/// The file format of an export or an import.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FileFormat {
    /// One `{"key": …, "value": …}` object per line; in UTF-8 form a key or
    /// value that is not UTF-8 goes as `key_base64` or `value_base64`.
    Jsonl,
    /// `key<TAB>value` per line, escaped as `scan` does.
    Tsv,
    /// A `key,value` header, then one record per row (RFC 4180 quoting).
    /// Keys and values must be UTF-8 in UTF-8 form: use hex or base64 for
    /// other bytes.
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The file to write (default: stdout). The row count goes to stdout
    /// with a file, to stderr without.
    #[arg(long, short)]
    output: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = FileFormat::Jsonl)]
    format: FileFormat,
    #[command(flatten)]
    at: super::keys::ReadAt,
    #[command(flatten)]
    formats: Formats,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The file to read (`-` or none: stdin).
    input: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = FileFormat::Jsonl)]
    format: FileFormat,
    /// Rows per write batch (a batch is also cut at 4 MiB).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    batch_rows: u64,
    #[command(flatten)]
    formats: Formats,
}

/// A batch is written once it holds this many bytes.
const BATCH_BYTES: usize = 4 << 20;
/// How often the progress line is redrawn on a terminal.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// The progress line on stderr, when stderr is a terminal.
struct Progress {
    verb: &'static str,
    clock: Runtime,
    shown: Option<Duration>,
    on: bool,
}

impl Progress {
    fn new(verb: &'static str, clock: Runtime) -> Progress {
        Progress {
            verb,
            clock,
            shown: None,
            on: std::io::stderr().is_terminal(),
        }
    }

    fn update(&mut self, rows: u64, bytes: u64) {
        let now = self.clock.now();
        if self.on
            && self
                .shown
                .is_none_or(|shown| now.saturating_sub(shown) >= PROGRESS_EVERY)
        {
            self.shown = Some(now);
            eprint!("\r{} {rows} rows, {}", self.verb, megabytes(bytes));
        }
    }

    fn done(&self) {
        if self.on && self.shown.is_some() {
            eprint!("\r\x1b[2K");
        }
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// `text` as a CSV field: quoted when it holds a comma, a quote or a line
/// break, with quotes doubled.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// Reads one CSV record (which may span lines inside quotes) from
/// `input`: `None` at the end.
fn csv_record(input: &mut impl BufRead, line: &mut u64) -> Result<Option<Vec<String>>, CliError> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut text = String::new();
    let first = *line + 1;
    loop {
        text.clear();
        let read = input
            .read_line(&mut text)
            .map_err(|error| input_error(*line + 1, &error))?;
        if read == 0 {
            if quoted {
                return Err(CliError::Usage(format!(
                    "input line {first}: a quoted CSV field is not closed"
                )));
            }
            if fields.is_empty() && field.is_empty() {
                return Ok(None);
            }
            fields.push(field);
            return Ok(Some(fields));
        }
        *line += 1;
        let mut chars = text.chars().peekable();
        while let Some(character) = chars.next() {
            match (quoted, character) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, other) => field.push(other),
                (false, '"') if field.is_empty() => quoted = true,
                (false, ',') => fields.push(std::mem::take(&mut field)),
                (false, '\n') => {
                    fields.push(field);
                    return Ok(Some(fields));
                }
                (false, '\r') if chars.peek() == Some(&'\n') => {}
                (false, other) => field.push(other),
            }
        }
    }
}

fn input_error(line: u64, error: &std::io::Error) -> CliError {
    CliError::Usage(format!("input line {line}: cannot read: {error}"))
}

/// The bytes of a text field of the input in `encoding` (`raw` reads as
/// UTF-8 text).
fn decode_field(encoding: Encoding, what: &str, text: &str) -> Result<Vec<u8>, CliError> {
    match encoding {
        Encoding::Utf8 | Encoding::Raw => Ok(text.as_bytes().to_vec()),
        encoding => encoding.decode(what, std::ffi::OsStr::new(text)),
    }
}

/// The bytes of field `name` of a JSON row: `name` in `encoding`, or
/// `<name>_base64`.
fn json_bytes(row: &serde_json::Map<String, Value>, name: &str, encoding: Encoding) -> Result<Vec<u8>, CliError> {
    match (row.get(name), row.get(&format!("{name}_base64"))) {
        (Some(Value::String(text)), None) => decode_field(encoding, name, text),
        (None, Some(Value::String(text))) => decode_field(Encoding::Base64, name, text),
        _ => Err(CliError::Usage(format!(
            "needs a string \"{name}\" or \"{name}_base64\" (one of them)"
        ))),
    }
}

/// A row read from the input: its key and value.
type Row = (Vec<u8>, Vec<u8>);

/// Reads rows from `input` in `format`.
struct Rows<R> {
    input: R,
    format: FileFormat,
    formats: Formats,
    line: u64,
}

impl<R: BufRead> Rows<R> {
    /// The next row, or `None` at the end of the input.
    fn next(&mut self) -> Result<Option<Row>, CliError> {
        match self.row() {
            Err(CliError::Usage(message)) if !message.starts_with("input line") => {
                Err(CliError::Usage(format!("input line {}: {message}", self.line)))
            }
            other => other,
        }
    }

    fn row(&mut self) -> Result<Option<Row>, CliError> {
        let (keys, values) = (self.formats.key_format, self.formats.value_format);
        if self.format == FileFormat::Csv {
            if self.line == 0 {
                match csv_record(&mut self.input, &mut self.line)? {
                    Some(header) if header == ["key", "value"] => {}
                    Some(header) => {
                        return Err(CliError::Usage(format!(
                            "the CSV header must be key,value, not {}",
                            header.join(",")
                        )));
                    }
                    None => return Ok(None),
                }
            }
            return match csv_record(&mut self.input, &mut self.line)? {
                None => Ok(None),
                Some(fields) if fields.len() == 2 => Ok(Some((
                    decode_field(keys, "key", &fields[0])?,
                    decode_field(values, "value", &fields[1])?,
                ))),
                Some(fields) => Err(CliError::Usage(format!(
                    "a CSV record needs 2 fields, this one has {}",
                    fields.len()
                ))),
            };
        }
        let mut text = String::new();
        loop {
            text.clear();
            let read = self
                .input
                .read_line(&mut text)
                .map_err(|error| input_error(self.line + 1, &error))?;
            if read == 0 {
                return Ok(None);
            }
            self.line += 1;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            let text = text.strip_suffix('\r').unwrap_or(text);
            if text.is_empty() {
                continue;
            }
            return match self.format {
                FileFormat::Jsonl => {
                    let row: serde_json::Map<String, Value> = serde_json::from_str(text)
                        .map_err(|error| CliError::Usage(format!("not a JSON object: {error}")))?;
                    Ok(Some((
                        json_bytes(&row, "key", keys)?,
                        json_bytes(&row, "value", values)?,
                    )))
                }
                FileFormat::Tsv | FileFormat::Csv => {
                    let (key, value) = text
                        .split_once('\t')
                        .ok_or_else(|| CliError::Usage("a TSV row needs key<TAB>value".into()))?;
                    Ok(Some((
                        tsv_decode(keys, "key", key)?,
                        tsv_decode(values, "value", value)?,
                    )))
                }
            };
        }
    }
}

/// A TSV field's bytes: escaped text in UTF-8 form (see `scan`), else hex
/// or base64.
fn tsv_decode(encoding: Encoding, what: &str, field: &str) -> Result<Vec<u8>, CliError> {
    match encoding {
        Encoding::Utf8 | Encoding::Raw => {
            tsv_unescape(field).ok_or_else(|| CliError::Usage(format!("{what}: a malformed escape in {field:?}")))
        }
        encoding => encoding.decode(what, std::ffi::OsStr::new(field)),
    }
}

impl Target {
    /// Writes every live row of the newest state (or of a checkpoint): the
    /// reader pins one manifest version, so the export is consistent.
    pub async fn export(&self, args: ExportArgs) -> Result<ExitCode, CliError> {
        let formats = args.formats;
        if formats.key_format == Encoding::Raw || formats.value_format == Encoding::Raw {
            return Err(CliError::Usage(
                "export: --key-format and --value-format raw are for single values (get); use utf8, hex or base64"
                    .into(),
            ));
        }
        let mut sink: Box<dyn Write> = match &args.output {
            Some(path) => {
                let file = std::fs::File::create(path)
                    .map_err(|error| CliError::Usage(format!("--output: cannot create {}: {error}", path.display())))?;
                Box::new(BufWriter::with_capacity(1 << 20, file))
            }
            None => Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout().lock())),
        };
        let reader = self.reader_at(&args.at).await?;
        let mut rows = Box::pin(reader.scan::<&[u8]>(..));
        let mut progress = Progress::new("exported", self.runtime.clone());
        let (mut count, mut bytes) = (0u64, 0u64);
        let written: Result<(), CliError> = async {
            if args.format == FileFormat::Csv {
                writeln!(sink, "key,value").map_err(output_error)?;
            }
            while let Some(row) = rows.next().await {
                let (key, value) = row?;
                let line = match args.format {
                    FileFormat::Jsonl => {
                        let mut row = serde_json::Map::new();
                        json_field(&mut row, "key", &key, formats.key_format);
                        json_field(&mut row, "value", &value, formats.value_format);
                        Value::Object(row).to_string()
                    }
                    FileFormat::Tsv => {
                        format!(
                            "{}\t{}",
                            tsv_field(&key, formats.key_format),
                            tsv_field(&value, formats.value_format)
                        )
                    }
                    FileFormat::Csv => {
                        let field = |bytes: &[u8], encoding: Encoding, what: &str| {
                            encoding.encode_text(bytes).map(|text| csv_field(&text)).ok_or_else(|| {
                                CliError::Usage(format!(
                                    "export: a {what} is not UTF-8, which CSV cannot carry: use --{what}-format hex or base64"
                                ))
                            })
                        };
                        format!(
                            "{},{}",
                            field(&key, formats.key_format, "key")?,
                            field(&value, formats.value_format, "value")?
                        )
                    }
                };
                writeln!(sink, "{line}").map_err(output_error)?;
                count += 1;
                bytes += (key.len() + value.len()) as u64;
                progress.update(count, bytes);
            }
            sink.flush().map_err(output_error)
        }
        .await;
        progress.done();
        drop(rows);
        reader.close().await?;
        written?;
        let summary = json!({ "exported": count, "bytes": bytes });
        let human = || format!("exported {count} rows ({})", megabytes(bytes));
        if args.output.is_some() {
            print(self.json, summary, human);
        } else if self.json {
            eprintln!("{summary}");
        } else {
            eprintln!("{}", human());
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Writes every row of the input in batches, then makes them durable.
    /// A malformed row stops the import with its line number; the rows
    /// before it stay written (the count says how many).
    pub async fn import(&self, args: ImportArgs) -> Result<ExitCode, CliError> {
        if args.formats.key_format == Encoding::Raw || args.formats.value_format == Encoding::Raw {
            return Err(CliError::Usage(
                "import: --key-format and --value-format raw are for single values (put); use utf8, hex or base64"
                    .into(),
            ));
        }
        let input: Box<dyn Read> = match &args.input {
            Some(path) if path.as_os_str() != "-" => Box::new(
                std::fs::File::open(path)
                    .map_err(|error| CliError::Usage(format!("input: cannot open {}: {error}", path.display())))?,
            ),
            _ => Box::new(std::io::stdin().lock()),
        };
        let mut rows = Rows {
            input: BufReader::with_capacity(1 << 20, input),
            format: args.format,
            formats: args.formats,
            line: 0,
        };
        // The first row is read before the database is opened: an input
        // that is wrong from its start creates nothing.
        let mut first = Some(rows.next()?);
        // A compactor keeps L0 from filling up during a long import; no
        // collector (`gc run` does that).
        let db = self
            .builder()
            .options(DbOptions {
                gc: None,
                ..DbOptions::default()
            })
            .open()
            .await?;
        let mut progress = Progress::new("imported", self.runtime.clone());
        let (mut count, mut bytes) = (0u64, 0u64);
        let options = WriteOptions {
            await_durable: false,
            ..WriteOptions::default()
        };
        let imported: Result<(), CliError> = async {
            let mut batch = WriteBatch::new();
            let (mut in_batch, mut batch_bytes) = (0u64, 0usize);
            loop {
                let row = match first.take() {
                    Some(row) => row,
                    None => rows.next()?,
                };
                let end = row.is_none();
                if let Some((key, value)) = row {
                    batch_bytes += key.len() + value.len();
                    in_batch += 1;
                    bytes += (key.len() + value.len()) as u64;
                    batch.put(key, value);
                }
                if in_batch > 0 && (end || in_batch >= args.batch_rows || batch_bytes >= BATCH_BYTES) {
                    db.write_with_options(std::mem::take(&mut batch), options).await?;
                    count += in_batch;
                    (in_batch, batch_bytes) = (0, 0);
                    progress.update(count, bytes);
                }
                if end {
                    break;
                }
            }
            // In L0, as every command's writes (`Target::write`).
            db.flush_memtable().await?;
            Ok(())
        }
        .await;
        progress.done();
        let closed = db.close().await;
        if let Err(error) = imported {
            if count > 0 {
                eprintln!("imported {count} rows before the error");
            }
            return Err(error);
        }
        closed?;
        print(self.json, json!({ "imported": count, "bytes": bytes }), || {
            format!("imported {count} rows ({})", megabytes(bytes))
        });
        Ok(ExitCode::SUCCESS)
    }
}

/// A failed write of the export: a closed pipe ends quietly (status 141),
/// as `scan`'s output does.
fn output_error(error: std::io::Error) -> CliError {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
    CliError::Usage(format!("export: cannot write the output: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_read_back_across_lines_and_quotes() {
        let fields = ["plain", "a,b", "say \"hi\"", "two\nlines", "cr\r\nlf", ""];
        let mut text = String::from("key,value\n");
        for pair in fields.chunks(2) {
            text.push_str(&format!("{},{}\n", csv_field(pair[0]), csv_field(pair[1])));
        }
        let mut rows = Rows {
            input: text.as_bytes(),
            format: FileFormat::Csv,
            formats: Formats {
                key_format: Encoding::Utf8,
                value_format: Encoding::Utf8,
            },
            line: 0,
        };
        let mut read = Vec::new();
        while let Some((key, value)) = rows.next().expect("a record") {
            read.push(String::from_utf8(key).expect("utf-8"));
            read.push(String::from_utf8(value).expect("utf-8"));
        }
        assert_eq!(read, fields);
    }

    #[test]
    fn a_malformed_row_names_its_line() {
        let mut rows = Rows {
            input: &b"{\"key\":\"a\",\"value\":\"1\"}\n\n{\"key\":\"b\"}\n"[..],
            format: FileFormat::Jsonl,
            formats: Formats {
                key_format: Encoding::Utf8,
                value_format: Encoding::Utf8,
            },
            line: 0,
        };
        assert_eq!(rows.next().expect("a row"), Some((b"a".to_vec(), b"1".to_vec())));
        match rows.next() {
            Err(CliError::Usage(message)) => assert!(message.starts_with("input line 3:"), "{message}"),
            other => panic!("expected a usage error, got {other:?}"),
        }
    }
}
