//! Typed, supervised actors on a runtime-agnostic executor.
//!
//! `talus-actors` knows nothing about storage: it is the layer talusdb's
//! subsystems are built on, and it stands on its own for anyone who wants
//! actors that run unchanged on smol, tokio, actix-rt or a deterministic
//! simulation.
//!
//! - [`runtime`]: the executor abstraction ([`Runtime`]: spawn, timers,
//!   clock, seeded RNG, blocking work) and its backends, one cargo feature
//!   each: `smol` (default), `tokio`, `actix`, `sim`.
//! - [`Actor`]: state driven by typed messages, with [`Ticker`]s and a
//!   `cleanup` that runs exactly once.
//! - [`Addr`]: a cloneable mailbox address; [`Addr::ask`] for request/reply.
//! - [`Context::spawn_then`]: run I/O outside the handler, get its result back
//!   as a message.
//! - [`System`]: starts actors and pools and turns the first fatal error into
//!   the *closed result* everybody sees ([`ActorError`]); ordered graceful
//!   shutdown.
//! - [`Recorder`] and [`replay`]: message traces that repeat byte for byte
//!   under `sim`, and feeding a recorded mailbox to a fresh actor.
//!
//! `docs/actors.md` in the repository walks through the lifecycle and the
//! rules that keep a run deterministic.

#![warn(missing_docs)]
#![warn(clippy::missing_errors_doc)]

mod actor;
mod addr;
mod context;
mod doorbell;
mod error;
mod mailbox;
mod record;
pub mod runtime;
mod system;

pub use actor::{Actor, Ticker};
pub use addr::{Addr, Reply};
pub use context::Context;
pub use error::{ActorError, TrySendError};
pub use record::{Recorder, ReplayError, TraceEntry, TraceParseError, parse_trace, replay};
pub use runtime::Runtime;
pub use system::{Capacity, Mailbox, System};
