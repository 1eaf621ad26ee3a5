//! State the actors share, kept below them so that no actor module imports
//! the engine that wires it: the counters behind [`crate::DbStats`] and the
//! registry of live snapshots.

pub(crate) mod counters;
pub(crate) mod snapshots;
