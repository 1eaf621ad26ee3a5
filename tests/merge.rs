//! Merge operators: a counter and a list-append operator, written by
//! `Db::merge`, batches and transactions, read back folded from the
//! memtable, L0 and compacted runs, forwards and backwards, at a snapshot
//! that compaction folds under, and after a reopen; the operator's name
//! guards the database, and an operator's failure fails only the read.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use talusdb::actors::runtime::Runtime;
use talusdb::store::Store;
use talusdb::{Db, DbOptions, ErrorKind, IsolationLevel, MergeError, MergeOperator, WriteBatch};

/// A little-endian u64 counter; an operand is an increment. Partial merges
/// add increments up.
#[derive(Debug)]
struct Counter;

fn number(bytes: &[u8]) -> Result<u64, MergeError> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| MergeError::new(format!("{} bytes, not 8", bytes.len())))?;
    Ok(u64::from_le_bytes(array))
}

fn count(n: u64) -> Bytes {
    Bytes::copy_from_slice(&n.to_le_bytes())
}

impl MergeOperator for Counter {
    fn name(&self) -> &str {
        "counter-u64"
    }

    fn full_merge(&self, _key: &[u8], base: Option<&[u8]>, operands: &[&[u8]]) -> Result<Bytes, MergeError> {
        let mut total = base.map(number).transpose()?.unwrap_or(0);
        for operand in operands {
            total = total.wrapping_add(number(operand)?);
        }
        Ok(count(total))
    }

    fn partial_merge(&self, key: &[u8], operands: &[&[u8]]) -> Option<Result<Bytes, MergeError>> {
        Some(self.full_merge(key, None, operands))
    }
}

fn options() -> DbOptions {
    support::compacting_db_options(8, Duration::from_secs(3600))
}

async fn open_with(
    store: &Arc<dyn Store>,
    runtime: &Runtime,
    operator: Option<Arc<dyn MergeOperator>>,
) -> Result<Db, talusdb::Error> {
    let builder = Db::builder("db", store.clone())
        .runtime(runtime.clone())
        .options(options());
    match operator {
        Some(operator) => builder.merge_operator(operator).open().await,
        None => builder.open().await,
    }
}

async fn all(db: &Db, reverse: bool) -> Vec<(Bytes, Bytes)> {
    let options = support::scan_order(reverse);
    let mut rows: Vec<_> = db
        .scan_with_options::<&str>(.., options)
        .try_collect()
        .await
        .expect("scan");
    if reverse {
        rows.reverse();
    }
    rows
}

#[test]
fn counters_fold_across_memtables_tables_compaction_and_a_reopen() {
    support::on_sim(1, async |runtime, store| {
        let db = open_with(&store, &runtime, Some(Arc::new(Counter)))
            .await
            .expect("open");
        let mut want = [0u64; 20];
        for round in 0..6u64 {
            for n in 0..20u64 {
                let key = format!("c{n:02}");
                let by = n + round;
                match (n + round) % 4 {
                    0 => drop(db.merge(key, count(by)).await.expect("merge")),
                    1 => {
                        let mut batch = WriteBatch::new();
                        batch.merge(key.clone(), count(by)).merge(key, count(1));
                        db.write(batch).await.expect("batch");
                        want[n as usize] += 1;
                    }
                    2 => {
                        let mut txn = db.begin(IsolationLevel::Snapshot);
                        txn.merge(key.clone(), count(by));
                        let seen = txn.get(&key).await.expect("txn get").expect("a count");
                        assert_eq!(
                            number(&seen).unwrap(),
                            want[n as usize] + by,
                            "the txn sees its operand"
                        );
                        txn.commit().await.expect("commit");
                    }
                    _ if round == 3 => {
                        // A put resets the counter.
                        db.put(key, count(by)).await.expect("put");
                        want[n as usize] = 0;
                    }
                    _ => drop(db.merge(key, count(by)).await.expect("merge")),
                }
                want[n as usize] += by;
            }
            match round % 3 {
                0 => db.flush_memtable().await.expect("flush"),
                1 => drop(db.compact().await.expect("compact")),
                _ => {}
            }
            let expected: Vec<(Bytes, Bytes)> = (0..20u64)
                .map(|n| (Bytes::from(format!("c{n:02}")), count(want[n as usize])))
                .collect();
            for (key, value) in &expected {
                assert_eq!(
                    db.get(key).await.expect("get").as_ref(),
                    Some(value),
                    "round {round}: {key:?}"
                );
            }
            assert_eq!(all(&db, false).await, expected, "round {round}: forward");
            assert_eq!(all(&db, true).await, expected, "round {round}: reverse");
        }
        db.flush_memtable().await.expect("flush");
        let summary = db.compact().await.expect("compact").expect("work");
        assert_eq!(summary.rows_out, 20, "every key folded into one row: {summary:?}");
        db.close().await.expect("close");
        let db = open_with(&store, &runtime, Some(Arc::new(Counter)))
            .await
            .expect("reopen");
        assert_eq!(
            number(&db.get("c07").await.expect("get").expect("count")).unwrap(),
            want[7]
        );
        db.close().await.expect("close");
    });
}

