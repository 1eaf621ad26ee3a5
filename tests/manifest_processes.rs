//! Conditional creates and manifest updates from several OS processes at
//! once, on the local directory and on the local S3 server: every object
//! and every manifest version has exactly one writer, and no update is lost.
//!
//! The test binary runs itself as the child processes (the test
//! `child_process_entry`, which does nothing unless the parent's
//! environment variables name its work). With more processes than cores
//! the children contend for the CPU as well as for the store.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use talusdb::actors::Runtime;
use talusdb::manifest::{CheckpointOptions, Fenced, IfMissing, Manifest, Role, VersionedOptions, VersionedStore};
use talusdb::store::{ByteRange, Created, ObjectStoreAdapter, Store, create_once};

use support::TempDir;

/// Child processes per store (more than this machine's two cores).
const PROCESSES: usize = 6;
/// Objects every child races to create.
const CREATE_ROUNDS: usize = 150;
/// Manifest updates (checkpoint creations) per child.
const UPDATES: usize = 25;

const ENV_STORE: &str = "TALUS_STRESS_STORE";
const ENV_CHILD: &str = "TALUS_STRESS_CHILD";

fn versioned(store: Arc<dyn Store>, runtime: &Runtime) -> VersionedStore<Manifest> {
    VersionedStore::new(
        store,
        Path::from("db"),
        runtime.clone(),
        VersionedOptions {
            update_timeout: Duration::from_secs(120),
            retry_backoff: Duration::from_millis(5),
        },
    )
}

/// The store a `TALUS_STRESS_STORE` value names.
fn open_store(spec: &str, runtime: &Runtime) -> Arc<dyn Store> {
    support::store_from_spec(spec, "stress", runtime)
}

/// One child's work: race for every object, then update the manifest.
/// Prints `@@won <round> <token>` for each create it won and
/// `@@version <id>` for each manifest version it wrote.
#[test]
fn child_process_entry() {
    let (Ok(spec), Ok(child)) = (std::env::var(ENV_STORE), std::env::var(ENV_CHILD)) else {
        return;
    };
    support::on_smol(|runtime| async move {
        let store = open_store(&spec, &runtime);
        for round in 0..CREATE_ROUNDS {
            let token = format!("child {child} round {round} nonce {:016x}", runtime.next_u64());
            let path = Path::from(format!("race/{round:05}"));
            let created = create_once(&*store, &path, Bytes::from(token.clone()))
                .await
                .expect("a create on a working store");
            if created == Created::Written {
                println!("@@won {round} {token}");
            }
        }
        let mut handle = Fenced::load(versioned(store, &runtime), Role::Admin)
            .await
            .expect("load");
        for update in 0..UPDATES {
            let checkpoint = handle
                .create_checkpoint(CheckpointOptions {
                    name: Some(format!("child {child} update {update}")),
                    ..CheckpointOptions::default()
                })
                .await
                .expect("an update with refresh and retry");
            println!("@@version {}", checkpoint.manifest_id);
        }
    });
}

/// Runs the children against `spec` and checks what they claim against
/// what the store holds.
fn race_on(spec: &str, store: Arc<dyn Store>, runtime: &Runtime) {
    let first_id = smol::block_on(async {
        Fenced::open(versioned(store.clone(), runtime), Role::Writer, IfMissing::Create)
            .await
            .expect("create the manifest")
            .id()
    });
    let exe = std::env::current_exe().expect("the test binary");
    let children: Vec<_> = (0..PROCESSES)
        .map(|child| {
            Command::new(&exe)
                .args(["child_process_entry", "--exact", "--nocapture", "--test-threads", "1"])
                .env(ENV_STORE, spec)
                .env(ENV_CHILD, child.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn a child")
        })
        .collect();
    let mut winners: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut versions: Vec<u64> = Vec::new();
    for child in children {
        let output = child.wait_with_output().expect("a child's output");
        assert!(output.status.success(), "a child failed: {}", output.status);
        // The harness's own "test ... " text may share a line with ours.
        let stdout = String::from_utf8_lossy(&output.stdout);
        for line in stdout
            .lines()
            .filter_map(|line| line.split_once("@@").map(|(_, ours)| ours))
        {
            let mut words = line.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("won"), Some(round), Some(token)) => winners
                    .entry(round.parse().expect("a round"))
                    .or_default()
                    .push(token.to_owned()),
                (Some("version"), Some(id), None) => versions.push(id.parse().expect("an id")),
                _ => {}
            }
        }
    }
    smol::block_on(async {
        for round in 0..CREATE_ROUNDS {
            let claims = winners.get(&round).cloned().unwrap_or_default();
            assert_eq!(
                claims.len(),
                1,
                "{spec}: object {round}: exactly one process wins its create: {claims:?}"
            );
            let stored = store
                .get(&Path::from(format!("race/{round:05}")), ByteRange::All)
                .await
                .expect("the object");
            assert_eq!(
                stored.bytes,
                claims[0].as_bytes(),
                "{spec}: object {round} holds its winner's bytes"
            );
        }
        let unique: BTreeSet<u64> = versions.iter().copied().collect();
        assert_eq!(unique.len(), versions.len(), "{spec}: no two updates claim one version");
        let total = (PROCESSES * UPDATES) as u64;
        let ids = versioned(store.clone(), runtime).ids().await.expect("ids");
        assert_eq!(
            ids,
            (1..=first_id + total).collect::<Vec<_>>(),
            "{spec}: every version written once, none missing"
        );
        let (_, latest) = versioned(store, runtime)
            .read_latest()
            .await
            .expect("read")
            .expect("a manifest");
        let names: BTreeSet<_> = latest.checkpoints.iter().filter_map(|c| c.name.clone()).collect();
        assert_eq!(names.len() as u64, total, "{spec}: no update lost");
    });
}

#[test]
fn several_processes_create_each_object_and_each_manifest_version_exactly_once() {
    let runtime = Runtime::smol().expect("smol");
    let dir = TempDir::new("processes");
    let local: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::local_dir(dir.path(), runtime.clone()).expect("local"));
    race_on(&format!("local:{}", dir.path().display()), local, &runtime);

    #[cfg(feature = "aws")]
    if let Some(server) = support::S3Server::start("the multi-process race on S3") {
        let store = open_store(&format!("s3:{}", server.endpoint), &runtime);
        race_on(&format!("s3:{}", server.endpoint), store, &runtime);
    }
}
