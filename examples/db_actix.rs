//! talusdb inside an actix `System` (what an actix-web application runs
//! in): the database's actors run on the actix arbiter, and an ordinary
//! actix actor holds the `Db` and awaits it in its handlers.
//!
//! Run with `cargo run --example db_actix --features actix`.

use std::sync::Arc;

use actix::{Actor as ActixActor, Handler, Message, ResponseFuture};
use bytes::Bytes;
use talusdb::actors::Runtime;
use talusdb::store::ObjectStoreAdapter;
use talusdb::{Db, Error};

/// An actix actor that owns a `Db` handle, as an actix-web service would.
struct Sessions {
    db: Db,
}

impl ActixActor for Sessions {
    type Context = actix::Context<Self>;
}

struct Login(&'static str);

impl Message for Login {
    type Result = Result<Option<Bytes>, Error>;
}

impl Handler<Login> for Sessions {
    type Result = ResponseFuture<Result<Option<Bytes>, Error>>;

    fn handle(&mut self, Login(user): Login, _ctx: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move {
            let key = format!("session/{user}");
            db.put(key.clone(), format!("token-for-{user}")).await?;
            db.get(key).await
        })
    }
}

pub fn main() {
    let token = actix_rt::System::new().block_on(async {
        let runtime = Runtime::actix_current().expect("inside an actix System");
        let db = Db::builder("actix-example", Arc::new(ObjectStoreAdapter::in_memory()))
            .runtime(runtime)
            .open()
            .await
            .expect("open");
        let sessions = Sessions { db: db.clone() }.start();
        let token = sessions
            .send(Login("ada"))
            .await
            .expect("actix mailbox")
            .expect("login");
        db.close().await.expect("close");
        token
    });
    assert_eq!(token.as_deref(), Some(&b"token-for-ada"[..]));
    println!("actix: an actix actor wrote and read a session through the Db");
}
