//! Message throughput and request latency of talus-actors on smol, tokio and
//! actix-rt, beside actix 0.13 itself measured in the same run.
//!
//! - `one_way`: a batch of fire-and-forget messages to one actor, closed by a
//!   request so the batch is known to be handled (actix: `do_send` then
//!   `send().await`).
//! - `ask`: one request/reply round trip (actix: `send().await`).
//! - `pool4`: a batch of small jobs through a 4-worker pool.
//!
//! The measuring loop of every benchmark, talus or actix, runs as a task on
//! the runtime under test, the way an application's own tasks call actors.
//!
//! Run with `cargo bench -p talus-actors --bench actors`.

#![allow(clippy::disallowed_methods, reason = "benchmarks measure real time")]

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::{Actor as ActixActor, Handler, Message, MessageResult};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use talus_actors::{Actor, Capacity, Context, Reply, Runtime, System};

const BATCH: u64 = 1_000;

/// Where the benchmark thread and the actors run.
enum Harness {
    Smol(Runtime),
    Tokio(tokio::runtime::Runtime, Runtime),
    Actix(actix_rt::SystemRunner, Runtime),
}

impl Harness {
    fn all() -> Vec<(&'static str, Harness)> {
        let smol = Runtime::smol_with_threads(2).expect("smol threads");
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .expect("tokio runtime");
        let on_tokio = Runtime::tokio(tokio.handle().clone());
        let actix = actix_rt::System::new();
        let on_actix = actix.block_on(async { Runtime::actix_current().expect("inside actix") });
        // actix-rt first: its figures sit right after actix's own.
        vec![
            ("actix-rt", Harness::Actix(actix, on_actix)),
            ("tokio", Harness::Tokio(tokio, on_tokio)),
            ("smol", Harness::Smol(smol)),
        ]
    }

    fn runtime(&self) -> Runtime {
        match self {
            Harness::Smol(runtime) | Harness::Tokio(_, runtime) | Harness::Actix(_, runtime) => runtime.clone(),
        }
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        match self {
            Harness::Smol(_) => smol::block_on(future),
            Harness::Tokio(tokio, _) => tokio.block_on(future),
            Harness::Actix(runner, _) => runner.block_on(future),
        }
    }

    /// Runs `measure` as a task on the runtime under test, as an embedding
    /// application's own tasks would call the actors.
    fn measure<F>(&self, measure: F) -> Duration
    where
        F: Future<Output = Duration> + Send + 'static,
    {
        let task = self.runtime().spawn(measure);
        self.block_on(task).expect("benchmark task")
    }
}

#[derive(Debug)]
enum CounterMsg {
    Add(u64),
    Get(Reply<u64>),
}

struct Counter(u64);

impl Actor for Counter {
    type Msg = CounterMsg;
    type Error = ();

