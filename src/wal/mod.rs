//! The WAL writer actor and WAL replay.

pub(crate) mod conflicts;
pub(crate) mod replay;
pub(crate) mod writer;
