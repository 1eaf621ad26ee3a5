//! Merge operators: how a key's merge operands fold over the version below
//! them, on every read and in compaction.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, ErrorKind};
use crate::format::{Row, RowValue};

/// Folds the operands [`Db::merge`](crate::Db::merge) writes into a value,
/// so that a counter or a list can grow by blind writes: no read of the
/// current value, no transaction.
///
/// A read of a key whose newest versions are operands finds the newest
/// version below them that is not one (a value, or nothing: a delete, an
/// expired put, no version at all) and calls [`full_merge`] with it and the
/// operands, oldest first. Compaction folds operands that no live snapshot
/// can tell apart into one value (or, with [`partial_merge`], one
/// operand), so their number stays small.
///
/// The operator must be deterministic, and `full_merge` associative over
/// its operands: folding `[a, b]` and then `[c]` over the result gives what
/// folding `[a, b, c]` gives. Its [`name`] is recorded in the manifest the
/// first time the database is opened with it; opening it later with an
/// operator of another name (or none) fails, since the stored operands
/// would mean something else.
///
/// ```
/// use bytes::Bytes;
/// use talusdb::{MergeError, MergeOperator};
///
/// /// A little-endian u64 counter: each operand is an increment.
/// #[derive(Debug)]
/// struct Counter;
///
/// impl MergeOperator for Counter {
///     fn name(&self) -> &str {
///         "counter-u64"
///     }
///
///     fn full_merge(&self, _key: &[u8], base: Option<&[u8]>, operands: &[&[u8]]) -> Result<Bytes, MergeError> {
///         let number = |bytes: &[u8]| {
///             let array: [u8; 8] = bytes.try_into().map_err(|_| MergeError::new("not 8 bytes"))?;
///             Ok::<u64, MergeError>(u64::from_le_bytes(array))
///         };
///         let mut total = base.map(number).transpose()?.unwrap_or(0);
///         for operand in operands {
///             total = total.wrapping_add(number(operand)?);
///         }
///         Ok(Bytes::copy_from_slice(&total.to_le_bytes()))
///     }
/// }
///
/// let counter = Counter;
/// let one = 1u64.to_le_bytes();
/// let sum = counter.full_merge(b"k", None, &[&one, &one]).unwrap();
/// assert_eq!(sum.as_ref(), &2u64.to_le_bytes());
/// ```
///
/// [`full_merge`]: MergeOperator::full_merge
/// [`partial_merge`]: MergeOperator::partial_merge
/// [`name`]: MergeOperator::name
pub trait MergeOperator: Send + Sync + fmt::Debug + 'static {
    /// A name that says what the operands mean (for example
    /// `"counter-u64"`); recorded in the manifest.
    fn name(&self) -> &str;

    /// The value of `key` after `operands` (oldest first) are applied to
    /// `base` (`None`: the key had no value).
    ///
    /// # Errors
    ///
    /// A [`MergeError`] fails the read that needed this value (as
    /// [`ErrorKind::MergeFailed`]), never the database; compaction keeps
    /// the operands as they are.
    fn full_merge(&self, key: &[u8], base: Option<&[u8]>, operands: &[&[u8]]) -> Result<Bytes, MergeError>;

    /// One operand that does what `operands` (oldest first) do together,
    /// if the operator can say without the base value (`None`, the
    /// default: it cannot, and compaction keeps them apart until it reaches
    /// a base).
    fn partial_merge(&self, key: &[u8], operands: &[&[u8]]) -> Option<Result<Bytes, MergeError>> {
        let _ = (key, operands);
        None
    }
}

/// Why a merge operator could not fold a key's operands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeError {
    message: String,
}

impl MergeError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> MergeError {
        MergeError {
            message: message.into(),
        }
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MergeError {}

/// The operator a database was opened with, if any.
pub type Operator = Option<Arc<dyn MergeOperator>>;

/// Folds a key's versions (newest first, all at or below the read's
/// sequence number) into what a read at `now_ms` sees, as they arrive.
#[derive(Debug, Default)]
pub struct Fold {
    /// Operands so far, newest first.
    operands: Vec<Bytes>,
    /// The version below the operands has been seen: what it leaves.
    base: Option<Option<Bytes>>,
}

impl Fold {
    /// Takes the next older version; false once the fold needs no more.
    pub fn push(&mut self, row: &Row, now_ms: u64) -> bool {
        if self.base.is_some() {
            return false;
        }
        match &row.value {
            RowValue::Merge(operand) => {
                self.operands.push(operand.clone());
                true
            }
            _ => {
                self.base = Some(row.live_value(now_ms).cloned());
                false
            }
        }
    }

    /// Whether it has seen no version yet.
    pub fn is_empty(&self) -> bool {
        self.operands.is_empty() && self.base.is_none()
    }

    /// The value a read sees: the base if there are no operands, else the
    /// operands folded over it (or over nothing, if no base came).
    ///
    /// # Errors
    ///
    /// `InvalidArgument` if there are operands and no operator;
    /// `MergeFailed` if the operator fails.
    pub fn finish(self, key: &[u8], operator: &Operator) -> Result<Option<Bytes>, Error> {
        let base = self.base.flatten();
        if self.operands.is_empty() {
            return Ok(base);
        }
        let operands: Vec<&[u8]> = self.operands.iter().rev().map(|operand| operand.as_ref()).collect();
        merge_over(key, base.as_deref(), &operands, operator).map(Some)
    }
}

/// `operands` (oldest first) folded over `base` by `operator`.
///
/// # Errors
///
/// `InvalidArgument` without an operator; `MergeFailed` if it fails.
pub fn merge_over(key: &[u8], base: Option<&[u8]>, operands: &[&[u8]], operator: &Operator) -> Result<Bytes, Error> {
    let Some(operator) = operator else {
        return Err(Error::invalid(format!(
            "key {} has merge operands but the database was opened without a merge operator \
             (DbBuilder::merge_operator)",
            crate::error::printable(key)
        )));
    };
    operator.full_merge(key, base, operands).map_err(|error| {
        Error::new(
            ErrorKind::MergeFailed,
            format!(
                "merge operator {:?} failed on key {}: {error}",
                operator.name(),
                crate::error::printable(key)
            ),
        )
    })
}
