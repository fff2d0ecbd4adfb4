//! SHA-256 and SHA-512, and HMAC-SHA256 over SHA-256, shared by the
//! software backends.
//!
//! One streaming layer serves both hashes: a partial block, a byte count and
//! the padding of FIPS 180-4 section 5.1. In the Cortex-M4 device-side size
//! probe of `benches/footprint` (`CompactCrypto`, rustc 1.95) it took 608
//! bytes less code than `sha2::Sha256` and `sha2::Sha512` with the `digest`
//! crate's `CoreWrapper` and block buffer.
//!
//! The compression functions are this crate's own, written for code size,
//! except SHA-256's on x86, x86-64 and AArch64 hosts, which is `sha2`'s: it
//! uses the CPU's SHA instructions where they exist. The own rounds are
//! rolled loops over a message schedule of 16 words, and both hashes read
//! one table of round constants, because SHA-256's are the high halves of
//! the first 64 of SHA-512's. In the same probe they took 660 bytes less
//! code and read-only data than the compact rounds of `sha2` 0.10.9 (its
//! `force-soft-compact` feature). On QEMU's Cortex-M4, SHA-256 of 4 KiB took
//! about 300,000 instructions against 277,760 with those rounds.
//! SHA-512 runs only over a signed message and its speed matters less.

use super::Sha256Hasher;

/// The SHA-512 initial hash value, FIPS 180-4 section 5.3.5.
const SHA512_INIT: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

/// Returns the high 32-bit halves of the first `N` of `words`.
const fn high_halves<const N: usize>(words: &[u64]) -> [u32; N] {
    let mut halves = [0; N];
    let mut i = 0;
    while i < N {
        halves[i] = (words[i] >> 32) as u32;
        i += 1;
    }
    halves
}

/// The SHA-256 initial hash value, FIPS 180-4 section 5.3.3: the high
/// halves of SHA-512's.
const SHA256_INIT: [u32; 8] = high_halves(&SHA512_INIT);

/// A hash state that absorbs message blocks of `BLOCK` bytes.
trait Compress<const BLOCK: usize> {
    fn compress(&mut self, block: &[u8; BLOCK]);
}

/// The SHA-256 round constants, FIPS 180-4 section 4.2.2: the high halves
/// of the first 64 of SHA-512's.
#[cfg(not(feature = "compact"))]
const SHA256_K: [u32; 64] = high_halves(&SHA512_K);

/// Returns the SHA-256 round constant of round `i`.
#[cfg(not(feature = "compact"))]
fn sha256_k(i: usize) -> u32 {
    SHA256_K[i]
}

/// Returns the SHA-256 round constant of round `i` from SHA-512's table,
/// so that a build with both hashes stores one table.
#[cfg(feature = "compact")]
fn sha256_k(i: usize) -> u32 {
    (SHA512_K[i] >> 32) as u32
}

/// SHA-256's compression function on CPUs that may have SHA instructions:
/// `sha2`'s, which uses them when the CPU has them. On an x86-64 host with
/// them, it hashed a 600 KiB image in 4 KiB parts at 1.69 GiB/s. The rolled
/// rounds below ran at 327 MiB/s (`cargo bench -p benches --bench hashing`).
#[cfg(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64"))]
impl Compress<64> for [u32; 8] {
    fn compress(&mut self, block: &[u8; 64]) {
        sha2::compress256(self, core::slice::from_ref(block.into()));
    }
}

/// SHA-256's compression function on other CPUs, such as microcontrollers.
#[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
impl Compress<64> for [u32; 8] {
    fn compress(&mut self, block: &[u8; 64]) {
        compress256_rolled(self, block);
    }
}

