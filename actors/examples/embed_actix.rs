//! Embedding talus-actors inside an actix `System` (what an actix-web
//! application runs in): our actors run on the actix arbiter, and an actix
//! actor simply awaits our `Addr`, which is `Send + Clone`.
//!
//! Run with `cargo run -p talus-actors --example embed_actix`.

use actix::{Actor as ActixActor, Handler, Message, ResponseFuture};
use talus_actors::{Actor, ActorError, Addr, Context, Reply, Runtime, System};

#[derive(Debug)]
enum InventoryMsg {
    Stock(&'static str, u32),
    Count(&'static str, Reply<u32>),
}

/// Ours: a talus actor holding the stock levels.
#[derive(Default)]
struct Inventory {
    items: std::collections::BTreeMap<&'static str, u32>,
}

impl Actor for Inventory {
    type Msg = InventoryMsg;
    type Error = String;

    async fn handle(&mut self, msg: InventoryMsg, _ctx: &mut Context<Self>) -> Result<(), String> {
        match msg {
            InventoryMsg::Stock(item, count) => *self.items.entry(item).or_default() += count,
            InventoryMsg::Count(item, reply) => reply.send(self.items.get(item).copied().unwrap_or(0)),
        }
        Ok(())
    }
}

/// Theirs: an ordinary actix actor (think of an actix-web handler's helper)
/// that forwards questions to the talus actor.
struct Frontend {
    inventory: Addr<InventoryMsg, String>,
}

impl ActixActor for Frontend {
    type Context = actix::Context<Self>;
}

struct HowMany(&'static str);

impl Message for HowMany {
    type Result = Result<u32, ActorError<String>>;
}

impl Handler<HowMany> for Frontend {
    type Result = ResponseFuture<Result<u32, ActorError<String>>>;

    fn handle(&mut self, HowMany(item): HowMany, _ctx: &mut Self::Context) -> Self::Result {
        let inventory = self.inventory.clone();
        Box::pin(async move { inventory.ask(|reply| InventoryMsg::Count(item, reply)).await })
    }
}

pub fn main() {
    let counted = actix_rt::System::new().block_on(async {
        let runtime = Runtime::actix_current().expect("inside an actix System");
        let system = System::<String>::new(runtime);
        let inventory = system.start("inventory", Inventory::default());
        inventory.send(InventoryMsg::Stock("apples", 3)).await.unwrap();
        inventory.send(InventoryMsg::Stock("apples", 4)).await.unwrap();
        let frontend = Frontend { inventory }.start();
        let counted = frontend.send(HowMany("apples")).await.expect("actix mailbox");
        system.shutdown().await.unwrap();
        counted
    });
    assert_eq!(counted, Ok(7));
    println!("actix: an actix actor asked a talus actor and got 7 apples");
}