    async fn handle(&mut self, msg: CounterMsg, _ctx: &mut Context<Self>) -> Result<(), ()> {
        match msg {
            CounterMsg::Add(amount) => self.0 += amount,
            CounterMsg::Get(reply) => reply.send(self.0),
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Job {
    finish_at: u64,
}

/// A pool worker: a little CPU work per job; whoever completes the batch's
/// last job says so.
struct PoolWorker {
    done: Arc<AtomicU64>,
    finished: async_channel::Sender<()>,
}

impl Actor for PoolWorker {
    type Msg = Job;
    type Error = ();

    async fn handle(&mut self, job: Job, _ctx: &mut Context<Self>) -> Result<(), ()> {
        let mut state = job.finish_at;
        for _ in 0..200 {
            state = black_box(state.rotate_left(7) ^ 0x9E37_79B9_7F4A_7C15);
        }
        black_box(state);
        if self.done.fetch_add(1, Ordering::AcqRel) + 1 == job.finish_at {
            let _ = self.finished.try_send(());
        }
        Ok(())
    }
}

/// One talus counter and pool per harness.
struct Subject {
    name: &'static str,
    harness: Harness,
    system: System<()>,
    counter: talus_actors::Addr<CounterMsg, ()>,
    pool: talus_actors::Addr<Job, ()>,
    done: Arc<AtomicU64>,
    finished: async_channel::Receiver<()>,
}

impl Subject {
    fn start(name: &'static str, harness: Harness) -> Self {
        let system = System::<()>::new(harness.runtime());
        let counter = system.start("counter", Counter(0));
        let done = Arc::new(AtomicU64::new(0));
        let (finished_sender, finished) = async_channel::bounded(1);
        let (pool, mailbox) = system.mailbox("pool", Capacity::Unbounded);
        system.run_pool(
            mailbox,
            (0..4).map(|_| PoolWorker {
                done: done.clone(),
                finished: finished_sender.clone(),
            }),
        );
        Subject {
            name,
            harness,
            system,
            counter,
            pool,
            done,
            finished,
        }
    }
}

/// Each figure is measured for actix first and then for talus on every
/// runtime, one right after the other, so that drift in the machine's speed
/// (large on shared hosts) falls on both sides of a comparison alike.
fn compare(c: &mut Criterion) {
    let subjects: Vec<Subject> = Harness::all()
        .into_iter()
        .map(|(name, harness)| Subject::start(name, harness))
        .collect();
    // actix's actor shares the System (and thread) of talus's actix-rt
    // harness, as both would inside one actix-web application.
    let Some(actix_runner) = subjects.iter().find_map(|subject| match &subject.harness {
        Harness::Actix(runner, _) => Some(runner),
        _ => None,
    }) else {
        panic!("the actix-rt harness is missing");
    };
    let actix_counter = actix_runner.block_on(async { ActixCounter(0).start() });

    let mut group = c.benchmark_group("one_way");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function(BenchmarkId::new("actix", "actix-rt"), |b| {
        b.iter_custom(|iters| {
            let counter = actix_counter.clone();
            measure_on_actix(actix_runner, async move {
                let start = Instant::now();
                for _ in 0..iters {
                    for _ in 0..BATCH {
                        counter.do_send(Add(1));
                    }
                    black_box(counter.send(Get).await.expect("running"));
                }
                start.elapsed()
            })
        })
    });
    for subject in &subjects {
        group.bench_function(BenchmarkId::new("talus", subject.name), |b| {
            b.iter_custom(|iters| {
                let counter = subject.counter.clone();
                subject.harness.measure(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        for _ in 0..BATCH {
                            counter.send(CounterMsg::Add(1)).await.expect("running");
                        }
                        black_box(counter.ask(CounterMsg::Get).await.expect("running"));
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("ask");
    group.bench_function(BenchmarkId::new("actix", "actix-rt"), |b| {
        b.iter_custom(|iters| {
            let counter = actix_counter.clone();
            measure_on_actix(actix_runner, async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(counter.send(Get).await.expect("running"));
                }
                start.elapsed()
            })
        })
    });
    for subject in &subjects {
        group.bench_function(BenchmarkId::new("talus", subject.name), |b| {
            b.iter_custom(|iters| {
                let counter = subject.counter.clone();
                subject.harness.measure(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(counter.ask(CounterMsg::Get).await.expect("running"));
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("pool4");
    group.throughput(Throughput::Elements(BATCH));
    for subject in &subjects {
        group.bench_function(BenchmarkId::new("talus", subject.name), |b| {
            b.iter_custom(|iters| {
                let (pool, done, finished) = (subject.pool.clone(), subject.done.clone(), subject.finished.clone());
                subject.harness.measure(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let finish_at = done.load(Ordering::Acquire) + BATCH;
                        for _ in 0..BATCH {
                            pool.send(Job { finish_at }).await.expect("running");
                        }
                        finished.recv().await.expect("pool running");
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();

    for subject in subjects {
        subject
            .harness
            .block_on(subject.system.shutdown())
            .expect("clean shutdown");
    }
}

struct ActixCounter(u64);

impl ActixActor for ActixCounter {
    type Context = actix::Context<Self>;
}

struct Add(u64);

impl Message for Add {
    type Result = ();
}

struct Get;

impl Message for Get {
    type Result = u64;
}

impl Handler<Add> for ActixCounter {
    type Result = ();

    fn handle(&mut self, Add(amount): Add, _ctx: &mut Self::Context) {
        self.0 += amount;
    }
}

impl Handler<Get> for ActixCounter {
    type Result = MessageResult<Get>;

    fn handle(&mut self, _: Get, _ctx: &mut Self::Context) -> MessageResult<Get> {
        MessageResult(self.0)
    }
}

/// Runs `measure` as a task on the actix System's arbiter, exactly as the
/// talus benchmarks run theirs (see `Harness::measure`).
fn measure_on_actix<F>(runner: &actix_rt::SystemRunner, measure: F) -> Duration
where
    F: Future<Output = Duration> + 'static,
{
    runner
        .block_on(async { actix_rt::spawn(measure).await })
        .expect("benchmark task")
}

fn configured() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = configured();
    targets = compare
}
criterion_main!(benches);
