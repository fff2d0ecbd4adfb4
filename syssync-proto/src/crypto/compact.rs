//! [`CompactCrypto`]: Ed25519 verification in a few kilobytes of code, for
//! devices and bootloaders short of flash.
//!
//! Verification needs no secret, so nothing here has to run in constant
//! time. The code takes the smallest form of each step instead:
//!
//! - Field elements of GF(2^255 - 19) are sixteen signed limbs of 16 bits,
//!   as in TweetNaCl. Products go through one multiply-accumulate loop.
//! - Points are in extended coordinates (RFC 8032 section 5.1.4) and use one
//!   addition formula, which also doubles.
//! - `[s]B - [k]A` is computed in one pass over the bits of both scalars
//!   (Straus' method), with `B - A` computed once.
//! - SHA-512 is this crate's own, with rolled rounds.
//!
//! The strict checks of `ed25519-dalek`'s `verify_strict` come first, as in
//! `SaltyCrypto`, but small order is found with the field arithmetic here
//! instead of a list of encodings. `R` is then compared byte for byte
//! with the canonical encoding of the computed point, which rejects a
//! non-canonical `R` as well.

use super::sha::Sha512;
use super::strict::{is_canonical_scalar, GROUP_ORDER};
use super::Crypto;

/// SHA-256 and HMAC-SHA256 like `RustCrypto`, and Ed25519 verification
/// written for this crate, with the same strict checks as `ed25519-dalek`'s
/// `verify_strict`.
///
/// It is the smallest software backend: the Cortex-M4 size probes of
/// `benches/footprint` take about 4 KiB less code with it than with
/// `SaltyCrypto`.
///
/// One verification took 20 million instructions on an emulated Cortex-M4,
/// against 5.5 million for `SaltyCrypto` with `salty`'s assembly field
/// arithmetic. On an x86-64 host, where `salty` runs its portable
/// arithmetic, `CompactCrypto` was the faster of the two (0.5 ms against
/// 1.5 ms).
/// `docs/PERFORMANCE.md` has the figures and the commands.
///
/// `tests/ed25519.rs` checks it against the RFC 8032 vectors, Project
/// Wycheproof's EdDSA vectors, and `ed25519-dalek` on random keys, messages
/// and corruptions.
#[derive(Clone, Copy, Debug, Default)]
pub struct CompactCrypto;

impl Crypto for CompactCrypto {
    software_sha256!();

    fn verify_ed25519(&self, public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
        verify(public_key, message, signature)
    }
}

/// Checks `[s]B = R + [k]A` with `k = SHA-512(R || A || message) mod L`,
/// as RFC 8032 section 5.1.7 describes, after the strict checks.
#[inline(never)]
fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let (Some(r), Some(s)) = (signature.first_chunk(), signature.last_chunk()) else {
        return false;
    };
    if !is_canonical_scalar(s) || has_small_order(public_key) || has_small_order(r) {
        return false;
    }
    let mut minus_a = [[0; 16]; 4];
    if !decode_negated(public_key, &mut minus_a) {
        return false;
    }
    let mut hash = Sha512::new();
    hash.update(r);
    hash.update(public_key);
    hash.update(message);
    let k = reduce(&hash.finalize());
    encode(&straus(&k, &minus_a, s)) == *r
}

/// An element of GF(2^255 - 19): sixteen limbs of 16 bits, least
/// significant first. Between operations a limb may leave `0..2^16` by a
/// few bits either way; [`mul`] and [`encode_fe`] carry them back.
type Fe = [i32; 16];

/// A point (X : Y : Z : T) in extended coordinates: x = X/Z, y = Y/Z and
/// xy = T/Z.
type Point = [Fe; 4];

/// Twice the curve constant d = -121665/121666, little-endian: the point
/// addition needs 2d, and the other formulas here are scaled to use it.
const D2: [u8; 32] = [
    0x59, 0xf1, 0xb2, 0x26, 0x94, 0x9b, 0xd6, 0xeb, 0x56, 0xb1, 0x83, 0x82, 0x9a, 0x14, 0xe0, 0x00,
    0x30, 0xd1, 0xf3, 0xee, 0xf2, 0x80, 0x8e, 0x19, 0xe7, 0xfc, 0xdf, 0x56, 0xdc, 0xd9, 0x06, 0x24,
];

