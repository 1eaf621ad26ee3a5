//! What an operator meets when something outside talusdb goes wrong: a
//! lost manifest is refused (never papered over by a new database), and
//! errors no retry can fix (a read-only file system, a plain-HTTP endpoint
//! without `--allow-http`, no credentials, nothing listening) fail in
//! seconds with one line that says what to do; a store that stays
//! unavailable is retried within its budget, then exits 5.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::TempDir;

/// Runs `talus` with only the environment given (no AWS settings leak in
/// from the caller's), and how long it took.
#[allow(
    clippy::disallowed_methods,
    reason = "times a child process in real time: the bound is what is tested"
)]
fn talus(env: &[(&str, &str)], args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_talus"))
        .env_clear()
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("run talus");
    (output, started.elapsed())
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Expects a failure within 2 s with exit code `code` and one line that
/// contains `says`.
fn fails_fast(env: &[(&str, &str)], args: &[&str], code: i32, says: &str) {
    let (output, took) = talus(env, args);
    let line = stderr(&output);
    assert_eq!(output.status.code(), Some(code), "talus {args:?}: {line}");
    assert_eq!(line.trim_end().lines().count(), 1, "one line: {line}");
    assert!(line.contains(says), "talus {args:?} should say {says:?}: {line}");
    assert!(took < Duration::from_secs(2), "talus {args:?} took {took:?}: {line}");
}

/// Every object under `dir`, with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                found.push((path, bytes));
            }
        }
    }
    found.sort();
    found
}

/// Regression: with the manifest objects moved away, `talus put` created a
/// new database over the old tables and WAL (a scan then showed 1 row of
/// 100), and `gc run --min-age-s 0` deleted the old tables.
#[test]
fn a_lost_manifest_is_refused_by_writers_and_the_collector() {
    let dir = TempDir::new("lost-manifest");
    let store = format!("file://{}", dir.path().display());
    for n in 0..100 {
        let (output, _) = talus(&[], &["--store", &store, "put", &format!("key{n:03}"), "value"]);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let (output, _) = talus(&[], &["--store", &store, "compact"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let manifests = dir.path().join("db/manifest");
    let aside = dir.path().join("manifest-aside");
    std::fs::rename(&manifests, &aside).expect("move the manifest away");
    let before = snapshot(dir.path());

    for args in [
        vec!["put", "hello", "world"],
        vec!["get", "key007"],
        vec!["gc", "run", "--min-age-s", "0"],
    ] {
        let args: Vec<&str> = ["--store", store.as_str()].into_iter().chain(args).collect();
        fails_fast(&[], &args, 4, "no manifest: the manifest was lost");
    }
    assert_eq!(snapshot(dir.path()), before, "every object untouched");

    std::fs::rename(&aside, &manifests).expect("restore the manifest");
    let (output, _) = talus(&[], &["--store", &store, "get", "key099"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "value");
}

/// A directory writes fail in: read-only by its mode, or, for root (whom
/// modes do not stop), a read-only tmpfs mounted on it. `None` (with the
/// reason printed) if neither can be had here.
struct ReadOnlyDir {
    dir: TempDir,
    mounted: bool,
}

impl ReadOnlyDir {
    fn new() -> Option<ReadOnlyDir> {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("read-only");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).expect("chmod");
        let probe = dir.path().join("probe");
        if std::fs::write(&probe, b"x").is_err() {
            return Some(ReadOnlyDir { dir, mounted: false });
        }
        let _ = std::fs::remove_file(&probe);
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro", "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|output| output.status.success());
        if mounted {
            return Some(ReadOnlyDir { dir, mounted: true });
        }
        println!("skipping the read-only case: running as root and cannot mount a read-only tmpfs");
        None
    }
}

impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if self.mounted {
            let _ = Command::new("umount").arg(self.dir.path()).output();
        }
        let _ = std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755));
    }
}

/// Regression: each of these retried for about 60 s before failing.
#[test]
fn errors_no_retry_can_fix_fail_within_two_seconds_with_what_to_do() {
    if let Some(read_only) = ReadOnlyDir::new() {
        let store = format!("file://{}", read_only.dir.path().display());
        let says = if read_only.mounted {
            "the file system is read-only"
        } else {
            "permission denied"
        };
        fails_fast(&[], &["--store", &store, "put", "a", "b"], 2, says);
    }

    let credentials = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    // Nothing listens on port 9 (discard) here.
    let closed = ["--store", "s3://bucket/db", "--s3-endpoint", "http://127.0.0.1:9"];
    let put = ["put", "a", "b"];
    let args: Vec<&str> = closed.iter().chain(&put).copied().collect();
    fails_fast(&credentials, &args, 2, "permit it with --allow-http");
    let args: Vec<&str> = closed.iter().chain(&["--allow-http"]).chain(&put).copied().collect();
    fails_fast(&credentials, &args, 2, "nothing listens at the endpoint");

    let Some(server) = support::S3Server::start("the S3 credentials case") else {
        return;
    };
    let store = format!("s3://{}/db", server.bucket);
    let endpoint = server.endpoint.as_str();
    // No keys: the client asks the instance-metadata endpoint, pointed at
    // a closed local port so that no other address is ever contacted.
    let no_keys = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9"),
    ];
    let args = [
        "--store",
        &store,
        "--s3-endpoint",
        endpoint,
        "--allow-http",
        "put",
        "a",
        "b",
    ];
    fails_fast(&no_keys, &args, 2, "no credentials found: set AWS_ACCESS_KEY_ID");
    let (output, _) = talus(&credentials, &args);
    assert!(
        output.status.success(),
        "with credentials it works: {}",
        stderr(&output)
    );
}

/// An S3 endpoint on 127.0.0.1 that answers every request with
/// `503 Service Unavailable`, until the test process ends.
fn unavailable_endpoint() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|end| end == b"\r\n\r\n") {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let answer = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                let _ = stream.write_all(answer.as_bytes());
            });
        }
    });
    format!("http://{address}")
}

/// A store that keeps failing in a way a retry could fix (503 on every
/// request) is retried within its budget (about a minute), then the
/// command fails with exit code 5, naming the request.
#[test]
fn a_store_that_stays_unavailable_exits_5_after_its_retries() {
    let endpoint = unavailable_endpoint();
    let credentials = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    let args = [
        "--store",
        "s3://bucket/prefix",
        "--s3-endpoint",
        &endpoint,
        "--allow-http",
        "get",
        "k",
    ];
    let (output, took) = talus(&credentials, &args);
    let line = stderr(&output);
    assert_eq!(output.status.code(), Some(5), "{line}");
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    assert!(line.contains("db/manifest") && line.contains("503"), "{line}");
    assert!(took >= Duration::from_secs(1), "it was retried: {took:?}");
}
