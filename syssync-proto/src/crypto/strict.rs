//! The strict checks of `ed25519-dalek`'s `verify_strict` that the small
//! Ed25519 backends apply before their own verification: `s` must be below
//! the group order, and neither the public key nor `R` may encode a point of
//! small order.

/// Applies the checks that `ed25519-dalek`'s `verify_strict` adds to the
/// RFC 8032 equation, and returns `true` if the signature passes them: its
/// `s` is below the group order, and neither `public_key` nor its `R`
/// encodes a point of small order.
///
/// Every software backend applies them. A [`Crypto`](super::Crypto)
/// implementation of its own, such as one over a hardware engine, calls
/// this before its own verification to accept exactly the signatures that
/// the software backends accept.
pub fn ed25519_strict_checks(public_key: &[u8; 32], signature: &[u8; 64]) -> bool {
    let (Some(r), Some(s)) = (signature.first_chunk(), signature.last_chunk()) else {
        return false;
    };
    is_canonical_scalar(s) && !has_small_order(public_key) && !has_small_order(r)
}

/// The order of the Ed25519 base point, 2^252 + 27742317777372353535851937790883648493,
/// little-endian.
pub(super) const GROUP_ORDER: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
];

/// Returns `true` if the little-endian scalar is below the group order, as
/// RFC 8032 section 5.1.7 requires of a signature's `s`. A larger `s` would
/// let anyone turn a valid signature into a second one.
pub(super) fn is_canonical_scalar(scalar: &[u8; 32]) -> bool {
    for (byte, order) in scalar.iter().zip(GROUP_ORDER.iter()).rev() {
        if byte != order {
            return byte < order;
        }
    }
    false
}

/// The y coordinates, as 255-bit little-endian encodings, of the eight points
/// of order 1, 2, 4 and 8, including the non-canonical encodings p and p + 1
/// of y = 0 and y = 1. A point's encoding adds the sign of x in the top bit.
pub(super) const SMALL_ORDER_Y: [[u8; 32]; 7] = [
    // y = 0: the two points of order 4.
    [0x00; 32],
    // y = 1: the identity.
    [
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00,
    ],
    // Two points of order 8.
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    // The other two points of order 8.
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
    // y = p - 1: the point of order 2.
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    // y = p, a non-canonical encoding of y = 0.
    [
        0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    // y = p + 1, a non-canonical encoding of y = 1.
    [
        0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
];

/// Returns `true` if `encoding` names a point of small order (whatever its
/// sign bit), which `ed25519-dalek`'s `verify_strict` rejects as a public key
/// and as `R`. With such a key, one signature verifies for many messages.
///
/// Only y = 0 and y = 1 have non-canonical encodings among these points,
/// because y + p fits in 255 bits only for y < 19.
pub(super) fn has_small_order(encoding: &[u8; 32]) -> bool {
    SMALL_ORDER_Y
        .iter()
        .any(|y| encoding[..31] == y[..31] && (encoding[31] & 0x7f) == y[31])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_order_list_matches_dalek_torsion() {
        // Every encoding of the eight torsion points is in the list, with
        // either sign bit, and every listed value decodes to a small-order
        // point or to none.
        for point in curve25519_dalek::constants::EIGHT_TORSION {
            let encoding = point.compress().to_bytes();
            assert!(has_small_order(&encoding), "{encoding:02x?}");
            let mut flipped = encoding;
            flipped[31] ^= 0x80;
            assert!(has_small_order(&flipped), "{flipped:02x?}");
        }
        for y in SMALL_ORDER_Y {
            let point = curve25519_dalek::edwards::CompressedEdwardsY(y).decompress();
            assert!(point.is_none_or(|point| point.is_small_order()), "{y:02x?}");
        }
    }

    #[test]
    fn small_order_rejects_ordinary_points() {
        let base = curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
        let encoding = base.compress().to_bytes();
        assert!(!has_small_order(&encoding));
        let mixed = base + curve25519_dalek::constants::EIGHT_TORSION[1];
        assert!(!has_small_order(&mixed.compress().to_bytes()));
    }

    #[test]
    fn scalar_canonical_at_group_order() {
        let mut below = GROUP_ORDER;
        below[0] -= 1;
        assert!(is_canonical_scalar(&below));
        assert!(!is_canonical_scalar(&GROUP_ORDER));
        let mut above = GROUP_ORDER;
        above[0] += 1;
        assert!(!is_canonical_scalar(&above));
        assert!(is_canonical_scalar(&[0; 32]));
        assert!(!is_canonical_scalar(&[0xff; 32]));
        // 2^252 is below the group order, 2^253 is above it.
        let mut high = [0u8; 32];
        high[31] = 0x10;
        assert!(is_canonical_scalar(&high));
        high[31] = 0x20;
        assert!(!is_canonical_scalar(&high));
    }
}
