//! The iterator every scan returns: a stream of live key/value pairs that
//! can be moved to another key without starting a new scan.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use futures::future::BoxFuture;

use crate::error::Error;
use crate::format::RowValue;
use crate::read::KeyValue;
use crate::read::merge::Merge;
use crate::read::operator::{Operator, merge_over};

/// A scan of a [`Db`](crate::Db), [`Snapshot`](crate::Snapshot),
/// [`DbReader`](crate::DbReader) or [`Transaction`](crate::Transaction):
/// a [`Stream`] of live keys with their values, in the scan's order, that
/// can [`seek`](DbIterator::seek).
///
/// It reads at one sequence number, fixed when the scan was created, so
/// seeking back and forth gives the same answers every time.
///
/// ```
/// # smol::block_on(async {
/// # use std::sync::Arc;
/// # use talusdb::store::{ObjectStoreAdapter, Store};
/// use futures::TryStreamExt;
/// # let store: Arc<dyn Store> = Arc::new(ObjectStoreAdapter::in_memory());
/// let db = talusdb::Db::open("db", store).await?;
/// for key in ["a", "b", "c", "d"] {
///     db.put(key, key).await?;
/// }
/// let mut rows = db.scan::<&str>(..);
/// assert_eq!(rows.try_next().await?.map(|(key, _)| key), Some("a".into()));
/// rows.seek("c");
/// assert_eq!(rows.try_next().await?.map(|(key, _)| key), Some("c".into()));
/// rows.seek("b");
/// assert_eq!(rows.try_next().await?.map(|(key, _)| key), Some("b".into()));
/// db.close().await?;
/// # Ok::<(), talusdb::Error>(())
/// # }).unwrap();
/// ```
#[must_use = "a scan reads nothing until it is polled"]
pub struct DbIterator {
    /// The merge, while no step is running; `None` once the scan failed.
    core: Option<Box<Core>>,
    /// The step being polled: it owns the merge until it ends.
    step: Option<BoxFuture<'static, Stepped>>,
    /// A seek asked for while a step ran, applied when it ends.
    seek_to: Option<Bytes>,
    /// An error to yield before anything else (the scan could not start).
    failed: Option<Error>,
    /// The view a reader's scan reads, held so that the reader keeps the
    /// checkpoint protecting its tables until the scan is dropped.
    held: Option<std::sync::Arc<crate::read::ReadView>>,
}

type Stepped = (Box<Core>, Result<Option<KeyValue>, Error>);

impl std::fmt::Debug for DbIterator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbIterator")
            .field("running", &self.step.is_some())
            .field("failed", &(self.core.is_none() && self.step.is_none()))
            .finish_non_exhaustive()
    }
}

/// What a scan steps through: the merged sources, and a transaction's own
/// writes laid over them.
struct Core {
    merge: Merge,
    own: Option<Own>,
}

/// A transaction's write of one key: a put or delete (or nothing), then
/// merge operands, oldest first.
#[derive(Clone, Debug, Default)]
pub(crate) struct OwnWrite {
    pub(crate) base: Option<RowValue>,
    pub(crate) operands: Vec<Bytes>,
}

/// A transaction's writes in the scan's range and order (tombstones
/// included), over the rows of the snapshot.
struct Own {
    rows: Vec<(Bytes, OwnWrite)>,
    operator: Operator,
    /// The next of `rows` to merge.
    at: usize,
    reverse: bool,
    /// The snapshot's next row, once read.
    base: Option<KeyValue>,
    /// The snapshot has no rows left.
    base_done: bool,
}

impl DbIterator {
    pub(crate) fn new(merge: Result<Merge, Error>) -> DbIterator {
        match merge {
            Ok(merge) => DbIterator::with(merge, None),
            Err(error) => DbIterator {
                core: None,
                step: None,
                seek_to: None,
                failed: Some(error),
                held: None,
            },
        }
    }

    /// A scan of `merge` with a transaction's writes `own` (in the scan's
    /// order) on top.
    pub(crate) fn overlaid(merge: Result<Merge, Error>, own: Vec<(Bytes, OwnWrite)>, operator: Operator) -> DbIterator {
        match merge {
            Ok(merge) => {
                let own = Own {
                    rows: own,
                    operator,
                    at: 0,
                    reverse: merge.is_reverse(),
                    base: None,
                    base_done: false,
                };
                DbIterator::with(merge, Some(own))
            }
            Err(error) => DbIterator::new(Err(error)),
        }
    }

