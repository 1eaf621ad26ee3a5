//! Embedding talus-actors in a tokio application: actors run on the app's
//! tokio runtime, found through `Handle::current()`, and blocking work goes
//! to tokio's blocking pool.
//!
//! Run with `cargo run -p talus-actors --example embed_tokio`.

use talus_actors::{Actor, Context, Reply, Runtime, System};

#[derive(Debug)]
enum ChecksumMsg {
    Add(Vec<u8>),
    /// Completion of the blocking hash of one chunk.
    Hashed(u64),
    Digest(Reply<u64>),
}

fn hash(chunk: &[u8]) -> u64 {
    chunk
        .iter()
        .fold(17u64, |hash, byte| hash.wrapping_mul(31).wrapping_add(u64::from(*byte)))
}

/// Hashes chunks off the async threads and folds the results. A `Digest`
/// request waits until every chunk sent before it has been folded in.
#[derive(Default)]
struct Checksum {
    digest: u64,
    hashing: usize,
    waiters: Vec<Reply<u64>>,
}

impl Actor for Checksum {
    type Msg = ChecksumMsg;
    type Error = String;

    async fn handle(&mut self, msg: ChecksumMsg, ctx: &mut Context<Self>) -> Result<(), String> {
        match msg {
            ChecksumMsg::Add(chunk) => {
                // CPU-heavy work: run it on the blocking pool, get the result
                // back as a message.
                self.hashing += 1;
                let hashing = ctx.runtime().unblock(move || hash(&chunk));
                ctx.spawn_then(hashing, |hashed| ChecksumMsg::Hashed(hashed.unwrap_or(0)));
            }
            ChecksumMsg::Hashed(hashed) => {
                self.digest ^= hashed;
                self.hashing -= 1;
                if self.hashing == 0 {
                    for waiter in self.waiters.drain(..) {
                        waiter.send(self.digest);
                    }
                }
            }
            ChecksumMsg::Digest(reply) if self.hashing == 0 => reply.send(self.digest),
            ChecksumMsg::Digest(reply) => self.waiters.push(reply),
        }
        Ok(())
    }
}

pub fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    let digest = tokio.block_on(async {
        let runtime = Runtime::tokio_current().expect("inside tokio");
        let system = System::<String>::new(runtime);
        let checksum = system.start("checksum", Checksum::default());
        checksum.send(ChecksumMsg::Add(b"hello".to_vec())).await?;
        checksum.send(ChecksumMsg::Add(b"world".to_vec())).await?;
        let digest = checksum.ask(ChecksumMsg::Digest).await?;
        system.shutdown().await?;
        // After shutdown the actor is gone and says so.
        assert!(
            checksum
                .ask(ChecksumMsg::Digest)
                .await
                .is_err_and(|error| error.is_closed())
        );
        Ok::<_, talus_actors::ActorError<String>>(digest)
    });
    assert_eq!(digest, Ok(hash(b"hello") ^ hash(b"world")));
    println!("tokio: hashed two chunks on the blocking pool and shut down cleanly");
}
