//! The metadata protocol on InMemory (under the simulator), on the local
//! file system and on S3 (a local server; under smol): fencing, concurrent updates, checkpoints, the
//! compactor state protocol, merge rules and damaged objects.

mod support;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use talusdb::actors::Runtime;
use talusdb::actors::runtime::{Clock, Sim};
use talusdb::internals::{CompactorState, PROTECT_INPUTS_FOR, encode_envelope, read_view};
use talusdb::manifest::{
    CheckpointOptions, CompactionSpec, CompactionStatus, Compactions, Fenced, IfMissing, Manifest, ManifestError, Role,
    Source, TableHandle, VersionedOptions, VersionedStore,
};
use talusdb::store::{ByteRange, ObjectStoreAdapter, PutMode, Store, StoreError, Ulid};

use support::{TempDir, on_smol};

/// Wall-clock milliseconds the tests set by hand.
struct ManualClock {
    origin: std::time::Instant,
    wall_ms: AtomicU64,
}

impl Clock for ManualClock {
    fn monotonic(&self) -> Duration {
        #[allow(clippy::disallowed_methods, reason = "monotonic time for smol's real timers")]
        let now = std::time::Instant::now();
        now.duration_since(self.origin)
    }

    fn wall_ms(&self) -> u64 {
        self.wall_ms.load(Ordering::Relaxed)
    }
}

/// What a test gets: a runtime, a store, and a way to move wall time.
struct Env {
    runtime: Runtime,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
}

impl Env {
    fn manifests(&self) -> VersionedStore<Manifest> {
        VersionedStore::new(self.store.clone(), Path::from("db"), self.runtime.clone(), options())
    }

    fn compactions(&self) -> VersionedStore<Compactions> {
        VersionedStore::new(self.store.clone(), Path::from("db"), self.runtime.clone(), options())
    }

    fn advance_wall(&self, by: Duration) {
        self.clock.wall_ms.fetch_add(by.as_millis() as u64, Ordering::Relaxed);
    }
}

fn options() -> VersionedOptions {
    VersionedOptions {
        update_timeout: Duration::from_secs(60),
        retry_backoff: Duration::from_millis(2),
    }
}

/// Runs `test` twice: InMemory under the simulator, and LocalFileSystem
/// under smol.
fn on_each_store<F, Fut>(test: F)
where
    F: Fn(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    let clock = || {
        Arc::new(ManualClock {
            #[allow(clippy::disallowed_methods, reason = "the origin of a test clock")]
            origin: std::time::Instant::now(),
            wall_ms: AtomicU64::new(1_700_000_000_000),
        })
    };
    let sim = Sim::new(7);
    let manual = clock();
    let env = Env {
        runtime: sim.runtime().with_clock(manual.clone()),
        store: Arc::new(ObjectStoreAdapter::in_memory()),
        clock: manual,
    };
    sim.block_on(test(env));

    let dir = TempDir::new("manifest");
    on_smol(|runtime| {
        let manual = clock();
        let runtime = runtime.with_clock(manual.clone()).with_seed(7);
        let store = ObjectStoreAdapter::local_dir(dir.path(), runtime.clone()).expect("local store");
        test(Env {
            runtime,
            store: Arc::new(store),
            clock: manual,
        })
    });

    #[cfg(feature = "aws")]
    if let Some((store, _server)) = support::s3_store("the manifest suite on S3") {
        on_smol(|runtime| {
            let manual = clock();
            test(Env {
                runtime: runtime.with_clock(manual.clone()).with_seed(7),
                store,
                clock: manual,
            })
        });
    }
}

fn table(n: u8) -> TableHandle {
    TableHandle {
        id: Ulid(u128::from(n)),
        size: 100 + u64::from(n),
        first_key: Bytes::from(vec![b'a', n]),
        last_key: Bytes::from(vec![b'z', n]),
        min_seq: 10 * u64::from(n),
        max_seq: 10 * u64::from(n) + 9,
        rows: 10,
        tombstones: 1,
        range_deletes: 0,
    }
}

