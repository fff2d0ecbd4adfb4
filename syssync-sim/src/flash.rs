//! Simulated flash of one device: one `flash-sim` device per partition, all
//! on one power rail, shared between the bootloader, the boot side of the
//! engine and the file store across resets.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use flash_sim::{FlashConfig, FlashSim, FlashSimError, PowerRail};

/// Write size of every simulated flash, in bytes (as on ESP8266 SPI flash
/// through its SDK, which writes 4-byte words).
pub const WRITE_SIZE: usize = 4;

/// A flash-sim device that several owners use in turn.
///
/// The bootloader, the boot side and the file store each take their flash by
/// value; a shared handle lets the simulator rebuild them after a reset while
/// the flash contents stay.
#[derive(Debug)]
///
/// A mutex rather than a cell lets the whole device move between the
/// simulator's threads; only one thread uses a device at a time.
pub struct SharedFlash<const E: usize>(Arc<Mutex<FlashSim<E, WRITE_SIZE>>>);

impl<const E: usize> Clone for SharedFlash<E> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<const E: usize> SharedFlash<E> {
    /// Creates an erased flash of `capacity` bytes on `rail`.
    pub fn new(capacity: usize, seed: u64, rail: &PowerRail) -> Result<Self, String> {
        let flash = FlashSim::new(FlashConfig::new(capacity).seed(seed), rail.clone())
            .map_err(|error| format!("invalid flash geometry for {capacity} bytes: {error}"))?;
        Ok(Self(Arc::new(Mutex::new(flash))))
    }

    /// Locks the flash; a poisoned lock (a panic in a test) is used as is.
    fn flash(&self) -> MutexGuard<'_, FlashSim<E, WRITE_SIZE>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Copies raw bytes into the flash at `offset`, bypassing NOR rules (factory programming).
    pub fn load(&self, offset: usize, bytes: &[u8]) -> Result<(), String> {
        self.flash()
            .load(offset, bytes)
            .map_err(|error| format!("loading {} bytes at {offset} failed: {error}", bytes.len()))
    }

    /// Returns a copy of the flash contents.
    pub fn contents(&self) -> Vec<u8> {
        self.flash().raw().to_vec()
    }

    /// Returns the capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.flash().raw().len()
    }
}

impl<const E: usize> ErrorType for SharedFlash<E> {
    type Error = FlashSimError;
}

impl<const E: usize> ReadNorFlash for SharedFlash<E> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.flash().read(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.flash().capacity()
    }
}

impl<const E: usize> NorFlash for SharedFlash<E> {
    const WRITE_SIZE: usize = WRITE_SIZE;
    const ERASE_SIZE: usize = E;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.flash().erase(from, to)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.flash().write(offset, bytes)
    }
}
