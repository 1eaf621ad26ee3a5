//! Numbered versions of one kind of metadata object (the manifest, the
//! compactions file), each written once with a conditional create.
//!
//! ```text
//! <root>/<DIR>/<id:020>.<SUFFIX>
//! ```
//!
//! Owns: naming, the envelope (magic, format version, write id, CRC32),
//! finding the latest version, and creating version `id` exactly once.
//! Does not own: what changes between versions or who may change it
//! (`fenced`).
//!
//! Invariants: a version is never overwritten (only `PutMode::Create`, the
//! one conditional write every store here supports); a create whose reply
//! was lost is recognised by its write id, not reported as a conflict;
//! versions below the latest may be missing (the garbage collector deletes
//! old ones), and only the latest is ever read as current.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use talus_actors::Runtime;

use super::ManifestError;
use crate::format::FormatError;
use crate::format::codec::{Cursor, put_u32, put_u128, seal, unseal};
pub use crate::store::Created;
use crate::store::paths::{child, parse_padded_id};
use crate::store::{ByteRange, ObjectInfo, Store, StoreError, Ulid, create_once};

/// The longest pause between two attempts of a metadata read.
const MAX_READ_BACKOFF: Duration = Duration::from_secs(1);

/// The envelope format version of every payload without newer parts.
pub const ENVELOPE_VERSION: u32 = 1;

/// The newest manifest envelope version this build reads (one with losses
/// is written as 2, `model::LOSSES_VERSION`, one with time points as 3,
/// `model::SEQ_TIMES_VERSION`, one with range tombstones in a table as 4,
/// `model::RANGE_DELETES_VERSION`, a clone's as 5, `model::CLONE_VERSION`,
/// one with a WAL store of its own as 6, `model::WAL_STORE_VERSION`);
/// a newer one is `Unsupported`, not corrupt. Each payload says its own
/// newest in [`Versioned::NEWEST_VERSION`] (a compactions file's is 2).
pub const NEWEST_ENVELOPE_VERSION: u32 = 6;

/// A payload kept as numbered versions.
pub trait Versioned: Clone + fmt::Debug + Send + Sync + 'static {
    /// Folder under the database root.
    const DIR: &'static str;
    /// File extension of each version.
    const SUFFIX: &'static str;
    /// First 8 bytes of every version.
    const MAGIC: [u8; 8];
    /// Name of the part in corruption errors.
    const PART: &'static str;
    /// The newest envelope version this build reads of it; a newer one is
    /// `Unsupported`.
    const NEWEST_VERSION: u32;

    /// Appends the payload in the current envelope version.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads a payload written under envelope `version`.
    ///
    /// # Errors
    ///
    /// `FormatError` if the payload is damaged or of a newer version.
    fn decode(payload: &[u8], version: u32) -> Result<Self, FormatError>;

    /// The envelope version this payload needs: the oldest that can hold
    /// it, so that older builds still read what they can.
    fn format_version(&self) -> u32 {
        ENVELOPE_VERSION
    }
}

/// Wraps `payload` for storage: magic, version, write id, payload, CRC32.
pub fn encode_envelope<P: Versioned>(payload: &P, write_id: u128) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&P::MAGIC);
    put_u32(&mut out, payload.format_version());
    put_u128(&mut out, write_id);
    payload.encode(&mut out);
    seal(&mut out);
    Bytes::from(out)
}

/// Checks and unwraps a stored version.
///
/// # Errors
///
/// `FormatError` if the envelope or payload is damaged (`Corrupt`) or of
/// a newer version (`Unsupported`).
pub fn decode_envelope<P: Versioned>(stored: &[u8]) -> Result<P, FormatError> {
    let body = unseal(stored, P::PART)?;
    let mut cursor = Cursor::new(body, P::PART);
    if cursor.take(8)? != P::MAGIC {
        return Err(FormatError::corrupt(P::PART, "wrong magic"));
    }
    let version = u32::from_le_bytes(cursor.take(4)?.try_into().unwrap_or_default());
    if version > P::NEWEST_VERSION {
        return Err(FormatError::Unsupported {
            part: P::PART,
            detail: format!(
                "format version {version} is newer than this build reads (up to {}): upgrade talusdb",
                P::NEWEST_VERSION
            ),
        });
    }
    if version < ENVELOPE_VERSION {
        return Err(FormatError::corrupt(P::PART, format!("format version {version}")));
    }
    let _write_id = cursor.u128()?;
    P::decode(&body[cursor.position()..], version)
}

