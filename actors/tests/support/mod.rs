//! Shared test support: run one scenario on each executor, and a probe
//! actor whose messages exercise every part of the runtime.

#![allow(dead_code, reason = "each test file uses a different part of the support")]

use std::future::Future;
use std::time::Duration;

use futures::FutureExt;
use talus_actors::runtime::Sim;
use talus_actors::{Actor, ActorError, Addr, Context, Reply, Runtime, Ticker};

pub type E = String;

/// Runs `scenario` with actors on two smol executor threads.
pub fn on_smol<F: Future<Output = ()>>(scenario: impl FnOnce(Runtime) -> F) {
    let runtime = Runtime::smol_with_threads(2).expect("start smol threads");
    smol::block_on(scenario(runtime));
}

/// Runs `scenario` on a two-worker multi-threaded tokio runtime.
pub fn on_tokio<F: Future<Output = ()>>(scenario: impl FnOnce(Runtime) -> F) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("build tokio runtime");
    let runtime = Runtime::tokio(tokio.handle().clone());
    tokio.block_on(scenario(runtime));
}

/// Runs `scenario` inside an actix `System`, actors on its arbiter.
pub fn on_actix<F: Future<Output = ()>>(scenario: impl FnOnce(Runtime) -> F) {
    actix_rt::System::new().block_on(async {
        let runtime = Runtime::actix_current().expect("inside an actix System");
        scenario(runtime).await;
    });
}

/// Runs `scenario` under the deterministic simulation.
pub fn on_sim<F: Future<Output = ()>>(scenario: impl FnOnce(Runtime) -> F) {
    let sim = Sim::new(0x5EED);
    sim.block_on(scenario(sim.runtime()));
}

