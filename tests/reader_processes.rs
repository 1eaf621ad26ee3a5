//! A writer and a following reader in two OS processes, on the local
//! directory and on the local S3 server: the reader sees every write the
//! writer acknowledged within a bound of refresh intervals, never sees half
//! a batch, and never fails a read while the writer flushes, compacts and
//! collects garbage with no minimum age; its checkpoint is gone after its
//! close, and a reader killed with SIGKILL leaves one that expires.
//!
//! The test binary runs itself as the reader (the test
//! `reader_process_entry`, which does nothing unless the parent's
//! environment names its store).

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use futures::TryStreamExt;
use object_store::path::Path;
use talusdb::actors::Runtime;
use talusdb::manifest::{Manifest, VersionedOptions, VersionedStore};
use talusdb::store::Store;
use talusdb::{Db, ReaderOptions, WriteBatch};

use support::TempDir;

const ENV_STORE: &str = "TALUS_FOLLOW_STORE";
const ENV_LIFETIME_MS: &str = "TALUS_FOLLOW_LIFETIME_MS";

/// The reader's refresh interval.
const INTERVAL: Duration = Duration::from_millis(100);
/// Batches the writer commits.
const BATCHES: u64 = 150;
/// Rows per batch (and the counter).
const ROWS: u64 = 16;
/// How many refresh intervals an acknowledged write may take to be seen:
/// generous, for a busy machine (the figure itself is a benchmark's job).
const BOUND_INTERVALS: u32 = 100;

/// The reader: follows until it has seen the last batch, checking every
/// scan holds one whole batch. Prints `@@ready <checkpoint>`, `@@seen
/// <batch> <wall ms>` for each new batch, `@@bad <why>` for anything wrong,
/// `@@done` after its close.
#[test]
fn reader_process_entry() {
    let Ok(spec) = std::env::var(ENV_STORE) else {
        return;
    };
    let lifetime = Duration::from_millis(std::env::var(ENV_LIFETIME_MS).expect("a lifetime").parse().expect("ms"));
    support::on_smol(|runtime| async move {
        let store = support::store_from_spec(&spec, "follow", &runtime);
        let reader = Db::builder("db", store)
            .runtime(runtime.clone())
            .open_reader(ReaderOptions {
                refresh_interval: Some(INTERVAL),
                manifest_interval: Duration::from_secs(1),
                checkpoint_lifetime: lifetime,
                at_checkpoint: None,
                at_seq: None,
            })
            .await
            .expect("open the reader");
        println!("@@ready {}", reader.checkpoint().expect("a checkpoint"));
        let mut seen = 0;
        while seen < BATCHES {
            match reader.get("counter").await {
                Ok(Some(value)) => {
                    let batch: u64 = std::str::from_utf8(&value).expect("utf8").parse().expect("a number");
                    if batch > seen {
                        seen = batch;
                        println!("@@seen {batch} {}", runtime.wall_ms());
                    }
                }
                Ok(None) => {}
                Err(error) => println!("@@bad get: {error}"),
            }
            let rows: Result<Vec<_>, _> = reader.scan_prefix("row/").try_collect().await;
            match rows {
                Ok(rows) if rows.is_empty() => {}
                Ok(rows) => {
                    let batches: std::collections::BTreeSet<_> = rows.iter().map(|(_, value)| value.clone()).collect();
                    if rows.len() as u64 != ROWS || batches.len() != 1 {
                        println!("@@bad a scan saw {} rows of batches {batches:?}", rows.len());
                    }
                }
                Err(error) => println!("@@bad scan: {error}"),
            }
            runtime.sleep(Duration::from_millis(10)).await;
        }
        reader.close().await.expect("close");
        println!("@@done");
    });
}

/// The reader child's lines (ours only), as they come.
fn spawn_reader(spec: &str, lifetime: Duration) -> (Child, Receiver<String>) {
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new(exe)
        .args(["reader_process_entry", "--exact", "--nocapture", "--test-threads", "1"])
        .env(ENV_STORE, spec)
        .env(ENV_LIFETIME_MS, lifetime.as_millis().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the reader");
    let stdout = child.stdout.take().expect("piped");
    let (send, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // The harness's own "test ... " text may share a line with ours.
            if let Some((_, ours)) = line.split_once("@@")
                && send.send(ours.to_owned()).is_err()
            {
                return;
            }
        }
    });
    (child, lines)
}

/// Waits for the child's `@@ready` line: its checkpoint id.
fn ready(lines: &Receiver<String>) -> String {
    let line = lines
        .recv_timeout(Duration::from_secs(120))
        .expect("the reader starts within 2 minutes");
    line.strip_prefix("ready ")
        .unwrap_or_else(|| panic!("a ready line, not {line:?}"))
        .to_owned()
}

