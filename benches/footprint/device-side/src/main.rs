//! Size probe for the device side: the syssync update engine with its NOR
//! file store, rollback-fsm's application side and the smallest software
//! crypto (syssync-proto's `CompactCrypto`: RustCrypto HMAC-SHA256 and SHA-256,
//! syssync-proto's own Ed25519 verification), linked for a Cortex-M4F with 512 KiB flash and 128 KiB RAM.
//!
//! The main loop feeds the engine frames from a buffer that the compiler
//! cannot see through (`black_box`), and calls every input and output, so
//! every engine path is linked. The flash driver is a stand-in of a few dozen
//! bytes. The engine and both frame buffers are statics, so `.bss` shows the
//! engine's RAM. `benches/footprint.sh` builds it and prints the sizes.
#![no_std]
#![no_main]

use core::hint::black_box;
use core::mem::MaybeUninit;

use cortex_m_rt::entry;
use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use panic_halt as _;
use rollback_fsm::{Layout, Partition};
use syssync_device::rollback::RollbackFsmBoot;
use syssync_device::{Config, Engine, Instant, NorFileStore};
use syssync_proto::{CompactCrypto, TrustedKey, MAX_FRAME_LEN};

/// Start of the memory-mapped flash.
const FLASH_BASE: usize = 0x0800_0000;
/// Stand-in for a flash controller's data register.
const FLASH_CONTROLLER: usize = 0x4002_3C00;

/// Same layout as the boot-side probe: active and recovery 224 KiB, state 32 KiB.
const LAYOUT: Layout = Layout {
    active: Partition::new(0x0000_8000, 0x0003_8000),
    staging: Partition::new(0x0004_0000, 0x0003_8000),
    recovery: Partition::new(0x0004_0000, 0x0003_8000),
    state: Partition::new(0x0007_8000, 0x0000_8000),
};
const SETTINGS: Partition = Partition::new(0, 0x8000);

#[derive(Debug, Clone, Copy)]
struct Error;

impl embedded_storage::nor_flash::NorFlashError for Error {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

/// Minimal flash driver with 16 KiB sectors and 8-byte writes.
struct ProbeFlash;

impl ErrorType for ProbeFlash {
    type Error = Error;
}

impl ReadNorFlash for ProbeFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Error> {
        let base = FLASH_BASE + offset as usize;
        for (index, byte) in bytes.iter_mut().enumerate() {
            // SAFETY: the internal flash is memory-mapped and always readable.
            *byte = unsafe { core::ptr::read_volatile((base + index) as *const u8) };
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        512 * 1024
    }
}

impl NorFlash for ProbeFlash {
    const WRITE_SIZE: usize = 8;
    const ERASE_SIZE: usize = 16 * 1024;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Error> {
        for sector in from / 0x4000..to / 0x4000 {
            // SAFETY: a fixed peripheral address; the probe never runs on hardware.
            unsafe { core::ptr::write_volatile(FLASH_CONTROLLER as *mut u32, sector) };
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Error> {
        for (index, byte) in bytes.iter().enumerate() {
            let word = offset.wrapping_add(index as u32) << 8 | u32::from(*byte);
            // SAFETY: as above.
            unsafe { core::ptr::write_volatile(FLASH_CONTROLLER as *mut u32, word) };
        }
        Ok(())
    }
}

type Boot = RollbackFsmBoot<ProbeFlash, ProbeFlash, ProbeFlash>;
type DeviceEngine = Engine<Boot, NorFileStore<ProbeFlash>, CompactCrypto>;

#[entry]
fn main() -> ! {
    // `#[entry]` turns these into `&'static mut` references to statics. An
    // uninitialised engine goes in `.bss`: an `Option` holding `None` would
    // go in `.data` and take its size in flash for the initial value too.
    static mut ENGINE: MaybeUninit<DeviceEngine> = MaybeUninit::uninit();
    static mut RX: [u8; MAX_FRAME_LEN] = [0; MAX_FRAME_LEN];
    static mut TX: [u8; MAX_FRAME_LEN] = [0; MAX_FRAME_LEN];

    let trusted = [TrustedKey {
        id: 1,
        public_key: black_box([0x3B; 32]),
    }];
    let Ok(config) = Config::new(&trusted) else {
        loop {}
    };
    let Ok(fsm_config) = rollback_fsm::Config::try_new(LAYOUT, "probe-board") else {
        loop {}
    };
    let Ok(boot) = Boot::new(fsm_config, ProbeFlash, ProbeFlash, ProbeFlash, SETTINGS) else {
        loop {}
    };
    let Ok(store) = NorFileStore::new(ProbeFlash, 1) else {
        loop {}
    };
    let seed = black_box(0x5EED);
    // Written into the static by `new_in`, so that `main`'s frame contains
    // no copy of the engine (`new_in`'s own frame still contains one).
    let Ok(engine) = Engine::new_in(ENGINE, config, boot, store, CompactCrypto, Instant(0), seed)
    else {
        loop {}
    };

    let mut now = 0u64;
    // The loop count picks the occasional inputs. It is a `u32`, because a
    // remainder of a `u64` would link the 64-bit division routine, which the
    // libraries do not need.
    let mut round = 0u32;
    loop {
        now = black_box(now + 1);
        round = black_box(round.wrapping_add(1));
        let instant = Instant(now);
        engine.set_network(instant, black_box(true));
        if black_box(round % 97 == 0) {
            engine.set_unix_time(instant, black_box(1_800_000_000));
        }

        // Fake input: the compiler must assume any bytes of any length arrived.
        let received = black_box(&mut *RX);
        let len = black_box(received.len());
        engine.handle_frame(instant, &received[..len]);
        engine.handle_timeout(instant);

        while let Some(len) = engine.poll_transmit(instant, &mut *TX) {
            black_box(&TX[..len]);
        }
        while let Some(event) = engine.poll_event() {
            black_box(event);
        }
        black_box(engine.poll_timeout());

        match black_box(round % 3) {
            0 => engine.confirm_health(instant),
            1 => engine.report_unhealthy(instant),
            _ => {}
        }
    }
}
