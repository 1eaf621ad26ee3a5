//! The `talus` command line, end to end on a temporary local store: keys,
//! checkpoints, the manifest, errors with their exit codes, and every
//! benchmark workload at a tiny size with its JSON report.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::TempDir;

fn talus(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_talus"))
        .arg("--store")
        .arg(format!("file://{}", store.display()))
        .args(args)
        .output()
        .expect("run talus")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs and expects success; returns stdout.
fn ok(store: &Path, args: &[&str]) -> String {
    let output = talus(store, args);
    assert!(output.status.success(), "talus {args:?} failed: {}", stderr(&output));
    stdout(&output)
}

/// Runs `work` on a library writer (default options) of the database
/// `db` in `dir`, then closes it (its writes stay in the WAL, where the
/// CLI's own writes move theirs to L0).
fn with_library_writer<F, Fut>(dir: &Path, work: F)
where
    F: FnOnce(talusdb::Db) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    with_library_writer_at(dir, "db", work);
}

/// [`with_library_writer`] on the database at `path`.
fn with_library_writer_at<F, Fut>(dir: &Path, path: &str, work: F)
where
    F: FnOnce(talusdb::Db) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (root, path) = (dir.to_path_buf(), path.to_owned());
    support::on_smol(|runtime| async move {
        let db = library_builder(&root, &path, runtime).open().await.expect("open");
        work(db.clone()).await;
        db.close().await.expect("close");
    });
}

/// A library builder for the database at `path` in the local store `root`.
fn library_builder(root: &Path, path: &str, runtime: talusdb::actors::Runtime) -> talusdb::DbBuilder {
    let store = talusdb::store::ObjectStoreAdapter::local_dir(root, runtime.clone()).expect("a store");
    talusdb::Db::builder(path, std::sync::Arc::new(store)).runtime(runtime)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
}

#[test]
fn keys_are_written_read_scanned_and_deleted() {
    let dir = TempDir::new("cli-keys");
    ok(dir.path(), &["put", "apple", "red"]);
    ok(dir.path(), &["put", "banana", "yellow"]);
    ok(dir.path(), &["put", "cherry", "dark red"]);
    assert_eq!(ok(dir.path(), &["get", "apple"]).trim(), "red");
    let found = json(&ok(dir.path(), &["get", "banana", "--json"]));
    assert_eq!(found["value"], "yellow");

    let missing = talus(dir.path(), &["get", "durian"]);
    assert_eq!(missing.status.code(), Some(1), "an absent key exits with 1");

    let rows = ok(dir.path(), &["scan", "--start", "b", "--limit", "5"]);
    assert_eq!(rows, "banana\tyellow\ncherry\tdark red\n");
    let rows = json(&ok(dir.path(), &["scan", "--end", "c", "--json"]));
    assert_eq!(rows["rows"].as_array().map(Vec::len), Some(2));

    ok(dir.path(), &["delete", "banana"]);
    assert_eq!(talus(dir.path(), &["get", "banana"]).status.code(), Some(1));
    let rows = ok(dir.path(), &["scan"]);
    assert_eq!(rows, "apple\tred\ncherry\tdark red\n");
}