/// How long and how patiently metadata writes are retried.
#[derive(Clone, Debug)]
pub struct VersionedOptions {
    /// Total time one update may take, conflicts and store errors included
    /// (default 60 s).
    pub update_timeout: Duration,
    /// Upper bound of the random pause after a conflict or a retryable
    /// error (default 20 ms); spreads out contending writers.
    pub retry_backoff: Duration,
}

impl Default for VersionedOptions {
    fn default() -> Self {
        VersionedOptions {
            update_timeout: Duration::from_secs(60),
            retry_backoff: Duration::from_millis(20),
        }
    }
}

/// Reads and creates the versions of one payload kind.
pub struct VersionedStore<P> {
    store: Arc<dyn Store>,
    root: Path,
    runtime: Runtime,
    options: VersionedOptions,
    payload: PhantomData<fn() -> P>,
}

impl<P> Clone for VersionedStore<P> {
    fn clone(&self) -> Self {
        VersionedStore {
            store: self.store.clone(),
            root: self.root.clone(),
            runtime: self.runtime.clone(),
            options: self.options.clone(),
            payload: PhantomData,
        }
    }
}

impl<P> fmt::Debug for VersionedStore<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VersionedStore")
            .field("root", &self.root)
            .field("options", &self.options)
            .finish()
    }
}

impl<P: Versioned> VersionedStore<P> {
    /// The versions of `P` under `root` in `store`.
    pub fn new(store: Arc<dyn Store>, root: Path, runtime: Runtime, options: VersionedOptions) -> Self {
        VersionedStore {
            store,
            root,
            runtime,
            options,
            payload: PhantomData,
        }
    }

    /// The object store the versions are in.
    pub fn object_store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The runtime whose clock times its retries.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Its retry settings.
    pub fn options(&self) -> &VersionedOptions {
        &self.options
    }

    /// The database root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The object of version `id`.
    pub fn path(&self, id: u64) -> Path {
        child(&self.root, &format!("{}/{id:020}.{}", P::DIR, P::SUFFIX))
    }

    /// The id a path names, if it is one of this kind's versions.
    pub fn parse_id(&self, path: &Path) -> Option<u64> {
        let mut parts = path.prefix_match(&self.root)?;
        if parts.next()?.as_ref() != P::DIR {
            return None;
        }
        let name = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        parse_padded_id(name.as_ref().strip_suffix(P::SUFFIX)?.strip_suffix('.')?)
    }

    /// The ids present, ascending.
    ///
    /// # Errors
    ///
    /// `Store` if the store failed or a version is corrupt.
    pub async fn ids(&self) -> Result<Vec<u64>, ManifestError> {
        Ok(self.list().await?.into_iter().map(|(id, _)| id).collect())
    }

    /// The versions present, ascending by id, with size and age.
    ///
    /// # Errors
    ///
    /// `Store` if the store failed or a version is corrupt.
    pub async fn list(&self) -> Result<Vec<(u64, ObjectInfo)>, ManifestError> {
        let dir = child(&self.root, P::DIR);
        let objects = self.retrying(|| self.store.list(&dir)).await?;
        let mut versions: Vec<(u64, ObjectInfo)> = objects
            .into_iter()
            .filter_map(|info| self.parse_id(&info.path).map(|id| (id, info)))
            .collect();
        versions.sort_unstable_by_key(|(id, _)| *id);
        Ok(versions)
    }

    /// Version `id`.
    ///
    /// # Errors
    ///
    /// `Store` if the store failed or a version is corrupt.
    pub async fn read(&self, id: u64) -> Result<P, ManifestError> {
        let path = self.path(id);
        let fetched = self.retrying(|| self.store.get(&path, ByteRange::All)).await?;
        decode_envelope(&fetched.bytes).map_err(|error| StoreError::format(&path, error).into())
    }

    /// The newest version, or `None` if there is none. A version deleted
    /// between the listing and the read (by GC) sends us back to the listing.
    ///
    /// # Errors
    ///
    /// `Store` if the store failed or a version is corrupt.
    pub async fn read_latest(&self) -> Result<Option<(u64, P)>, ManifestError> {
        self.read_newer_than(None).await
    }

