//! Optional per-block compression: lz4 (feature `lz4`, pure Rust) and zstd
//! (feature `zstd`). A block that does not shrink is stored raw.
//!
//! Invariant: decompression never allocates more than the length recorded
//! in front of the payload, and that length is capped by
//! [`MAX_BLOCK_BYTES`] before anything is allocated.

use super::FormatError;
#[cfg(any(feature = "lz4", feature = "zstd"))]
use super::codec::{Cursor, put_varint};

/// The largest decompressed block a reader accepts (a block holds one large
/// value at most; this bounds what a damaged length can make us allocate).
#[cfg(any(feature = "lz4", feature = "zstd"))]
pub const MAX_BLOCK_BYTES: usize = 256 << 20;

/// How blocks are compressed. Variants exist only where their feature is on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    #[default]
    /// Blocks are stored as they are.
    None,
    #[cfg(feature = "lz4")]
    /// LZ4 (feature `lz4`): fast, modest ratio.
    Lz4,
    #[cfg(feature = "zstd")]
    /// Zstandard (feature `zstd`): slower, better ratio.
    Zstd,
}

impl Compression {
    /// Every compression this build can write.
    pub fn available() -> Vec<Compression> {
        vec![
            Compression::None,
            #[cfg(feature = "lz4")]
            Compression::Lz4,
            #[cfg(feature = "zstd")]
            Compression::Zstd,
        ]
    }
}

const CODE_NONE: u8 = 0;
const CODE_LZ4: u8 = 1;
const CODE_ZSTD: u8 = 2;
#[cfg(feature = "zstd")]
const ZSTD_LEVEL: i32 = 3;

/// Compresses `payload` if that makes it smaller. Returns the compression
/// code and the stored form: `payload` itself, or the decompressed length
/// as a varint followed by the compressed bytes.
pub(crate) fn compress(compression: Compression, payload: Vec<u8>) -> (u8, Vec<u8>) {
    let (code, compressed): (u8, Option<Vec<u8>>) = match compression {
        Compression::None => (CODE_NONE, None),
        #[cfg(feature = "lz4")]
        Compression::Lz4 => (CODE_LZ4, Some(lz4_flex::block::compress(&payload))),
        #[cfg(feature = "zstd")]
        Compression::Zstd => (CODE_ZSTD, zstd::bulk::compress(&payload, ZSTD_LEVEL).ok()),
    };
    #[cfg(any(feature = "lz4", feature = "zstd"))]
    if let Some(compressed) = compressed {
        let mut stored = Vec::with_capacity(compressed.len() + 10);
        put_varint(&mut stored, payload.len() as u64);
        stored.extend_from_slice(&compressed);
        if stored.len() < payload.len() {
            return (code, stored);
        }
    }
    #[cfg(not(any(feature = "lz4", feature = "zstd")))]
    let _ = (code, compressed);
    (CODE_NONE, payload)
}

/// The decompressed payload, or `None` when it was stored raw.
#[cfg_attr(not(any(feature = "lz4", feature = "zstd")), allow(unused_variables))]
pub(crate) fn decompress(code: u8, stored: &[u8], part: &'static str) -> Result<Option<Vec<u8>>, FormatError> {
    match code {
        CODE_NONE => Ok(None),
        #[cfg(feature = "lz4")]
        CODE_LZ4 => bounded(stored, part, "lz4", |compressed, len| {
            lz4_flex::block::decompress(compressed, len).map_err(|error| error.to_string())
        })
        .map(Some),
        #[cfg(feature = "zstd")]
        CODE_ZSTD => bounded(stored, part, "zstd", |compressed, len| {
            zstd::bulk::decompress(compressed, len).map_err(|error| error.to_string())
        })
        .map(Some),
        #[cfg(not(feature = "lz4"))]
        CODE_LZ4 => Err(unsupported(part, "lz4")),
        #[cfg(not(feature = "zstd"))]
        CODE_ZSTD => Err(unsupported(part, "zstd")),
        other => Err(FormatError::corrupt(part, format!("unknown compression {other}"))),
    }
}

