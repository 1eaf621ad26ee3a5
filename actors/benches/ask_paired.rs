//! `ask` round-trip latency of talus-actors and of actix 0.13, paired: both
//! counters live in one actix `System` on one thread, and the two are
//! measured in alternating rounds, so that the machine's drift in speed
//! (large on shared hosts) falls on both alike. Criterion's `ask` figures
//! (`benches/actors.rs`) come from separate stretches of time instead.
//!
//! Run with `cargo bench -p talus-actors --bench ask_paired [-- ROUNDS ASKS]`
//! (default 30 rounds of 100,000 asks each); prints nanoseconds per ask.

#![allow(clippy::disallowed_methods, reason = "benchmarks measure real time")]

use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use actix::{Actor as ActixActor, Handler, Message, MessageResult};
use talus_actors::{Actor, Context, Reply, Runtime, System};

#[derive(Debug)]
struct Get(Reply<u64>);

struct Counter(u64);

impl Actor for Counter {
    type Msg = Get;
    type Error = ();

    async fn handle(&mut self, Get(reply): Get, _ctx: &mut Context<Self>) -> Result<(), ()> {
        reply.send(self.0);
        Ok(())
    }
}

struct ActixCounter(u64);

impl ActixActor for ActixCounter {
    type Context = actix::Context<Self>;
}

struct ActixGet;

impl Message for ActixGet {
    type Result = u64;
}

impl Handler<ActixGet> for ActixCounter {
    type Result = MessageResult<ActixGet>;

    fn handle(&mut self, _: ActixGet, _ctx: &mut Self::Context) -> MessageResult<ActixGet> {
        MessageResult(self.0)
    }
}

/// Runs `round` as a task on the System's arbiter and returns ns per ask.
fn time_round<F>(runner: &actix_rt::SystemRunner, asks: u64, round: F) -> f64
where
    F: Future<Output = Duration> + 'static,
{
    let elapsed = runner
        .block_on(async { actix_rt::spawn(round).await })
        .expect("round task");
    elapsed.as_nanos() as f64 / asks as f64
}

fn summary(name: &str, mut rounds: Vec<f64>) -> f64 {
    rounds.sort_by(f64::total_cmp);
    let median = rounds[rounds.len() / 2];
    println!(
        "{name:<18} ns per ask: min {:.0}  p25 {:.0}  median {median:.0}",
        rounds[0],
        rounds[rounds.len() / 4]
    );
    median
}

fn main() {
    // `cargo bench` passes `--bench`; numbers are ours.
    let numbers: Vec<u64> = std::env::args().filter_map(|arg| arg.parse().ok()).collect();
    let rounds = numbers.first().copied().unwrap_or(30).max(1);
    let asks = numbers.get(1).copied().unwrap_or(100_000).max(1);

    let runner = actix_rt::System::new();
    let actix_counter = runner.block_on(async { ActixCounter(0).start() });
    let runtime = runner.block_on(async { Runtime::actix_current().expect("inside actix") });
    let system = System::<()>::new(runtime);
    let counter = system.start("counter", Counter(0));

    let (mut actix_rounds, mut talus_rounds) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let addr = actix_counter.clone();
        actix_rounds.push(time_round(&runner, asks, async move {
            let start = Instant::now();
            for _ in 0..asks {
                black_box(addr.send(ActixGet).await.expect("running"));
            }
            start.elapsed()
        }));
        let addr = counter.clone();
        talus_rounds.push(time_round(&runner, asks, async move {
            let start = Instant::now();
            for _ in 0..asks {
                black_box(addr.ask(Get).await.expect("running"));
            }
            start.elapsed()
        }));
    }
    println!("{rounds} rounds of {asks} asks each, alternating");
    let actix = summary("actix 0.13", actix_rounds);
    let talus = summary("talus on actix-rt", talus_rounds);
    println!("talus / actix (medians): {:.3}", talus / actix);
    runner.block_on(system.shutdown()).expect("clean shutdown");
}