#[test]
fn lists_append_in_order_and_a_snapshot_reads_the_same_through_folding() {
    support::on_sim(2, async |runtime, store| {
        let db = open_with(&store, &runtime, Some(Arc::new(support::Append)))
            .await
            .expect("open");
        db.put("list", "a").await.expect("put");
        db.merge("list", "b").await.expect("merge");
        db.flush_memtable().await.expect("flush");
        db.merge("list", "c").await.expect("merge");
        let snapshot = db.snapshot();
        db.merge("list", "d").await.expect("merge");
        db.delete("gone").await.expect("delete");
        db.merge("gone", "x").await.expect("merge after a delete");
        assert_eq!(db.get("list").await.expect("get").as_deref(), Some(&b"a,b,c,d"[..]));
        assert_eq!(db.get("gone").await.expect("get").as_deref(), Some(&b"x"[..]));
        assert_eq!(snapshot.get("list").await.expect("get").as_deref(), Some(&b"a,b,c"[..]));
        db.flush_memtable().await.expect("flush");
        db.compact().await.expect("compact");
        assert_eq!(
            snapshot.get("list").await.expect("get").as_deref(),
            Some(&b"a,b,c"[..]),
            "folding kept what the snapshot reads"
        );
        let rows: Vec<_> = snapshot.scan::<&str>(..).try_collect().await.expect("scan");
        assert_eq!(rows, [(Bytes::from("list"), Bytes::from("a,b,c"))]);
        assert_eq!(db.get("list").await.expect("get").as_deref(), Some(&b"a,b,c,d"[..]));
        drop(snapshot);
        db.close().await.expect("close");
    });
}

#[test]
fn the_operator_guards_the_database_and_its_failures_fail_only_the_read() {
    support::on_sim(3, async |runtime, store| {
        // Without an operator a merge is refused at the call.
        let db = open_with(&store, &runtime, None).await.expect("open");
        let error = db.merge("k", count(1)).await.expect_err("no operator");
        assert_eq!(error.kind(), &ErrorKind::InvalidArgument, "{error}");
        assert!(error.message().contains("merge_operator"), "{error}");
        db.close().await.expect("close");

        let db = open_with(&store, &runtime, Some(Arc::new(Counter)))
            .await
            .expect("open");
        db.merge("k", count(1)).await.expect("merge");
        db.merge("bad", Bytes::from_static(b"123"))
            .await
            .expect("a malformed operand is written");
        db.put("plain", "v").await.expect("put");
        let error = db.get("bad").await.expect_err("the operator fails");
        assert_eq!(error.kind(), &ErrorKind::MergeFailed, "{error}");
        assert!(
            error.message().contains("counter-u64") && error.message().contains("bad"),
            "{error}"
        );
        let scan: Result<Vec<_>, _> = db.scan::<&str>(..).try_collect().await;
        assert_eq!(scan.expect_err("the scan meets it").kind(), &ErrorKind::MergeFailed);
        // The database goes on.
        assert_eq!(db.get("k").await.expect("get"), Some(count(1)));
        db.merge("k", count(2)).await.expect("merge");
        db.flush_memtable().await.expect("flush");
        db.compact().await.expect("compaction keeps what it cannot fold");
        assert_eq!(db.get("k").await.expect("get"), Some(count(3)));
        // An operand left unfolded for the opens below.
        db.merge("k", count(4)).await.expect("merge");
        db.close().await.expect("close");

        // Another operator's name is refused; no operator opens, but
        // reading an operand then fails naming the key.
        let error = open_with(&store, &runtime, Some(Arc::new(support::Append)))
            .await
            .expect_err("another operator");
        assert_eq!(error.kind(), &ErrorKind::InvalidArgument, "{error}");
        assert!(
            error.message().contains("counter-u64") && error.message().contains("list-append"),
            "{error}"
        );
        let reader = Db::builder("db", store.clone())
            .runtime(runtime.clone())
            .merge_operator(Arc::new(support::Append))
            .open_read_only()
            .await;
        assert_eq!(reader.expect_err("a reader too").kind(), &ErrorKind::InvalidArgument);
        let db = open_with(&store, &runtime, None).await.expect("opens without one");
        assert_eq!(db.get("plain").await.expect("get").as_deref(), Some(&b"v"[..]));
        let error = db.get("k").await.expect_err("operands need the operator");
        assert_eq!(error.kind(), &ErrorKind::InvalidArgument, "{error}");
        assert!(error.message().contains("\"k\""), "{error}");
        db.close().await.expect("close");
    });
}
