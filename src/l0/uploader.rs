//! The uploader pool: N workers sharing one mailbox, each building a frozen
//! memtable into an L0 table and uploading it (the table store retries
//! transient errors with bounded backoff; what still fails is fatal).

use std::sync::Arc;

use talus_actors::{Actor, Addr, Context};

use super::l0_writer::L0Msg;
use crate::error::Error;
use crate::format::sst::TableKind;
use crate::manifest::TableHandle;
use crate::mem::Memtable;
use crate::store::TableStore;

#[derive(Debug)]
pub enum UploadMsg {
    /// Build and upload this frozen memtable; its rows are all in WAL
    /// tables up to `last_wal_id`. It stands for sequence numbers
    /// `seqs.0 ..= seqs.1`, which the WAL writer assigns back to back from
    /// one memtable to the next: a sequence number that left no row (a
    /// replay that skipped a fenced writer's table) still belongs to one
    /// memtable, so that the L0 writer, which adds them in sequence order,
    /// never waits for a range nobody uploads.
    Upload {
        memtable: Arc<Memtable>,
        seqs: (u64, u64),
        last_wal_id: u64,
    },
}

#[derive(Debug)]
pub struct Uploader {
    tables: TableStore,
    l0_writer: Addr<L0Msg, Error>,
}

impl Uploader {
    pub fn new(tables: TableStore, l0_writer: Addr<L0Msg, Error>) -> Self {
        Uploader { tables, l0_writer }
    }
}

/// Builds `memtable` into an L0 table and uploads it (also used by a
/// restore, for the WAL rows a checkpoint holds).
pub(crate) async fn write_l0_table(tables: &TableStore, memtable: &Memtable) -> Result<TableHandle, Error> {
    let mut builder = tables.builder(TableKind::Sorted);
    for row in memtable.iter() {
        builder.add(&row);
    }
    for tombstone in memtable.range_tombstones() {
        builder.add_range_tombstone(tombstone);
    }
    let written = tables.write_sorted(builder).await?;
    TableHandle::from_written(&written).ok_or_else(|| Error::internal("an L0 table got a WAL id"))
}

impl Actor for Uploader {
    type Msg = UploadMsg;
    type Error = Error;

    async fn handle(&mut self, msg: UploadMsg, _ctx: &mut Context<Self>) -> Result<(), Error> {
        let UploadMsg::Upload {
            memtable,
            seqs: (first_seq, last_seq),
            last_wal_id,
        } = msg;
        let table = write_l0_table(&self.tables, &memtable).await?;
        tracing::debug!(first_seq, last_seq, table = %table.id, "uploaded L0 table");
        self.l0_writer
            .send(L0Msg::Uploaded {
                first_seq,
                last_seq,
                last_wal_id,
                table,
            })
            .await
            .map_err(Error::from)
    }
}
