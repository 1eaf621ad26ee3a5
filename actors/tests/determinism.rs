//! Under `sim`, a seed fixes the whole run: the same seed gives the same
//! message trace byte for byte, another seed a different one, and one actor's
//! recorded mailbox replayed into a fresh instance rebuilds its state.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use talus_actors::runtime::Sim;
use talus_actors::{Actor, Addr, Context, Recorder, Reply, System, Ticker, parse_trace, replay};

type E = String;

/// Emits a random value on every (jittered) tick.
struct Source {
    worker: Addr<WorkerMsg, E>,
}

#[derive(Debug)]
enum SourceMsg {
    Emit,
}

impl Actor for Source {
    type Msg = SourceMsg;
    type Error = E;

    async fn handle(&mut self, SourceMsg::Emit: SourceMsg, ctx: &mut Context<Self>) -> Result<(), E> {
        let value = ctx.runtime().random_below(1_000);
        self.worker
            .send(WorkerMsg::Work(value))
            .await
            .map_err(|error| error.to_string())
    }

    fn tickers(&mut self) -> Vec<Ticker<SourceMsg>> {
        vec![Ticker::every(Duration::from_millis(7), || SourceMsg::Emit).with_jitter(Duration::from_millis(3))]
    }
}

/// "Processes" each value with I/O of random length, outside its handler.
struct Worker {
    sink: Addr<SinkMsg, E>,
}

#[derive(Debug)]
enum WorkerMsg {
    Work(u64),
    Done(u64),
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type Error = E;

    async fn handle(&mut self, msg: WorkerMsg, ctx: &mut Context<Self>) -> Result<(), E> {
        match msg {
            WorkerMsg::Work(value) => {
                let delay = ctx.runtime().random_duration(Duration::from_millis(15));
                let io = ctx.runtime().sleep(delay);
                ctx.spawn_then(io, move |()| WorkerMsg::Done(value * 2));
            }
            WorkerMsg::Done(value) => {
                self.sink
                    .send(SinkMsg::Value(value))
                    .await
                    .map_err(|error| error.to_string())?;
            }
        }
        Ok(())
    }
}

/// Folds everything it receives into a state that depends on order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct SinkState {
    count: u64,
    sum: u64,
    digest: u64,
    reports: u64,
}

struct Sink {
    state: SinkState,
    published: Arc<Mutex<Option<SinkState>>>,
}

#[derive(Debug)]
enum SinkMsg {
    Value(u64),
    Report,
    Snapshot(Reply<SinkState>),
}

impl Actor for Sink {
    type Msg = SinkMsg;
    type Error = E;

    async fn handle(&mut self, msg: SinkMsg, _ctx: &mut Context<Self>) -> Result<(), E> {
        match msg {
            SinkMsg::Value(value) => {
                self.state.count += 1;
                self.state.sum += value;
                self.state.digest = self.state.digest.rotate_left(5) ^ value;
            }
            SinkMsg::Report => self.state.reports += 1,
            SinkMsg::Snapshot(reply) => reply.send(self.state.clone()),
        }
        Ok(())
    }

    fn tickers(&mut self) -> Vec<Ticker<SinkMsg>> {
        vec![Ticker::every(Duration::from_millis(20), || SinkMsg::Report)]
    }

    fn cleanup(&mut self, _leftover: Vec<SinkMsg>, _result: &Result<(), talus_actors::ActorError<E>>) {
        *self.published.lock().unwrap() = Some(self.state.clone());
    }

    fn encode(msg: &SinkMsg) -> String {
        match msg {
            SinkMsg::Value(value) => format!("value {value}"),
            SinkMsg::Report => "report".to_owned(),
            SinkMsg::Snapshot(_) => "snapshot".to_owned(),
        }
    }
}

fn decode_sink(text: &str) -> Option<SinkMsg> {
    match text.split_once(' ') {
        Some(("value", value)) => value.parse().ok().map(SinkMsg::Value),
        _ if text == "report" => Some(SinkMsg::Report),
        _ if text == "snapshot" => Some(SinkMsg::Snapshot(Reply::detached())),
        _ => None,
    }
}

struct Run {
    trace: String,
    sink: SinkState,
}

fn run_scenario(seed: u64) -> Run {
    let sim = Sim::new(seed);
    let recorder = Recorder::new();
    let system = System::<E>::new(sim.runtime()).recording(recorder.clone());
    let published = Arc::new(Mutex::new(None));
    let sink = system.start(
        "sink",
        Sink {
            state: SinkState::default(),
            published: published.clone(),
        },
    );
    let worker = system.start("worker", Worker { sink: sink.clone() });
    let _source = system.start("source", Source { worker });
    let runtime = sim.runtime();
    let mid_run = sim.block_on(async {
        runtime.sleep(Duration::from_millis(250)).await;
        let mid_run = sink.ask(SinkMsg::Snapshot).await.unwrap();
        runtime.sleep(Duration::from_millis(250)).await;
        system.shutdown_in_order(&["source", "worker", "sink"]).await.unwrap();
        mid_run
    });
    assert!(mid_run.count > 10, "the scenario should carry traffic: {mid_run:?}");
    let sink = published.lock().unwrap().clone().expect("sink cleanup ran");
    Run {
        trace: recorder.text(),
        sink,
    }
}

#[test]
fn the_same_seed_gives_the_same_trace_byte_for_byte() {
    let first = run_scenario(42);
    let second = run_scenario(42);
    assert!(first.trace.lines().count() > 100, "trace too small to mean anything");
    assert_eq!(first.trace, second.trace);
    assert_eq!(first.sink, second.sink);
    // Three actors, ticks, jobs and asks all appear.
    for needle in [
        "\tsource\tEmit",
        "\tworker\tWork(",
        "\tworker\tDone(",
        "\tsink\treport",
        "\tsink\tsnapshot",
    ] {
        assert!(first.trace.contains(needle), "trace lacks {needle:?}");
    }
}

#[test]
fn another_seed_gives_another_trace() {
    let first = run_scenario(42);
    let other = run_scenario(43);
    assert_ne!(first.trace, other.trace);
    assert_ne!(first.sink, other.sink);
}

#[test]
fn replaying_a_recorded_mailbox_rebuilds_the_same_state() {
    let original = run_scenario(7);
    let entries = parse_trace(&original.trace).unwrap();
    let sink_deliveries = entries.iter().filter(|entry| entry.actor == "sink").count();

    let sim = Sim::new(0);
    let mut fresh = Sink {
        state: SinkState::default(),
        published: Arc::new(Mutex::new(None)),
    };
    let handled = sim
        .block_on(replay(sim.runtime(), &mut fresh, "sink", entries, decode_sink))
        .unwrap();
    assert_eq!(handled, sink_deliveries);
    assert_eq!(fresh.state, original.sink);
}

#[test]
fn replay_reports_a_message_it_cannot_decode() {
    let original = run_scenario(7);
    let mut entries = parse_trace(&original.trace).unwrap();
    let position = entries.iter().position(|entry| entry.actor == "sink").unwrap();
    entries[position].message = "garbled".to_owned();
    let delivery = entries[position].delivery;
    let sim = Sim::new(0);
    let mut fresh = Sink {
        state: SinkState::default(),
        published: Arc::new(Mutex::new(None)),
    };
    let outcome = sim.block_on(replay(sim.runtime(), &mut fresh, "sink", entries, decode_sink));
    assert_eq!(
        outcome,
        Err(talus_actors::ReplayError::Undecodable {
            delivery,
            message: "garbled".to_owned()
        })
    );
}