    fn with(merge: Merge, own: Option<Own>) -> DbIterator {
        DbIterator {
            core: Some(Box::new(Core { merge, own })),
            step: None,
            seek_to: None,
            failed: None,
            held: None,
        }
    }

    /// This scan, holding `view` until it is dropped.
    pub(crate) fn holding(mut self, view: std::sync::Arc<crate::read::ReadView>) -> DbIterator {
        self.held = Some(view);
        self
    }

    /// Moves the scan so that the next pair it yields is the first whose
    /// key is at or after `key` (at or before it, in a reverse scan).
    ///
    /// Seeks stay inside the range the scan was created with: a key before
    /// it starts the scan again from the beginning, a key past it ends the
    /// scan. They may go either way, any number of times; tables the scan
    /// has open stay open, and a block it has read comes from the cache.
    /// A scan that ended (or was read to its end) can seek again; one that
    /// yielded an error stays ended.
    pub fn seek(&mut self, key: impl AsRef<[u8]>) {
        let key = key.as_ref();
        if self.step.is_some() {
            // Applied when the running step hands the merge back.
            self.seek_to = Some(Bytes::copy_from_slice(key));
        } else if let Some(core) = &mut self.core {
            core.seek(key);
        }
    }
}

impl Core {
    async fn next(&mut self) -> Result<Option<KeyValue>, Error> {
        let Core { merge, own } = self;
        let Some(own) = own else {
            return merge.next().await;
        };
        loop {
            if own.base.is_none() && !own.base_done {
                own.base = merge.next().await?;
                own.base_done = own.base.is_none();
            }
            let own_first = match (&own.base, own.rows.get(own.at)) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some((base, _)), Some((key, _))) => {
                    if own.reverse {
                        key >= base
                    } else {
                        key <= base
                    }
                }
            };
            if !own_first {
                return Ok(own.base.take());
            }
            let (key, write) = own.rows[own.at].clone();
            own.at += 1;
            // The transaction's write replaces the snapshot's row (or, with
            // only operands, folds over it).
            let below = match &own.base {
                Some((base, value)) if *base == key => {
                    let value = value.clone();
                    own.base = None;
                    Some(value)
                }
                _ => None,
            };
            let value = match write.base {
                Some(RowValue::Value(value)) => Some(value),
                Some(_) => None,
                None => below,
            };
            let value = if write.operands.is_empty() {
                value
            } else {
                let operands: Vec<&[u8]> = write.operands.iter().map(|operand| operand.as_ref()).collect();
                Some(merge_over(&key, value.as_deref(), &operands, &own.operator)?)
            };
            if let Some(value) = value {
                return Ok(Some((key, value)));
            }
        }
    }

    fn seek(&mut self, key: &[u8]) {
        self.merge.seek(key);
        if let Some(own) = &mut self.own {
            own.at = if own.reverse {
                own.rows.partition_point(|(row, _)| row.as_ref() > key)
            } else {
                own.rows.partition_point(|(row, _)| row.as_ref() < key)
            };
            own.base = None;
            own.base_done = false;
        }
    }
}

impl Stream for DbIterator {
    type Item = Result<KeyValue, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(error) = this.failed.take() {
            return Poll::Ready(Some(Err(error)));
        }
        loop {
            let step = match &mut this.step {
                Some(step) => step,
                None => {
                    let Some(mut core) = this.core.take() else {
                        return Poll::Ready(None);
                    };
                    this.step.insert(Box::pin(async move {
                        let result = core.next().await;
                        (core, result)
                    }))
                }
            };
            let Poll::Ready((mut core, result)) = step.as_mut().poll(cx) else {
                return Poll::Pending;
            };
            this.step = None;
            if let Err(error) = result {
                this.seek_to = None;
                return Poll::Ready(Some(Err(error)));
            }
            if let Some(key) = this.seek_to.take() {
                // The pair read before the seek is not the one asked for.
                core.seek(&key);
                this.core = Some(core);
                continue;
            }
            this.core = Some(core);
            return Poll::Ready(result.transpose());
        }
    }
}
