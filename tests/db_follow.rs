//! Readers that follow the writer (`DbBuilder::open_reader`), under the
//! simulator: every acknowledged write is seen within a few refresh
//! intervals while the writer compacts and collects garbage with no
//! minimum age; scans keep their tables; the reader's checkpoints go at
//! close or expire; an idle reader costs one request per interval; a
//! reader at a checkpoint stays there; a reader at a sequence number reads
//! exactly that state, or refuses; a new writer's takeover is followed.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use talusdb::actors::Runtime;
use talusdb::manifest::{Checkpoint, Manifest, VersionedOptions, VersionedStore};
use talusdb::store::{LatencyStore, Op, Store};
use talusdb::{Db, DbReader, ErrorKind, ReaderOptions};

const INTERVAL: Duration = Duration::from_millis(100);

/// Longer than the compactor keeps a compaction's inputs for readers
/// that hold no checkpoint (15 min).
const PAST_INPUT_PROTECTION: Duration = Duration::from_secs(16 * 60);

fn follow_options(lifetime: Duration) -> ReaderOptions {
    ReaderOptions {
        refresh_interval: Some(INTERVAL),
        manifest_interval: Duration::from_secs(1),
        checkpoint_lifetime: lifetime,
        ..ReaderOptions::default()
    }
}

async fn open_reader(store: &Arc<dyn Store>, runtime: &Runtime, options: ReaderOptions) -> DbReader {
    // No caches, small first reads: every read of a table reaches the
    // store, so a table deleted under the reader would be noticed.
    let uncached = talusdb::DbOptions {
        tables: talusdb::store::TableStoreOptions {
            open_read_bytes: 256,
            block_cache_bytes: 0,
            meta_cache_bytes: 0,
            ..Default::default()
        },
        ..talusdb::DbOptions::default()
    };
    Db::builder("db", store.clone())
        .runtime(runtime.clone())
        .options(uncached)
        .open_reader(options)
        .await
        .expect("open a reader")
}

/// The newest manifest version.
async fn latest(store: &Arc<dyn Store>, runtime: &Runtime) -> Manifest {
    let versions: VersionedStore<Manifest> = VersionedStore::new(
        store.clone(),
        Path::from("db"),
        runtime.clone(),
        VersionedOptions::default(),
    );
    versions.read_latest().await.expect("read").expect("a manifest").1
}

/// Readers' checkpoints that are live now.
async fn reader_checkpoints(store: &Arc<dyn Store>, runtime: &Runtime) -> Vec<Checkpoint> {
    let manifest = latest(store, runtime).await;
    manifest
        .live_checkpoints(runtime.wall_ms())
        .filter(|checkpoint| {
            checkpoint
                .name
                .as_deref()
                .is_some_and(|name| name.starts_with("reader "))
        })
        .cloned()
        .collect()
}

async fn all_rows(reader: &DbReader) -> BTreeMap<String, String> {
    support::text_rows(reader.scan::<&str>(..)).await.expect("a scan")
}

