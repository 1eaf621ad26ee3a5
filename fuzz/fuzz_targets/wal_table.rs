//! Any bytes as a WAL table object, read the way recovery reads it
//! (`TableStore::read_wal`: the footer must say WAL, rows come back in
//! sequence order) and replayed into a memtable: errors or rows, never a
//! panic.
#![no_main]

use std::sync::Arc;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use object_store::path::Path;
use talusdb::actors::runtime::Sim;
use talusdb::internals::Memtable;
use talusdb::internals::TableStore;
use talusdb::store::{ObjectStoreAdapter, PutMode, Store, TableId, TableStoreOptions};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    let sim = Sim::new(0);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store = Arc::new(ObjectStoreAdapter::in_memory());
        let tables = TableStore::new(store.clone(), Path::from("fuzz"), runtime, TableStoreOptions::default());
        if store
            .put(&tables.path(TableId::Wal(1)), bytes, PutMode::Overwrite)
            .await
            .is_err()
        {
            return;
        }
        if let Ok(rows) = tables.read_wal(1).await {
            let memtable = Memtable::new();
            for row in &rows {
                memtable.insert(row);
            }
            let _ = memtable.iter().count();
        }
    });
});