#[cfg(not(all(feature = "lz4", feature = "zstd")))]
fn unsupported(part: &'static str, codec: &str) -> FormatError {
    FormatError::Unsupported {
        part,
        detail: format!("{codec}-compressed; build with the `{codec}` feature"),
    }
}

/// Reads the decompressed length in front of `stored`, refuses it above
/// [`MAX_BLOCK_BYTES`], decompresses into at most that much room, and checks
/// the result has exactly that length.
#[cfg(any(feature = "lz4", feature = "zstd"))]
fn bounded(
    stored: &[u8],
    part: &'static str,
    codec: &str,
    decompress: impl FnOnce(&[u8], usize) -> Result<Vec<u8>, String>,
) -> Result<Vec<u8>, FormatError> {
    let mut cursor = Cursor::new(stored, part);
    let len = cursor.length()?;
    if len > MAX_BLOCK_BYTES {
        return Err(FormatError::corrupt(
            part,
            format!("decompressed length {len} exceeds {MAX_BLOCK_BYTES}"),
        ));
    }
    let payload = decompress(&stored[cursor.position()..], len)
        .map_err(|error| FormatError::corrupt(part, format!("{codec}: {error}")))?;
    if payload.len() != len {
        return Err(FormatError::corrupt(
            part,
            format!("decompressed to {} bytes, expected {len}", payload.len()),
        ));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The workspace test run has both features on, the library's
    /// default run neither: each build offers exactly its codecs.
    #[test]
    fn every_codec_of_this_build_is_available() {
        let expected = 1 + usize::from(cfg!(feature = "lz4")) + usize::from(cfg!(feature = "zstd"));
        assert_eq!(Compression::available().len(), expected);
    }

    /// A block compressed by a codec this build lacks is `Unsupported`,
    /// naming the feature to build with, never garbage or a panic.
    #[cfg(not(all(feature = "lz4", feature = "zstd")))]
    #[test]
    fn a_codec_this_build_lacks_is_unsupported_and_named() {
        for (code, codec, present) in [
            (CODE_LZ4, "lz4", cfg!(feature = "lz4")),
            (CODE_ZSTD, "zstd", cfg!(feature = "zstd")),
        ] {
            if present {
                continue;
            }
            match decompress(code, b"\x04abcd", "block") {
                Err(FormatError::Unsupported { part, detail }) => {
                    assert_eq!(part, "block");
                    assert!(detail.contains(&format!("`{codec}` feature")), "{detail}");
                }
                other => panic!("{codec}: {other:?}"),
            }
        }
    }

    #[cfg(all(feature = "lz4", feature = "zstd"))]
    #[test]
    fn compressible_payloads_shrink_and_round_trip() {
        let payload: Vec<u8> = b"talusdb block ".iter().copied().cycle().take(4096).collect();
        for compression in [Compression::Lz4, Compression::Zstd] {
            let (code, stored) = compress(compression, payload.clone());
            assert_ne!(code, CODE_NONE, "{compression:?} should compress repetitive data");
            assert!(stored.len() < payload.len() / 4);
            assert_eq!(decompress(code, &stored, "block").unwrap(), Some(payload.clone()));
        }
    }

    #[cfg(feature = "lz4")]
    #[test]
    fn incompressible_payloads_are_stored_raw() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let payload: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let (code, stored) = compress(Compression::Lz4, payload.clone());
        assert_eq!((code, stored), (CODE_NONE, payload));
    }

    #[cfg(all(feature = "lz4", feature = "zstd"))]
    #[test]
    fn lying_lengths_are_refused_before_allocating() {
        let mut huge = Vec::new();
        put_varint(&mut huge, (MAX_BLOCK_BYTES + 1) as u64);
        huge.extend_from_slice(&[0; 8]);
        for code in [CODE_LZ4, CODE_ZSTD] {
            let error = decompress(code, &huge, "block").unwrap_err();
            assert!(error.to_string().contains("exceeds"), "{error}");
        }
        // A plausible length that does not match what the payload holds.
        let payload: Vec<u8> = b"abc".iter().copied().cycle().take(1000).collect();
        let (code, mut stored) = compress(Compression::Lz4, payload);
        stored[0] ^= 0x01;
        assert!(decompress(code, &stored, "block").is_err());
        assert!(decompress(9, &stored, "block").is_err());
    }
}