/// A square root of -1, 2^((p - 1) / 4), little-endian.
const SQRT_M1: [u8; 32] = [
    0xb0, 0xa0, 0x0e, 0x4a, 0x27, 0x1b, 0xee, 0xc4, 0x78, 0xe4, 0x2f, 0xad, 0x06, 0x18, 0x43, 0x2f,
    0xa7, 0xd7, 0xfb, 0x3d, 0x99, 0x00, 0x4d, 0x2b, 0x0b, 0xdf, 0xc1, 0x4f, 0x80, 0x24, 0x83, 0x2b,
];

/// The x coordinate of the base point B of RFC 8032 section 5.1,
/// little-endian.
const BASE_X: [u8; 32] = [
    0x1a, 0xd5, 0x25, 0x8f, 0x60, 0x2d, 0x56, 0xc9, 0xb2, 0xa7, 0x25, 0x95, 0x60, 0xc7, 0x2c, 0x69,
    0x5c, 0xdc, 0xd6, 0xfd, 0x31, 0xe2, 0xa4, 0xc0, 0xfe, 0x53, 0x6e, 0xcd, 0xd3, 0x36, 0x69, 0x21,
];

/// Reads 255 bits, little-endian, and ignores the top bit of the last byte.
/// A value from p to 2^255 - 1 is read as itself minus p.
fn decode_fe(bytes: &[u8; 32]) -> Fe {
    let mut out = [0; 16];
    for (limb, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *limb = i32::from(pair[0]) | i32::from(pair[1]) << 8;
    }
    out[15] &= 0x7fff;
    out
}

fn add(a: &Fe, b: &Fe) -> Fe {
    let mut out = *a;
    for (out, b) in out.iter_mut().zip(b) {
        *out += b;
    }
    out
}

fn sub(a: &Fe, b: &Fe) -> Fe {
    let mut out = *a;
    for (out, b) in out.iter_mut().zip(b) {
        *out -= b;
    }
    out
}

/// Moves everything above 16 bits of each limb into the next one, and what
/// is above the top limb, times 38, into the first (2^256 = 38 mod p).
fn carry(limbs: &mut Fe) {
    for i in 0..16 {
        let high = limbs[i] >> 16;
        limbs[i] -= high << 16;
        if i < 15 {
            limbs[i + 1] += high;
        } else {
            limbs[0] += 38 * high;
        }
    }
}

/// Multiplies two elements. The result's limbs are in `0..2^16`, except
/// that the first may be up to 38 outside that range.
///
/// Each input is a result of [`mul`], or a sum or difference of two such
/// results or constants, so its limbs stay within ±2^18 and its value
/// within ±2^258. A product of two limbs is then below 2^36 and a sum of at
/// most 16 products below 2^40, in `i64`. Carried through the 512-bit
/// product, every limb but the top one is in `0..2^16` and the top one, the
/// product over 2^496, is within ±2^20, so folding the upper half onto the
/// lower one times 38 (2^256 = 38 mod p) fits in `i32`.
fn mul(a: &Fe, b: &Fe) -> Fe {
    let mut wide = [0i64; 32];
    for (i, a) in a.iter().enumerate() {
        for (wide, b) in wide[i..i + 16].iter_mut().zip(b) {
            *wide += i64::from(*a) * i64::from(*b);
        }
    }
    let mut high = 0;
    for limb in &mut wide[..31] {
        *limb += high;
        high = *limb >> 16;
        *limb -= high << 16;
    }
    wide[31] += high;
    let mut limbs = [0; 16];
    for (i, limb) in limbs.iter_mut().enumerate() {
        *limb = (wide[i] + 38 * wide[i + 16]) as i32;
    }
    // The first pass leaves the top carry within ±2^11, the second one
    // within ±1.
    carry(&mut limbs);
    carry(&mut limbs);
    limbs
}

fn square(a: &Fe) -> Fe {
    mul(a, a)
}

/// Raises `a` to the power whose binary form is `high_bit + 1` ones with
/// the bits set in `zeros` cleared. Both exponents that verification needs,
/// p - 2 and (p - 5) / 8, have that form with zeros only in the low 8 bits.
fn pow(a: &Fe, high_bit: u32, zeros: u8) -> Fe {
    let mut out = *a;
    for bit in (0..high_bit).rev() {
        out = square(&out);
        if bit >= 8 || zeros >> bit & 1 == 0 {
            out = mul(&out, a);
        }
    }
    out
}

