//! The benchmark's rows: keys, values that carry their row and version,
//! the check every answer goes through, and the seeded generator.

use bytes::Bytes;

use crate::CliError;

/// A small, fast, seedable generator (splitmix64).
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }

    pub fn chance(&mut self, probability: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < probability
    }
}

/// Bytes of every key.
pub const KEY_BYTES: u64 = 16;

pub fn key(i: u64) -> Bytes {
    Bytes::from(format!("{:016}", 2 * i))
}

pub fn absent_key(i: u64) -> Bytes {
    Bytes::from(format!("{:016}", 2 * i + 1))
}

pub fn value(i: u64, version: u32, size: usize, rng: &mut Rng) -> Bytes {
    let mut bytes = Vec::with_capacity(size);
    bytes.extend_from_slice(&i.to_le_bytes());
    bytes.extend_from_slice(&version.to_le_bytes());
    while bytes.len() < size {
        bytes.extend_from_slice(&rng.next().to_le_bytes());
    }
    bytes.truncate(size);
    Bytes::from(bytes)
}

/// Checks a value read for row `i`.
pub fn check_value(i: u64, found: Option<&Bytes>, size: usize) -> Result<(), CliError> {
    match found {
        None => Err(CliError::WrongAnswer(format!("row {i} (key {:016}) is missing", 2 * i))),
        Some(found) if found.len() != size => Err(CliError::WrongAnswer(format!(
            "row {i}: value of {} bytes, expected {size}",
            found.len()
        ))),
        Some(found) if found[..8] != i.to_le_bytes() => Err(CliError::WrongAnswer(format!(
            "row {i}: the value belongs to another key"
        ))),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_row_and_are_checked() {
        let mut rng = Rng(7);
        let made = value(42, 3, 100, &mut rng);
        assert_eq!(made.len(), 100);
        assert!(check_value(42, Some(&made), 100).is_ok());
        assert!(check_value(43, Some(&made), 100).is_err());
        assert!(check_value(42, Some(&made), 99).is_err());
        assert!(check_value(42, None, 100).is_err());
        assert_eq!(key(3), Bytes::from("0000000000000006"));
        assert_eq!(absent_key(3), Bytes::from("0000000000000007"));
    }
}
