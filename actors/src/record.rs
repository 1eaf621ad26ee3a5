//! Recording delivered messages into a trace, and replaying one actor's
//! recorded mailbox into a fresh instance.
//!
//! Owns: [`Recorder`] (the trace, numbered by a global delivery counter),
//! [`TraceEntry`] and its one-line text form, and [`replay`].
//!
//! Invariant: under the `sim` executor the trace is a pure function of the
//! seed — same seed, same bytes — because deliveries happen one at a time in
//! FIFO order and times are virtual.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::actor::Actor;
use crate::addr::Addr;
use crate::context::{Completions, Context};
use crate::runtime::{Runtime, TaskMonitor, catch_panic};
use crate::system::status::Status;

/// One delivered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    /// Position in the system-wide delivery order, from 0.
    pub delivery: u64,
    /// The runtime's monotonic time at delivery (virtual under `sim`).
    pub time: Duration,
    /// The receiving actor (a pool worker's name is `pool/index`).
    pub actor: String,
    /// The message as [`Actor::encode`] rendered it.
    pub message: String,
}

impl TraceEntry {
    /// The entry as one line: `delivery TAB time_us TAB actor TAB message`,
    /// with backslash, tab, newline and carriage return in the message escaped.
    pub fn line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}",
            self.delivery,
            self.time.as_micros(),
            escape(&self.actor),
            escape(&self.message)
        )
    }

    /// Parses a line written by [`TraceEntry::line`].
    ///
    /// # Errors
    ///
    /// [`TraceParseError`] naming the line and what is wrong with it.
    pub fn parse(line: &str) -> Result<TraceEntry, TraceParseError> {
        let bad = |reason: &'static str| TraceParseError {
            line: line.to_owned(),
            reason,
        };
        let mut fields = line.splitn(4, '\t');
        let delivery = fields.next().ok_or(bad("missing delivery number"))?;
        let time_us = fields.next().ok_or(bad("missing time"))?;
        let actor = fields.next().ok_or(bad("missing actor"))?;
        let message = fields.next().ok_or(bad("missing message"))?;
        Ok(TraceEntry {
            delivery: delivery.parse().map_err(|_| bad("delivery number is not an integer"))?,
            time: Duration::from_micros(time_us.parse().map_err(|_| bad("time is not an integer"))?),
            actor: unescape(actor).ok_or(bad("bad escape in actor"))?,
            message: unescape(message).ok_or(bad("bad escape in message"))?,
        })
    }
}

/// A line that is not a trace entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceParseError {
    /// The line as read.
    pub line: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for TraceParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad trace line ({}): {:?}", self.reason, self.line)
    }
}

impl std::error::Error for TraceParseError {}

/// Parses a whole trace (one entry per line; blank lines are skipped).
///
/// # Errors
///
/// The first line that is not an entry, as [`TraceParseError`].
pub fn parse_trace(text: &str) -> Result<Vec<TraceEntry>, TraceParseError> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(TraceEntry::parse)
        .collect()
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '\\' => escaped.push_str("\\\\"),
            '\t' => escaped.push_str("\\t"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn unescape(text: &str) -> Option<String> {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            plain.push(ch);
            continue;
        }
        plain.push(match chars.next()? {
            '\\' => '\\',
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            _ => return None,
        });
    }
    Some(plain)
}

/// Collects a system's deliveries. Cheap to clone; clones share the trace.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    inner: Arc<Mutex<RecorderState>>,
}

#[derive(Debug, Default)]
struct RecorderState {
    entries: VecDeque<TraceEntry>,
    next_delivery: u64,
    limit: Option<usize>,
}

impl Recorder {
    /// A recorder that keeps every entry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A recorder that keeps only the newest `limit` entries (delivery
    /// numbers still count every delivery).
    pub fn keeping_last(limit: usize) -> Self {
        let recorder = Self::default();
        recorder.state().limit = Some(limit);
        recorder
    }

    fn state(&self) -> MutexGuard<'_, RecorderState> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn record(&self, actor: &str, time: Duration, message: String) {
        let mut state = self.state();
        let delivery = state.next_delivery;
        state.next_delivery += 1;
        state.entries.push_back(TraceEntry {
            delivery,
            time,
            actor: actor.to_owned(),
            message,
        });
        if let Some(limit) = state.limit {
            while state.entries.len() > limit {
                state.entries.pop_front();
            }
        }
    }

    /// Every kept entry in delivery order.
    pub fn entries(&self) -> Vec<TraceEntry> {
        self.state().entries.iter().cloned().collect()
    }

    /// Kept entries delivered to `actor`.
    pub fn entries_for(&self, actor: &str) -> Vec<TraceEntry> {
        self.state()
            .entries
            .iter()
            .filter(|entry| entry.actor == actor)
            .cloned()
            .collect()
    }

    /// Deliveries recorded so far, kept or not.
    pub fn deliveries(&self) -> u64 {
        self.state().next_delivery
    }

    /// The kept entries as text, one [`TraceEntry::line`] per line.
    pub fn text(&self) -> String {
        let state = self.state();
        let mut text = String::new();
        for entry in &state.entries {
            text.push_str(&entry.line());
            text.push('\n');
        }
        text
    }
}