async fn add_l0(writer: &mut Fenced<Manifest>, n: u8) -> Result<u64, ManifestError> {
    writer
        .update(|manifest, _| {
            manifest.l0.insert(0, table(n));
            manifest.last_l0_seq = table(n).max_seq;
            Ok(())
        })
        .await
}

#[test]
fn a_second_writer_fences_the_first_and_its_changes_never_land() {
    on_each_store(|env| async move {
        let mut first = Fenced::open(env.manifests(), Role::Writer, IfMissing::Create)
            .await
            .expect("open");
        assert_eq!(first.epoch(), Some(1));
        add_l0(&mut first, 1).await.expect("the only writer updates");

        let mut second = Fenced::open(env.manifests(), Role::Writer, IfMissing::Create)
            .await
            .expect("open");
        assert_eq!(second.epoch(), Some(2));
        assert_eq!(
            second.current().l0,
            vec![table(1)],
            "the new writer sees the old one's data"
        );

        let error = add_l0(&mut first, 2).await.expect_err("fenced");
        assert!(error.is_fenced(), "{error}");
        assert!(matches!(error, ManifestError::Fenced { ours: 1, stored: 2, .. }));
        let again = add_l0(&mut first, 3).await.expect_err("still fenced");
        assert!(again.is_fenced(), "fencing is final");

        add_l0(&mut second, 4).await.expect("the new writer updates");
        for id in env.manifests().ids().await.expect("ids") {
            let version = env.manifests().read(id).await.expect("read");
            assert!(
                !version.l0.contains(&table(2)) && !version.l0.contains(&table(3)),
                "version {id}"
            );
        }
        let (_, latest) = env.manifests().read_latest().await.expect("read").expect("exists");
        assert_eq!(latest.l0, vec![table(4), table(1)]);
        assert_eq!(latest.writer_epoch, 2);
    });
}

#[test]
fn sixteen_concurrent_updaters_lose_nothing_and_write_each_version_once() {
    const UPDATERS: u64 = 16;
    const ROUNDS: u64 = 4;
    on_each_store(|env| async move {
        let writer = Fenced::open(env.manifests(), Role::Writer, IfMissing::Create)
            .await
            .expect("open");
        let first_id = writer.id();
        let mut tasks = Vec::new();
        for updater in 0..UPDATERS {
            let manifests = env.manifests();
            tasks.push(env.runtime.spawn(async move {
                let mut handle = Fenced::load(manifests, Role::Admin).await.expect("load");
                let mut written = Vec::new();
                for round in 0..ROUNDS {
                    let name = format!("updater {updater} round {round}");
                    let checkpoint = handle
                        .create_checkpoint(CheckpointOptions {
                            name: Some(name),
                            ..CheckpointOptions::default()
                        })
                        .await
                        .expect("update with refresh, merge and retry");
                    written.push(checkpoint.manifest_id);
                }
                written
            }));
        }
        let mut version_ids = Vec::new();
        for task in tasks {
            version_ids.extend(task.await.expect("updater"));
        }
        let unique: BTreeSet<u64> = version_ids.iter().copied().collect();
        assert_eq!(unique.len(), version_ids.len(), "no two updates claim one version");
        let ids = env.manifests().ids().await.expect("ids");
        let expected: Vec<u64> = (1..=first_id + UPDATERS * ROUNDS).collect();
        assert_eq!(ids, expected, "every version id written exactly once, no gaps");
        let (_, latest) = env.manifests().read_latest().await.expect("read").expect("exists");
        let names: BTreeSet<String> = latest.checkpoints.iter().filter_map(|c| c.name.clone()).collect();
        assert_eq!(names.len() as u64, UPDATERS * ROUNDS, "no update lost");
        for checkpoint in &latest.checkpoints {
            let pinned = env
                .manifests()
                .read(checkpoint.manifest_id)
                .await
                .expect("pinned version");
            assert!(
                pinned.checkpoint(checkpoint.id).is_some(),
                "a checkpoint pins the version recording it"
            );
        }
    });
}