/// 1/a as a^(p - 2), where p - 2 = 2^255 - 21 has ones in bits 0 to 254
/// except bits 2 and 4.
fn invert(a: &Fe) -> Fe {
    pow(a, 254, 0b1_0100)
}

/// a^((p - 5) / 8), where (p - 5) / 8 = 2^252 - 3 has ones in bits 0 to 251
/// except bit 1.
fn pow_p58(a: &Fe) -> Fe {
    pow(a, 251, 0b10)
}

/// Returns the canonical 32-byte encoding: the value reduced below p.
fn encode_fe(a: &Fe) -> [u8; 32] {
    let mut t = *a;
    carry(&mut t);
    carry(&mut t);
    carry(&mut t);
    // Now 0 <= t < 2^256 with limbs in 0..2^16. Bit 255 folds back as 19
    // (2^255 = 19 mod p), which leaves t at most 2^255 + 18, below 2p.
    t[0] += 19 * (t[15] >> 15);
    t[15] &= 0x7fff;
    carry(&mut t);
    // t >= p exactly when t + 19 reaches 2^255, and then t - p is t + 19
    // without that bit. The sum stays below 2^256, so `carry` folds nothing.
    let mut m = t;
    m[0] += 19;
    carry(&mut m);
    if m[15] >> 15 != 0 {
        m[15] &= 0x7fff;
        t = m;
    }
    let mut out = [0u8; 32];
    for (pair, limb) in out.chunks_exact_mut(2).zip(t) {
        pair.copy_from_slice(&(limb as u16).to_le_bytes());
    }
    out
}

fn is_zero(a: &Fe) -> bool {
    encode_fe(a) == [0; 32]
}

fn is_odd(a: &Fe) -> bool {
    encode_fe(a)[0] & 1 == 1
}

/// Adds two points with the unified formula of RFC 8032 section 5.1.4,
/// which holds for doubling too.
fn point_add(p: &Point, q: &Point) -> Point {
    let d2 = decode_fe(&D2);
    let a = mul(&sub(&p[1], &p[0]), &sub(&q[1], &q[0]));
    let b = mul(&add(&p[1], &p[0]), &add(&q[1], &q[0]));
    let c = mul(&mul(&p[3], &q[3]), &d2);
    let d = {
        let zz = mul(&p[2], &q[2]);
        add(&zz, &zz)
    };
    let e = sub(&b, &a);
    let f = sub(&d, &c);
    let g = add(&d, &c);
    let h = add(&b, &a);
    [mul(&e, &f), mul(&h, &g), mul(&g, &f), mul(&e, &h)]
}

/// Decodes a point as RFC 8032 section 5.1.3 describes and writes its
/// negative to `out`, or returns `false` if no point has that encoding. As
/// in `ed25519-dalek`, y may be given in a non-canonical form (y + p).
///
/// It writes into the caller's point because returning an `Option<Point>`
/// took a 256-byte copy out of the `Option`.
fn decode_negated(bytes: &[u8; 32], out: &mut Point) -> bool {
    let y = decode_fe(bytes);
    // x^2 = u / v with u = 2 y^2 - 2 and v = 2d y^2 + 2.
    let y2 = square(&y);
    let mut u = add(&y2, &y2);
    u[0] -= 2;
    let mut v = mul(&y2, &decode_fe(&D2));
    v[0] += 2;
    // Candidate root x = u v^3 (u v^7)^((p - 5) / 8).
    let v3 = mul(&square(&v), &v);
    let uv7 = mul(&mul(&u, &v3), &mul(&v3, &v));
    let mut x = mul(&mul(&u, &v3), &pow_p58(&uv7));
    let vx2 = mul(&v, &square(&x));
    if !is_zero(&sub(&vx2, &u)) {
        // A candidate that squares to -u/v times a root of -1 is the root.
        // If it squares to neither u/v nor -u/v, u/v is not a square.
        if !is_zero(&add(&vx2, &u)) {
            return false;
        }
        x = mul(&x, &decode_fe(&SQRT_M1));
    }
    // The point's x is the root whose parity the sign bit gives; its
    // negative is the root of the other parity.
    if is_odd(&x) == (bytes[31] >> 7 == 1) {
        for limb in &mut x {
            *limb = -*limb;
        }
    }
    *out = affine_point(x, y);
    true
}

