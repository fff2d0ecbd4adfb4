//! Known-answer check of the size probes' crypto on an emulated Cortex-M4.
//!
//! The size probes hash with syssync-proto's own SHA-2 rounds and verify
//! Ed25519 with its `CompactCrypto`. `SaltyCrypto`'s
//! `salty` crate switches to its own assembly field arithmetic on Cortex-M4.
//! Host tests run neither `salty`'s assembly nor any of this code built for
//! a 32-bit Arm core (hosts hash SHA-256 with `sha2`'s block function, and
//! check the rolled rounds against it only), so this program runs it on
//! QEMU's Arm MPS2 AN386 board (a Cortex-M4). It checks FIPS 180-2 SHA-256
//! vectors and RFC 4231 HMAC vectors. For both Ed25519 backends it checks
//! the strict cases and Project Wycheproof's EdDSA vectors, and counts the
//! instructions of one verification.
//! It prints one line per group through semihosting and exits with status 0
//! only if every check passed.
//!
//! Usage: `bash benches/footprint/on-target.sh` (needs `qemu-system-arm`).
#![no_std]
#![no_main]

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use syssync_proto::{CompactCrypto, Crypto, SaltyCrypto};

/// Project Wycheproof's EdDSA vectors, as the host tests read them.
const WYCHEPROOF: &str = include_str!("../../../../syssync-proto/tests/data/wycheproof_eddsa.txt");

/// The order of the Ed25519 base point, little-endian.
const GROUP_ORDER: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
];

/// Counts of passed and failed checks.
#[derive(Default)]
struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    fn check(&mut self, ok: bool, name: &str) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            hprintln!("FAILED: {}", name);
        }
    }
}

/// Decodes `text` as hex into the start of `out` and returns the byte count,
/// or `None` for invalid hex or a too small `out`.
fn decode_hex(text: &str, out: &mut [u8]) -> Option<usize> {
    if text == "-" {
        return Some(0);
    }
    let digits = text.as_bytes();
    if digits.len() % 2 != 0 || digits.len() / 2 > out.len() {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(digits.chunks(2)) {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        *byte = (high * 16 + low) as u8;
    }
    Some(digits.len() / 2)
}

fn hex<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    match decode_hex(text, &mut out) {
        Some(len) if len == N => out,
        _ => panic!("invalid hex constant: {}", text),
    }
}