/// SHA-256's compression function, FIPS 180-4 section 6.2.2, written for
/// code size, with the message schedule kept as a ring of 16 words. The
/// eight working variables are locals, so that they stay in registers.
#[cfg_attr(
    any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64"),
    allow(dead_code)
)]
fn compress256_rolled(state: &mut [u32; 8], block: &[u8; 64]) {
    let mut w = [0u32; 16];
    for (i, word) in w.iter_mut().enumerate() {
        let mut bytes = [0; 4];
        bytes.copy_from_slice(&block[4 * i..4 * i + 4]);
        *word = u32::from_be_bytes(bytes);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for i in 0..64 {
        if i >= 16 {
            let w15 = w[(i + 1) % 16];
            let w2 = w[(i + 14) % 16];
            let s0 = w15.rotate_right(7) ^ w15.rotate_right(18) ^ (w15 >> 3);
            let s1 = w2.rotate_right(17) ^ w2.rotate_right(19) ^ (w2 >> 10);
            w[i % 16] = w[i % 16]
                .wrapping_add(s0)
                .wrapping_add(w[(i + 9) % 16])
                .wrapping_add(s1);
        }
        let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let ch = (e & f) ^ (!e & g);
        let t1 = h
            .wrapping_add(s1)
            .wrapping_add(ch)
            .wrapping_add(sha256_k(i))
            .wrapping_add(w[i % 16]);
        let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        let maj = (a & b) ^ (a & c) ^ (b & c);
        h = g;
        g = f;
        f = e;
        e = d.wrapping_add(t1);
        d = c;
        c = b;
        b = a;
        a = t1.wrapping_add(s0).wrapping_add(maj);
    }
    for (state, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *state = state.wrapping_add(v);
    }
}

/// The SHA-512 round constants, FIPS 180-4 section 4.2.3.
const SHA512_K: [u64; 80] = [
    0x428a2f98d728ae22,
    0x7137449123ef65cd,
    0xb5c0fbcfec4d3b2f,
    0xe9b5dba58189dbbc,
    0x3956c25bf348b538,
    0x59f111f1b605d019,
    0x923f82a4af194f9b,
    0xab1c5ed5da6d8118,
    0xd807aa98a3030242,
    0x12835b0145706fbe,
    0x243185be4ee4b28c,
    0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f,
    0x80deb1fe3b1696b1,
    0x9bdc06a725c71235,
    0xc19bf174cf692694,
    0xe49b69c19ef14ad2,
    0xefbe4786384f25e3,
    0x0fc19dc68b8cd5b5,
    0x240ca1cc77ac9c65,
    0x2de92c6f592b0275,
    0x4a7484aa6ea6e483,
    0x5cb0a9dcbd41fbd4,
    0x76f988da831153b5,
    0x983e5152ee66dfab,
    0xa831c66d2db43210,
    0xb00327c898fb213f,
    0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2,
    0xd5a79147930aa725,
    0x06ca6351e003826f,
    0x142929670a0e6e70,
    0x27b70a8546d22ffc,
    0x2e1b21385c26c926,
    0x4d2c6dfc5ac42aed,
    0x53380d139d95b3df,
    0x650a73548baf63de,
    0x766a0abb3c77b2a8,
    0x81c2c92e47edaee6,
    0x92722c851482353b,
    0xa2bfe8a14cf10364,
    0xa81a664bbc423001,
    0xc24b8b70d0f89791,
    0xc76c51a30654be30,
    0xd192e819d6ef5218,
    0xd69906245565a910,
    0xf40e35855771202a,
    0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8,
    0x1e376c085141ab53,
    0x2748774cdf8eeb99,
    0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63,
    0x4ed8aa4ae3418acb,
    0x5b9cca4f7763e373,
    0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc,
    0x78a5636f43172f60,
    0x84c87814a1f0ab72,
    0x8cc702081a6439ec,
    0x90befffa23631e28,
    0xa4506cebde82bde9,
    0xbef9a3f7b2c67915,
    0xc67178f2e372532b,
    0xca273eceea26619c,
    0xd186b8c721c0c207,
    0xeada7dd6cde0eb1e,
    0xf57d4f7fee6ed178,
    0x06f067aa72176fba,
    0x0a637dc5a2c898a6,
    0x113f9804bef90dae,
    0x1b710b35131c471b,
    0x28db77f523047d84,
    0x32caab7b40c72493,
    0x3c9ebe0a15c9bebc,
    0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6,
    0x597f299cfc657e2a,
    0x5fcb6fab3ad6faec,
    0x6c44198c4a475817,
];

/// SHA-512's compression function, FIPS 180-4 section 6.4.2. The working
/// variables and the next 16 words of the message schedule are arrays
/// shifted by one word each round, so that every access has a constant
/// index. Eight 64-bit words do not fit in a Cortex-M's registers anyway.
#[cfg(feature = "compact")]
impl Compress<128> for [u64; 8] {
    fn compress(&mut self, block: &[u8; 128]) {
        // The next 16 words of the message schedule, the current one first.
        let mut w = [0u64; 16];
        for (i, word) in w.iter_mut().enumerate() {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(&block[8 * i..8 * i + 8]);
            *word = u64::from_be_bytes(bytes);
        }
        let mut v = *self;
        for k in &SHA512_K {
            let [a, b, c, _, e, f, g, h] = v;
            let s1 = e.rotate_right(14) ^ e.rotate_right(18) ^ e.rotate_right(41);
            let ch = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(*k)
                .wrapping_add(w[0]);
            let s0 = a.rotate_right(28) ^ a.rotate_right(34) ^ a.rotate_right(39);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            for j in (1..8).rev() {
                v[j] = v[j - 1];
            }
            v[0] = t1.wrapping_add(s0).wrapping_add(maj);
            v[4] = v[4].wrapping_add(t1);
            // The word 16 rounds ahead. The last 16 rounds compute words
            // that no round uses.
            let s0 = w[1].rotate_right(1) ^ w[1].rotate_right(8) ^ (w[1] >> 7);
            let s1 = w[14].rotate_right(19) ^ w[14].rotate_right(61) ^ (w[14] >> 6);
            let next = w[0].wrapping_add(s0).wrapping_add(w[9]).wrapping_add(s1);
            for j in 0..15 {
                w[j] = w[j + 1];
            }
            w[15] = next;
        }
        for i in 0..8 {
            self[i] = self[i].wrapping_add(v[i]);
        }
    }
}

/// A Merkle-Damgård hash in progress: the hash state, the bytes of the
/// current block received so far and the number of bytes received.
///
/// The bytes of `block` past those received are zero, so the padding need
/// not clear them. Clearing a whole block takes the word-aligned `memclr`
/// that other code links anyway, where clearing the tail would add the
/// unaligned one: about 220 bytes in the boot-side size probe.
///
/// The byte count has 64 bits, so a message may have up to 2^64 - 1 bytes.
/// SHA-256 itself limits messages to 2^64 - 1 bits. It is kept as two
/// 32-bit halves, so that a SHA-256 state needs only 4-byte alignment and
/// the structures that hold one are copied with the word-aligned `memcpy`.
#[derive(Clone)]
struct Stream<S, const BLOCK: usize> {
    state: S,
    block: [u8; BLOCK],
    len_low: u32,
    len_high: u32,
}

impl<S: Compress<BLOCK>, const BLOCK: usize> Stream<S, BLOCK> {
    const fn new(state: S) -> Self {
        Self {
            state,
            block: [0; BLOCK],
            len_low: 0,
            len_high: 0,
        }
    }

    /// Feeds `data` through the block buffer, compressing each block as it
    /// fills.
    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            // BLOCK divides 2^32, so truncating the count first keeps the remainder.
            let buffered = self.len_low as usize % BLOCK;
            let (_, free) = self.block.split_at_mut(buffered);
            let take = free.len().min(data.len());
            let (head, rest) = data.split_at(take);
            free[..take].copy_from_slice(head);
            // `take` is at most BLOCK bytes.
            let (len_low, carry) = self.len_low.overflowing_add(take as u32);
            self.len_low = len_low;
            self.len_high = self.len_high.wrapping_add(u32::from(carry));
            data = rest;
            if (self.len_low as usize).is_multiple_of(BLOCK) {
                self.state.compress(&self.block);
                self.block = [0; BLOCK];
            }
        }
    }

    /// Feeds `data` one byte at a time: slower than [`Stream::update`] by
    /// several instructions a byte, and smaller.
    #[cfg(feature = "compact")]
    fn update_bytewise(&mut self, data: &[u8]) {
        for byte in data {
            // BLOCK divides 2^32, so truncating the count first keeps the remainder.
            self.block[self.len_low as usize % BLOCK] = *byte;
            let (len_low, carry) = self.len_low.overflowing_add(1);
            self.len_low = len_low;
            self.len_high = self.len_high.wrapping_add(u32::from(carry));
            if (self.len_low as usize).is_multiple_of(BLOCK) {
                self.state.compress(&self.block);
                self.block = [0; BLOCK];
            }
        }
    }

    /// Appends the padding of FIPS 180-4 section 5.1 and compresses the last
    /// block, which leaves the final hash state in `state` and the block
    /// buffer and byte count empty. The padding is a one bit, zeros, and the
    /// message length in bits in the last eighth of a block: 64 bits for
    /// SHA-256, 128 bits for SHA-512.
    fn finish(&mut self) {
        let len = u64::from(self.len_high) << 32 | u64::from(self.len_low);
        let buffered = self.len_low as usize % BLOCK;
        let (_, tail) = self.block.split_at_mut(buffered);
        tail[0] = 0x80;
        if buffered >= BLOCK - BLOCK / 8 {
            // The length field does not fit after the one bit, so it goes in a
            // block of its own.
            self.state.compress(&self.block);
            self.block = [0; BLOCK];
        }
        let (head, length) = self.block.split_at_mut(BLOCK - 8);
        length.copy_from_slice(&(len << 3).to_be_bytes());
        if BLOCK > 64 {
            // The top bits of SHA-512's 128-bit length field.
            head[BLOCK - 9] = (len >> 61) as u8;
        }
        self.state.compress(&self.block);
        self.block = [0; BLOCK];
        self.len_low = 0;
        self.len_high = 0;
    }
}

