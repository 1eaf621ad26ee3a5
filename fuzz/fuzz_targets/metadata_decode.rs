//! Any bytes as a manifest or compactions version: through the envelope
//! (magic, version, CRC32) and, to get past the checksum, as a bare payload
//! too. Errors or values, never a panic; a decoded value re-encodes to a
//! payload that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use talusdb::internals::decode_envelope;
use talusdb::manifest::{Compactions, Manifest, Versioned};

fn bare<P: Versioned + PartialEq>(data: &[u8]) {
    for version in [1, 2] {
        if let Ok(value) = P::decode(data, version) {
            let mut again = Vec::new();
            value.encode(&mut again);
            let decoded = P::decode(&again, value.format_version()).ok();
            assert!(decoded == Some(value), "a decoded value re-encodes");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = decode_envelope::<Manifest>(data);
    let _ = decode_envelope::<Compactions>(data);
    bare::<Manifest>(data);
    bare::<Compactions>(data);
});