#[test]
fn checkpoints_are_created_refreshed_deleted_listed_and_expire() {
    on_each_store(|env| async move {
        let mut writer = Fenced::open(env.manifests(), Role::Writer, IfMissing::Create)
            .await
            .expect("open");
        add_l0(&mut writer, 1).await.expect("update");
        let pinned_before = writer.id();
        let forever = writer
            .create_checkpoint(CheckpointOptions {
                name: Some("backup".into()),
                ..CheckpointOptions::default()
            })
            .await
            .expect("create");
        assert_eq!(forever.manifest_id, pinned_before + 1);
        assert_eq!(forever.expire_ms, None);
        let short = writer
            .create_checkpoint(CheckpointOptions {
                lifetime: Some(Duration::from_secs(10)),
                pin: Some(pinned_before),
                ..CheckpointOptions::default()
            })
            .await
            .expect("create");
        assert_eq!(short.manifest_id, pinned_before);
        let mut admin = Fenced::load(env.manifests(), Role::Admin).await.expect("load");
        assert_eq!(admin.list_checkpoints().len(), 2, "another handle lists both");

        env.advance_wall(Duration::from_secs(8));
        let refreshed = admin
            .refresh_checkpoint(short.id, Duration::from_secs(10))
            .await
            .expect("refresh");
        assert_eq!(refreshed.expire_ms, Some(short.create_ms + 18_000));
        env.advance_wall(Duration::from_secs(5));
        writer.refresh().await.expect("refresh");
        assert_eq!(writer.list_checkpoints().len(), 2, "refreshed: still live at 13 s");
        env.advance_wall(Duration::from_secs(6));
        let live = writer.list_checkpoints();
        assert_eq!(live, vec![forever.clone()], "expired at 18 s: ignored");
        assert_eq!(writer.current().checkpoints.len(), 2, "still recorded until collected");

        writer.delete_checkpoint(forever.id).await.expect("delete");
        assert!(writer.list_checkpoints().is_empty());
        let missing = writer.delete_checkpoint(forever.id).await.expect_err("gone");
        assert!(matches!(missing, ManifestError::CheckpointNotFound { .. }), "{missing}");
        let missing = admin.refresh_checkpoint(Ulid(99), Duration::from_secs(1)).await;
        assert!(matches!(missing, Err(ManifestError::CheckpointNotFound { .. })));
    });
}

#[test]
fn a_manifest_write_that_races_an_external_checkpoint_retries_and_keeps_both() {
    on_each_store(|env| async move {
        let mut writer = Fenced::open(env.manifests(), Role::Writer, IfMissing::Create)
            .await
            .expect("open");
        let mut admin = Fenced::load(env.manifests(), Role::Admin).await.expect("load");
        let checkpoint = admin
            .create_checkpoint(CheckpointOptions::default())
            .await
            .expect("checkpoint");
        let stale_id = writer.id();
        let written = add_l0(&mut writer, 5).await.expect("retried on top of the checkpoint");
        assert_eq!(
            written,
            stale_id + 2,
            "the conflicting version was skipped, not overwritten"
        );
        let (_, latest) = env.manifests().read_latest().await.expect("read").expect("exists");
        assert_eq!(latest.l0, vec![table(5)]);
        assert!(latest.checkpoint(checkpoint.id).is_some());
    });
}