/// SHA-256 (FIPS 180-4), the [`Sha256Hasher`] of the software backends.
///
/// It takes 104 bytes of RAM: the hash state, one 64-byte block and the byte
/// count.
#[derive(Clone)]
pub struct Sha256(Stream<[u32; 8], 64>);

impl Sha256 {
    /// Starts a new digest.
    // Kept out of line because an inlined copy took about 20 bytes of code at
    // each of the half-dozen call sites of the Cortex-M4 device-side size probe.
    #[inline(never)]
    pub const fn new() -> Self {
        Self(Stream::new(SHA256_INIT))
    }

    /// Feeds more input.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// Finishes and returns the digest.
    pub fn finalize(mut self) -> [u8; 32] {
        self.output()
    }

    /// Finishes, returns the digest and starts a new one.
    pub fn finalize_reset(&mut self) -> [u8; 32] {
        let digest = self.output();
        self.0.state = SHA256_INIT;
        digest
    }

    /// Pads the message and returns the digest, leaving the block buffer
    /// and byte count empty.
    fn output(&mut self) -> [u8; 32] {
        self.0.finish();
        let mut out = [0; 32];
        for (bytes, word) in out.chunks_exact_mut(4).zip(&self.0.state) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// Starts a new digest, discarding any data fed so far.
    pub fn reset(&mut self) {
        self.0.state = SHA256_INIT;
        self.0.block = [0; 64];
        self.0.len_low = 0;
        self.0.len_high = 0;
    }

    /// Returns the SHA-256 digest of `data`.
    pub fn digest(data: &[u8]) -> [u8; 32] {
        let mut hasher = Self::new();
        hasher.update(data);
        hasher.finalize()
    }
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The state is derived from the message, which may be secret (an HMAC key).
        f.debug_struct("Sha256").finish_non_exhaustive()
    }
}

