//! The compactor. So far: the compaction job (merging sources into a
//! sorted run with snapshot-aware version retention and tombstone rules).
//! The compactor actor, its scheduler and the garbage collector follow.

pub mod job;

pub use job::{JobInput, JobOutput};