#[test]
fn each_role_may_change_only_its_own_fields() {
    on_each_store(|env| async move {
        let mut writer = Fenced::open(env.manifests(), Role::Writer, IfMissing::Create)
            .await
            .expect("open");
        add_l0(&mut writer, 1).await.expect("writer adds L0");
        add_l0(&mut writer, 2).await.expect("writer adds L0");
        let mut compactor = Fenced::open(env.manifests(), Role::Compactor, IfMissing::Fail)
            .await
            .expect("open");
        let mut admin = Fenced::load(env.manifests(), Role::Admin).await.expect("load");

        let invalid = |result: Result<u64, ManifestError>| {
            assert!(matches!(result, Err(ManifestError::InvalidChange { .. })), "{result:?}");
        };
        invalid(
            writer
                .update(|m, _| {
                    m.l0.truncate(1);
                    Ok(())
                })
                .await,
        );
        invalid(
            writer
                .update(|m, _| {
                    m.sorted_runs
                        .push(talusdb::manifest::SortedRun { id: 0, tables: vec![] });
                    Ok(())
                })
                .await,
        );
        invalid(
            compactor
                .update(|m, _| {
                    m.l0.push(table(9));
                    Ok(())
                })
                .await,
        );
        invalid(
            compactor
                .update(|m, _| {
                    m.next_wal_id += 1;
                    Ok(())
                })
                .await,
        );
        invalid(
            admin
                .update(|m, _| {
                    m.l0.clear();
                    Ok(())
                })
                .await,
        );
        invalid(
            writer
                .update(|m, _| {
                    m.compactor_epoch += 1;
                    Ok(())
                })
                .await,
        );

        // Concurrent owners: the compactor moves the oldest L0 table into a
        // run while the writer adds a new one; both changes survive.
        compactor
            .update(|m, _| {
                let oldest = m.l0.pop().expect("an L0 table");
                m.sorted_runs.insert(
                    0,
                    talusdb::manifest::SortedRun {
                        id: m.next_run_id(),
                        tables: vec![oldest],
                    },
                );
                Ok(())
            })
            .await
            .expect("compactor");
        add_l0(&mut writer, 3)
            .await
            .expect("writer, merged over the compactor's version");
        let (_, latest) = env.manifests().read_latest().await.expect("read").expect("exists");
        assert_eq!(latest.l0, vec![table(3), table(2)]);
        assert_eq!(latest.sorted_runs.len(), 1);
        assert_eq!(latest.sorted_runs[0].tables, vec![table(1)]);
        assert_eq!((latest.writer_epoch, latest.compactor_epoch), (1, 1));
    });
}

async fn open_compactor(env: &Env) -> CompactorState {
    CompactorState::open(env.manifests(), env.compactions())
        .await
        .expect("open compactor")
}

fn spec(n: u8) -> CompactionSpec {
    CompactionSpec {
        sources: vec![Source::L0(Ulid(u128::from(n))), Source::Run(u64::from(n))],
        destination: u64::from(n),
    }
}