#[test]
fn a_following_reader_sees_every_acknowledged_write_while_the_writer_compacts_and_collects() {
    for seed in 1..=3 {
        support::on_sim(seed, async |runtime, memory| {
            // Object ages in simulated time, so that the collector's zero
            // minimum age deletes at once.
            let store: Arc<dyn Store> = Arc::new(support::sim_world::SimClock::new(memory, runtime.clone()));
            let writer = Db::builder("db", store.clone())
                .runtime(runtime.clone())
                .options(support::compacting_db_options(8, Duration::from_millis(500)))
                .open()
                .await
                .expect("open the writer");
            let mut model = BTreeMap::new();
            for n in 0..300 {
                let (key, value) = (format!("a{n:03}"), format!("early {n} {}", "y".repeat(100)));
                writer.put(key.clone(), value.clone()).await.expect("put");
                model.insert(key, value);
            }
            writer.flush_memtable().await.expect("into L0");
            // Run tables of several blocks, which a scan reads one at a
            // time.
            writer.compact().await.expect("a full compaction");
            writer.put("before", "the reader").await.expect("put");
            model.insert("before".to_string(), "the reader".to_string());
            let reader = open_reader(&store, &runtime, follow_options(Duration::from_secs(10))).await;
            assert!(reader.is_following());
            assert_eq!(
                reader.get("before").await.expect("get").as_deref(),
                Some(&b"the reader"[..])
            );
            let early_model = model.clone();
            let mut random = support::Gen(seed);
            // A scan that starts now and ends after many collections: its
            // tables stay while it holds them.
            let mut early = reader.scan_with_options::<&str>(
                ..,
                talusdb::ScanOptions {
                    read_ahead_blocks: 1,
                    ..talusdb::ScanOptions::default()
                },
            );
            let first = early.next().await.expect("a row").expect("no error");
            for round in 0..60u64 {
                for _ in 0..20 {
                    let key = format!("k{:03}", random.next(400));
                    if random.next(10) == 0 {
                        writer.delete(key.clone()).await.expect("delete");
                        model.remove(&key);
                    } else {
                        let value = format!("v{round}-{}", "x".repeat(random.next(200) as usize));
                        writer.put(key.clone(), value.clone()).await.expect("put");
                        model.insert(key, value);
                    }
                }
                if round % 20 == 10 {
                    // Every table is replaced, and the old ones collected
                    // unless a checkpoint keeps them.
                    writer.compact().await.expect("a full compaction");
                }
                if round == 30 && seed == 1 {
                    // Past the compactor's own protection of its inputs.
                    runtime.sleep(PAST_INPUT_PROTECTION).await;
                }
                // Three refresh intervals: long enough for the next tick.
                runtime.sleep(3 * INTERVAL).await;
                for _ in 0..10 {
                    let key = format!("k{:03}", random.next(400));
                    let seen = reader.get(&key).await.expect("a get never fails");
                    assert_eq!(
                        seen.as_deref(),
                        model.get(&key).map(|value| value.as_bytes()),
                        "seed {seed} round {round}: {key}"
                    );
                }
                if round % 10 == 9 {
                    assert_eq!(
                        all_rows(&reader).await,
                        model,
                        "seed {seed} round {round}: a whole scan"
                    );
                }
            }
            let rest: Vec<_> = early.try_collect().await.expect("the early scan reads to its end");
            let early_rows: BTreeMap<String, String> = std::iter::once(first).chain(rest).map(support::text).collect();
            assert_eq!(
                early_rows, early_model,
                "seed {seed}: the early scan reads the view it started on"
            );
            let stats = writer.stats();
            assert!(
                stats.compactor.compactions > 0,
                "seed {seed}: compaction ran: {stats:?}"
            );
            let manifest = latest(&store, &runtime).await;
            assert!(
                manifest.replay_after_wal_id > 0,
                "seed {seed}: memtables reached L0, so the reader moved manifests"
            );
            reader.close().await.expect("close the reader");
            writer.close().await.expect("close the writer");
        });
    }
}

#[test]
fn a_reader_protects_its_tables_with_checkpoints_it_deletes_at_close_or_lets_expire() {
    support::on_sim(7, async |runtime, store| {
        let writer = support::open_db("db", &store, &runtime).await;
        writer.put("k", "v").await.expect("put");
        let reader = open_reader(&store, &runtime, follow_options(Duration::from_secs(10))).await;
        let held = reader_checkpoints(&store, &runtime).await;
        assert_eq!(held.len(), 1, "one checkpoint: {held:?}");
        assert_eq!(Some(held[0].id), reader.checkpoint());
        assert_eq!(
            held[0].manifest_id,
            reader.manifest_id(),
            "it pins the version the reader reads"
        );

        // Renewed while the reader lives, however long.
        runtime.sleep(Duration::from_secs(60)).await;
        let renewed = reader_checkpoints(&store, &runtime).await;
        assert_eq!(renewed.len(), 1, "still exactly one: {renewed:?}");
        assert_eq!(renewed[0].id, held[0].id, "renewed, not replaced: nothing changed");
        assert!(renewed[0].expire_ms > held[0].expire_ms);
        reader.close().await.expect("close");
        assert!(
            reader_checkpoints(&store, &runtime).await.is_empty(),
            "deleted at close"
        );
        let error = reader.get("k").await.expect_err("closed");
        assert!(matches!(error.kind(), ErrorKind::Closed { .. }), "{error}");

        // A reader that is dropped (a process that died) leaves them to
        // expire.
        let dropped = open_reader(&store, &runtime, follow_options(Duration::from_secs(4))).await;
        assert_eq!(reader_checkpoints(&store, &runtime).await.len(), 1);
        drop(dropped);
        runtime.sleep(Duration::from_secs(5)).await;
        assert!(reader_checkpoints(&store, &runtime).await.is_empty(), "expired");
        writer.close().await.expect("close the writer");
    });
}