#[test]
fn checkpoints_are_created_listed_refreshed_and_deleted() {
    let dir = TempDir::new("cli-checkpoints");
    ok(dir.path(), &["put", "k", "v"]);
    let made = json(&ok(
        dir.path(),
        &["checkpoint", "create", "--name", "nightly", "--json"],
    ));
    let id = made["id"].as_str().expect("an id").to_owned();
    assert_eq!(made["name"], "nightly");
    assert!(made["expire_ms"].is_null(), "no lifetime: never expires");
    let weekly = json(&ok(
        dir.path(),
        &["checkpoint", "create", "--lifetime", "7d", "--name", "weekly", "--json"],
    ));
    let (created, expires) = (weekly["create_ms"].as_u64(), weekly["expire_ms"].as_u64());
    assert_eq!(
        expires.zip(created).map(|(expires, created)| expires - created),
        Some(7 * 86_400_000),
        "a lifetime of 7d: {weekly}"
    );
    let bad = talus(dir.path(), &["checkpoint", "create", "--lifetime", "7x"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("7x: unknown unit"), "{}", stderr(&bad));

    let listed = json(&ok(dir.path(), &["checkpoint", "list", "--json"]));
    assert_eq!(listed["checkpoints"].as_array().map(Vec::len), Some(2));
    let named = json(&ok(dir.path(), &["checkpoint", "list", "--name", "nightly", "--json"]));
    assert_eq!(named["checkpoints"].as_array().map(Vec::len), Some(1), "{named}");
    assert_eq!(named["checkpoints"][0]["id"], id.as_str());
    // Text shows times as RFC 3339 (UTC, to the millisecond).
    let line = ok(dir.path(), &["checkpoint", "list", "--name", "weekly"]);
    let words: Vec<&str> = line.split_whitespace().collect();
    let rfc3339 = |word: &str| {
        word.len() == 24 && word.ends_with('Z') && word.as_bytes()[10] == b'T' && word.as_bytes()[19] == b'.'
    };
    assert_eq!(words.iter().filter(|word| rfc3339(word)).count(), 2, "{line}");
    assert_eq!(words.last(), Some(&"weekly"), "{line}");
    ok(
        dir.path(),
        &["checkpoint", "delete", weekly["id"].as_str().expect("an id")],
    );

    let refreshed = json(&ok(
        dir.path(),
        &["checkpoint", "refresh", &id, "--lifetime-s", "3600", "--json"],
    ));
    assert!(refreshed["expire_ms"].as_u64().is_some(), "now it expires");
    let refreshed = json(&ok(
        dir.path(),
        &["checkpoint", "refresh", &id, "--lifetime", "15m", "--json"],
    ));
    let (created, expires) = (refreshed["create_ms"].as_u64(), refreshed["expire_ms"].as_u64());
    assert!(
        expires
            .zip(created)
            .is_some_and(|(expires, created)| expires - created >= 15 * 60_000),
        "15 minutes from now: {refreshed}"
    );

    let shown = json(&ok(dir.path(), &["manifest", "show", "--json"]));
    assert_eq!(shown["checkpoints"][0]["id"], id.as_str());
    assert!(shown["writer_epoch"].as_u64() >= Some(1));
    let versions = json(&ok(dir.path(), &["manifest", "list", "--json"]));
    assert!(versions["versions"].as_array().is_some_and(|ids| ids.len() >= 3));

    let compactions = json(&ok(dir.path(), &["compactions", "list", "--json"]));
    assert_eq!(
        compactions["compactions"].as_array().map(Vec::len),
        Some(0),
        "no compactor has run"
    );

    ok(dir.path(), &["checkpoint", "delete", &id]);
    let listed = json(&ok(dir.path(), &["checkpoint", "list", "--json"]));
    assert_eq!(listed["checkpoints"].as_array().map(Vec::len), Some(0));
    let again = talus(dir.path(), &["checkpoint", "delete", &id]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains(&id), "{}", stderr(&again));
    let bad = talus(dir.path(), &["checkpoint", "delete", "not-an-id"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn restore_asks_for_yes_then_brings_back_the_checkpoint_and_fences_the_writer() {
    let dir = TempDir::new("cli-restore");
    ok(dir.path(), &["put", "k", "v1"]);
    ok(dir.path(), &["put", "kept", "yes"]);
    let made = json(&ok(dir.path(), &["checkpoint", "create", "--json"]));
    let id = made["id"].as_str().expect("an id").to_owned();
    ok(dir.path(), &["put", "k", "v2"]);
    ok(dir.path(), &["put", "later", "x"]);
    ok(dir.path(), &["delete", "kept"]);

    let asked = talus(dir.path(), &["checkpoint", "restore", &id]);
    assert_eq!(asked.status.code(), Some(2), "without --yes: {}", stderr(&asked));
    assert!(
        stderr(&asked).contains("pass --yes") && stderr(&asked).contains(&id),
        "{}",
        stderr(&asked)
    );
    assert_eq!(ok(dir.path(), &["get", "k"]).trim(), "v2", "nothing changed");
    let unknown = talus(
        dir.path(),
        &["checkpoint", "restore", "01HZZZZZZZZZZZZZZZZZZZZZZZ", "--yes"],
    );
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("no live checkpoint"), "{}", stderr(&unknown));

    // A writer of this database runs while the restore comes: it is
    // fenced, and its write after the restore lands nowhere.
    let (root, restoring) = (dir.path().to_path_buf(), id.clone());
    support::on_smol(|runtime| async move {
        let id = restoring;
        let db = library_builder(&root, "db", runtime).open().await.expect("open");
        db.put("running", "before").await.expect("put");
        let restored = json(&ok(&root, &["checkpoint", "restore", &id, "--yes", "--json"]));
        assert_eq!(restored["checkpoint"], id.as_str());
        assert_eq!(restored["pinned_version"], made["manifest_id"]);
        assert!(restored["version"].as_u64() > restored["replaced_version"].as_u64());
        assert!(restored["dropped_wal_rows"].as_u64() >= Some(1), "{restored}");
        let late = db.put("running", "after").await.expect_err("the fenced writer's put");
        assert!(late.is_fenced(), "{late}");
        let closed = db.close().await;
        assert!(
            closed.is_err_and(|error| error.is_fenced()),
            "a fenced writer's close says so"
        );
    });
    assert_eq!(ok(dir.path(), &["get", "k"]).trim(), "v1");
    assert_eq!(ok(dir.path(), &["get", "kept"]).trim(), "yes");
    for gone in ["later", "running"] {
        assert_eq!(talus(dir.path(), &["get", gone]).status.code(), Some(1), "{gone}");
    }
    // The restored database takes writes; the checkpoint stays.
    ok(dir.path(), &["put", "k", "v3"]);
    assert_eq!(ok(dir.path(), &["get", "k"]).trim(), "v3");
    let listed = json(&ok(dir.path(), &["checkpoint", "list", "--json"]));
    assert_eq!(listed["checkpoints"][0]["id"], id.as_str());
}

#[test]
fn reads_at_a_sequence_number_see_that_state() {
    let dir = TempDir::new("cli-at-seq");
    let root = dir.path().to_path_buf();
    let seqs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let written = seqs.clone();
    support::on_smol(|runtime| async move {
        let options = talusdb::DbOptions {
            retention: std::time::Duration::from_secs(3600),
            ..talusdb::DbOptions::default()
        };
        let db = library_builder(&root, "db", runtime)
            .options(options)
            .open()
            .await
            .expect("open");
        let mut seqs = vec![
            db.put("k", "v1").await.expect("put").seq,
            db.put("j", "only later").await.expect("put").seq,
        ];
        db.flush_memtable().await.expect("to L0");
        seqs.push(db.put("k", "v2").await.expect("put").seq);
        db.close().await.expect("close");
        *written.lock().expect("seqs") = seqs;
    });
    let seqs = seqs.lock().expect("seqs").clone();
    let at = |seq: u64| seq.to_string();
    let first = at(seqs[0]);
    assert_eq!(ok(dir.path(), &["get", "k", "--at-seq", &first]).trim(), "v1");
    assert_eq!(
        talus(dir.path(), &["get", "j", "--at-seq", &first]).status.code(),
        Some(1)
    );
    assert_eq!(ok(dir.path(), &["scan", "--at-seq", &first]), "k\tv1\n");
    assert_eq!(
        ok(dir.path(), &["scan", "--at-seq", &at(seqs[2]), "--count"]).trim(),
        "2"
    );
    assert_eq!(ok(dir.path(), &["get", "k"]).trim(), "v2", "the newest state");
    let exported = ok(dir.path(), &["export", "--at-seq", &at(seqs[1])]);
    assert_eq!(exported.lines().count(), 2, "{exported}");
    assert!(exported.contains("v1") && !exported.contains("v2"), "{exported}");
    let ahead = talus(dir.path(), &["get", "k", "--at-seq", &at(seqs[2] + 1)]);
    assert_eq!(ahead.status.code(), Some(2));
    assert!(
        stderr(&ahead).contains("nothing is written at sequence"),
        "{}",
        stderr(&ahead)
    );
    // With no retention, what is in L0 is only readable as the newest.
    ok(dir.path(), &["--path", "plain", "put", "k", "a"]);
    ok(dir.path(), &["--path", "plain", "put", "k", "b"]);
    let gone = talus(dir.path(), &["--path", "plain", "get", "k", "--at-seq", "1"]);
    assert_eq!(gone.status.code(), Some(2), "{}", stderr(&gone));
    assert!(
        stderr(&gone).contains("outside the retention window"),
        "{}",
        stderr(&gone)
    );
}

#[test]
fn clone_makes_a_copy_that_diverges_from_its_source() {
    fn on<'a>(path: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        [&["--path", path][..], args].concat()
    }
    let dir = TempDir::new("cli-clone");
    with_library_writer_at(dir.path(), "src", |db| async move {
        db.put("k", "v1").await.expect("put");
        db.put("gone", "soon").await.expect("put");
    });
    // The newest state: with the writes still in the source's WAL (the
    // clone writes them into its own first table).
    let cloned = json(&ok(dir.path(), &on("copy", &["clone", "src", "--json"])));
    assert_eq!(cloned["source"], "src");
    assert_eq!(cloned["clone"], "copy");
    assert_eq!(cloned["source_tables"], 0, "the source's rows were all in its WAL");
    assert_eq!(cloned["held_checkpoints"], serde_json::json!([]), "{cloned}");
    assert_eq!(ok(dir.path(), &on("copy", &["get", "k"])).trim(), "v1");
    ok(dir.path(), &on("src", &["put", "k", "v2"]));
    ok(dir.path(), &on("copy", &["put", "k", "in the copy"]));
    ok(dir.path(), &on("copy", &["delete", "gone"]));
    assert_eq!(ok(dir.path(), &on("copy", &["get", "k"])).trim(), "in the copy");
    assert_eq!(talus(dir.path(), &on("copy", &["get", "gone"])).status.code(), Some(1));
    assert_eq!(
        ok(dir.path(), &on("src", &["get", "k"])).trim(),
        "v2",
        "the source is unchanged"
    );
    assert_eq!(ok(dir.path(), &on("src", &["get", "gone"])).trim(), "soon");
    let shown = json(&ok(dir.path(), &on("copy", &["manifest", "show", "--json"])));
    assert_eq!(shown["sources"][0]["root"], "src", "{shown}");

    let again = talus(dir.path(), &on("copy", &["clone", "src"]));
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("already holds a database"),
        "{}",
        stderr(&again)
    );
    let nowhere = talus(dir.path(), &on("other", &["clone", "missing"]));
    assert_eq!(nowhere.status.code(), Some(2));
    assert!(
        stderr(&nowhere).contains("no database at missing"),
        "{}",
        stderr(&nowhere)
    );
    let unknown = talus(
        dir.path(),
        &on("other", &["clone", "src", "--checkpoint", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]),
    );
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("no live checkpoint"), "{}", stderr(&unknown));
    let listed = json(&ok(dir.path(), &on("src", &["checkpoint", "list", "--json"])));
    assert_eq!(
        listed["checkpoints"].as_array().map(Vec::len),
        Some(0),
        "the source had no table to share: no checkpoint is held, none left by the failures"
    );
}