#[test]
fn a_restarted_compactor_resubmits_running_jobs_and_keeps_the_last_finished() {
    on_each_store(|env| async move {
        let mut writer = Fenced::open(env.manifests(), Role::Writer, IfMissing::Create)
            .await
            .expect("open");
        add_l0(&mut writer, 1).await.expect("l0");
        let mut old = open_compactor(&env).await;
        assert_eq!(old.epoch(), 1);
        assert_eq!(old.compactions().compactor_epoch, 1, "mirrored");
        let done_first = old.submit(spec(1)).await.expect("submit");
        let done_second = old.submit(spec(2)).await.expect("submit");
        let running = old.submit(spec(3)).await.expect("submit");
        let waiting = old.submit(spec(4)).await.expect("submit");
        for id in [done_first, done_second, running] {
            old.start(id).await.expect("start");
        }
        old.add_output(running, table(30)).await.expect("output");
        old.finish(done_first, vec![table(10)], |_| Ok(()))
            .await
            .expect("finish");
        old.finish(done_second, vec![table(20)], |m| {
            let input = m.l0.pop().expect("input");
            m.sorted_runs.push(talusdb::manifest::SortedRun {
                id: 2,
                tables: vec![input],
            });
            Ok(())
        })
        .await
        .expect("finish");
        assert!(
            old.compactions().get(done_first).is_none(),
            "only the last finished entry is kept"
        );
        let checkpoint = old
            .manifest()
            .checkpoints
            .iter()
            .find(|c| c.name.as_deref() == Some(&format!("compaction {done_second} inputs")))
            .expect("a checkpoint protects the inputs")
            .clone();
        let pinned = env.manifests().read(checkpoint.manifest_id).await.expect("pinned");
        assert_eq!(
            pinned.l0,
            vec![table(1)],
            "the pinned version still references the input"
        );
        assert_eq!(
            checkpoint.expire_ms,
            Some(checkpoint.create_ms + PROTECT_INPUTS_FOR.as_millis() as u64)
        );

        let mut new = open_compactor(&env).await;
        assert_eq!(new.epoch(), 2);
        let state = new.compactions().clone();
        assert_eq!(state.compactor_epoch, 2);
        let ids: Vec<Ulid> = state.entries.iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![done_second, running, waiting]);
        assert_eq!(state.get(running).map(|e| e.status), Some(CompactionStatus::Submitted));
        assert_eq!(
            state.get(running).map(|e| e.outputs.clone()),
            Some(vec![table(30)]),
            "outputs kept"
        );
        assert_eq!(state.get(waiting).map(|e| e.status), Some(CompactionStatus::Submitted));
        assert_eq!(
            state.get(done_second).map(|e| e.status),
            Some(CompactionStatus::Completed)
        );

        let fenced = old.submit(spec(5)).await.expect_err("the old compactor is fenced");
        assert!(fenced.is_fenced(), "{fenced}");
        new.refresh().await.expect("refresh");
        assert!(new.compactions().active().all(|e| e.id != Ulid(5)));
    });
}

#[test]
fn a_compactions_write_that_races_an_external_submission_keeps_both() {
    on_each_store(|env| async move {
        Fenced::open(env.manifests(), Role::Writer, IfMissing::Create)
            .await
            .expect("open");
        let mut compactor = open_compactor(&env).await;
        let mut external = Fenced::load(env.compactions(), Role::Admin).await.expect("load");
        external
            .update(|state, _| {
                state.submit(Ulid(1 << 100), spec(7));
                Ok(())
            })
            .await
            .expect("external submission");
        let ours = compactor.submit(spec(8)).await.expect("retried after the conflict");
        let view = read_view(&env.manifests(), &env.compactions()).await.expect("view");
        let (_, state) = view.compactions.expect("compactions");
        assert!(state.get(Ulid(1 << 100)).is_some(), "the external submission survives");
        assert!(state.get(ours).is_some(), "ours too");
        assert!(view.manifest.is_some());

        let not_submitted = external
            .update(|state, _| {
                state.submit(Ulid(1 << 101), spec(9));
                if let Some(entry) = state.get_mut(Ulid(1 << 101)) {
                    entry.status = CompactionStatus::Running;
                }
                Ok(())
            })
            .await;
        assert!(matches!(not_submitted, Err(ManifestError::InvalidChange { .. })));
    });
}

#[test]
fn a_compactor_needs_an_existing_database() {
    on_each_store(|env| async move {
        let missing = CompactorState::open(env.manifests(), env.compactions()).await;
        assert!(matches!(missing, Err(ManifestError::Missing { .. })), "{missing:?}");
        assert!(
            env.manifests().read_latest().await.expect("read").is_none(),
            "nothing was created"
        );
    });
}