#[test]
fn an_idle_reader_makes_one_request_per_refresh_interval_and_three_per_renewal() {
    support::on_sim(11, async |runtime, store| {
        let writer = support::open_db("db", &store, &runtime).await;
        for n in 0..50 {
            writer.put(format!("k{n}"), "v").await.expect("put");
        }
        writer.close().await.expect("close the writer");
        let counted = Arc::new(LatencyStore::new(store.clone(), runtime.clone(), Duration::ZERO));
        let counts = counted.counts();
        let counted: Arc<dyn Store> = counted;
        let options = ReaderOptions {
            refresh_interval: Some(Duration::from_secs(1)),
            checkpoint_lifetime: Duration::from_secs(20),
            ..ReaderOptions::default()
        };
        let reader = open_reader(&counted, &runtime, options).await;
        counts.reset();
        runtime.sleep(Duration::from_secs(120)).await;
        // 120 intervals; a renewal every 10 s reads the newest manifest
        // version (a LIST and a GET) and writes one, in place of that
        // interval's WAL probe.
        let renewals = 12;
        let total = counts.total();
        assert!(
            total <= 120 + 2 * renewals,
            "one request per interval, two more per renewal: {:?}",
            counts.snapshot()
        );
        assert!(total >= 100, "it does look: {:?}", counts.snapshot());
        assert!(
            counts.get(Op::List) <= renewals,
            "a listing only to renew: {:?}",
            counts.snapshot()
        );
        assert!(
            (10..=renewals).contains(&counts.get(Op::Put)),
            "checkpoints renewed: {:?}",
            counts.snapshot()
        );
        reader.close().await.expect("close");
    });
}

#[test]
fn a_reader_at_a_checkpoint_stays_there_and_writes_nothing() {
    support::on_sim(13, async |runtime, store| {
        let writer = support::open_db("db", &store, &runtime).await;
        writer.put("k", "v1").await.expect("put");
        let checkpoint = writer.create_checkpoint(Default::default()).await.expect("checkpoint");
        writer.put("k", "v2").await.expect("put");
        writer.put("new", "row").await.expect("put");
        let before = support::listing(&store).await;
        let at = open_reader(
            &store,
            &runtime,
            ReaderOptions {
                at_checkpoint: Some(checkpoint.id),
                ..follow_options(Duration::from_secs(10))
            },
        )
        .await;
        assert!(!at.is_following());
        assert_eq!(at.checkpoint(), Some(checkpoint.id));
        assert_eq!(at.get("k").await.expect("get").as_deref(), Some(&b"v1"[..]));
        assert_eq!(at.get("new").await.expect("get"), None);
        runtime.sleep(Duration::from_secs(5)).await;
        at.refresh().await.expect("a no-op");
        assert_eq!(at.get("k").await.expect("get").as_deref(), Some(&b"v1"[..]), "it stays");
        assert_eq!(support::listing(&store).await, before, "it wrote nothing");

        let unknown = Db::builder("db", store.clone())
            .runtime(runtime.clone())
            .open_reader(ReaderOptions {
                at_checkpoint: Some(talusdb::store::Ulid::generate(&runtime)),
                ..ReaderOptions::default()
            })
            .await
            .expect_err("no such checkpoint");
        assert_eq!(unknown.kind(), &ErrorKind::InvalidArgument, "{unknown}");
        assert!(unknown.message().contains("checkpoint"), "{unknown}");
        writer.close().await.expect("close");
    });
}