#[test]
fn a_wal_store_of_its_own_is_used_by_every_command_that_is_given_it() {
    let dir = TempDir::new("cli-wal-store");
    let wal_dir = TempDir::new("cli-wal-store-wal");
    let wal = format!("file://{}", wal_dir.path().display());
    let with = |args: &[&'static str]| -> Vec<String> {
        ["--wal-store", wal.as_str()]
            .iter()
            .chain(args)
            .map(|arg| arg.to_string())
            .collect()
    };
    let ok_with = |args: &[&'static str]| {
        let owned = with(args);
        let args: Vec<&str> = owned.iter().map(String::as_str).collect();
        ok(dir.path(), &args)
    };
    ok_with(&["put", "k", "v"]);
    assert_eq!(ok_with(&["get", "k"]).trim(), "v");
    let shown = json(&ok_with(&["manifest", "show", "--json"]));
    assert_eq!(shown["separate_wal"], true);
    let wal_objects = std::fs::read_dir(wal_dir.path().join("db").join("wal"))
        .expect("the WAL store holds the WAL")
        .count();
    assert!(wal_objects >= 1);
    assert!(!dir.path().join("db").join("wal").exists(), "no WAL in the main store");
    for args in [&["get", "k"][..], &["put", "k", "w"], &["gc", "run"]] {
        let refused = talus(dir.path(), args);
        assert_eq!(refused.status.code(), Some(2), "{args:?}: {}", stderr(&refused));
        assert!(stderr(&refused).contains("--wal-store"), "{}", stderr(&refused));
    }
    assert_eq!(ok_with(&["get", "k"]).trim(), "v", "nothing changed");
}

#[test]
fn a_closed_pipe_ends_quietly_and_a_full_disk_gives_one_error_line() {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new("cli-pipes");
    // More rows than a pipe buffers, written through the library.
    with_library_writer(dir.path(), |db| async move {
        for chunk in 0..20u32 {
            let mut batch = talusdb::WriteBatch::new();
            for n in 0..500u32 {
                batch.put(format!("key{chunk:02}-{n:04}"), "v".repeat(100));
            }
            db.write(batch).await.expect("write");
        }
    });
    let mut scan = Command::new(env!("CARGO_BIN_EXE_talus"))
        .arg("--store")
        .arg(format!("file://{}", dir.path().display()))
        .arg("scan")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run talus scan");
    let mut first = String::new();
    BufReader::new(scan.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("the first row");
    assert!(first.starts_with("key00-0000\t"), "{first:?}");
    // The pipe closes here, as `| head -1` does.
    let ended = scan.wait_with_output().expect("wait");
    assert_eq!(ended.status.code(), Some(141), "128 + SIGPIPE");
    assert_eq!(stderr(&ended), "", "quietly");

    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let written = Command::new(env!("CARGO_BIN_EXE_talus"))
        .arg("--store")
        .arg(format!("file://{}", dir.path().display()))
        .args(["get", "key00-0000"])
        .stdout(full)
        .output()
        .expect("run talus get");
    assert_eq!(written.status.code(), Some(1));
    let message = stderr(&written);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.starts_with("error: cannot write the output"), "{message}");
}