#[test]
fn versions_missing_in_the_middle_are_skipped_and_the_newest_wins() {
    on_each_store(|env| async move {
        let mut writer = Fenced::open(env.manifests(), Role::Writer, IfMissing::Create)
            .await
            .expect("open");
        for n in 1..=4 {
            add_l0(&mut writer, n).await.expect("update");
        }
        let mut reader = Fenced::load(env.manifests(), Role::Admin).await.expect("load");
        assert_eq!(reader.id(), 5);
        add_l0(&mut writer, 5).await.expect("update");
        add_l0(&mut writer, 6).await.expect("update");
        for collected in [2, 3, 4, 5, 6] {
            env.manifests().delete(collected).await.expect("delete");
        }
        reader.refresh().await.expect("refresh across the gap");
        assert_eq!(reader.id(), 7);
        assert_eq!(reader.current().l0.len(), 6);
        assert_eq!(env.manifests().ids().await.expect("ids"), vec![1, 7]);
    });
}

/// Writes `bytes` as version `id` of the manifest or compactions.
async fn plant(env: &Env, path: &Path, bytes: Bytes) {
    env.store.put(path, bytes, PutMode::Overwrite).await.expect("plant");
}

fn expect_corruption(result: Result<impl std::fmt::Debug, ManifestError>, path: &Path) {
    match result {
        Err(ManifestError::Store(StoreError::Corruption { path: named, .. })) => assert_eq!(&named, path),
        other => panic!("expected corruption of {path}, got {other:?}"),
    }
}

/// Re-seals an envelope after its version field was changed.
fn with_version(mut bytes: Vec<u8>, version: u32) -> Bytes {
    bytes[8..12].copy_from_slice(&version.to_le_bytes());
    let body = bytes.len() - 4;
    let checksum = crc32fast::hash(&bytes[..body]);
    bytes[body..].copy_from_slice(&checksum.to_le_bytes());
    Bytes::from(bytes)
}

#[test]
fn damaged_manifests_and_compactions_are_corruption_errors() {
    on_each_store(|env| async move {
        let mut writer = Fenced::open(env.manifests(), Role::Writer, IfMissing::Create)
            .await
            .expect("open");
        add_l0(&mut writer, 1).await.expect("update");
        let mut compactor = open_compactor(&env).await;
        compactor.submit(spec(1)).await.expect("submit");

        let manifest_path = env.manifests().path(writer.id() + 5);
        let good = encode_envelope(writer.current(), 1).to_vec();
        for damaged in [
            Bytes::copy_from_slice(&good[..good.len() / 2]),
            Bytes::from({
                let mut flipped = good.clone();
                flipped[20] ^= 1;
                flipped
            }),
            // Version 2 promises losses this one does not have.
            with_version(good.clone(), 2),
            Bytes::from_static(b"nope"),
        ] {
            plant(&env, &manifest_path, damaged).await;
            expect_corruption(env.manifests().read_latest().await, &manifest_path);
            expect_corruption(writer.refresh().await, &manifest_path);
        }

        let compactions_path = env.compactions().path(compactor.compactions_id() + 1);
        let good = encode_envelope(compactor.compactions(), 1).to_vec();
        // A newer version than this build knows is unsupported, not corrupt.
        plant(&env, &compactions_path, with_version(good.clone(), 9)).await;
        match env.compactions().read_latest().await {
            Err(ManifestError::Store(StoreError::Unsupported { path, .. })) => assert_eq!(path, compactions_path),
            other => panic!("expected version 9 to be unsupported, got {other:?}"),
        }
        plant(&env, &compactions_path, with_version(good.clone(), 0)).await;
        expect_corruption(env.compactions().read_latest().await, &compactions_path);
        plant(&env, &compactions_path, Bytes::copy_from_slice(&good[..good.len() - 1])).await;
        expect_corruption(compactor.refresh().await, &compactions_path);
        // The same bytes under the wrong kind: the magic differs.
        plant(&env, &compactions_path, encode_envelope(writer.current(), 1)).await;
        expect_corruption(env.compactions().read_latest().await, &compactions_path);
        let fetched = env
            .store
            .get(&compactions_path, ByteRange::All)
            .await
            .expect("still there");
        assert!(!fetched.bytes.is_empty(), "nothing was deleted");
    });
}
