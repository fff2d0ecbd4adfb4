//! `name_from_utf8` accepts exactly the bytes that `core::str::from_utf8`
//! accepts, and reports invalid UTF-8 before a name that is too long.

use syssync_proto::{name_from_utf8, NameError, MAX_NAME_LEN};

/// Checks one input against the standard library's decoder.
fn agrees(bytes: &[u8]) {
    let expected = match core::str::from_utf8(bytes) {
        Err(_) => Err(NameError::NotUtf8),
        Ok(text) if text.len() > MAX_NAME_LEN => Err(NameError::TooLong),
        Ok(text) => Ok(text),
    };
    let got = name_from_utf8(bytes);
    assert_eq!(
        got.as_ref()
            .map(|name| name.as_str())
            .map_err(|error| *error),
        expected,
        "{bytes:02x?}"
    );
}

#[test]
fn short_sequences_match_core() {
    // Proves the decoder on all 16,843,008 inputs of one to three bytes:
    // every lead byte, continuation, overlong form, surrogate and truncation.
    for a in 0..=255u8 {
        agrees(&[a]);
        for b in 0..=255u8 {
            agrees(&[a, b]);
            for c in 0..=255u8 {
                agrees(&[a, b, c]);
            }
        }
    }
}

#[test]
fn four_byte_sequences_match_core() {
    // Proves the four-byte forms: every lead byte with every second byte,
    // and third and fourth bytes on both sides of each continuation boundary.
    let edges = [
        0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xF4, 0xFF,
    ];
    for a in 0..=255u8 {
        for b in 0..=255u8 {
            for c in edges {
                for d in edges {
                    agrees(&[a, b, c, d]);
                }
            }
        }
    }
}

#[test]
fn length_limit_follows_utf8_check() {
    // Proves the length limit in bytes, counted on multi-byte characters too,
    // and that invalid UTF-8 beyond the limit is reported as such.
    agrees(&[b'a'; 32]);
    agrees(&[b'a'; 33]);
    agrees("é".repeat(16).as_bytes());
    agrees(format!("{}a", "é".repeat(16)).as_bytes());
    agrees("€".repeat(11).as_bytes());
    agrees("𝄞".repeat(8).as_bytes());
    agrees(format!("{}a", "𝄞".repeat(8)).as_bytes());
    let mut long_invalid = [b'a'; 40];
    long_invalid[39] = 0xFF;
    assert_eq!(name_from_utf8(&long_invalid), Err(NameError::NotUtf8));
    assert_eq!(name_from_utf8(&[]).map(|name| name.len()), Ok(0));
}
