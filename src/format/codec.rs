//! Little helpers every format uses: LEB128 varints, fixed-width integers,
//! CRC32 trailers, and a bounds-checked [`Cursor`] for decoding.
//!
//! Invariant: decoding never indexes past the input and never allocates a
//! size read from the input before checking it against the bytes that are
//! actually there.

use super::FormatError;

/// Appends `value` as an unsigned LEB128 varint (1 to 10 bytes).
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

pub(crate) fn put_u128(out: &mut Vec<u8>, value: u128) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Appends `bytes` with a varint length in front.
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// CRC32 (IEEE, as `crc32fast` computes it) of `bytes`.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Appends the CRC32 of everything in `out` so far.
pub(crate) fn seal(out: &mut Vec<u8>) {
    let checksum = crc32(out);
    put_u32(out, checksum);
}

/// Checks the CRC32 trailer of `stored` and returns the bytes it covers.
pub(crate) fn unseal<'a>(stored: &'a [u8], part: &'static str) -> Result<&'a [u8], FormatError> {
    let Some(split) = stored.len().checked_sub(4) else {
        return Err(FormatError::corrupt(
            part,
            format!("{} bytes is too short for a checksum", stored.len()),
        ));
    };
    let (body, trailer) = stored.split_at(split);
    let expected = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let actual = crc32(body);
    // Under cargo-fuzz (`cfg(fuzzing)`) a mismatch is let through so the
    // fuzzer reaches the decoders behind the checksum; every other build
    // checks it.
    if actual != expected && !cfg!(fuzzing) {
        return Err(FormatError::corrupt(
            part,
            format!("checksum mismatch: stored {expected:08x}, computed {actual:08x}"),
        ));
    }
    Ok(body)
}

/// Checks the CRC32 trailer of `stored`, then splits off the byte in front
/// of it (a part's tag: compression code, probe count). Returns the length
/// of what precedes the tag, and the tag.
pub(crate) fn unseal_tagged(stored: &[u8], part: &'static str, tag: &str) -> Result<(usize, u8), FormatError> {
    let body = unseal(stored, part)?;
    match body.split_last() {
        Some((&value, rest)) => Ok((rest.len(), value)),
        None => Err(FormatError::corrupt(part, format!("no {tag}"))),
    }
}

/// The little-endian u32 at `at`; the caller has checked `at + 4 <= bytes.len()`.
pub(crate) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Reads from a byte slice, failing with a [`FormatError`] that names `part`
/// instead of running past the end.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
    part: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8], part: &'static str) -> Self {
        Cursor {
            bytes,
            position: 0,
            part,
        }
    }

    /// The part being decoded, for error messages.
    pub(crate) fn part(&self) -> &'static str {
        self.part
    }

    pub(crate) fn position(&self) -> usize {
        self.position
    }

    fn truncated(&self, wanted: &str) -> FormatError {
        FormatError::corrupt(
            self.part,
            format!("truncated at byte {} while reading {wanted}", self.position),
        )
    }

    pub(crate) fn u8(&mut self) -> Result<u8, FormatError> {
        let byte = *self.bytes.get(self.position).ok_or_else(|| self.truncated("a byte"))?;
        self.position += 1;
        Ok(byte)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, FormatError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(FormatError::corrupt(self.part, "varint overflows 64 bits"));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(FormatError::corrupt(self.part, "varint longer than 10 bytes"))
    }

    /// A varint that must fit in memory as a length.
    pub(crate) fn length(&mut self) -> Result<usize, FormatError> {
        let value = self.varint()?;
        usize::try_from(value).map_err(|_| FormatError::corrupt(self.part, format!("length {value} is too large")))
    }

    pub(crate) fn u128(&mut self) -> Result<u128, FormatError> {
        let bytes = self.take(16)?;
        let mut value = [0u8; 16];
        value.copy_from_slice(bytes);
        Ok(u128::from_le_bytes(value))
    }

    /// A length-prefixed byte string (see [`put_bytes`]).
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], FormatError> {
        let len = self.length()?;
        self.take(len)
    }

    /// A count of entries that each take at least `min_entry_bytes`: a count
    /// the remaining bytes cannot hold is rejected before anything is
    /// allocated for it.
    pub(crate) fn count(&mut self, min_entry_bytes: usize) -> Result<usize, FormatError> {
        let count = self.length()?;
        let remaining = self.bytes.len() - self.position;
        if count.saturating_mul(min_entry_bytes.max(1)) > remaining {
            return Err(FormatError::corrupt(
                self.part,
                format!("{count} entries cannot fit in the {remaining} bytes left"),
            ));
        }
        Ok(count)
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    /// Fails if any bytes are left unread.
    pub(crate) fn finish(&self) -> Result<(), FormatError> {
        let left = self.bytes.len() - self.position;
        if left > 0 {
            return Err(FormatError::corrupt(
                self.part,
                format!("{left} unexpected bytes at the end"),
            ));
        }
        Ok(())
    }

    /// The next `len` bytes; fails (rather than allocating) if they are not there.
    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], FormatError> {
        let end = self
            .position
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| self.truncated(&format!("{len} bytes")))?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_every_width() {
        for value in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            let mut cursor = Cursor::new(&out, "test");
            assert_eq!(cursor.varint().unwrap(), value);
            assert_eq!(cursor.position(), out.len());
        }
    }

    #[test]
    fn overlong_and_truncated_varints_are_errors() {
        let overlong = [0xffu8; 11];
        assert!(Cursor::new(&overlong, "test").varint().is_err());
        let too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Cursor::new(&too_big, "test").varint().is_err());
        assert!(Cursor::new(&[0x80], "test").varint().is_err());
    }

    #[test]
    fn a_cursor_never_reads_past_the_end() {
        let mut cursor = Cursor::new(&[1, 2, 3], "test");
        assert!(cursor.take(4).is_err());
        assert!(cursor.take(usize::MAX).is_err());
        assert_eq!(cursor.take(3).unwrap(), &[1, 2, 3]);
        assert!(cursor.u8().is_err());
    }

    #[test]
    fn a_seal_detects_any_flipped_bit() {
        let mut stored = b"talus".to_vec();
        seal(&mut stored);
        assert_eq!(unseal(&stored, "test").unwrap(), b"talus");
        for index in 0..stored.len() {
            let mut flipped = stored.clone();
            flipped[index] ^= 0x10;
            assert!(unseal(&flipped, "test").is_err(), "flip at {index} went unnoticed");
        }
        assert!(unseal(&[1, 2, 3], "test").is_err());
    }
}
