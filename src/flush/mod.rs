//! Memtable flushes: the uploader pool builds L0 tables, the L0 manifest
//! writer records them in the manifest in sequence order.

pub mod l0_writer;
pub mod uploader;