/// Why a replay stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayError<E> {
    /// The decoder could not rebuild the message of this delivery.
    Undecodable {
        /// The delivery's number in the trace.
        delivery: u64,
        /// The recorded message text.
        message: String,
    },
    /// The handler returned an error for this delivery.
    Handler {
        /// The delivery's number in the trace.
        delivery: u64,
        /// What the handler returned.
        error: E,
    },
    /// The handler panicked on this delivery.
    Panicked {
        /// The delivery's number in the trace.
        delivery: u64,
        /// The panic's message.
        message: String,
    },
}

impl<E: fmt::Display> fmt::Display for ReplayError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::Undecodable { delivery, message } => {
                write!(f, "delivery {delivery}: cannot decode message {message:?}")
            }
            ReplayError::Handler { delivery, error } => write!(f, "delivery {delivery}: handler failed: {error}"),
            ReplayError::Panicked { delivery, message } => {
                write!(f, "delivery {delivery}: handler panicked: {message}")
            }
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ReplayError<E> {}

/// Feeds the entries addressed to `actor_name` to `actor`, in delivery
/// order, and returns how many were handled.
///
/// The actor runs with a context in replay mode: [`Context::spawn_then`]
/// starts nothing (the job's result is a later entry of the trace), tickers
/// are not started (ticks are entries too), and messages it sends to itself
/// go nowhere (they were recorded as well). Messages are rebuilt by `decode`;
/// a waiter in them should be a [`crate::Reply::detached`].
///
/// # Errors
///
/// [`ReplayError`]: a delivery `decode` could not rebuild, or whose
/// handler returned an error or panicked, with its number.
pub async fn replay<A, I, D>(
    runtime: Runtime,
    actor: &mut A,
    actor_name: &str,
    entries: I,
    mut decode: D,
) -> Result<usize, ReplayError<A::Error>>
where
    A: Actor,
    I: IntoIterator<Item = TraceEntry>,
    D: FnMut(&str) -> Option<A::Msg>,
{
    let name: Arc<str> = Arc::from(actor_name);
    let (sender, _receiver) = crate::mailbox::channel(Some(1));
    let addr = Addr::new(name.clone(), sender, Arc::new(Status::new()));
    let completions = Arc::new(Completions::new(Arc::default()));
    let mut ctx = Context::new(name, addr, runtime, completions, TaskMonitor::new(), true);
    let mut handled = 0;
    for entry in entries.into_iter().filter(|entry| entry.actor == actor_name) {
        let delivery = entry.delivery;
        let msg = decode(&entry.message).ok_or_else(|| ReplayError::Undecodable {
            delivery,
            message: entry.message.clone(),
        })?;
        match catch_panic(actor.handle(msg, &mut ctx)).await {
            Ok(Ok(())) => handled += 1,
            Ok(Err(error)) => return Err(ReplayError::Handler { delivery, error }),
            Err(message) => return Err(ReplayError::Panicked { delivery, message }),
        }
    }
    Ok(handled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_with_awkward_characters() {
        let entry = TraceEntry {
            delivery: 7,
            time: Duration::from_micros(1_234_567),
            actor: "pool/1".to_owned(),
            message: "Put { key: \"a\\tb\", value: \"line\nbreak\\\" }\r".to_owned(),
        };
        let line = entry.line();
        assert!(!line.contains('\n'));
        assert_eq!(TraceEntry::parse(&line), Ok(entry.clone()));
        assert_eq!(
            parse_trace(&format!("{line}\n\n{line}\n")),
            Ok(vec![entry.clone(), entry])
        );
    }

    #[test]
    fn malformed_lines_are_reported_not_panicked_on() {
        for line in ["", "x\t1\ta\tm", "1\ty\ta\tm", "1\t2\ta", "1\t2\ta\tbad\\q"] {
            assert!(TraceEntry::parse(line).is_err(), "{line:?} should not parse");
        }
    }

    #[test]
    fn a_bounded_recorder_keeps_the_newest_entries() {
        let recorder = Recorder::keeping_last(2);
        for index in 0..5 {
            recorder.record("a", Duration::ZERO, index.to_string());
        }
        let kept: Vec<u64> = recorder.entries().iter().map(|entry| entry.delivery).collect();
        assert_eq!(kept, vec![3, 4]);
        assert_eq!(recorder.deliveries(), 5);
    }
}
