//! Embedding talus-actors in a smol application: the app's own executor
//! runs the actors, and the app talks to them through an `Addr`.
//!
//! Run with `cargo run -p talus-actors --example embed_smol`.

use std::sync::Arc;

use talus_actors::{Actor, Context, Reply, Runtime, System};

#[derive(Debug)]
enum WordCountMsg {
    Count(String),
    Total(Reply<usize>),
}

struct WordCount {
    words: usize,
}

impl Actor for WordCount {
    type Msg = WordCountMsg;
    type Error = String;

    async fn handle(&mut self, msg: WordCountMsg, _ctx: &mut Context<Self>) -> Result<(), String> {
        match msg {
            WordCountMsg::Count(line) => self.words += line.split_whitespace().count(),
            WordCountMsg::Total(reply) => reply.send(self.words),
        }
        Ok(())
    }
}

pub fn main() {
    // The application's executor; `smol::Executor` is async-executor's.
    let executor = Arc::new(smol::Executor::new());
    let runtime = Runtime::smol_on(executor.clone());
    let total = smol::block_on(executor.run(async move {
        let system = System::<String>::new(runtime);
        let counter = system.start("word-count", WordCount { words: 0 });
        for line in ["the quick brown fox", "jumps over", "the lazy dog"] {
            counter.send(WordCountMsg::Count(line.to_owned())).await?;
        }
        let total = counter.ask(WordCountMsg::Total).await?;
        system.shutdown().await?;
        Ok::<_, talus_actors::ActorError<String>>(total)
    }));
    assert_eq!(total, Ok(9));
    println!("smol: counted 9 words");
}
