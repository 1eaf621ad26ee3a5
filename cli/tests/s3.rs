//! The `talus` command line on S3, through a local S3-compatible server
//! (`moto_server`, started on 127.0.0.1 by the test and stopped after it).
//! Without `moto_server` the test prints one skip line; `.ci/run` installs
//! it and sets `TALUS_S3_REQUIRED`.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::process::Command;

#[test]
fn the_cli_reads_and_writes_an_s3_store() {
    let Some(server) = support::S3Server::start("the S3 CLI test") else {
        return;
    };
    let talus = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_talus"))
            .args(["--s3-endpoint", &server.endpoint, "--allow-http"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .output()
            .expect("run talus")
    };
    let store = format!("s3://{}/cli", server.bucket);
    let put = talus(&["--store", &store, "put", "greeting", "hello"]);
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    let get = talus(&["--store", &store, "get", "greeting"]);
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "hello");

    let bench = talus(&[
        "bench",
        "--store",
        &store,
        "--workload",
        "get",
        "--keys",
        "500",
        "--ops",
        "100",
        "--json",
    ]);
    assert!(bench.status.success(), "{}", String::from_utf8_lossy(&bench.stderr));

    let missing = talus(&["--store", "s3://no-such-bucket/x", "get", "greeting"]);
    assert_eq!(
        missing.status.code(),
        Some(2),
        "a missing bucket is a bad argument, not an outage"
    );
    let line = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.contains("no-such-bucket"), "the error names the bucket: {line}");
}
