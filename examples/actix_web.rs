//! A small HTTP key-value service on actix-web, backed by talusdb on a local
//! directory. The handlers hold the `Db` in `web::Data` and await it like
//! any other async call; the database's actors run on the actix System's
//! arbiter, the handlers on actix-web's worker threads.
//!
//! Run with `cargo run --example actix_web --features actix [ADDR] [DIR]`
//! (default `127.0.0.1:8080` and a directory under the system's temp dir),
//! then:
//!
//! ```text
//! curl -X PUT --data-binary 'hello' http://127.0.0.1:8080/kv/greeting
//! curl http://127.0.0.1:8080/kv/greeting
//! curl -X DELETE http://127.0.0.1:8080/kv/greeting
//! ```
//!
//! Ctrl-C stops the server; the database is then closed.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use talusdb::actors::Runtime;
use talusdb::store::ObjectStoreAdapter;
use talusdb::{Db, Error, ErrorKind};

/// Opens (or creates) the database in `dir`, its actors on the current
/// actix arbiter.
pub async fn open(dir: &Path) -> Result<Db, Error> {
    let runtime =
        Runtime::actix_current().map_err(|error| Error::new(ErrorKind::InvalidArgument, error.to_string()))?;
    let store = ObjectStoreAdapter::local_dir(dir, runtime.clone())
        .map_err(|error| Error::new(ErrorKind::Unavailable, format!("{}: {error}", dir.display())))?;
    Db::builder("kv", Arc::new(store)).runtime(runtime).open().await
}

/// The service on `listener`: `GET`, `PUT` and `DELETE /kv/{key}`.
pub fn serve(listener: TcpListener, db: Db) -> std::io::Result<Server> {
    let db = web::Data::new(db);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(db.clone())
            .route("/kv/{key}", web::get().to(get_value))
            .route("/kv/{key}", web::put().to(put_value))
            .route("/kv/{key}", web::delete().to(delete_value))
    })
    .workers(2)
    .listen(listener)?
    .run();
    Ok(server)
}

async fn get_value(db: web::Data<Db>, key: web::Path<String>) -> HttpResponse {
    match db.get(key.into_inner()).await {
        Ok(Some(value)) => HttpResponse::Ok().body(value),
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(error) => failure(&error),
    }
}

async fn put_value(db: web::Data<Db>, key: web::Path<String>, value: web::Bytes) -> HttpResponse {
    // Returns once the value is durable in the store.
    match db.put(key.into_inner(), value).await {
        Ok(_) => HttpResponse::NoContent().finish(),
        Err(error) => failure(&error),
    }
}

async fn delete_value(db: web::Data<Db>, key: web::Path<String>) -> HttpResponse {
    match db.delete(key.into_inner()).await {
        Ok(_) => HttpResponse::NoContent().finish(),
        Err(error) => failure(&error),
    }
}

/// The status a failed call answers with: the caller's mistake, or the
/// database (or its store) being unable to serve right now.
fn failure(error: &Error) -> HttpResponse {
    match error.kind() {
        ErrorKind::InvalidArgument => HttpResponse::BadRequest().body(error.to_string()),
        ErrorKind::Unavailable | ErrorKind::Closed { .. } | ErrorKind::Fenced => {
            HttpResponse::ServiceUnavailable().body(error.to_string())
        }
        _ => HttpResponse::InternalServerError().body(error.to_string()),
    }
}

#[actix_web::main]
pub async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1).filter(|arg| !arg.starts_with('-'));
    let address = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("talusdb-example-actix-web"));
    let db = open(&dir).await.map_err(std::io::Error::other)?;
    let listener = TcpListener::bind(&address)?;
    println!(
        "talusdb over HTTP on http://{}/kv/<key>, data in {}",
        listener.local_addr()?,
        dir.display()
    );
    serve(listener, db.clone())?.await?;
    db.close().await.map_err(std::io::Error::other)
}
