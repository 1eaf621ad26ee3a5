//! Memtables to L0: the uploader pool builds L0 tables from frozen
//! memtables, the L0 manifest writer records them in the manifest in
//! sequence order. (`Db::flush` is something else: it makes the WAL
//! durable; moving a memtable to L0 is `Db::flush_memtable`.)

pub(crate) mod l0_writer;
pub(crate) mod uploader;
