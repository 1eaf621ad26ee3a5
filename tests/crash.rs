//! Crash test with real processes: a writer process does durable puts on a
//! local directory and prints each acknowledged one; the test kills it with
//! SIGKILL at random moments (during recovery, mid-write, mid-flush,
//! mid-compaction), starts it again, and in the end checks that every
//! acknowledged write is there and nothing is corrupt.
//!
//! `TALUS_CRASH_CYCLES=<n>` sets the number of kills (default 20),
//! `TALUS_CRASH_SEED=<n>` the seed of the kill moments.
//!
//! The writer is this test binary run again with `TALUS_CRASH_CHILD_DIR`
//! set (the ignored test `crash_writer_child`), so no extra program is
//! built.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use talusdb::actors::Runtime;
use talusdb::store::{ObjectStoreAdapter, Store};
use talusdb::{Db, DbOptions, GcOptions};

use support::{Gen, TempDir};

const CHILD_DIR: &str = "TALUS_CRASH_CHILD_DIR";
const CHILD_CYCLE: &str = "TALUS_CRASH_CHILD_CYCLE";
const WRITERS: u64 = 4;
const KEYS_PER_WRITER: u64 = 300;

fn options() -> DbOptions {
    DbOptions {
        memtable_bytes: 16 << 10,
        wal_buffer_bytes: 2 << 10,
        max_unflushed_bytes: 128 << 10,
        // Real files with real ages: a table not yet in a manifest is kept
        // for 2 s.
        gc: Some(GcOptions::uniform(Duration::from_millis(500), Duration::from_secs(2))),
        ..support::compacting_db_options(DbOptions::default().max_l0_tables, Duration::from_secs(1))
    }
}

async fn open(dir: &std::path::Path, runtime: &Runtime) -> Db {
    let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::local_dir(dir, runtime.clone()).expect("local store"));
    Db::builder("db", store)
        .runtime(runtime.clone())
        .options(options())
        .open()
        .await
        .expect("open")
}

/// Values order writes of one key: `cycle-n`, zero-padded.
fn value(cycle: u64, n: u64) -> String {
    format!("{cycle:04}-{n:07}")
}

/// The writer process: `WRITERS` concurrent loops of durable puts, each on
/// its own keys (so one key's writes are ordered by the printed lines),
/// printing `ack <key> <value>` once a put returns. It runs until killed.
#[test]
#[ignore = "the writer process of `acknowledged_writes_survive_sigkill`, which starts it; alone it does nothing"]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let cycle: u64 = std::env::var(CHILD_CYCLE)
        .ok()
        .and_then(|cycle| cycle.parse().ok())
        .expect("the cycle number");
    let runtime = Runtime::smol().expect("smol");
    smol::block_on(async move {
        let db = open(std::path::Path::new(&dir), &runtime).await;
        let stdout = Arc::new(Mutex::new(std::io::stdout()));
        let writers = (0..WRITERS).map(|writer| {
            let (db, stdout) = (db.clone(), stdout.clone());
            async move {
                let mut dice = Gen(cycle * 100 + writer);
                for n in 0.. {
                    let key = format!("w{writer}-k{:03}", dice.next(KEYS_PER_WRITER));
                    let value = value(cycle, n);
                    db.put(key.clone(), value.clone()).await.expect("durable put");
                    let mut out = stdout.lock().expect("stdout");
                    writeln!(out, "ack {key} {value}").expect("print");
                    out.flush().expect("flush");
                }
            }
        });
        futures::future::join_all(writers).await;
    });
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let cycles: u64 = std::env::var("TALUS_CRASH_CYCLES")
        .ok()
        .and_then(|cycles| cycles.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("TALUS_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(20_261_121);
    let dir = TempDir::new("crash");
    let exe = std::env::current_exe().expect("the test binary");
    let mut dice = Gen(seed);
    // The newest acknowledged value of every key.
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let mut total = 0;
    for cycle in 0..cycles {
        // 0 kills during opening and recovery; otherwise after some writes.
        let target = if dice.next(5) == 0 { 0 } else { 1 + dice.next(400) };
        let extra = Duration::from_millis(dice.next(30));
        let stderr = std::fs::File::create(dir.path().join("child.stderr")).expect("stderr file");
        let mut child = Command::new(&exe)
            .args([
                "crash_writer_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path().join("store"))
            .env(CHILD_CYCLE, cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start the writer");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines_sender, lines) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = 0;
        while seen < target {
            match lines.recv_timeout(Duration::from_secs(120)) {
                Ok(line) if line.starts_with("ack ") => {
                    record(&mut acked, &line);
                    seen += 1;
                }
                Ok(_) => {}
                Err(error) => {
                    let _ = child.kill();
                    let log = std::fs::read_to_string(dir.path().join("child.stderr")).unwrap_or_default();
                    panic!(
                        "cycle {cycle}: the writer stopped after {seen} of {target} acks ({error}); its stderr:\n{log}"
                    );
                }
            }
        }
        #[allow(
            clippy::disallowed_methods,
            reason = "a random real-time moment to kill a real process"
        )]
        std::thread::sleep(extra);
        child.kill().expect("SIGKILL the writer");
        let status = child.wait().expect("reap the writer");
        assert!(
            !status.success(),
            "cycle {cycle}: the writer was killed, not finished: {status}"
        );
        reader.join().expect("the reader thread");
        // Lines printed before the kill are acknowledged writes too.
        for line in lines.try_iter().filter(|line| line.starts_with("ack ")) {
            record(&mut acked, &line);
            seen += 1;
        }
        total += seen;
    }
    assert!(total > cycles * 20, "enough writes to mean something: {total}");

    let runtime = Runtime::smol().expect("smol");
    smol::block_on(async move {
        let db = open(&dir.path().join("store"), &runtime).await;
        let mut missing = Vec::new();
        for (key, expected) in &acked {
            let got = db.get(key).await.expect("read after the last kill");
            let got = got.map(|bytes| String::from_utf8(bytes.to_vec()).expect("utf-8 value"));
            // A write after the last acknowledged one may have landed too.
            if got.as_ref().is_none_or(|got| got < expected) {
                missing.push(format!("{key}: acknowledged {expected}, found {got:?}"));
            }
        }
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged keys lost: {:#?}",
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(20)]
        );
        // Every table reads back whole: a full scan checks each block.
        let rows: Vec<_> = db.scan::<&[u8]>(..).collect().await;
        let rows: Vec<(bytes::Bytes, bytes::Bytes)> = rows.into_iter().collect::<Result<_, _>>().expect("a full scan");
        assert!(
            rows.len() >= acked.len(),
            "{} rows, {} keys acknowledged",
            rows.len(),
            acked.len()
        );
        db.close().await.expect("close");
        println!(
            "{cycles} kills, {total} acknowledged writes, {} keys checked",
            acked.len()
        );
    });
}

/// Remembers an `ack <key> <value>` line's value if it is the key's newest.
/// A line cut short by the kill (a pipe write is whole, so this should not
/// happen) is not an acknowledgment and is skipped.
fn record(acked: &mut BTreeMap<String, String>, line: &str) {
    let mut words = line.split(' ').skip(1);
    let (Some(key), Some(written), None) = (words.next(), words.next(), words.next()) else {
        return;
    };
    if written.len() != value(0, 0).len() {
        return;
    }
    let newest = acked.entry(key.to_owned()).or_default();
    if written > newest.as_str() {
        *newest = written.to_owned();
    }
}