impl Sha256Hasher for Sha256 {
    fn update(&mut self, data: &[u8]) {
        Sha256::update(self, data);
    }

    fn finalize(self) -> [u8; 32] {
        Sha256::finalize(self)
    }
}

/// SHA-512 (FIPS 180-4), for Ed25519.
#[cfg(feature = "compact")]
pub(super) struct Sha512(Stream<[u64; 8], 128>);

#[cfg(feature = "compact")]
impl Sha512 {
    /// Starts a new digest.
    pub(super) fn new() -> Self {
        // Built zeroed and then given the initial value, so that
        // `compact::verify` builds it in place. Built from the initial value,
        // it was copied from a 192-byte temporary there (rustc 1.95).
        let mut hash = Self(Stream::new([0; 8]));
        hash.0.state = SHA512_INIT;
        hash
    }

    /// Feeds more input, one byte at a time. Ed25519 hashes only `R`, the
    /// public key and the signed message with SHA-512, so it takes the
    /// smaller and slower buffering.
    pub(super) fn update(&mut self, data: &[u8]) {
        self.0.update_bytewise(data);
    }

    /// Finishes and returns the digest. Feeding or finishing the hash again
    /// afterwards gives no meaningful digest. It takes `&mut self` rather
    /// than `self`, which saves a copy of the 200-byte state.
    pub(super) fn finalize(&mut self) -> [u8; 64] {
        self.0.finish();
        let mut out = [0; 64];
        for (bytes, word) in out.chunks_exact_mut(8).zip(&self.0.state) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

/// Lets a [`Crypto`](super::Crypto) implementation of the caller's own use
/// RustCrypto's `sha2::Sha256` as its hasher.
impl Sha256Hasher for sha2::Sha256 {
    fn update(&mut self, data: &[u8]) {
        sha2::Digest::update(self, data);
    }

    fn finalize(self) -> [u8; 32] {
        sha2::Digest::finalize(self).into()
    }
}

/// Computes SHA-256 of the concatenated `parts`. Unlike the default
/// `Crypto::sha256`, it finishes the hash in place instead of moving it.
#[cfg(any(feature = "rustcrypto", feature = "salty", feature = "compact"))]
pub(super) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.output()
}

/// Computes HMAC-SHA256 as RFC 2104 defines it, over [`Sha256`]. In the
/// Cortex-M4 device-side size probe it took about 230 bytes less code than
/// the `hmac` crate's `Hmac<sha2::Sha256>`. `tests/hmac.rs` checks it
/// against RFC 4231 and against that crate.
#[cfg(any(feature = "rustcrypto", feature = "salty", feature = "compact"))]
pub(super) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // A key longer than the 64-byte block is hashed first. The key or its
    // hash, padded with zeros to the block, is XORed with 0x36 bytes for the
    // inner hash and with 0x5c bytes for the outer one.
    let hashed_key;
    let key = if key.len() > 64 {
        hashed_key = Sha256::digest(key);
        &hashed_key[..]
    } else {
        key
    };
    let mut pad = [0x36u8; 64];
    for (pad, key) in pad.iter_mut().zip(key) {
        *pad ^= key;
    }
    // One hasher serves both hashes, finished in place, so that no 104-byte
    // state is copied.
    let mut hasher = Sha256::new();
    hasher.update(&pad);
    for part in parts {
        hasher.update(part);
    }
    let inner_hash = hasher.finalize_reset();
    for pad in &mut pad {
        *pad ^= 0x36 ^ 0x5c;
    }
    hasher.update(&pad);
    hasher.update(&inner_hash);
    hasher.output()
}