    /// The newest version if its id is above `known` (`None` also when
    /// there is no version): one listing, and a read only when someone
    /// wrote since.
    ///
    /// # Errors
    ///
    /// As [`VersionedStore::read_latest`].
    pub async fn read_newer_than(&self, known: Option<u64>) -> Result<Option<(u64, P)>, ManifestError> {
        for _ in 0..8 {
            let Some(&latest) = self.ids().await?.last() else {
                return Ok(None);
            };
            if known.is_some_and(|known| latest <= known) {
                return Ok(None);
            }
            match self.read(latest).await {
                Ok(payload) => return Ok(Some((latest, payload))),
                Err(ManifestError::Store(StoreError::NotFound { .. })) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(ManifestError::Store(StoreError::unavailable(
            crate::store::Op::List,
            &child(&self.root, P::DIR),
            "the latest version kept disappearing",
        )))
    }

    /// Creates version `id` holding `payload`, retrying store errors until
    /// `deadline` (on the runtime's clock).
    ///
    /// # Errors
    ///
    /// `Store` if the store kept failing until `deadline`.
    pub async fn create(&self, id: u64, payload: &P, deadline: Duration) -> Result<Created, ManifestError> {
        let path = self.path(id);
        let bytes = encode_envelope(payload, Ulid::generate(&self.runtime).0);
        loop {
            // The write id makes our bytes unique, so an equal object is ours.
            let error = match create_once(&*self.store, &path, bytes.clone()).await {
                Ok(created) => return Ok(created),
                Err(error) => error,
            };
            if !error.is_retryable() {
                return Err(error.into());
            }
            if self.runtime.now() >= deadline {
                return Err(ManifestError::Timeout {
                    path,
                    waited: self.options.update_timeout,
                    last: error.to_string(),
                });
            }
            tracing::debug!(%path, %error, "retrying a metadata write");
            self.pause().await;
        }
    }

    /// Runs a read again after each retryable error, with growing random
    /// pauses, for up to `update_timeout`; then returns the last error. A
    /// store that fails now and then does not fail the reader.
    async fn retrying<T, Fut>(&self, mut request: impl FnMut() -> Fut) -> Result<T, StoreError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let deadline = self.runtime.now() + self.options.update_timeout;
        let mut backoff = self.options.retry_backoff;
        loop {
            match request().await {
                Err(error) if error.is_retryable() && self.runtime.now() < deadline => {
                    tracing::debug!(%error, "retrying a metadata read");
                    let pause = self.runtime.random_duration(backoff);
                    self.runtime.sleep(pause).await;
                    backoff = (backoff * 2).min(MAX_READ_BACKOFF);
                }
                result => return result,
            }
        }
    }

    /// A short random pause before retrying.
    pub async fn pause(&self) {
        let pause = self.runtime.random_duration(self.options.retry_backoff);
        self.runtime.sleep(pause).await;
    }

    /// Deletes version `id` (for the garbage collector).
    ///
    /// # Errors
    ///
    /// `Store` if the store failed or a version is corrupt.
    pub async fn delete(&self, id: u64) -> Result<(), ManifestError> {
        Ok(self.store.delete(&self.path(id)).await?)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::manifest::compactions::{CompactionSpec, CompactionStatus, Compactions, Source};
    use crate::manifest::model::{Checkpoint, Manifest, SeqTime, SortedRun, TableHandle, WalLoss};

    fn table(seed: u64) -> TableHandle {
        TableHandle {
            id: Ulid(u128::from(seed) << 64 | 7),
            size: seed * 1000,
            first_key: Bytes::from(format!("a{seed}")),
            last_key: Bytes::from(format!("z{seed}")),
            min_seq: seed,
            max_seq: seed + 10,
            rows: seed % 100,
            tombstones: seed % 7,
            range_deletes: if seed % 4 == 3 { seed % 5 + 1 } else { 0 },
        }
    }

    fn manifest(seeds: &[u64], runs: usize, checkpoints: usize) -> Manifest {
        Manifest {
            writer_epoch: seeds.len() as u64,
            compactor_epoch: 3,
            next_wal_id: 100 + seeds.len() as u64,
            replay_after_wal_id: 99,
            last_l0_seq: u64::MAX - 1,
            l0: seeds.iter().map(|seed| table(*seed)).collect(),
            sorted_runs: (0..runs)
                .map(|run| SortedRun {
                    id: run as u64,
                    tables: seeds.iter().take(run).map(|seed| table(seed + 1000)).collect(),
                })
                .collect(),
            checkpoints: (0..checkpoints)
                .map(|n| Checkpoint {
                    id: Ulid(n as u128 + 1),
                    manifest_id: n as u64,
                    create_ms: 1_700_000_000_000 + n as u64,
                    expire_ms: (n % 2 == 0).then_some(1_800_000_000_000),
                    name: (n % 3 == 0).then(|| format!("checkpoint é{n}")),
                })
                .collect(),
            retain_seq: 42,
            losses: (0..checkpoints.saturating_sub(2))
                .map(|n| WalLoss {
                    wal_id: 10 + n as u64,
                    first_seq: 500 + n as u64,
                    last_seq: (n % 2 == 0).then_some(600),
                    found_ms: 1_700_000_000_000,
                    moved_to: format!("db/lost/wal/{n}.sst"),
                    reason: "checksum mismatch é".into(),
                })
                .collect(),
            // Points only with an odd number of tables: both with and
            // without losses.
            seq_times: (0..seeds.len() % 2 * seeds.len())
                .map(|n| SeqTime {
                    time_ms: 1_700_000_000_000 + 1000 * n as u64,
                    seq: seeds.iter().take(n + 1).sum(),
                })
                .collect(),
            merge_operator: (seeds.len() % 3 == 1).then(|| "counter é".to_string()),
            sources: Vec::new(),
            separate_wal: false,
        }
    }

    fn compactions(seeds: &[u64]) -> Compactions {
        let mut state = Compactions {
            compactor_epoch: 9,
            ..Compactions::default()
        };
        for (n, seed) in seeds.iter().enumerate() {
            let id = Ulid(u128::from(*seed) + 1000 * n as u128);
            state.submit(
                id,
                CompactionSpec {
                    sources: vec![Source::L0(Ulid(u128::from(*seed))), Source::Run(*seed)],
                    destination: *seed,
                },
            );
            let status = [
                CompactionStatus::Submitted,
                CompactionStatus::Running,
                CompactionStatus::Completed,
                CompactionStatus::Failed,
            ][n % 4];
            state.set_status(id, status);
            if let Some(entry) = state.get_mut(id) {
                entry.outputs = vec![table(*seed)];
            }
        }
        state
    }

    fn round_trip<P: Versioned + PartialEq>(payload: &P) {
        let bytes = encode_envelope(payload, 77);
        assert_eq!(&decode_envelope::<P>(&bytes).expect("decodes"), payload);
        for position in 0..bytes.len() {
            let mut damaged = bytes.to_vec();
            damaged[position] ^= 0x10;
            assert!(
                decode_envelope::<P>(&damaged).is_err(),
                "flipped byte {position} went unnoticed"
            );
        }
        for len in 0..bytes.len() {
            assert!(decode_envelope::<P>(&bytes[..len]).is_err(), "truncated to {len}");
        }
    }

    proptest! {
        #[test]
        fn manifests_round_trip_and_every_damage_is_caught(
            seeds in proptest::collection::vec(0u64..1_000_000, 0..6),
            runs in 0usize..4,
            checkpoints in 0usize..5,
        ) {
            round_trip(&manifest(&seeds, runs, checkpoints));
        }

        #[test]
        fn compactions_round_trip_and_every_damage_is_caught(
            seeds in proptest::collection::btree_set(0u64..1_000_000, 0..6),
        ) {
            let seeds: Vec<u64> = seeds.into_iter().collect();
            round_trip(&compactions(&seeds));
        }
    }

    #[test]
    fn a_manifest_needs_version_2_only_with_losses_3_only_with_time_points_and_newer_versions_are_unsupported() {
        let plain = manifest(&[1, 2], 1, 2);
        assert_eq!(plain.format_version(), 1, "readable by builds that know version 1");
        let with_losses = manifest(&[1, 2], 1, 4);
        assert_eq!(with_losses.format_version(), 2);
        assert_eq!(
            decode_envelope::<Manifest>(&encode_envelope(&with_losses, 3)).expect("decodes"),
            with_losses
        );
        let with_times = Manifest {
            seq_times: vec![SeqTime { time_ms: 5, seq: 7 }, SeqTime { time_ms: 9, seq: 7 }],
            ..plain.clone()
        };
        assert_eq!(
            with_times.format_version(),
            3,
            "time points need version 3, losses or not"
        );
        let with_operator = Manifest {
            merge_operator: Some("append".into()),
            ..plain.clone()
        };
        assert_eq!(with_operator.format_version(), 3, "so does a merge operator");
        assert_eq!(
            decode_envelope::<Manifest>(&encode_envelope(&with_operator, 3)).expect("decodes"),
            with_operator
        );
        assert_eq!(
            decode_envelope::<Manifest>(&encode_envelope(&with_times, 3)).expect("decodes"),
            with_times
        );
        // A table with range tombstones: version 4, whose handles carry
        // the count, with or without the version 3 fields.
        let mut with_ranges = plain.clone();
        with_ranges.l0[0].range_deletes = 2;
        assert_eq!(with_ranges.format_version(), 4);
        assert_eq!(
            decode_envelope::<Manifest>(&encode_envelope(&with_ranges, 3)).expect("decodes"),
            with_ranges
        );
        let mut ranged_compactions = compactions(&[1, 2]);
        assert_eq!(ranged_compactions.format_version(), 1);
        ranged_compactions.entries[0].outputs[0].range_deletes = 1;
        assert_eq!(ranged_compactions.format_version(), 2);
        assert_eq!(
            decode_envelope::<Compactions>(&encode_envelope(&ranged_compactions, 3)).expect("decodes"),
            ranged_compactions
        );
        // A clone's manifest: version 5, with version 4's handles and
        // the version 3 fields, ending with its sources.
        let clone = Manifest {
            sources: vec![
                super::super::model::CloneSource {
                    root: "prod/db".into(),
                    checkpoint: Ulid(77),
                    tables: vec![Ulid(1), Ulid(2)],
                },
                super::super::model::CloneSource {
                    root: "older".into(),
                    checkpoint: Ulid(78),
                    tables: Vec::new(),
                },
            ],
            ..plain.clone()
        };
        assert_eq!(clone.format_version(), 5);
        assert_eq!(
            decode_envelope::<Manifest>(&encode_envelope(&clone, 3)).expect("decodes"),
            clone
        );
        let with_version = |payload: Bytes, version: u32| {
            let mut stored = payload.to_vec();
            stored[8..12].copy_from_slice(&version.to_le_bytes());
            let body = stored.len() - 4;
            let crc = crc32fast::hash(&stored[..body]);
            stored[body..].copy_from_slice(&crc.to_le_bytes());
            stored
        };
        // A WAL store of its own: version 6, with or without sources.
        for sources in [Vec::new(), clone.sources.clone()] {
            let separate = Manifest {
                separate_wal: true,
                sources,
                ..plain.clone()
            };
            assert_eq!(separate.format_version(), 6);
            assert_eq!(
                decode_envelope::<Manifest>(&encode_envelope(&separate, 3)).expect("decodes"),
                separate
            );
        }
        // A build that reads up to version 4 sees a clone as newer, one
        // that reads up to 5 a separate WAL.
        assert_eq!(NEWEST_ENVELOPE_VERSION, 6);
        let newer = with_version(encode_envelope(&plain, 3), NEWEST_ENVELOPE_VERSION + 1);
        match decode_envelope::<Manifest>(&newer) {
            Err(FormatError::Unsupported { detail, .. }) => assert!(detail.contains("upgrade"), "{detail}"),
            other => panic!("a newer version must be unsupported, not {other:?}"),
        }
        // Each payload has its own newest version: a compactions file
        // stops at 2.
        let newer = with_version(encode_envelope(&ranged_compactions, 3), 3);
        match decode_envelope::<Compactions>(&newer) {
            Err(FormatError::Unsupported { detail, .. }) => assert!(detail.contains("up to 2"), "{detail}"),
            other => panic!("a compactions version 3 must be unsupported, not {other:?}"),
        }
    }

    #[test]
    fn structural_lies_under_a_valid_checksum_are_corruption() {
        let mut lying = Manifest::default();
        lying.replay_after_wal_id = lying.next_wal_id;
        let bytes = encode_envelope(&lying, 1);
        assert!(
            decode_envelope::<Manifest>(&bytes).is_err(),
            "replay point beyond the next WAL id"
        );

        let mut inverted = manifest(&[1], 0, 0);
        inverted.l0[0].min_seq = inverted.l0[0].max_seq + 1;
        assert!(decode_envelope::<Manifest>(&encode_envelope(&inverted, 1)).is_err());

        let mut twice = compactions(&[1]);
        twice.entries.push(twice.entries[0].clone());
        assert!(decode_envelope::<Compactions>(&encode_envelope(&twice, 1)).is_err());

        // A huge claimed count with few bytes behind it is refused before
        // anything is allocated.
        let mut huge = Vec::new();
        huge.extend_from_slice(&Manifest::MAGIC);
        put_u32(&mut huge, ENVELOPE_VERSION);
        put_u128(&mut huge, 0);
        for value in [0u64, 0, 1, 0, 0, 0] {
            crate::format::codec::put_varint(&mut huge, value);
        }
        crate::format::codec::put_varint(&mut huge, u64::from(u32::MAX));
        seal(&mut huge);
        let error = decode_envelope::<Manifest>(&huge).expect_err("lie");
        assert!(error.to_string().contains("cannot fit"), "{error}");
    }
}