/// Returns `true` if `encoding`, whatever its sign bit, names a point of
/// order 1, 2, 4 or 8, the same encodings that `ed25519_strict_checks` lists.
///
/// Such a point has y = 0, y = ±1, or x^2 = -y^2 (its double has y = 0).
/// Putting x^2 = -y^2 into the curve equation gives d y^4 + 2 y^2 - 1 = 0,
/// and only one of its two roots for y^2 is a square. So y is a root of
/// y^2 (y^2 - 1) (d y^4 + 2 y^2 - 1) exactly for these points. Decoding
/// reduces y modulo p, which also catches the non-canonical encodings p and
/// p + 1.
fn has_small_order(encoding: &[u8; 32]) -> bool {
    let y2 = square(&decode_fe(encoding));
    let y4 = square(&y2);
    // Twice d y^4 + 2 y^2 - 1, as y^2 (2d y^2 + 4) - 2.
    let mut inner = mul(&y2, &decode_fe(&D2));
    inner[0] += 4;
    let mut quartic = mul(&y2, &inner);
    quartic[0] -= 2;
    // y^2 (y^2 - 1) is y^4 - y^2.
    is_zero(&mul(&sub(&y4, &y2), &quartic))
}

/// Returns the point with affine coordinates `x` and `y` (Z = 1).
fn affine_point(x: Fe, y: Fe) -> Point {
    let mut z = [0; 16];
    z[0] = 1;
    let t = mul(&x, &y);
    [x, y, z, t]
}

/// Returns the canonical encoding of a point: y, with the parity of x in
/// the top bit.
fn encode(p: &Point) -> [u8; 32] {
    let z_inverse = invert(&p[2]);
    let mut out = encode_fe(&mul(&p[1], &z_inverse));
    if is_odd(&mul(&p[0], &z_inverse)) {
        out[31] |= 0x80;
    }
    out
}

/// Returns `[k]A + [s]B` for the scalars `k` and `s` (little-endian, below
/// 2^256) and the point `a`, doubling once per bit and adding `A`, `B` or
/// `A + B` where either scalar has a one.
fn straus(k: &[u8; 32], a: &Point, s: &[u8; 32]) -> Point {
    let x = decode_fe(&BASE_X);
    // B's y = 4/5 is 0x6666...6658, set in limbs rather than decoded from
    // a stored copy.
    let mut y = [0x6666; 16];
    y[0] = 0x6658;
    let base = affine_point(x, y);
    let both = point_add(a, &base);
    let mut y = [0; 16];
    y[0] = 1;
    let mut out = affine_point([0; 16], y);
    for bit in (0..256).rev() {
        out = point_add(&out, &out);
        let k_bit = k[bit / 8] >> (bit % 8) & 1 == 1;
        let s_bit = s[bit / 8] >> (bit % 8) & 1 == 1;
        let addend = match (k_bit, s_bit) {
            (true, true) => &both,
            (true, false) => a,
            (false, true) => &base,
            (false, false) => continue,
        };
        out = point_add(&out, addend);
    }
    out
}

/// Reduces a 512-bit little-endian number modulo the group order L, one
/// bit at a time from the top: the remainder is doubled, the next bit added
/// and L subtracted if the result is not below L. The remainder stays below
/// L < 2^253, so doubling it fits in 256 bits.
///
/// This is the smallest form, not the fastest. On QEMU's Cortex-M4 it took
/// about 320,000 instructions more than TweetNaCl's byte-wise `modL`, 1.3 %
/// of a verification.
fn reduce(wide: &[u8; 64]) -> [u8; 32] {
    let mut rest = [0u8; 32];
    for bit in (0..512).rev() {
        let mut carry = wide[bit / 8] >> (bit % 8) & 1;
        for byte in &mut rest {
            let top = *byte >> 7;
            *byte = *byte << 1 | carry;
            carry = top;
        }
        let mut difference = [0u8; 32];
        let mut borrow = 0;
        for ((difference, byte), order) in difference.iter_mut().zip(&rest).zip(&GROUP_ORDER) {
            let value = i32::from(*byte) - i32::from(*order) - borrow;
            *difference = value as u8;
            borrow = value >> 8 & 1;
        }
        if borrow == 0 {
            rest = difference;
        }
    }
    rest
}

