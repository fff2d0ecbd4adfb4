//! A status cache in front of the engine's boot side.
//!
//! The engine reads the boot status on every check-in, and
//! `syssync_device::rollback::RollbackFsmBoot` serves each read by scanning
//! rollback-fsm's state log on flash, which took about half of the run time
//! of a large fleet. While the application runs, only the boot side's own
//! calls change the state log, so [`CachedBoot`] keeps the last status and
//! drops it on every call that writes. The bootloader changes the state log
//! only across a reset, after which the simulator builds a new `CachedBoot`.

use syssync_device::boot::{BootControl, BootStatus, StagedImage};
use syssync_proto::SignedManifest;

/// A [`BootControl`] that caches [`BootControl::status`] between writes.
#[derive(Debug)]
pub struct CachedBoot<B> {
    inner: B,
    status: Option<BootStatus>,
}

impl<B> CachedBoot<B> {
    /// Wraps a boot side with an empty cache.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            status: None,
        }
    }
}

impl<B: BootControl> CachedBoot<B> {
    fn write<R>(&mut self, call: impl FnOnce(&mut B) -> R) -> R {
        self.status = None;
        call(&mut self.inner)
    }
}

impl<B: BootControl> BootControl for CachedBoot<B> {
    type Error = B::Error;

    const STORES_EVIDENCE: bool = B::STORES_EVIDENCE;

    fn status(&mut self) -> Result<BootStatus, Self::Error> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = self.inner.status()?;
        self.status = Some(status);
        Ok(status)
    }

    fn staging_capacity(&self) -> u32 {
        self.inner.staging_capacity()
    }

    fn staging_erase_size(&self) -> u32 {
        self.inner.staging_erase_size()
    }

    fn staging_write_size(&self) -> u32 {
        self.inner.staging_write_size()
    }

    fn begin_staging(
        &mut self,
        image: &StagedImage,
        manifest: &SignedManifest<'_>,
    ) -> Result<(), Self::Error> {
        self.write(|inner| inner.begin_staging(image, manifest))
    }

    fn erase_staging(&mut self, offset: u32) -> Result<(), Self::Error> {
        self.inner.erase_staging(offset)
    }

    fn write_staging(&mut self, offset: u32, data: &[u8]) -> Result<(), Self::Error> {
        self.inner.write_staging(offset, data)
    }

    fn read_staging(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error> {
        self.inner.read_staging(offset, buf)
    }

    fn request_install(&mut self) -> Result<(), Self::Error> {
        self.write(|inner| inner.request_install())
    }

    fn cancel_staging(&mut self) -> Result<(), Self::Error> {
        self.write(|inner| inner.cancel_staging())
    }

    fn confirm(&mut self) -> Result<(), Self::Error> {
        self.write(|inner| inner.confirm())
    }

    fn report_failure(&mut self) -> Result<(), Self::Error> {
        self.write(|inner| inner.report_failure())
    }

    fn read_setting(&mut self, key: u16, buf: &mut [u8]) -> Result<Option<usize>, Self::Error> {
        self.inner.read_setting(key, buf)
    }

    fn write_setting(&mut self, key: u16, value: &[u8]) -> Result<(), Self::Error> {
        self.write(|inner| inner.write_setting(key, value))
    }
}