#[cfg(all(test, feature = "compact"))]
mod tests {
    extern crate std;

    use std::string::String;
    use std::vec::Vec;

    use proptest::collection::vec;
    use proptest::prelude::*;
    use sha2::Digest;

    use super::*;

    /// The FIPS 180-4 example messages of 0, 24, 448 and 896 bits.
    const MESSAGES: [&[u8]; 4] = [
        b"",
        b"abc",
        b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
        b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
    ];

    proptest! {
        /// The rolled SHA-256 rounds that microcontrollers run agree with
        /// `sha2`'s block function, which hosts run, on any state and block.
        #[test]
        fn rolled_sha256_rounds_match_sha2(
            state in any::<[u32; 8]>(),
            block in vec(any::<u8>(), 64),
        ) {
            let block: [u8; 64] = block.try_into().unwrap();
            let mut rolled = state;
            compress256_rolled(&mut rolled, &block);
            let mut reference = state;
            sha2::compress256(&mut reference, core::slice::from_ref(&block.into()));
            prop_assert_eq!(rolled, reference);
        }
    }

    fn sha256_of(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    fn sha512_of(data: &[u8]) -> String {
        let mut hasher = Sha512::new();
        hasher.update(data);
        hex::encode(hasher.finalize())
    }

    #[test]
    fn sha256_matches_fips_180_examples() {
        let expected = [
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
        ];
        for (message, expected) in MESSAGES.into_iter().zip(expected) {
            assert_eq!(sha256_of(message), expected, "{} bits", message.len() * 8);
        }
    }

    #[test]
    fn sha512_matches_fips_180_examples() {
        let expected = [
            "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce\
             47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            "204a8fc6dda82f0a0ced7beb8e08a41657c16ef468b228a8279be331a703c335\
             96fd15c13b1b07f9aa1d3bea57789ca031ad85c7a71dd70354ec631238ca3445",
            "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018\
             501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909",
        ];
        for (message, expected) in MESSAGES.into_iter().zip(expected) {
            assert_eq!(sha512_of(message), expected, "{} bits", message.len() * 8);
        }
    }

    #[test]
    fn reset_and_finalize_reset_start_anew() {
        let mut hasher = Sha256::new();
        hasher.update(b"discarded");
        hasher.reset();
        hasher.update(b"abc");
        assert_eq!(hasher.finalize_reset(), Sha256::digest(b"abc"));
        // A message that ends past the length field's position in its block.
        hasher.update(&[b'x'; 120]);
        assert_eq!(hasher.finalize_reset(), Sha256::digest(&[b'x'; 120]));
        assert_eq!(hasher.finalize(), Sha256::digest(b""));
    }

    #[test]
    fn sha256_of_parts_matches_whole() {
        assert_eq!(sha256(&[b"a", b"", b"bc"]), Sha256::digest(b"abc"));
        let long = [0x5a; 200];
        assert_eq!(sha256(&[&long[..70], &long[70..]]), Sha256::digest(&long));
        assert_eq!(sha256(&[]), Sha256::digest(b""));
    }

    #[test]
    fn sha256_takes_104_bytes() {
        assert_eq!(size_of::<Sha256>(), 104);
    }

    #[test]
    fn million_a_matches_fips_180_examples() {
        // Fed in 1,000 parts of 1,000 bytes, which cross block boundaries.
        let part = [b'a'; 1000];
        let mut sha256 = Sha256::new();
        let mut sha512 = Sha512::new();
        for _ in 0..1000 {
            sha256.update(&part);
            sha512.update(&part);
        }
        assert_eq!(
            hex::encode(sha256.finalize()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
        assert_eq!(
            hex::encode(sha512.finalize()),
            "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973eb\
             de0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b"
        );
    }

    #[test]
    fn every_length_up_to_300_matches_sha2() {
        // Covers an empty last block, a length field that does not fit after
        // the 0x80 byte, and exact multiples of both block sizes.
        let data: Vec<u8> = (0..=300u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..=data.len() {
            let message = &data[..len];
            assert_eq!(
                Sha256::digest(message),
                <[u8; 32]>::from(sha2::Sha256::digest(message)),
                "SHA-256 of {len} bytes"
            );
            let mut sha512 = Sha512::new();
            sha512.update(message);
            assert_eq!(
                sha512.finalize(),
                <[u8; 64]>::from(sha2::Sha512::digest(message)),
                "SHA-512 of {len} bytes"
            );
        }
    }

    /// A hash state that records the blocks it absorbs.
    struct Recorder(Vec<[u8; 128]>);

    impl Compress<128> for Recorder {
        fn compress(&mut self, block: &[u8; 128]) {
            self.0.push(*block);
        }
    }

    #[test]
    fn length_field_holds_bits_beyond_64() {
        // 2^61 + 1 bytes are 2^64 + 8 bits: the ninth byte from the end of
        // SHA-512's length field carries the 2^64.
        let mut stream = Stream::new(Recorder(Vec::new()));
        stream.len_low = 1;
        stream.len_high = 1 << 29;
        stream.block[0] = 0xab;
        stream.finish();
        let mut expected = [0; 128];
        expected[0] = 0xab;
        expected[1] = 0x80;
        expected[119] = 1;
        expected[127] = 8;
        assert_eq!(stream.state.0, [expected]);
    }

    proptest! {
        #[test]
        fn split_input_matches_sha2(
            data in vec(any::<u8>(), 0..700),
            cuts in vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(data.len() + 1)).collect();
            cuts.sort_unstable();
            let mut sha256 = Sha256::new();
            let mut sha512 = Sha512::new();
            let mut start = 0;
            for end in cuts.into_iter().chain([data.len()]) {
                sha256.update(&data[start..end]);
                sha512.update(&data[start..end]);
                start = end;
            }
            prop_assert_eq!(sha256.finalize(), <[u8; 32]>::from(sha2::Sha256::digest(&data)));
            prop_assert_eq!(sha512.finalize(), <[u8; 64]>::from(sha2::Sha512::digest(&data)));
        }
    }
}