#[cfg(test)]
mod tests {
    use curve25519_dalek::constants::{ED25519_BASEPOINT_COMPRESSED, ED25519_BASEPOINT_POINT};
    use curve25519_dalek::{EdwardsPoint, Scalar};
    use proptest::prelude::*;

    use super::*;

    /// Returns the negative of the point that `bytes` encodes, if any.
    fn decode_negated_point(bytes: &[u8; 32]) -> Option<Point> {
        let mut point = [[0; 16]; 4];
        decode_negated(bytes, &mut point).then_some(point)
    }

    /// The number 1.
    const ONE: Fe = {
        let mut one = [0; 16];
        one[0] = 1;
        one
    };

    /// The y coordinate of B, 4/5, little-endian. It is also B's encoding,
    /// since x is even.
    const BASE_Y: [u8; 32] = {
        let mut y = [0x66; 32];
        y[0] = 0x58;
        y
    };

    /// p = 2^255 - 19, little-endian.
    const P: [u8; 32] = {
        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        p
    };

    fn small(value: u32) -> Fe {
        let mut bytes = [0; 32];
        bytes[..4].copy_from_slice(&value.to_le_bytes());
        decode_fe(&bytes)
    }

    fn negate(p: &Point) -> Point {
        let zero = [0; 16];
        [sub(&zero, &p[0]), p[1], p[2], sub(&zero, &p[3])]
    }

    #[test]
    fn constants_are_the_curve_constants() {
        // 2d * 121666 = -2 * 121665.
        let d2 = decode_fe(&D2);
        assert_eq!(
            encode_fe(&mul(&d2, &small(121_666))),
            encode_fe(&sub(&[0; 16], &small(2 * 121_665)))
        );
        // SQRT_M1^2 = -1.
        let i = decode_fe(&SQRT_M1);
        assert_eq!(encode_fe(&square(&i)), encode_fe(&sub(&[0; 16], &ONE)));
        // B as given here encodes to dalek's base point, and decodes back.
        let base = [
            decode_fe(&BASE_X),
            decode_fe(&BASE_Y),
            ONE,
            mul(&decode_fe(&BASE_X), &decode_fe(&BASE_Y)),
        ];
        assert_eq!(encode(&base), ED25519_BASEPOINT_COMPRESSED.to_bytes());
        let minus_base = decode_negated_point(&BASE_Y).expect("B decodes");
        assert_eq!(encode(&negate(&minus_base)), BASE_Y);
    }

    #[test]
    fn field_encoding_is_canonical() {
        let mut p_plus = P;
        assert_eq!(encode_fe(&decode_fe(&p_plus)), [0; 32]);
        p_plus[0] += 1;
        assert_eq!(encode_fe(&decode_fe(&p_plus)), encode_fe(&ONE));
        // 2^255 - 1 = p + 18.
        assert_eq!(encode_fe(&decode_fe(&[0xff; 32])), encode_fe(&small(18)));
        // 2^256 - 1 = 2p + 37, whose bit 255 folds to a value above p.
        assert_eq!(encode_fe(&[0xffff; 16]), encode_fe(&small(37)));
        let mut p_minus_one = P;
        p_minus_one[0] -= 1;
        assert_eq!(encode_fe(&sub(&[0; 16], &ONE)), p_minus_one);
        assert_eq!(encode_fe(&decode_fe(&p_minus_one)), p_minus_one);
        // The sign bit is not part of the value.
        let mut signed_one = encode_fe(&ONE);
        signed_one[31] |= 0x80;
        assert_eq!(encode_fe(&decode_fe(&signed_one)), encode_fe(&ONE));
    }

    #[test]
    fn inverse_and_square_root_hold() {
        for value in [1, 2, 19, 121_665, 0xffff_ffff] {
            let a = small(value);
            assert_eq!(encode_fe(&mul(&a, &invert(&a))), encode_fe(&ONE), "{value}");
        }
        // No point has y = 2: (4 - 1) / (4d + 1) is not a square.
        let mut two = [0; 32];
        two[0] = 2;
        assert!(decode_negated_point(&two).is_none());
        assert!(curve25519_dalek::edwards::CompressedEdwardsY(two)
            .decompress()
            .is_none());
    }

