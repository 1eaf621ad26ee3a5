//! `talus compactor run` as its own OS process beside a writer in this
//! one (opened with `compactor: None`): killed with SIGKILL in the middle
//! of a job, the next one redoes the job, loses nothing and collects what
//! the killed one left; a second compactor process fences the first (exit
//! code 3); SIGTERM stops one cleanly with its summary.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use support::TempDir;
use talusdb::actors::Runtime;
use talusdb::manifest::{CompactionStatus, Compactions, Manifest, VersionedOptions, VersionedStore};
use talusdb::store::{ObjectStoreAdapter, Store};
use talusdb::{Db, DbOptions, WriteBatch};

/// How long a step may take before the test calls it a hang (a busy CI
/// machine runs the debug build slowly; the figure is no performance bound).
const HANG: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(5);

fn compactor(dir: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_talus"))
        .arg("--store")
        .arg(format!("file://{}", dir.display()))
        .args(["compactor", "run", "--progress-s", "1", "--target-table-mib", "1"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start talus compactor run")
}

fn versions<P: talusdb::manifest::Versioned>(store: &Arc<dyn Store>, runtime: &Runtime) -> VersionedStore<P> {
    VersionedStore::new(store.clone(), "db".into(), runtime.clone(), VersionedOptions::default())
}

async fn compactions(store: &Arc<dyn Store>, runtime: &Runtime) -> Compactions {
    versions::<Compactions>(store, runtime)
        .read_latest()
        .await
        .expect("read")
        .map(|(_, state)| state)
        .unwrap_or_default()
}

async fn manifest(store: &Arc<dyn Store>, runtime: &Runtime) -> Manifest {
    versions::<Manifest>(store, runtime)
        .read_latest()
        .await
        .expect("read")
        .expect("a manifest")
        .1
}

/// Polls `done` until it holds, or panics naming `what` after [`HANG`].
async fn wait_for(runtime: &Runtime, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = runtime.now() + HANG;
    while !done().await {
        assert!(runtime.now() < deadline, "no {what} after {HANG:?}");
        runtime.sleep(POLL).await;
    }
}

/// Waits for `child` to exit; panics after [`HANG`].
async fn exited(runtime: &Runtime, child: &mut Child, what: &str) -> Output {
    wait_for(runtime, what, async || child.try_wait().expect("wait").is_some()).await;
    let status = child.wait().expect("wait");
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut stdout)
        .expect("read");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_end(&mut stderr)
        .expect("read");
    Output { status, stdout, stderr }
}

/// The sorted-table objects a version that may still be read lists: the
/// newest, and every live checkpoint's (the compactor pins its inputs for
/// 15 min with one).
async fn referenced(store: &Arc<dyn Store>, runtime: &Runtime) -> HashSet<String> {
    let manifests = versions::<Manifest>(store, runtime);
    let current = manifest(store, runtime).await;
    let mut kept = vec![current.clone()];
    for checkpoint in current.live_checkpoints(runtime.wall_ms()) {
        kept.push(manifests.read(checkpoint.manifest_id).await.expect("a pinned version"));
    }
    kept.iter()
        .flat_map(|version| version.tables())
        .map(|table| format!("db/compacted/{}.sst", table.id))
        .collect()
}

/// Sorted-table objects in the store.
async fn sorted_objects(store: &Arc<dyn Store>) -> HashSet<String> {
    store
        .list(&"db/compacted".into())
        .await
        .expect("list")
        .into_iter()
        .map(|info| info.path.to_string())
        .collect()
}

#[test]
fn a_compactor_process_killed_mid_job_is_redone_and_two_of_them_fence_each_other() {
    let dir = TempDir::new("compactor-process");
    let root = dir.path().to_path_buf();
    support::on_smol(|runtime| async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::local_dir(&root, runtime.clone()).expect("a store"));
        let writer = Db::builder("db", store.clone())
            .runtime(runtime.clone())
            .options(DbOptions {
                compactor: None,
                gc: None,
                max_l0_tables: 64,
                ..DbOptions::default()
            })
            .open()
            .await
            .expect("open the writer");
        // 30 L0 tables of about 1 MiB: one job of the size-tiered
        // strategy, cut into 1 MiB outputs one after another.
        let mut model = BTreeMap::new();
        let write_tables = async |model: &mut BTreeMap<String, String>, label: &str, tables: u64| {
            for table in 0..tables {
                for chunk in 0..8u64 {
                    let mut batch = WriteBatch::new();
                    for n in 0..256u64 {
                        let key = format!("k{:06}", (table * 2048 + chunk * 256 + n) * 7919 % 100_000);
                        let value = format!("{label} {table} {chunk} {n} {}", "v".repeat(480));
                        batch.put(key.clone(), value.clone());
                        model.insert(key, value);
                    }
                    writer.write(batch).await.expect("write");
                }
                writer.flush_memtable().await.expect("into L0");
            }
        };
        write_tables(&mut model, "first", 30).await;
        assert!(manifest(&store, &runtime).await.l0.len() >= 30);

        // The first compactor process: killed once its job has recorded
        // two outputs.
        let mut first = compactor(&root, &[]);
        wait_for(&runtime, "running job with two outputs", async || {
            compactions(&store, &runtime)
                .await
                .active()
                .any(|entry| entry.status == CompactionStatus::Running && entry.outputs.len() >= 2)
        })
        .await;
        first.kill().expect("SIGKILL");
        let killed = exited(&runtime, &mut first, "exit after SIGKILL").await;
        assert_eq!(killed.status.code(), None, "killed by a signal");
        let left = compactions(&store, &runtime).await;
        let interrupted: Vec<_> = left
            .active()
            .filter(|entry| entry.status == CompactionStatus::Running)
            .collect();
        assert_eq!(interrupted.len(), 1, "the job it was in: {left:?}");
        let abandoned: Vec<String> = interrupted[0]
            .outputs
            .iter()
            .map(|table| format!("db/compacted/{}.sst", table.id))
            .collect();
        // The writer goes on while no compactor runs, then stops: the
        // next compactor collects with no minimum age, which is safe only
        // with no writer that could be a second stale.
        write_tables(&mut model, "second", 4).await;
        writer.close().await.expect("close the writer");

        let mut second = compactor(&root, &["--gc-interval-s", "1", "--gc-min-age-s", "0"]);
        wait_for(&runtime, "redone job and a clean store", async || {
            let state = compactions(&store, &runtime).await;
            let current = manifest(&store, &runtime).await;
            state.active().next().is_none()
                && current.l0.len() < 4
                && sorted_objects(&store)
                    .await
                    .is_subset(&referenced(&store, &runtime).await)
        })
        .await;
        let present = sorted_objects(&store).await;
        for table in &abandoned {
            assert!(
                !present.contains(table),
                "the killed job's output {table} was collected"
            );
        }

        // A third process fences the second.
        let mut third = compactor(&root, &[]);
        let fenced = exited(&runtime, &mut second, "exit of the fenced compactor").await;
        let stderr = String::from_utf8_lossy(&fenced.stderr);
        assert_eq!(fenced.status.code(), Some(3), "fenced: {stderr}");
        assert!(stderr.contains("fenced"), "{stderr}");
        assert!(stderr.contains("L0"), "progress lines: {stderr}");

        // SIGTERM stops the third cleanly, with its summary.
        wait_for(&runtime, "the third compactor's open", async || {
            versions::<Compactions>(&store, &runtime)
                .read_latest()
                .await
                .expect("read")
                .is_some_and(|(_, state)| state.compactor_epoch >= 3)
        })
        .await;
        let terminated = Command::new("kill")
            .args(["-TERM", &third.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(terminated.success());
        let stopped = exited(&runtime, &mut third, "exit after SIGTERM").await;
        assert_eq!(
            stopped.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&stopped.stderr)
        );
        let summary = String::from_utf8_lossy(&stopped.stdout);
        assert!(summary.contains("stopped by SIGTERM"), "{summary}");

        // Nothing was lost.
        let reader = Db::builder("db", store.clone())
            .runtime(runtime.clone())
            .open_read_only()
            .await
            .expect("open read-only");
        let rows: BTreeMap<String, String> = support::text_rows(reader.scan::<&str>(..)).await.expect("scan");
        assert_eq!(rows.len(), model.len());
        assert!(rows == model, "every row reads back as written");
    });
}
