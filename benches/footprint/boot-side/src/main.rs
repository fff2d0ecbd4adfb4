//! Size probe for the boot side: rollback-fsm's bootloader step function and
//! image verification (SHA-256, and with the `signature` feature the signed
//! release manifest: Ed25519 through syssync-proto's `CompactCrypto` and the
//! manifest's match with the staged image),
//! linked for a Cortex-M4F with 512 KiB flash and 128 KiB RAM.
//!
//! The flash driver is a stand-in: reads come from the memory-mapped flash and
//! writes and erases go to a fake controller register. It is a few dozen bytes,
//! so the sizes are those of the library code; a real HAL driver adds its own.
//! `benches/footprint.sh` builds this program and prints its section sizes.
#![no_std]
#![no_main]

use core::hint::black_box;

use cortex_m_rt::entry;
use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use panic_halt as _;
use rollback_fsm::{BootFlashes, BootSide, Config, Layout, Partition, Sha256};

/// Start of the memory-mapped internal flash.
const FLASH_BASE: usize = 0x0800_0000;
/// Stand-in for a flash controller's data register.
const FLASH_CONTROLLER: usize = 0x4002_3C00;

/// Bootloader 32 KiB, active 224 KiB, recovery 224 KiB (internal flash);
/// staging on the same part for the probe, state 2 × 16 KiB sectors.
const LAYOUT: Layout = Layout {
    active: Partition::new(0x0000_8000, 0x0003_8000),
    staging: Partition::new(0x0004_0000, 0x0003_8000),
    recovery: Partition::new(0x0004_0000, 0x0003_8000),
    state: Partition::new(0x0007_8000, 0x0000_8000),
};

#[derive(Debug, Clone, Copy)]
struct Error;

impl embedded_storage::nor_flash::NorFlashError for Error {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

/// Minimal internal-flash driver with 16 KiB sectors and 8-byte writes.
struct InternalFlash;

impl ErrorType for InternalFlash {
    type Error = Error;
}

impl ReadNorFlash for InternalFlash {
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

impl NorFlash for InternalFlash {
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

/// Checked at compile time: a layout error stops the build.
const CONFIG: Config = match Config::try_new(LAYOUT, "probe-board") {
    Ok(config) => config,
    Err(_) => panic!("invalid partition layout"),
};

#[entry]
fn main() -> ! {
    let config = CONFIG;
    let flashes = BootFlashes {
        active: InternalFlash,
        staging: InternalFlash,
        recovery: InternalFlash,
        state: InternalFlash,
    };
    let Ok(mut boot) = BootSide::new(&config, flashes, Sha256::default()) else {
        loop {}
    };

    // syssync devices keep the signed release manifest next to the staged
    // image; the bootloader checks it against its own trusted release keys.
    #[cfg(feature = "signature")]
    let trusted = [syssync_proto::TrustedKey {
        id: 1,
        public_key: black_box([0x3B; 32]),
    }];
    #[cfg(feature = "signature")]
    let authenticator =
        rollback_fsm::ManifestAuthenticator::with_crypto(&trusted, syssync_proto::CompactCrypto);
    #[cfg(feature = "signature")]
    boot.set_authenticator(&authenticator);

    let result = boot.run();
    black_box(result.is_ok());
    // A real bootloader jumps to the active image here.
    loop {
        black_box(&boot);
    }
}