#[test]
fn a_reader_follows_a_new_writer_that_fenced_the_old_one() {
    support::on_sim(17, async |runtime, store| {
        let first = support::open_db("db", &store, &runtime).await;
        first.put("k", "first").await.expect("put");
        let reader = open_reader(&store, &runtime, follow_options(Duration::from_secs(10))).await;
        let second = support::open_db("db", &store, &runtime).await;
        let fenced = first.put("k", "late").await.expect_err("the old writer is fenced");
        assert!(fenced.to_string().contains("fenced"), "{fenced}");
        for n in 0..30 {
            second.put("k", format!("second {n}")).await.expect("put");
        }
        runtime.sleep(3 * INTERVAL).await;
        assert_eq!(reader.get("k").await.expect("get").as_deref(), Some(&b"second 29"[..]));
        // And without waiting for a tick.
        second.put("k", "now").await.expect("put");
        reader.refresh().await.expect("refresh");
        assert_eq!(reader.get("k").await.expect("get").as_deref(), Some(&b"now"[..]));
        let bad = Db::builder("db", store.clone())
            .runtime(runtime.clone())
            .open_reader(ReaderOptions {
                checkpoint_lifetime: Duration::from_millis(10),
                ..ReaderOptions::default()
            })
            .await
            .expect_err("a lifetime too short");
        assert!(bad.message().contains("checkpoint_lifetime"), "{bad}");
        reader.close().await.expect("close");
        second.close().await.expect("close");
    });
}

#[test]
fn a_reader_at_a_sequence_number_reads_that_state_or_refuses() {
    support::on_sim(3, async |runtime, store| {
        let builder = || Db::builder("db", store.clone()).runtime(runtime.clone());
        let retained = talusdb::DbOptions {
            retention: Duration::from_secs(3600),
            ..talusdb::DbOptions::default()
        };
        let db = builder().options(retained).open().await.expect("open");
        let first = db.put("k", "v1").await.expect("put");
        db.put("other", "o").await.expect("put");
        let second = db.put("k", "v2").await.expect("put");
        db.delete("other").await.expect("delete");
        db.flush_memtable().await.expect("to L0");
        db.compact().await.expect("compact");
        let third = db.put("k", "v3").await.expect("put (only in the WAL)");
        let at = |seq: u64| ReaderOptions {
            at_seq: Some(seq),
            refresh_interval: None,
            ..ReaderOptions::default()
        };
        for (seq, k, other) in [
            (first.seq, Some("v1"), None),
            (second.seq, Some("v2"), Some("o")),
            (second.seq + 1, Some("v2"), None),
            (third.seq, Some("v3"), None),
        ] {
            let reader = open_reader(&store, &runtime, at(seq)).await;
            assert_eq!(reader.seq(), seq);
            assert_eq!(
                reader.get("k").await.expect("get").as_deref(),
                k.map(str::as_bytes),
                "at {seq}"
            );
            let rows: Vec<_> = reader
                .scan::<&str>(..)
                .map_ok(|(key, _)| key)
                .try_collect()
                .await
                .expect("scan");
            assert_eq!(rows.len(), 1 + usize::from(other.is_some()), "at {seq}: {rows:?}");
            reader.close().await.expect("close");
        }
        let ahead = builder()
            .open_reader(at(third.seq + 1))
            .await
            .map(drop)
            .expect_err("nothing written there yet");
        assert_eq!(*ahead.kind(), ErrorKind::InvalidArgument, "{ahead}");
        db.close().await.expect("close");

        // Without retention, what compaction may have merged is refused.
        let db = builder().open().await.expect("reopen without retention");
        db.put("k", "v4").await.expect("put");
        db.flush_memtable().await.expect("to L0");
        db.compact().await.expect("compact");
        db.close().await.expect("close");
        let floor = latest(&store, &runtime).await.retain_seq;
        assert!(floor > first.seq, "retain_seq {floor} moved up");
        let gone = builder()
            .open_reader(at(first.seq))
            .await
            .map(drop)
            .expect_err("outside retention");
        assert_eq!(*gone.kind(), ErrorKind::OutsideRetention, "{gone}");
        assert!(
            gone.to_string().contains(&format!("oldest readable is {floor}")),
            "{gone}"
        );
    });
}
