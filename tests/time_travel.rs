//! Reads at a past sequence number or time: inside the retention window
//! they give exactly the state of then, through flushes, compactions,
//! garbage collection and a reopen; outside it they fail with
//! `OutsideRetention`, never with a newer answer. Virtual time on the sim
//! executor moves the window.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use futures::TryStreamExt;
use talusdb::actors::runtime::{Runtime, Sim};
use talusdb::store::{ObjectStoreAdapter, Store};
use talusdb::{Db, DbOptions, ErrorKind, ScanOptions, ScanOrder, Snapshot};

use support::Gen;

type Model = BTreeMap<Bytes, Bytes>;

/// One past state: the sequence of its last write, the wall-clock time
/// just after it, and what the database held.
struct State {
    seq: u64,
    time_ms: u64,
    model: Model,
}

const RETENTION: Duration = Duration::from_secs(60);
const KEYS: u64 = 30;

fn key(n: u64) -> Bytes {
    Bytes::from(format!("key{n:03}"))
}

fn options(retention: Duration) -> DbOptions {
    let mut options = support::compacting_db_options(8, Duration::from_secs(2));
    options.retention = retention;
    options
}

async fn open(store: &Arc<dyn Store>, runtime: &Runtime, retention: Duration) -> Db {
    Db::builder("db", store.clone())
        .runtime(runtime.clone())
        .options(options(retention))
        .open()
        .await
        .expect("open")
}

/// Every key of `snapshot`, forwards and backwards, checked against
/// `model`, and a point read of every key (present or not).
async fn assert_reads(snapshot: &Snapshot, model: &Model, what: &str) {
    let rows: Vec<_> = snapshot.scan::<Bytes>(..).try_collect().await.expect("scan");
    let want: Vec<_> = model.iter().map(|(key, value)| (key.clone(), value.clone())).collect();
    assert_eq!(rows, want, "{what}: forward scan");
    let reverse = ScanOptions {
        order: ScanOrder::Reverse,
        ..ScanOptions::default()
    };
    let mut rows: Vec<_> = snapshot
        .scan_with_options::<Bytes>(.., reverse)
        .try_collect()
        .await
        .expect("reverse scan");
    rows.reverse();
    assert_eq!(rows, want, "{what}: reverse scan");
    for n in 0..KEYS {
        assert_eq!(
            snapshot.get(key(n)).await.expect("get"),
            model.get(&key(n)).cloned(),
            "{what}: {n}"
        );
    }
}

/// Rounds of writes five virtual seconds apart, with flushes and
/// compactions among them; returns the state after each round.
async fn write_history(db: &Db, runtime: &Runtime, dice: &mut Gen, rounds: u64) -> Vec<State> {
    let mut model = Model::new();
    let mut history = Vec::new();
    for round in 0..rounds {
        let mut seq = 0;
        for _ in 0..12 {
            let n = dice.next(KEYS);
            if dice.next(5) == 0 {
                seq = db.delete(key(n)).await.expect("delete").seq;
                model.remove(&key(n));
            } else {
                let value = Bytes::from(format!("round {round} value {}", dice.next(1000)));
                seq = db.put(key(n), value.clone()).await.expect("put").seq;
                model.insert(key(n), value);
            }
        }
        history.push(State {
            seq,
            time_ms: runtime.wall_ms(),
            model: model.clone(),
        });
        if round % 3 == 2 {
            db.flush_memtable().await.expect("flush");
        }
        if round % 6 == 5 {
            db.compact().await.expect("compact");
        }
        runtime.sleep(Duration::from_secs(5)).await;
    }
    db.flush_memtable().await.expect("flush");
    db.compact().await.expect("compact");
    history
}