async fn live_checkpoints(store: &Arc<dyn Store>, runtime: &Runtime) -> Vec<String> {
    let versions: VersionedStore<Manifest> = VersionedStore::new(
        store.clone(),
        Path::from("db"),
        runtime.clone(),
        VersionedOptions::default(),
    );
    let (_, manifest) = versions.read_latest().await.expect("read").expect("a manifest");
    manifest
        .live_checkpoints(runtime.wall_ms())
        .map(|checkpoint| checkpoint.id.to_string())
        .collect()
}

fn follow_on(spec: &str, store: Arc<dyn Store>, runtime: &Runtime) {
    smol::block_on(async {
        let writer = Db::builder("db", store.clone())
            .runtime(runtime.clone())
            .options(support::compacting_db_options(8, Duration::from_millis(200)))
            .open()
            .await
            .expect("open the writer");
        writer.put("counter", "0").await.expect("put");
        let (mut child, lines) = spawn_reader(spec, Duration::from_secs(30));
        let checkpoint = ready(&lines);
        assert!(
            live_checkpoints(&store, runtime).await.contains(&checkpoint),
            "{spec}: the reader's checkpoint is in the manifest"
        );
        let mut acked = BTreeMap::new();
        for batch in 1..=BATCHES {
            let mut rows = WriteBatch::new();
            for row in 0..ROWS {
                rows.put(format!("row/{row:02}"), batch.to_string());
            }
            rows.put("counter", batch.to_string());
            writer.write(rows).await.expect("a durable batch");
            acked.insert(batch, runtime.wall_ms());
            if batch % 50 == 25 {
                writer.compact().await.expect("compact");
            }
            runtime.sleep(Duration::from_millis(5)).await;
        }
        let mut seen = BTreeMap::new();
        let mut done = false;
        for line in lines.iter() {
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next()) {
                (Some("seen"), Some(batch), Some(at)) => {
                    seen.insert(batch.parse::<u64>().expect("a batch"), at.parse::<u64>().expect("ms"));
                }
                (Some("done"), None, None) => {
                    done = true;
                    break;
                }
                _ => panic!("{spec}: the reader reports {line:?}"),
            }
        }
        let status = child.wait().expect("the reader's status");
        assert!(done && status.success(), "{spec}: the reader failed: {status}");
        // Each acknowledged batch is seen by the time the first batch at or
        // above it is.
        let bound = u64::try_from((INTERVAL * BOUND_INTERVALS).as_millis()).expect("ms");
        let mut worst = 0;
        for (batch, acked_ms) in &acked {
            let (_, seen_ms) = seen
                .range(batch..)
                .next()
                .unwrap_or_else(|| panic!("{spec}: batch {batch} never seen"));
            worst = worst.max(seen_ms.saturating_sub(*acked_ms));
        }
        println!("{spec}: the slowest acknowledged batch was seen after {worst} ms");
        assert!(
            worst <= bound,
            "{spec}: a batch took {worst} ms to be seen (bound {bound} ms)"
        );
        assert!(
            !live_checkpoints(&store, runtime).await.contains(&checkpoint),
            "{spec}: the closed reader's checkpoint is gone"
        );

        // A reader that is killed: its checkpoint expires on its own.
        let (mut killed, lines) = spawn_reader(spec, Duration::from_secs(3));
        let orphan = ready(&lines);
        killed.kill().expect("SIGKILL the reader");
        killed.wait().expect("reaped");
        assert!(live_checkpoints(&store, runtime).await.contains(&orphan));
        support::within(runtime, Duration::from_secs(60), "the orphan's expiry", async {
            while live_checkpoints(&store, runtime).await.contains(&orphan) {
                runtime.sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        writer.close().await.expect("close the writer");
    });
}

#[test]
fn a_reader_in_another_process_follows_the_writer() {
    let runtime = Runtime::smol().expect("smol");
    let dir = TempDir::new("follow");
    let local: Arc<dyn Store> =
        Arc::new(talusdb::store::ObjectStoreAdapter::local_dir(dir.path(), runtime.clone()).expect("local"));
    follow_on(&format!("local:{}", dir.path().display()), local, &runtime);

    #[cfg(feature = "aws")]
    if let Some(server) = support::S3Server::start("the following reader on S3") {
        let spec = format!("s3:{}", server.endpoint);
        let store = support::store_from_spec(&spec, "follow", &runtime);
        follow_on(&spec, store, &runtime);
    }
}
