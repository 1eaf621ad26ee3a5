//! Object names (`docs/store.md`, "Writing tables") and ULIDs drawn from the injected clock and RNG.
//!
//! ```text
//! <root>/wal/<id:020>.sst        WAL tables
//! <root>/compacted/<ulid>.sst    L0 and sorted-run tables
//! ```
//!
//! Invariant: `TableId::parse(root, id.path(root)) == Some(id)`; names sort
//! like their ids (WAL ids are zero-padded, ULIDs start with the time).

use std::fmt;

use object_store::path::Path;
use talus_actors::Runtime;

/// A 128-bit ULID: 48 bits of wall-clock milliseconds, then 80 random bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ulid(pub u128);

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl Ulid {
    /// A ULID from `runtime`'s wall clock and RNG (deterministic under sim).
    pub fn generate(runtime: &Runtime) -> Ulid {
        let random = (u128::from(runtime.next_u64()) << 16) ^ u128::from(runtime.next_u64() & 0xffff);
        Ulid::from_parts(runtime.wall_ms(), random)
    }

    /// The id made of a millisecond time (48 bits) and 80 random bits.
    pub fn from_parts(ms: u64, random: u128) -> Ulid {
        let ms = u128::from(ms & ((1 << 48) - 1));
        Ulid((ms << 80) | (random & ((1 << 80) - 1)))
    }

    /// The wall-clock milliseconds it was made at.
    pub fn ms(self) -> u64 {
        (self.0 >> 80) as u64
    }

    /// Parses the 26-character Crockford base32 form (upper or lower case).
    pub fn parse(text: &str) -> Option<Ulid> {
        if text.len() != 26 {
            return None;
        }
        let mut value: u128 = 0;
        for (position, byte) in text.bytes().enumerate() {
            let digit = CROCKFORD.iter().position(|c| *c == byte.to_ascii_uppercase())? as u128;
            // The first character carries only 3 bits (128 = 3 + 25 * 5).
            if position == 0 && digit > 7 {
                return None;
            }
            value = (value << 5) | digit;
        }
        Some(Ulid(value))
    }
}

impl fmt::Display for Ulid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0u8; 26];
        for (position, slot) in text.iter_mut().enumerate() {
            let shift = 5 * (25 - position);
            *slot = CROCKFORD[((self.0 >> shift) & 31) as usize];
        }
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

/// Which table an object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableId {
    /// A WAL table, numbered in log order.
    Wal(u64),
    /// A sorted table (L0 or a sorted run).
    Compacted(Ulid),
}

pub const WAL_DIR: &str = "wal";
pub const COMPACTED_DIR: &str = "compacted";
pub(crate) const TABLE_SUFFIX: &str = ".sst";

impl TableId {
    /// The object under database root `root`.
    pub fn path(&self, root: &Path) -> Path {
        let name = match self {
            TableId::Wal(id) => format!("{WAL_DIR}/{id:020}{TABLE_SUFFIX}"),
            TableId::Compacted(ulid) => format!("{COMPACTED_DIR}/{ulid}{TABLE_SUFFIX}"),
        };
        child(root, &name)
    }

    /// The table a path names, if it is one of ours under `root`.
    pub fn parse(root: &Path, path: &Path) -> Option<TableId> {
        let mut parts = path.prefix_match(root)?;
        let dir = parts.next()?;
        let name = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let stem = name.as_ref().strip_suffix(TABLE_SUFFIX)?;
        match dir.as_ref() {
            WAL_DIR => parse_padded_id(stem).map(TableId::Wal),
            COMPACTED_DIR => Ulid::parse(stem).map(TableId::Compacted),
            _ => None,
        }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableId::Wal(id) => write!(f, "wal {id}"),
            TableId::Compacted(ulid) => write!(f, "table {ulid}"),
        }
    }
}

/// An id written as exactly 20 decimal digits (`{id:020}`), as WAL tables
/// and metadata versions are named.
pub fn parse_padded_id(text: &str) -> Option<u64> {
    (text.len() == 20 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// `root/name`, where `name` may contain `/`.
pub fn child(root: &Path, name: &str) -> Path {
    name.split('/').fold(root.clone(), |path, part| path.join(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulid_text_round_trips_and_sorts_by_time() {
        let early = Ulid::from_parts(1_700_000_000_000, 12345);
        let late = Ulid::from_parts(1_700_000_000_001, 0);
        assert_eq!(Ulid::parse(&early.to_string()), Some(early));
        assert_eq!(Ulid::parse(&early.to_string().to_lowercase()), Some(early));
        assert!(early.to_string() < late.to_string());
        assert_eq!(early.ms(), 1_700_000_000_000);
        assert_eq!(Ulid::parse(&Ulid(u128::MAX).to_string()), Some(Ulid(u128::MAX)));
        assert_eq!(Ulid::parse("8ZZZZZZZZZZZZZZZZZZZZZZZZZ"), None, "129 bits");
        assert_eq!(Ulid::parse("0123"), None);
        assert_eq!(Ulid::parse("0000000000000000000000000U"), None, "U is not Crockford");
    }

    #[test]
    fn table_paths_parse_back() {
        let root = Path::from("db/one");
        for id in [TableId::Wal(0), TableId::Wal(u64::MAX), TableId::Compacted(Ulid(42))] {
            let path = id.path(&root);
            assert_eq!(TableId::parse(&root, &path), Some(id), "{path}");
        }
        assert_eq!(
            TableId::Wal(7).path(&root).as_ref(),
            "db/one/wal/00000000000000000007.sst"
        );
        assert_eq!(TableId::parse(&root, &Path::from("db/one/wal/7.sst")), None);
        assert_eq!(
            TableId::parse(&root, &Path::from("db/other/wal/00000000000000000007.sst")),
            None
        );
        assert_eq!(
            TableId::parse(&root, &Path::from("db/one/manifest/00000000000000000007.sst")),
            None
        );
    }
}