/// Every state inside the window reads exactly as it was (by sequence and
/// by time); every state either reads exactly or is refused; states well
/// before the window are refused.
async fn check_history(db: &Db, runtime: &Runtime, history: &[State], when: &str) {
    let now = runtime.wall_ms();
    let window_start = now - RETENTION.as_millis() as u64;
    let mut refused = 0;
    for (round, state) in history.iter().enumerate() {
        let what = format!(
            "{when}: round {round} (seq {}, {} ms ago)",
            state.seq,
            now - state.time_ms
        );
        match db.snapshot_at(state.seq) {
            Ok(snapshot) => {
                assert_eq!(snapshot.seq(), state.seq);
                assert_reads(&snapshot, &state.model, &what).await;
            }
            Err(error) => {
                assert_eq!(error.kind(), &ErrorKind::OutsideRetention, "{what}: {error}");
                assert!(
                    state.time_ms < window_start,
                    "{what}: refused inside the window: {error}"
                );
                assert!(state.seq < db.oldest_readable_seq(), "{what}: {error}");
                refused += 1;
            }
        }
        if state.time_ms >= window_start {
            let at = UNIX_EPOCH + Duration::from_millis(state.time_ms);
            let snapshot = db.snapshot_at_time(at).expect("a time inside the window");
            assert_eq!(snapshot.seq(), state.seq, "{what}: by time");
            assert_reads(&snapshot, &state.model, &format!("{what}, by time")).await;
        }
        if state.time_ms + 2 * RETENTION.as_millis() as u64 <= now {
            assert!(db.snapshot_at(state.seq).is_err(), "{what}: kept far past the window");
        }
    }
    assert!(refused > 0, "{when}: the window let nothing go");
}

#[test]
fn reads_inside_the_retention_window_see_the_past_exactly_and_outside_it_fail() {
    for seed in 1..=3 {
        let sim = Sim::new(seed);
        let runtime = sim.runtime();
        sim.block_on(async move {
            let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
            let db = open(&store, &runtime, RETENTION).await;
            let mut dice = Gen(seed);
            let history = write_history(&db, &runtime, &mut dice, 40).await;
            let shape = db.stats().shape;
            assert!(shape.sorted_runs > 0, "compaction ran: {shape:?}");
            check_history(&db, &runtime, &history, "live").await;
            let newest = db.stats().writes;
            assert!(newest > 0);
            let future = history.last().map_or(0, |state| state.seq) + 1;
            let error = db.snapshot_at(future).expect_err("a sequence not written yet");
            assert_eq!(error.kind(), &ErrorKind::InvalidArgument, "{error}");
            let error = db
                .snapshot_at_time(UNIX_EPOCH + Duration::from_millis(history[0].time_ms - 60_000))
                .expect_err("before anything was written");
            assert_eq!(error.kind(), &ErrorKind::OutsideRetention, "{error}");
            assert!(
                db.snapshot_at_time(UNIX_EPOCH + Duration::from_millis(runtime.wall_ms() + 3_600_000))
                    .is_ok(),
                "a time to come reads now"
            );

            // The window and the time map survive a reopen.
            db.close().await.expect("close");
            let db = open(&store, &runtime, RETENTION).await;
            check_history(&db, &runtime, &history, "reopened").await;

            // A snapshot at a past sequence holds its versions after the
            // window has moved past them.
            let kept = history
                .iter()
                .rev()
                .find(|state| db.snapshot_at(state.seq).is_ok())
                .expect("a state inside the window");
            let pinned = db.snapshot_at(kept.seq).expect("pin");
            let more = write_history(&db, &runtime, &mut dice, 30).await;
            assert!(more.len() == 30 && db.oldest_readable_seq() <= kept.seq);
            assert_reads(&pinned, &kept.model, "pinned past the window").await;
            drop(pinned);
            db.close().await.expect("close");
        });
    }
}

#[test]
fn without_a_retention_window_a_flushed_past_is_refused() {
    let sim = Sim::new(9);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
        let db = open(&store, &runtime, Duration::ZERO).await;
        let first = db.put("k", "first").await.expect("put").seq;
        // Still in the memtable: the version is there to read.
        let second = db.put("k", "second").await.expect("put").seq;
        let then = db.snapshot_at(first).expect("in the memtable");
        assert_eq!(then.get("k").await.expect("get").as_deref(), Some(&b"first"[..]));
        drop(then);
        db.flush_memtable().await.expect("flush");
        runtime.sleep(Duration::from_secs(3)).await;
        let error = db.snapshot_at(first).expect_err("in L0, nothing keeps it");
        assert_eq!(error.kind(), &ErrorKind::OutsideRetention, "{error}");
        assert!(error.message().contains("retention"), "{error}");
        assert_eq!(db.oldest_readable_seq(), second);
        let now = db.snapshot_at(second).expect("the newest");
        assert_eq!(now.get("k").await.expect("get").as_deref(), Some(&b"second"[..]));
        drop(now);
        db.close().await.expect("close");
    });
}