fn check_sha256(tally: &mut Tally) {
    let crypto = CompactCrypto;
    tally.check(
        crypto.sha256(&[b"abc"])
            == hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        "SHA-256 of abc",
    );
    tally.check(
        crypto.sha256(&[b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"])
            == hex("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        "SHA-256 of the two-block message",
    );
    let mut hasher = crypto.sha256_start();
    let block = [b'a'; 1000];
    for _ in 0..1000 {
        syssync_proto::Sha256Hasher::update(&mut hasher, &block);
    }
    tally.check(
        syssync_proto::Sha256Hasher::finalize(hasher)
            == hex("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
        "SHA-256 of a million a",
    );
    tally.check(
        crypto.hmac_sha256(&[0x0b; 20], &[b"Hi ", b"There"])
            == hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        "HMAC-SHA256, RFC 4231 case 1",
    );
    tally.check(
        crypto.hmac_sha256(b"Jefe", &[b"what do ya want for nothing?"])
            == hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        "HMAC-SHA256, RFC 4231 case 2",
    );
}

fn check_strict_ed25519<C: Crypto>(crypto: &C, tally: &mut Tally) {
    // RFC 8032 section 7.1, test 1: an empty message.
    let public: [u8; 32] = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    let signature: [u8; 64] = hex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
    tally.check(
        crypto.verify_ed25519(&public, b"", &signature),
        "RFC 8032 test 1",
    );
    tally.check(
        !crypto.verify_ed25519(&public, b"x", &signature),
        "RFC 8032 test 1, other message",
    );

    // s + L satisfies the same equation, and strict verification rejects it.
    let mut malleated = signature;
    let mut carry = 0u16;
    for (byte, order) in malleated[32..].iter_mut().zip(GROUP_ORDER) {
        let sum = u16::from(*byte) + u16::from(order) + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
    tally.check(
        !crypto.verify_ed25519(&public, b"", &malleated),
        "s + L rejected",
    );

    // The identity as key with R = identity and s = 0 passes the plain equation.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut forged = [0u8; 64];
    forged[0] = 1;
    tally.check(
        !crypto.verify_ed25519(&identity, b"any", &forged),
        "small-order key rejected",
    );
}

fn check_wycheproof<C: Crypto>(crypto: &C, tally: &mut Tally) -> u32 {
    let mut count = 0;
    let mut message = [0u8; 2048];
    for line in WYCHEPROOF.lines().filter(|line| !line.starts_with('#')) {
        let fields = line.split(" # ").next().unwrap_or("");
        let mut parts = fields.split(' ');
        let (Some(id), Some(result), Some(public), Some(signature), Some(text)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            tally.check(false, "malformed Wycheproof line");
            continue;
        };
        count += 1;
        let valid = result == "valid";
        let mut key = [0u8; 32];
        let mut raw = [0u8; 256];
        let (Some(32), Some(signature_len), Some(message_len)) = (
            decode_hex(public, &mut key),
            decode_hex(signature, &mut raw),
            decode_hex(text, &mut message),
        ) else {
            tally.check(false, id);
            continue;
        };
        if signature_len != 64 {
            // The `Crypto` trait takes 64 bytes, so these never reach a backend.
            tally.check(!valid, id);
            continue;
        }
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&raw[..64]);
        let verified = crypto.verify_ed25519(&key, &message[..message_len], &signature);
        tally.check(verified == valid, id);
    }
    count
}

/// Runs `work` and returns its result with the number of instructions it
/// took, to 40 instructions.
///
/// Under QEMU's `-icount shift=0` each instruction advances the virtual
/// clock by one nanosecond, and SysTick on this board then counts down once
/// per 40 instructions (a 25 MHz clock). `main` checks that factor on a loop
/// of known length first. The 24-bit counter wraps after about 671 million
/// instructions, far more than one verification takes.
fn count_instructions<R>(syst: &mut SYST, work: impl FnOnce() -> R) -> (R, u32) {
    const MASK: u32 = 0x00ff_ffff;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(MASK);
    syst.clear_current();
    syst.enable_counter();
    let start = SYST::get_current();
    let result = work();
    let end = SYST::get_current();
    syst.disable_counter();
    (result, (start.wrapping_sub(end) & MASK) * 40)
}

/// Prints the instructions that one verification of RFC 8032 test 1 takes.
fn time_ed25519<C: Crypto>(crypto: &C, name: &str, syst: &mut SYST, tally: &mut Tally) {
    let public: [u8; 32] = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    let signature: [u8; 64] = hex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
    let (verified, instructions) =
        count_instructions(syst, || crypto.verify_ed25519(&public, b"", &signature));
    tally.check(verified, "timed verification");
    hprintln!(
        "{}: {} instructions per Ed25519 verification (QEMU icount)",
        name,
        instructions
    );
}

/// Runs the strict cases and the Wycheproof vectors on one backend and
/// returns the number of vectors.
fn check_ed25519<C: Crypto>(crypto: &C, name: &str, tally: &mut Tally) -> u32 {
    check_strict_ed25519(crypto, tally);
    hprintln!(
        "plus strict Ed25519 with {}: {} passed, {} failed",
        name,
        tally.passed,
        tally.failed
    );
    let vectors = check_wycheproof(crypto, tally);
    hprintln!(
        "plus {} Wycheproof EdDSA vectors with {}: {} passed, {} failed",
        vectors,
        name,
        tally.passed,
        tally.failed
    );
    vectors
}

#[entry]
fn main() -> ! {
    let mut tally = Tally::default();
    let Some(mut peripherals) = cortex_m::Peripherals::take() else {
        hprintln!("the core peripherals were taken twice");
        debug::exit(debug::EXIT_FAILURE);
        loop {}
    };
    let syst = &mut peripherals.SYST;
    // `delay(n)` runs a two-instruction loop n + 1 times: 2,000,002
    // instructions here, which the count must match to its resolution.
    let ((), calibration) = count_instructions(syst, || cortex_m::asm::delay(1_000_000));
    tally.check(
        calibration.abs_diff(2_000_002) <= 80,
        "instruction count of a known loop",
    );
    hprintln!(
        "instruction counter: {} counted for a loop of 2000002: {} passed, {} failed",
        calibration,
        tally.passed,
        tally.failed
    );
    check_sha256(&mut tally);
    hprintln!(
        "plus SHA-256 and HMAC-SHA256: {} passed, {} failed",
        tally.passed,
        tally.failed
    );

    let vectors = [
        check_ed25519(&SaltyCrypto, "SaltyCrypto", &mut tally),
        check_ed25519(&CompactCrypto, "CompactCrypto", &mut tally),
    ];
    time_ed25519(&SaltyCrypto, "SaltyCrypto", syst, &mut tally);
    time_ed25519(&CompactCrypto, "CompactCrypto", syst, &mut tally);

    if tally.failed == 0 && vectors == [145, 145] {
        debug::exit(debug::EXIT_SUCCESS);
    } else {
        debug::exit(debug::EXIT_FAILURE);
    }
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}
