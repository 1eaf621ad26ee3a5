//! How keys and values are given on the command line and printed: UTF-8
//! text, hex, base64, or (a value only) the bytes as they are. Every
//! output form can be read back to the same bytes.

use std::ffi::OsStr;

use crate::CliError;

/// The form of keys or values (`--key-format`, `--value-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// Text. An argument must be valid UTF-8; output that is not UTF-8 is
    /// escaped (TSV) or carried as base64 (JSON).
    #[default]
    Utf8,
    /// Two hex digits per byte (`0x` prefix optional on input).
    Hex,
    /// Standard base64 with padding.
    Base64,
    /// The bytes exactly as they are: an argument's bytes as the OS passed
    /// them; on output (`get` only), the value with no newline after it.
    Raw,
}

impl Encoding {
    /// The bytes `arg` stands for; `what` names the argument in errors.
    pub fn decode(self, what: &str, arg: &OsStr) -> Result<Vec<u8>, CliError> {
        let text = || {
            arg.to_str().ok_or_else(|| {
                CliError::Usage(format!(
                    "{what}: not valid UTF-8 (use --{what}-format raw, hex or base64)"
                ))
            })
        };
        match self {
            Encoding::Utf8 => Ok(text()?.as_bytes().to_vec()),
            Encoding::Raw => Ok(arg.as_encoded_bytes().to_vec()),
            Encoding::Hex => {
                let text = text()?;
                hex_decode(text.strip_prefix("0x").unwrap_or(text))
                    .ok_or_else(|| CliError::Usage(format!("{what}: {text:?} is not hex (two digits per byte)")))
            }
            Encoding::Base64 => {
                let text = text()?;
                base64_decode(text).ok_or_else(|| CliError::Usage(format!("{what}: {text:?} is not base64")))
            }
        }
    }

    /// `bytes` as one field of text: hex, base64, or UTF-8 text with
    /// `escape` applied (`None` when the bytes are not UTF-8 and the caller
    /// must pick another form).
    pub fn encode_text(self, bytes: &[u8]) -> Option<String> {
        match self {
            Encoding::Hex => Some(hex_encode(bytes)),
            Encoding::Base64 => Some(base64_encode(bytes)),
            Encoding::Utf8 | Encoding::Raw => std::str::from_utf8(bytes).ok().map(str::to_owned),
        }
    }
}

/// `bytes` as a TSV field that [`tsv_unescape`] reads back: backslash,
/// tab, newline and carriage return as `\\`, `\t`, `\n`, `\r`, every other
/// ASCII control character and every byte that is not part of valid UTF-8
/// as `\xNN`.
pub fn tsv_escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for character in chunk.valid().chars() {
            match character {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                control if control.is_ascii_control() => out.push_str(&format!("\\x{:02x}", control as u32)),
                other => out.push(other),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// The bytes a field written by [`tsv_escape`] stands for; `None` for a
/// malformed escape.
pub fn tsv_unescape(field: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.bytes();
    while let Some(byte) = bytes.next() {
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        match bytes.next()? {
            b'\\' => out.push(b'\\'),
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'x' => {
                let digits = [bytes.next()?, bytes.next()?];
                out.extend(hex_decode(std::str::from_utf8(&digits).ok()?)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

pub fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let word = chunk
            .iter()
            .enumerate()
            .fold(0u32, |word, (at, byte)| word | u32::from(*byte) << (16 - 8 * at));
        for at in 0..4 {
            if at <= chunk.len() {
                out.push(BASE64[(word >> (18 - 6 * at) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut word = 0u32;
    let mut bits = 0;
    for character in text.bytes() {
        let value = BASE64.iter().position(|symbol| *symbol == character)? as u32;
        word = word << 6 | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((word >> bits) as u8);
        }
    }
    // What is left over must be padding zeros, less than a byte.
    (bits < 6 && word & ((1 << bits) - 1) == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_reads_back_to_the_same_bytes() {
        let samples: [&[u8]; 6] = [
            b"",
            b"a",
            b"ab",
            b"abc",
            b"tab\there\nnew\\line\r\x7f",
            &[0, 0xff, 0xfe, b'x', 0xc3],
        ];
        for bytes in samples {
            for encoding in [Encoding::Hex, Encoding::Base64] {
                let text = encoding.encode_text(bytes).expect("always text");
                let back = encoding.decode("key", OsStr::new(&text)).expect("decodes");
                assert_eq!(back, bytes, "{encoding:?} {text}");
            }
            let escaped = tsv_escape(bytes);
            assert!(!escaped.chars().any(|c| c.is_ascii_control()), "{escaped}");
            assert_eq!(tsv_unescape(&escaped).as_deref(), Some(bytes), "{escaped}");
        }
        assert_eq!(base64_encode(b"talus"), "dGFsdXM=");
        assert_eq!(base64_decode("dGFsdXM").as_deref(), Some(&b"talus"[..]));
        assert_eq!(hex_encode(&[1, 0xab]), "01ab");
    }

    #[test]
    fn malformed_input_is_a_usage_error_naming_the_argument() {
        for (encoding, text) in [
            (Encoding::Hex, "abc"),
            (Encoding::Hex, "zz"),
            (Encoding::Base64, "a$=="),
        ] {
            match encoding.decode("key", OsStr::new(text)) {
                Err(CliError::Usage(message)) => assert!(message.starts_with("key:"), "{message}"),
                other => panic!("{encoding:?} {text}: {other:?}"),
            }
        }
        assert_eq!(tsv_unescape("bad\\q"), None);
    }
}
