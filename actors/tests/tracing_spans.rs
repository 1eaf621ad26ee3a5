//! Each actor runs inside a span that names it; deliveries are trace events,
//! fatal errors are error events.

mod support;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use talus_actors::System;
use talus_actors::runtime::Sim;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use support::{E, Msg, Probe};

/// Records every event with its level, message and the actor span it
/// happened in. The simulation runs on one thread, so one span stack will do.
#[derive(Clone, Default)]
struct Capture {
    state: Arc<Mutex<CaptureState>>,
}

#[derive(Default)]
struct CaptureState {
    next_id: u64,
    span_actor: BTreeMap<u64, String>,
    stack: Vec<u64>,
    events: Vec<Captured>,
}

#[derive(Debug, PartialEq)]
struct Captured {
    level: Level,
    actor: Option<String>,
    message: String,
}

#[derive(Default)]
struct Fields {
    name: Option<String>,
    message: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "name" => self.name = Some(value.to_owned()),
            "message" => self.message = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields::default();
        span.record(&mut fields);
        let mut state = self.state.lock().unwrap();
        state.next_id += 1;
        let id = state.next_id;
        if span.metadata().name() == "actor" {
            state.span_actor.insert(id, fields.name.unwrap_or_default());
        }
        Id::from_u64(id)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut state = self.state.lock().unwrap();
        let actor = state.stack.last().and_then(|id| state.span_actor.get(id)).cloned();
        state.events.push(Captured {
            level: *event.metadata().level(),
            actor,
            message: fields.message.unwrap_or_default(),
        });
    }

    fn enter(&self, span: &Id) {
        self.state.lock().unwrap().stack.push(span.into_u64());
    }

    fn exit(&self, _: &Id) {
        self.state.lock().unwrap().stack.pop();
    }
}

#[test]
fn deliveries_and_failures_are_traced_inside_the_actor_span() {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        let sim = Sim::new(3);
        let (events, _receiver) = async_channel::unbounded();
        let system = System::<E>::new(sim.runtime());
        let greeter = system.start("greeter", Probe::new(&events));
        let other = system.start("other", Probe::new(&events));
        sim.block_on(async {
            greeter.send(Msg::Add(1)).await.unwrap();
            other.send(Msg::Add(2)).await.unwrap();
            // Once it has answered, `other` has handled both messages; the
            // stop signal would otherwise overtake its queued mail.
            assert_eq!(other.ask(Msg::Get).await, Ok(2));
            greeter.send(Msg::Fail("no more greetings".into())).await.unwrap();
            let _ = system.closed().await;
        });
    });
    let state = capture.state.lock().unwrap();
    let handled = |actor: &str| {
        state
            .events
            .iter()
            .filter(|event| {
                event.level == Level::TRACE && event.message == "handle" && event.actor.as_deref() == Some(actor)
            })
            .count()
    };
    assert_eq!(handled("greeter"), 2, "{:?}", state.events);
    assert_eq!(handled("other"), 2, "{:?}", state.events);
    let failures: Vec<&Captured> = state
        .events
        .iter()
        .filter(|event| event.level == Level::ERROR)
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].actor.as_deref(), Some("greeter"));
    assert_eq!(failures[0].message, "actor failed");
}