/// Generates one `#[test]` per scenario and executor.
#[macro_export]
macro_rules! on_every_executor {
    ($($scenario:ident),* $(,)?) => {
        mod smol_executor { $( #[test] fn $scenario() { $crate::support::on_smol(super::$scenario) } )* }
        mod tokio_executor { $( #[test] fn $scenario() { $crate::support::on_tokio(super::$scenario) } )* }
        mod actix_executor { $( #[test] fn $scenario() { $crate::support::on_actix(super::$scenario) } )* }
        mod sim_executor { $( #[test] fn $scenario() { $crate::support::on_sim(super::$scenario) } )* }
    };
}

/// Bounds a wait so a broken runtime fails the test instead of hanging it.
/// Under `sim` the limit is virtual time.
pub async fn within<T>(runtime: &Runtime, what: &str, future: impl Future<Output = T>) -> T {
    futures::select_biased! {
        output = future.fuse() => output,
        _ = runtime.sleep(Duration::from_secs(30)).fuse() => panic!("timed out waiting for {what}"),
    }
}

/// Parks `probe`'s handler inside [`Msg::Hold`] and returns what releases
/// it: closing (or dropping) the returned sender.
pub async fn hold(runtime: &Runtime, probe: &Addr<Msg, E>) -> async_channel::Sender<()> {
    let (entered, entered_receiver) = async_channel::unbounded();
    let (release, release_receiver) = async_channel::bounded::<()>(1);
    probe
        .send(Msg::Hold {
            entered,
            release: release_receiver,
        })
        .await
        .unwrap();
    within(runtime, "the handler to hold", entered_receiver.recv())
        .await
        .unwrap();
    release
}

/// What a probe reports to its test.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Tick {
        name: &'static str,
        at: Duration,
    },
    Note {
        actor: String,
        note: String,
    },
    JobDone {
        actor: String,
        value: u64,
    },
    Cleanup {
        actor: String,
        leftover: usize,
        result: Result<(), ActorError<E>>,
    },
}

#[derive(Debug)]
pub enum Msg {
    Add(u64),
    Get(Reply<u64>),
    /// Answered with the closed result if still queued when the actor stops.
    GetOrError(Reply<Result<u64, ActorError<E>>>),
    Fail(String),
    Panic(String),
    /// The handler reports its worker name, then waits until `release` closes.
    Hold {
        entered: async_channel::Sender<String>,
        release: async_channel::Receiver<()>,
    },
    /// Starts a job that finishes with the value sent through `gate`.
    StartGatedJob {
        gate: async_channel::Receiver<u64>,
    },
    StartSleepJob(Duration, u64),
    StartEndlessJob,
    StartPanickingJob,
    JobDone(u64),
    InFlight(Reply<usize>),
    Tick(&'static str),
    /// Logged, then forwarded to the next actor if there is one.
    Note(String),
}

pub struct Probe {
    pub total: u64,
    pub events: async_channel::Sender<Event>,
    pub next: Option<Addr<Msg, E>>,
    pub tickers: Vec<(&'static str, Duration, Duration)>,
    /// How long each tick's handler takes.
    pub tick_cost: Duration,
}

impl Probe {
    pub fn new(events: &async_channel::Sender<Event>) -> Self {
        Probe {
            total: 0,
            events: events.clone(),
            next: None,
            tickers: Vec::new(),
            tick_cost: Duration::ZERO,
        }
    }

    pub fn forwarding_to(mut self, next: Addr<Msg, E>) -> Self {
        self.next = Some(next);
        self
    }

    pub fn ticking(mut self, name: &'static str, period: Duration, jitter: Duration) -> Self {
        self.tickers.push((name, period, jitter));
        self
    }

    /// Makes every tick's handler take `cost` (a sleep on the runtime).
    pub fn with_tick_cost(mut self, cost: Duration) -> Self {
        self.tick_cost = cost;
        self
    }

    fn report(&self, event: Event) {
        let _ = self.events.try_send(event);
    }
}

impl Actor for Probe {
    type Msg = Msg;
    type Error = E;

    async fn handle(&mut self, msg: Msg, ctx: &mut Context<Self>) -> Result<(), E> {
        match msg {
            Msg::Add(amount) => self.total += amount,
            Msg::Get(reply) => reply.send(self.total),
            Msg::GetOrError(reply) => reply.send(Ok(self.total)),
            Msg::Fail(reason) => return Err(reason),
            Msg::Panic(reason) => panic!("{reason}"),
            Msg::Hold { entered, release } => {
                let _ = entered.send(ctx.name().to_owned()).await;
                let _ = release.recv().await;
            }
            Msg::StartGatedJob { gate } => {
                ctx.spawn_then(async move { gate.recv().await.unwrap_or(0) }, Msg::JobDone);
            }
            Msg::StartSleepJob(delay, value) => {
                let sleep = ctx.runtime().sleep(delay);
                ctx.spawn_then(sleep, move |()| Msg::JobDone(value));
            }
            Msg::StartEndlessJob => ctx.spawn_then(futures::future::pending::<u64>(), Msg::JobDone),
            Msg::StartPanickingJob => {
                ctx.spawn_then(async { panic!("job exploded") }, |()| Msg::JobDone(0));
            }
            Msg::JobDone(value) => {
                self.report(Event::JobDone {
                    actor: ctx.name().to_owned(),
                    value,
                });
                if let Some(next) = &self.next {
                    let _ = next.send(Msg::Note(format!("job {value}"))).await;
                }
            }
            Msg::InFlight(reply) => reply.send(ctx.in_flight()),
            Msg::Tick(name) => {
                self.report(Event::Tick { name, at: ctx.now() });
                if !self.tick_cost.is_zero() {
                    ctx.runtime().sleep(self.tick_cost).await;
                }
            }
            Msg::Note(note) => {
                self.report(Event::Note {
                    actor: ctx.name().to_owned(),
                    note: note.clone(),
                });
                if let Some(next) = &self.next {
                    let _ = next.send(Msg::Note(note)).await;
                }
            }
        }
        Ok(())
    }

    fn tickers(&mut self) -> Vec<Ticker<Msg>> {
        self.tickers
            .iter()
            .map(|&(name, period, jitter)| Ticker::every(period, move || Msg::Tick(name)).with_jitter(jitter))
            .collect()
    }

    fn cleanup(&mut self, leftover: Vec<Msg>, result: &Result<(), ActorError<E>>) {
        let count = leftover.len();
        let error = result.clone().err().unwrap_or(ActorError::Closed);
        for msg in leftover {
            if let Msg::GetOrError(reply) = msg {
                reply.send(Err(error.clone()));
            }
            // Every other waiter is dropped, which its asker sees as the
            // closed result.
        }
        // The actor's name is not reachable here; tests tell probes apart by
        // their event channels.
        self.report(Event::Cleanup {
            actor: String::new(),
            leftover: count,
            result: result.clone(),
        });
    }
}
