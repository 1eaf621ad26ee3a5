//! The database embedded as users embed it: the examples, compiled into this
//! test and run, on a smol program, a tokio program (`#[tokio::main]`, tasks
//! spawned the tokio way) and an actix-web service answering real HTTP
//! requests on 127.0.0.1; each on a local directory.

#[path = "../examples/db_smol.rs"]
mod db_smol;

#[path = "../examples/db_tokio.rs"]
mod db_tokio;

#[path = "../examples/actix_web.rs"]
#[allow(dead_code, reason = "the test runs the service, not the example's main")]
mod actix_web_example;

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use support::TempDir;

#[test]
fn runs_inside_a_smol_program_on_a_local_directory() {
    db_smol::main();
}

#[test]
fn runs_inside_a_tokio_main_with_tokio_tasks() {
    db_tokio::main();
}

/// One HTTP/1.1 request on a fresh connection: the status code and body.
fn request(address: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(address).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("send the head");
    stream.write_all(body).expect("send the body");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    let split = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("a status line in {head:?}"));
    (status, answer[split + 4..].to_vec())
}

#[test]
fn serves_http_from_actix_web_handlers_holding_the_db() {
    let dir = TempDir::new("actix-web");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    actix_web::rt::System::new().block_on(async {
        let db = actix_web_example::open(dir.path()).await.expect("open");
        let server = actix_web_example::serve(listener, db.clone()).expect("server");
        let handle = server.handle();
        let serving = actix_web::rt::spawn(server);

        // The client blocks, so it runs on a thread of its own: the
        // database's actors share this thread's arbiter.
        let (answers, answered) = futures::channel::oneshot::channel();
        std::thread::spawn(move || {
            let exchange = vec![
                request(address, "GET", "/kv/greeting", b""),
                request(address, "PUT", "/kv/greeting", b"hello"),
                request(address, "GET", "/kv/greeting", b""),
                request(address, "PUT", "/kv/binary", &[0, 159, 146, 150]),
                request(address, "GET", "/kv/binary", b""),
                request(address, "DELETE", "/kv/greeting", b""),
                request(address, "GET", "/kv/greeting", b""),
            ];
            let _ = answers.send(exchange);
        });
        let exchange = answered.await.expect("the client finished");
        let statuses: Vec<u16> = exchange.iter().map(|(status, _)| *status).collect();
        assert_eq!(statuses, [404, 204, 200, 204, 200, 204, 404]);
        assert_eq!(exchange[2].1, b"hello");
        assert_eq!(exchange[4].1, [0, 159, 146, 150]);

        // What the service acknowledged is in the database itself.
        assert_eq!(
            db.get("binary").await.expect("get").as_deref(),
            Some(&[0, 159, 146, 150][..])
        );
        assert_eq!(db.get("greeting").await.expect("get"), None);

        handle.stop(true).await;
        serving.await.expect("server task").expect("server");
        db.close().await.expect("close");
    });

    // A new service on the same directory finds what the first one wrote.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    actix_web::rt::System::new().block_on(async {
        let db = actix_web_example::open(dir.path()).await.expect("reopen");
        let server = actix_web_example::serve(listener, db.clone()).expect("server");
        let handle = server.handle();
        let serving = actix_web::rt::spawn(server);
        assert_eq!(
            db.get("binary").await.expect("get").as_deref(),
            Some(&[0, 159, 146, 150][..])
        );
        handle.stop(true).await;
        serving.await.expect("server task").expect("server");
        db.close().await.expect("close");
    });
}
