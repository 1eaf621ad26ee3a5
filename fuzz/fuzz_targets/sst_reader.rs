//! Any bytes as a table object, read through the whole-table reader and the
//! table store's reader (open, point lookups, a full scan, the range
//! tombstones of a version 5 table fragmented and looked up): errors or
//! rows, never a panic.
#![no_main]

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use object_store::path::Path;
use talusdb::actors::runtime::Sim;
use talusdb::internals::format::sst::SstBytes;
use talusdb::internals::{TableScanOptions, TableStore};
use talusdb::store::{ObjectStoreAdapter, PutMode, Store, TableId, TableStoreOptions, Ulid};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(table) = SstBytes::open(bytes.clone()) {
        let _ = table.get(b"key");
        for row in table.scan_from(b"") {
            if row.is_err() {
                break;
            }
        }
        for row in table.wal_rows_from(0) {
            if row.is_err() {
                break;
            }
        }
    }

    let sim = Sim::new(0);
    let runtime = sim.runtime();
    sim.block_on(async move {
        let store = Arc::new(ObjectStoreAdapter::in_memory());
        let options = TableStoreOptions {
            open_read_bytes: 128,
            ..TableStoreOptions::default()
        };
        let tables = TableStore::new(store.clone(), Path::from("fuzz"), runtime, options);
        let id = TableId::Compacted(Ulid(1));
        if store.put(&tables.path(id), bytes, PutMode::Overwrite).await.is_err() {
            return;
        }
        let Ok(reader) = tables.open(id, None).await else {
            return;
        };
        let _ = reader.get(b"key", u64::MAX).await;
        let deletes = reader.range_deletes();
        for tombstone in &reader.meta().range_tombstones {
            let _ = deletes.cover(&tombstone.start, tombstone.seq);
            let _ = deletes.covering(b"key");
        }
        let options = TableScanOptions {
            read_ahead_blocks: 8,
            fill_cache: false,
        };
        let mut scan = reader.scan((Bound::Unbounded, Bound::Unbounded), options);
        while let Ok(Some(_)) = scan.next().await {}
    });
});
