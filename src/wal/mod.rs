//! The WAL writer actor and WAL replay.

pub mod replay;
pub mod writer;