/// One line on stderr, starting with `error:`.
fn one_error_line(output: &Output) -> String {
    let text = stderr(output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {text}");
    assert!(lines[0].starts_with("error: "), "{text}");
    lines[0].to_owned()
}

#[test]
fn bad_arguments_and_damaged_objects_fail_with_one_clear_line() {
    let dir = TempDir::new("cli-errors");
    let output = Command::new(env!("CARGO_BIN_EXE_talus"))
        .args(["--store", "ftp://somewhere", "get", "k"])
        .output()
        .expect("run talus");
    assert_eq!(output.status.code(), Some(2));
    assert!(one_error_line(&output).contains("ftp://somewhere"));

    let output = talus(dir.path(), &["--path", "nothing-here", "get", "k"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(one_error_line(&output).contains("nothing-here"));

    for flag in ["--readers", "--writers"] {
        let output = talus(dir.path(), &["bench", "--store", "memory://", flag, "0"]);
        assert_eq!(output.status.code(), Some(2), "{flag} 0 is refused");
        assert!(stderr(&output).contains("at least 1"), "{}", stderr(&output));
    }

    ok(dir.path(), &["put", "k", "v"]);
    // Damage the newest manifest version.
    let manifests = dir.path().join("db").join("manifest");
    let newest = std::fs::read_dir(&manifests)
        .expect("manifest dir")
        .map(|entry| entry.expect("entry").path())
        .max()
        .expect("a manifest version");
    let mut bytes = std::fs::read(&newest).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&newest, bytes).expect("write");
    let output = talus(dir.path(), &["manifest", "show"]);
    assert_eq!(output.status.code(), Some(4), "corruption exits with 4");
    let line = one_error_line(&output);
    let name = newest.file_name().and_then(|name| name.to_str()).expect("name");
    assert!(line.contains(name), "the error names the object: {line}");
}

/// A bench on a database kept by an earlier run with other settings finds
/// values it did not expect: a wrong answer, exit 6, naming the row.
#[test]
fn a_bench_that_reads_wrong_answers_exits_6() {
    let dir = TempDir::new("cli-bench-wrong");
    let small = ["bench", "--workload", "get", "--keys", "2000", "--ops", "100"];
    let kept = talus(dir.path(), &[&small[..], &["--keep"]].concat());
    assert!(kept.status.success(), "{}", stderr(&kept));
    let said = stderr(&kept);
    let path = said
        .split_whitespace()
        .find(|word| word.starts_with("bench-"))
        .unwrap_or_else(|| panic!("the kept path: {said}"));
    let wrong = talus(
        dir.path(),
        &[&small[..], &["--existing", path, "--value-size", "50"]].concat(),
    );
    assert_eq!(wrong.status.code(), Some(6), "{}", stderr(&wrong));
    assert!(
        stderr(&wrong).contains("wrong answer: row") && stderr(&wrong).contains("expected 50"),
        "{}",
        stderr(&wrong)
    );
}

/// Files under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// SIGINT during a workload: the bench stops, removes its `bench-<ulid>`
/// database and exits 130.
#[test]
fn an_interrupted_bench_removes_its_database() {
    let dir = TempDir::new("cli-bench-sigint");
    let child = Command::new(env!("CARGO_BIN_EXE_talus"))
        .arg("--store")
        .arg(format!("file://{}", dir.path().display()))
        .args(["bench", "--workload", "mixed", "--keys", "2000", "--duration-s", "600"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the bench");
    // The database is there once a manifest is (polled: the bench gives
    // no other sign it has started).
    let root = dir.path().to_path_buf();
    support::on_smol(|runtime| async move {
        let mut polls = 0;
        while !files_under(&root)
            .iter()
            .any(|path| path.to_string_lossy().contains("/manifest/"))
        {
            polls += 1;
            assert!(polls < 6000, "no database after a minute");
            runtime.sleep(std::time::Duration::from_millis(10)).await;
        }
    });
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let output = child.wait_with_output().expect("wait");
    let said = stderr(&output);
    assert_eq!(output.status.code(), Some(130), "{said}");
    assert!(
        said.contains("interrupted; removed the benchmark's database bench-"),
        "{said}"
    );
    assert_eq!(
        files_under(dir.path()),
        Vec::<std::path::PathBuf>::new(),
        "nothing is left"
    );
}

#[test]
fn every_bench_workload_runs_small_and_reports_json() {
    let dir = TempDir::new("cli-bench");
    let store = format!("local:{}", dir.path().display());
    for workload in ["fill", "durable-put", "get", "scan", "mixed", "txn"] {
        let output = Command::new(env!("CARGO_BIN_EXE_talus"))
            .args([
                "bench",
                "--store",
                &store,
                "--workload",
                workload,
                "--keys",
                "2000",
                "--ops",
                "200",
                "--writers",
                "2",
                "--readers",
                "2",
                "--miss-ratio",
                "0.3",
                "--scan-len",
                "50",
                "--duration-s",
                "0.3",
                "--latency-ms",
                "1",
                "--seed",
                "7",
                "--json",
            ])
            .output()
            .expect("run talus bench");
        assert!(output.status.success(), "{workload}: {}", stderr(&output));
        let report = json(&stdout(&output));
        assert_eq!(report["keys"], 2000);
        assert!(report["peak_rss_bytes"].as_u64().is_some_and(|bytes| bytes > 0));
        let runs = report["workloads"].as_array().expect("workloads");
        assert_eq!(runs.len(), 1, "{workload}: only the named workload is reported");
        let store = &report["store_after"];
        assert!(
            store["bytes_at_rest"].as_u64().is_some_and(|bytes| bytes > 0),
            "{store}"
        );
        assert!(
            store["write_amplification"].as_f64().is_some_and(|amp| amp >= 1.0),
            "{store}"
        );
        match workload {
            "fill" | "durable-put" => assert!(report["load"].is_null(), "{workload}"),
            _ => assert_eq!(report["load"]["workload"], "fill", "{workload}: the load phase apart"),
        }
        let run = &runs[0];
        assert_eq!(run["workload"], workload);
        assert!(run["ops"].as_u64().is_some_and(|ops| ops > 0), "{run}");
        assert!(run["ops_per_s"].as_f64().is_some_and(|rate| rate > 0.0), "{run}");
        assert!(run["requests"].is_object(), "{run}");
        let total: u64 = run["requests"]
            .as_object()
            .map(|kinds| kinds.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        let per_op = run["requests_per_op"].as_f64().expect("requests_per_op");
        let ops = run["ops"].as_u64().unwrap_or(1) as f64;
        assert!((per_op - total as f64 / ops).abs() < 1e-9, "{run}");
        match workload {
            "fill" => assert!(run["durable_after_s"].as_f64().is_some(), "{run}"),
            "get" => {
                assert!(run["reads_per_lookup"].as_f64().is_some(), "{run}");
                assert!(run["misses"].as_u64().is_some_and(|misses| misses > 0), "{run}");
            }
            "scan" => assert_eq!(run["rows"].as_u64().map(|rows| rows > 0), Some(true), "{run}"),
            "txn" => {
                assert!(run["commits"].as_u64().is_some_and(|commits| commits > 0), "{run}");
                assert!(run["aborts"].as_u64().is_some(), "{run}");
                assert!(run["requests_per_commit"].as_f64().is_some(), "{run}");
            }
            _ => assert!(run["latency_us"]["p99"].as_u64().is_some(), "{run}"),
        }
    }
    // A reverse scan checks every row it reads, descending.
    let output = Command::new(env!("CARGO_BIN_EXE_talus"))
        .args([
            "bench",
            "--store",
            &store,
            "--workload",
            "scan",
            "--reverse",
            "--keys",
            "2000",
            "--ops",
            "50",
            "--readers",
            "2",
            "--scan-len",
            "50",
            "--json",
        ])
        .output()
        .expect("run talus bench");
    assert!(output.status.success(), "reverse scan: {}", stderr(&output));
    let run = &json(&stdout(&output))["workloads"][0];
    assert_eq!(run["reverse"], true, "{run}");
    assert!(run["rows"].as_u64().is_some_and(|rows| rows > 0), "{run}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
    assert!(left.is_empty(), "the benchmark removes what it wrote: {left:?}");
}

#[test]
fn compact_and_gc_run_reclaim_old_objects_and_keep_every_key() {
    let dir = TempDir::new("cli-gc");
    // Four L0 tables, written by a database embedded the usual way (the
    // CLI's own writes stay in the WAL until a writer flushes them).
    let root = dir.path().to_owned();
    support::on_smol(|runtime| async move {
        let store = talusdb::store::ObjectStoreAdapter::local_dir(&root, runtime.clone()).expect("store");
        let db = talusdb::Db::builder("db", std::sync::Arc::new(store))
            .runtime(runtime)
            .options(talusdb::DbOptions {
                compactor: None,
                ..talusdb::DbOptions::default()
            })
            .open()
            .await
            .expect("open");
        for (key, value) in [("a", "1"), ("b", "2"), ("c", "3")] {
            db.put(key, value).await.expect("put");
            db.flush_memtable().await.expect("flush");
        }
        db.put("a", "4").await.expect("put");
        db.delete("b").await.expect("delete");
        db.close_with(talusdb::CloseOptions { flush_memtable: true })
            .await
            .expect("close");
    });

    let compacted = json(&ok(dir.path(), &["compact", "--json"]));
    assert_eq!(compacted["compacted"], true, "{compacted}");
    // The compactor may first merge L0 on its own (four tables reach its
    // trigger); either way one run of two live rows is left.
    assert_eq!(
        compacted["rows_out"], 2,
        "older versions and the tombstone go: {compacted}"
    );
    let again = ok(dir.path(), &["compact"]);
    assert!(
        again.starts_with("compacted into run") || again.starts_with("nothing"),
        "{again}"
    );

    let args = ["gc", "run", "--min-age-s", "0", "--json"];
    let dry = json(&ok(dir.path(), &[&args[..], &["--dry-run"]].concat()));
    assert_eq!(dry["dry_run"], true);
    assert!(!dry["manifests"].as_array().expect("a list").is_empty(), "{dry}");
    let real = json(&ok(dir.path(), &args));
    assert_eq!(real["dry_run"], false);
    for class in ["wal", "tables", "manifests", "compactions", "checkpoints"] {
        assert_eq!(
            dry[class], real[class],
            "{class}: the dry run reported what the real run deleted"
        );
    }
    let human = ok(dir.path(), &["gc", "run", "--dry-run"]);
    assert!(human.starts_with("would delete"), "{human}");

    assert_eq!(ok(dir.path(), &["get", "a"]).trim(), "4");
    assert_eq!(talus(dir.path(), &["get", "b"]).status.code(), Some(1));
    assert_eq!(ok(dir.path(), &["get", "c"]).trim(), "3");

    let missing = talus(dir.path(), &["--path", "nothing-here", "gc", "run"]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
}

/// `talus repair` moves a damaged WAL table aside, reports what it held,
/// and leaves the database readable; a second repair finds nothing.
#[test]
fn repair_salvages_a_damaged_wal_table_and_reports_the_loss() {
    let dir = TempDir::new("cli-repair");
    // One WAL table per durable put, left in the WAL.
    with_library_writer(dir.path(), |db| async move {
        for n in 0..10 {
            db.put(format!("key{n}"), format!("value-{n}")).await.expect("put");
        }
    });
    // The WAL table holding key5's row: the only one with its value.
    let wal = dir.path().join("db").join("wal");
    let victim = std::fs::read_dir(&wal)
        .expect("wal dir")
        .map(|entry| entry.expect("entry").path())
        .find(|path| {
            let bytes = std::fs::read(path).expect("read");
            bytes.windows(7).any(|window| window == b"value-5")
        })
        .expect("the table of key5");
    let bytes = std::fs::read(&victim).expect("read");
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).expect("truncate");

    let output = talus(dir.path(), &["get", "key1"]);
    assert_eq!(output.status.code(), Some(4), "a damaged WAL table is corruption");
    assert!(one_error_line(&output).contains("talus repair"), "says the way out");

    let report = json(&ok(dir.path(), &["--json", "repair"]));
    let salvaged = report["salvaged"].as_array().expect("a list");
    assert_eq!(salvaged.len(), 1, "{report}");
    let moved = salvaged[0]["moved_to"].as_str().expect("moved_to");
    let kept = std::fs::read(dir.path().join(moved)).expect("kept aside");
    assert_eq!(kept, &bytes[..bytes.len() / 2], "the damaged bytes, as they were");

    assert_eq!(
        talus(dir.path(), &["get", "key5"]).status.code(),
        Some(1),
        "key5 was lost"
    );
    for n in [0, 4, 6, 9] {
        assert_eq!(
            ok(dir.path(), &["get", &format!("key{n}")]).trim(),
            format!("value-{n}")
        );
    }
    assert!(ok(dir.path(), &["repair"]).contains("nothing to repair"));
}

/// The same commands on tokio: a write, a read back, a small bench, and a
/// bad executor name refused with the usage exit code.
#[test]
fn commands_run_on_the_tokio_executor_too() {
    let dir = TempDir::new("cli-tokio");
    ok(dir.path(), &["--executor", "tokio", "put", "k", "v"]);
    assert_eq!(ok(dir.path(), &["--executor", "tokio", "get", "k"]).trim(), "v");
    let report = json(&ok(
        dir.path(),
        &[
            "--executor",
            "tokio",
            "bench",
            "--workload",
            "fill",
            "--keys",
            "2000",
            "--json",
        ],
    ));
    assert_eq!(report["workloads"][0]["ops"], 2000);
    let output = talus(dir.path(), &["--executor", "rayon", "get", "k"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

/// Runs with `input` on stdin.
fn talus_with_stdin(store: &Path, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_talus"))
        .arg("--store")
        .arg(format!("file://{}", store.display()))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run talus");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("talus ends")
}

/// Bytes of every value 0..=255, in a shuffled but fixed order.
fn binary_bytes(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[test]
fn a_large_binary_value_from_stdin_or_a_file_round_trips_byte_for_byte() {
    let dir = TempDir::new("cli-large-value");
    let value = binary_bytes(10 << 20);
    let put = talus_with_stdin(dir.path(), &["put", "big", "-"], &value);
    assert!(put.status.success(), "{}", stderr(&put));
    let got = talus(dir.path(), &["get", "big", "--value-format", "raw"]);
    assert!(got.status.success(), "{}", stderr(&got));
    assert!(got.stdout == value, "10 MiB from stdin read back exactly");

    let file = dir.path().join("value.bin");
    std::fs::write(&file, &value[..1000]).expect("write");
    ok(dir.path(), &["put", "small", &format!("@{}", file.display())]);
    let got = talus(dir.path(), &["get", "small", "--value-format", "raw"]);
    assert_eq!(got.stdout, &value[..1000], "@file read byte for byte");
    let listed = ok(dir.path(), &["scan", "--values", "len"]);
    assert_eq!(listed, format!("big\t{}\nsmall\t1000\n", 10 << 20));
    let missing = talus(dir.path(), &["put", "k", "@/no/such/file"]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(one_error_line(&missing).contains("/no/such/file"));
}

#[test]
fn binary_keys_round_trip_in_hex_and_base64() {
    let dir = TempDir::new("cli-binary-keys");
    // 00 ff 0a 09: not UTF-8, with a newline and a tab in it.
    ok(dir.path(), &["put", "--key-format", "hex", "0x00ff0a09", "v1"]);
    ok(
        dir.path(),
        &[
            "put",
            "--key-format",
            "base64",
            "AP8KCQE=",
            "--value-format",
            "hex",
            "cafe",
        ],
    );
    assert_eq!(
        ok(dir.path(), &["get", "--key-format", "base64", "AP8KCQ=="]).trim(),
        "v1"
    );
    assert_eq!(
        ok(
            dir.path(),
            &["get", "--key-format", "hex", "00ff0a0901", "--value-format", "base64"]
        )
        .trim(),
        "yv4="
    );
    let rows = ok(dir.path(), &["scan", "--key-format", "hex", "--value-format", "hex"]);
    assert_eq!(rows, "00ff0a09\t7631\n00ff0a0901\tcafe\n");
    // In UTF-8 form, JSON carries bytes that are not UTF-8 as base64.
    let lines = ok(dir.path(), &["scan", "--format", "jsonl"]);
    let rows: Vec<Value> = lines.lines().map(json).collect();
    assert_eq!(rows[0]["key_base64"], "AP8KCQ==");
    assert_eq!(rows[0]["value"], "v1");
    assert_eq!(rows[1]["value_base64"], "yv4=");
    ok(dir.path(), &["delete", "--key-format", "hex", "00ff0a09"]);
    assert_eq!(
        talus(dir.path(), &["get", "--key-format", "hex", "00ff0a09"])
            .status
            .code(),
        Some(1)
    );
    let bad = talus(dir.path(), &["get", "--key-format", "hex", "abc"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(one_error_line(&bad).contains("not hex"), "{}", stderr(&bad));
}

/// The bytes a TSV field of `talus scan` stands for (its documented
/// escapes).
fn tsv_unescape(field: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bytes = field.bytes();
    while let Some(byte) = bytes.next() {
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        match bytes.next().expect("an escape") {
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'\\' => out.push(b'\\'),
            b'x' => {
                let digits = [bytes.next().expect("digit"), bytes.next().expect("digit")];
                let digits = std::str::from_utf8(&digits).expect("ascii");
                out.push(u8::from_str_radix(digits, 16).expect("hex"));
            }
            other => panic!("unknown escape \\{}", other as char),
        }
    }
    out
}

#[test]
fn scan_tsv_escapes_tabs_newlines_and_bytes_so_every_line_parses_back() {
    let dir = TempDir::new("cli-tsv");
    let rows: [(&[u8], &[u8]); 4] = [
        (b"a\tb", b"line1\nline2"),
        (b"back\\slash", b"\\t is not a tab"),
        (b"c\r\n", &[0xff, 0x00, b'x']),
        (b"plain", "caf\u{e9}".as_bytes()),
    ];
    let hex = |bytes: &[u8]| bytes.iter().map(|byte| format!("{byte:02x}")).collect::<String>();
    for (key, value) in rows {
        ok(
            dir.path(),
            &[
                "put",
                "--key-format",
                "hex",
                &hex(key),
                "--value-format",
                "hex",
                &hex(value),
            ],
        );
    }
    let listed = ok(dir.path(), &["scan"]);
    let mut parsed: Vec<(Vec<u8>, Vec<u8>)> = listed
        .lines()
        .map(|line| {
            let (key, value) = line.split_once('\t').expect("one tab per line");
            assert!(!value.contains('\t'), "{line}");
            (tsv_unescape(key), tsv_unescape(value))
        })
        .collect();
    parsed.sort();
    let mut expected: Vec<(Vec<u8>, Vec<u8>)> =
        rows.iter().map(|(key, value)| (key.to_vec(), value.to_vec())).collect();
    expected.sort();
    assert_eq!(parsed, expected, "{listed}");
}

#[test]
fn scan_selects_a_prefix_counts_reverses_and_reads_at_a_checkpoint() {
    let dir = TempDir::new("cli-scan-options");
    for key in ["app", "apple", "apricot", "banana", "b"] {
        ok(dir.path(), &["put", key, &format!("{key}-1")]);
    }
    assert_eq!(
        ok(dir.path(), &["scan", "--prefix", "ap", "--values", "none"]),
        "app\napple\napricot\n"
    );
    assert_eq!(
        ok(
            dir.path(),
            &[
                "scan",
                "--prefix",
                "ap",
                "--reverse",
                "--limit",
                "2",
                "--values",
                "none"
            ]
        ),
        "apricot\napple\n"
    );
    assert_eq!(ok(dir.path(), &["scan", "--prefix", "b", "--count"]).trim(), "2");
    assert_eq!(json(&ok(dir.path(), &["scan", "--count", "--json"]))["count"], 5);
    assert_eq!(
        ok(dir.path(), &["scan", "--start", "b", "--values", "len"]),
        "b\t3\nbanana\t8\n"
    );

    // A writer's checkpoint (it moves what the WAL holds to L0 first).
    let made = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    with_library_writer(dir.path(), |db| {
        let made = made.clone();
        async move {
            let checkpoint = db.create_checkpoint(Default::default()).await.expect("checkpoint");
            *made.lock().expect("lock") = checkpoint.id.to_string();
        }
    });
    let id = made.lock().expect("lock").clone();
    ok(dir.path(), &["put", "apple", "apple-2"]);
    ok(dir.path(), &["delete", "banana"]);
    assert_eq!(ok(dir.path(), &["get", "apple"]).trim(), "apple-2");
    assert_eq!(
        ok(dir.path(), &["get", "apple", "--at-checkpoint", &id]).trim(),
        "apple-1"
    );
    assert_eq!(
        ok(dir.path(), &["scan", "--start", "b", "--at-checkpoint", &id]),
        "b\tb-1\nbanana\tbanana-1\n"
    );
    let unknown = talus(dir.path(), &["scan", "--at-checkpoint", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
}

#[test]
fn a_missing_or_truncated_table_and_a_path_with_no_database_get_their_exit_codes() {
    let dir = TempDir::new("cli-exit-codes");
    // One L0 table, written through the library.
    with_library_writer(dir.path(), |db| async move {
        for n in 0..200u32 {
            db.put(format!("key{n:03}"), "v".repeat(50)).await.expect("put");
        }
        db.flush_memtable().await.expect("to L0");
    });
    let tables: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path().join("db"))
        .expect("db dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            !["manifest", "wal", "compactions"]
                .iter()
                .any(|name| path.ends_with(name))
        })
        .flat_map(|sub| {
            std::fs::read_dir(sub)
                .expect("a table dir")
                .map(|entry| entry.expect("entry").path())
        })
        .filter(|path| path.extension().is_some_and(|ext| ext == "sst"))
        .collect();
    assert_eq!(tables.len(), 1, "{tables:?}");
    let table = &tables[0];
    let name = table
        .file_name()
        .and_then(|name| name.to_str())
        .expect("name")
        .to_owned();
    assert_eq!(ok(dir.path(), &["get", "key007"]).trim(), "v".repeat(50));

    let bytes = std::fs::read(table).expect("read");
    std::fs::write(table, &bytes[..bytes.len() / 3]).expect("truncate");
    let truncated = talus(dir.path(), &["get", "key007"]);
    assert_eq!(truncated.status.code(), Some(4), "{}", stderr(&truncated));
    assert!(one_error_line(&truncated).contains(&name));
    std::fs::remove_file(table).expect("remove");
    let missing = talus(dir.path(), &["scan"]);
    assert_eq!(missing.status.code(), Some(4), "{}", stderr(&missing));
    assert!(one_error_line(&missing).contains(&name));

    let unknown = talus(dir.path(), &["manifest", "show", "--id", "9999"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(one_error_line(&unknown).contains("9999"));
    for command in [
        &["manifest", "list"][..],
        &["compactions", "list"],
        &["checkpoint", "list"],
        &["scan"],
    ] {
        let args: Vec<&str> = ["--path", "nothing"].iter().chain(command).copied().collect();
        let output = talus(dir.path(), &args);
        assert_eq!(output.status.code(), Some(2), "{command:?}: {}", stderr(&output));
        assert!(
            one_error_line(&output).contains("no database at nothing"),
            "{command:?}"
        );
    }
    assert!(!dir.path().join("nothing").exists(), "read commands create nothing");
    let absent = dir.path().join("absent");
    let output = talus(&absent, &["get", "k"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(one_error_line(&output).contains("no database at db"));
    assert!(!absent.exists(), "a read command creates no directory");
}

/// Rows that every export format must carry exactly: keys with tabs,
/// newlines, commas, quotes and bytes that are not UTF-8, binary values
/// (one of 1 MiB), and a deleted key that must not come back.
fn transfer_rows() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut rows: Vec<(Vec<u8>, Vec<u8>)> = (0..1500)
        .map(|n| (format!("key-{n:05}").into_bytes(), format!("value {n}").into_bytes()))
        .collect();
    rows.push((b"tab\there".to_vec(), b"line\nbreak, \"quoted\"".to_vec()));
    rows.push((vec![0xff, 0x00, b'\\', b'\r'], binary_bytes(300)));
    rows.push((b"large".to_vec(), binary_bytes(1 << 20)));
    rows.push((b"empty value".to_vec(), Vec::new()));
    rows
}

#[test]
fn an_import_of_an_export_reproduces_the_database_in_every_format() {
    let dir = TempDir::new("cli-transfer");
    let rows = transfer_rows();
    let written = rows.clone();
    with_library_writer(dir.path(), |db| async move {
        for (key, value) in written {
            db.put(key, value).await.expect("put");
        }
        db.put("gone", "deleted before the export").await.expect("put");
        db.delete("gone").await.expect("delete");
    });
    let mut expected = rows.clone();
    expected.sort();
    let cases = [
        ("jsonl", "utf8", "utf8"),
        ("tsv", "utf8", "utf8"),
        ("csv", "hex", "base64"),
        ("jsonl", "base64", "hex"),
    ];
    for (n, (format, keys, values)) in cases.into_iter().enumerate() {
        let exported = dir.path().join(format!("export-{n}.{format}"));
        let exported = exported.to_str().expect("a UTF-8 path");
        let flags = ["--format", format, "--key-format", keys, "--value-format", values];
        let summary = json(&ok(
            dir.path(),
            &[&["--json", "export", "--output", exported][..], &flags].concat(),
        ));
        assert_eq!(summary["exported"], expected.len(), "{format}");
        let copy = format!("copy-{n}");
        let imported = json(&ok(
            dir.path(),
            &[&["--json", "--path", &copy, "import", exported][..], &flags].concat(),
        ));
        assert_eq!(imported["imported"], expected.len(), "{format}");
        let again = dir.path().join(format!("again-{n}.{format}"));
        let again = again.to_str().expect("a UTF-8 path");
        ok(
            dir.path(),
            &[&["--path", &copy, "export", "--output", again][..], &flags].concat(),
        );
        let (first, second) = (
            std::fs::read(exported).expect("read"),
            std::fs::read(again).expect("read"),
        );
        assert!(
            first == second,
            "{format} {keys} {values}: the copy exports differently"
        );
    }
    // Each row of the copy, read back through the library, is the row
    // written.
    let root = dir.path().to_path_buf();
    support::on_smol(|runtime| async move {
        let store = talusdb::store::ObjectStoreAdapter::local_dir(&root, runtime.clone()).expect("a store");
        let reader = talusdb::Db::builder("copy-2", std::sync::Arc::new(store))
            .runtime(runtime)
            .open_read_only()
            .await
            .expect("open the copy");
        use futures::StreamExt;
        let read: Vec<(Vec<u8>, Vec<u8>)> = reader
            .scan::<&[u8]>(..)
            .map(|row| {
                let (key, value) = row.expect("a row");
                (key.to_vec(), value.to_vec())
            })
            .collect()
            .await;
        assert!(read == expected, "the CSV copy holds other rows");
        reader.close().await.expect("close");
    });

    // Through a pipe: stdout into stdin.
    let piped = talus(dir.path(), &["export"]);
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert!(stderr(&piped).contains(&format!("exported {} rows", rows.len())));
    let imported = talus_with_stdin(dir.path(), &["--path", "piped", "import", "-"], &piped.stdout);
    assert!(imported.status.success(), "{}", stderr(&imported));
    let again = talus(dir.path(), &["--path", "piped", "export"]);
    assert!(again.stdout == piped.stdout, "the piped copy exports differently");
}

#[test]
fn an_import_stops_at_a_malformed_row_and_names_its_line() {
    let dir = TempDir::new("cli-import-errors");
    let input = b"{\"key\":\"a\",\"value\":\"1\"}\n{\"key\":\"b\",\"value\":\"2\"}\n\n{\"key\":\"c\"}\n";
    let output = talus_with_stdin(dir.path(), &["import", "--batch-rows", "1"], input);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let lines: Vec<String> = stderr(&output).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], "imported 2 rows before the error");
    assert!(lines[1].starts_with("error: input line 4:"), "{lines:?}");
    assert_eq!(ok(dir.path(), &["get", "b"]).trim(), "2", "the rows before it stay");
    let csv = talus_with_stdin(dir.path(), &["import", "--format", "csv"], b"name,value\nx,1\n");
    assert_eq!(csv.status.code(), Some(2));
    assert!(
        one_error_line(&csv).contains("header must be key,value"),
        "{}",
        stderr(&csv)
    );
    let tsv = talus_with_stdin(
        dir.path(),
        &["--path", "new", "import", "--format", "tsv"],
        b"k\tbad\\q\n",
    );
    assert_eq!(tsv.status.code(), Some(2));
    assert!(one_error_line(&tsv).contains("input line 1"), "{}", stderr(&tsv));
    assert!(
        !dir.path().join("new").exists(),
        "an input wrong from its start creates nothing"
    );
}