    #[test]
    fn small_order_matches_strict_list() {
        // Every listed encoding, with both sign bits, and the encodings of
        // ordinary points, mixed ones among them.
        let base = ED25519_BASEPOINT_POINT;
        let points = curve25519_dalek::constants::EIGHT_TORSION
            .iter()
            .flat_map(|torsion| {
                [
                    torsion.compress().to_bytes(),
                    (base + torsion).compress().to_bytes(),
                ]
            });
        let listed = crate::crypto::strict::SMALL_ORDER_Y.into_iter();
        for encoding in listed.chain(points).chain([[0xff; 32]]) {
            let mut flipped = encoding;
            flipped[31] ^= 0x80;
            for encoding in [encoding, flipped] {
                let expected = crate::crypto::strict::has_small_order(&encoding);
                assert_eq!(has_small_order(&encoding), expected, "{encoding:02x?}");
            }
        }
    }

    #[test]
    fn reduce_of_extreme_inputs() {
        for wide in [[0; 64], [0xff; 64], [0x80; 64], [0x7f; 64]] {
            let expected = Scalar::from_bytes_mod_order_wide(&wide).to_bytes();
            assert_eq!(reduce(&wide), expected, "{wide:02x?}");
        }
    }

    proptest! {
        #[test]
        fn small_order_matches_strict_list_for_any_bytes(encoding in any::<[u8; 32]>()) {
            prop_assert_eq!(
                has_small_order(&encoding),
                crate::crypto::strict::has_small_order(&encoding)
            );
        }

        #[test]
        fn reduce_matches_dalek(wide in any::<[u8; 64]>()) {
            prop_assert_eq!(reduce(&wide), Scalar::from_bytes_mod_order_wide(&wide).to_bytes());
        }

        #[test]
        fn points_decode_like_dalek(scalar in any::<[u8; 32]>(), sign in any::<bool>()) {
            let point = EdwardsPoint::mul_base(&Scalar::from_bytes_mod_order(scalar));
            let encoding = point.compress().to_bytes();
            let minus = decode_negated_point(&encoding).expect("a point's encoding decodes");
            prop_assert_eq!(encode(&minus), (-point).compress().to_bytes());
            prop_assert_eq!(encode(&negate(&minus)), encoding);
            // The same y with the other sign is the point's negative, or no
            // point at all where x = 0.
            let mut flipped = encoding;
            flipped[31] ^= u8::from(sign) << 7;
            if let Some(decoded) = decode_negated_point(&flipped) {
                let expected = if sign { point } else { -point };
                prop_assert_eq!(encode(&decoded), expected.compress().to_bytes());
            }
        }

        #[test]
        fn straus_matches_dalek(k in any::<[u8; 32]>(), a in any::<[u8; 32]>(), s in any::<[u8; 32]>()) {
            let k = Scalar::from_bytes_mod_order(k);
            let s = Scalar::from_bytes_mod_order(s);
            let point = EdwardsPoint::mul_base(&Scalar::from_bytes_mod_order(a))
                + curve25519_dalek::constants::EIGHT_TORSION[1];
            let minus = decode_negated_point(&point.compress().to_bytes()).expect("decodes");
            let expected = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &point, &s);
            prop_assert_eq!(
                encode(&straus(&k.to_bytes(), &negate(&minus), &s.to_bytes())),
                expected.compress().to_bytes()
            );
        }
    }

    #[test]
    fn straus_of_zero_scalars_is_the_identity() {
        let minus_base = decode_negated_point(&BASE_Y).expect("B decodes");
        let mut identity = [0; 32];
        identity[0] = 1;
        assert_eq!(encode(&straus(&[0; 32], &minus_base, &[0; 32])), identity);
        // [1](-B) + [1]B is the identity too.
        let mut scalar_one = [0; 32];
        scalar_one[0] = 1;
        assert_eq!(
            encode(&straus(&scalar_one, &minus_base, &scalar_one)),
            identity
        );
        assert_eq!(
            encode(&straus(&[0; 32], &minus_base, &scalar_one)),
            ED25519_BASEPOINT_POINT.compress().to_bytes()
        );
    }
}
