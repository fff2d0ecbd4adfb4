//! The file store as the engine sees it: installed files with digests, pending
//! files written in place, and a small journal that keeps a download's
//! progress across power cuts.
//!
//! [`NorFileStore`](crate::NorFileStore) implements it over any NOR flash; an
//! integrator can bring another implementation.

use core::fmt;

use syssync_proto::message::InstalledFile;
use syssync_proto::{JobId, Sha256Digest, Signature, MAX_MANIFEST_LEN};

/// An installed file. It is the inventory's entry type, so the engine puts
/// what the store returns into an inventory without converting it.
pub type FileInfo = InstalledFile;

/// Length of the job record that the engine keeps in the journal.
pub const JOB_RECORD_LEN: usize = 48;

/// The manifest of the job in progress, as stored in the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredManifest {
    /// The job.
    pub job: JobId,
    /// Id of the release key that signed it.
    pub key_id: u8,
    /// Signature over the body.
    pub signature: Signature,
    /// Length of the body in the caller's buffer.
    pub len: usize,
}

/// Why a file store operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StoreError<E> {
    /// The flash device returned an error.
    Flash(E),
    /// Not enough free sectors for the file.
    NoSpace,
    /// The directory holds as many files as it can.
    DirectoryFull,
    /// No file or pending file with that name or handle.
    NotFound,
    /// Offset, length or name outside what the store accepts.
    InvalidArgument,
    /// A write did not read back as written.
    VerifyFailed,
}

impl<E: fmt::Debug> fmt::Display for StoreError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Flash(error) => write!(f, "flash operation failed: {error:?}"),
            StoreError::NoSpace => f.write_str("not enough free flash sectors for the file"),
            StoreError::DirectoryFull => f.write_str("file directory full"),
            StoreError::NotFound => f.write_str("file not found"),
            StoreError::InvalidArgument => {
                f.write_str("offset, length or name outside what the store accepts")
            }
            StoreError::VerifyFailed => f.write_str("written bytes did not read back as written"),
        }
    }
}

impl<E: core::fmt::Debug> core::error::Error for StoreError<E> {}

/// Files, pending files and the download journal.
///
/// A pending file is created with its final size, written in place, and made
/// visible by [`commit`](Self::commit), which atomically replaces any file of
/// the same name. Pending files survive a reset until committed or discarded,
/// so that a download resumes into them.
pub trait FileStore {
    /// Error of the underlying flash.
    type Error: fmt::Debug;
    /// A pending file.
    type Handle: Copy + fmt::Debug + PartialEq;

    /// Returns the number of installed files.
    fn file_count(&mut self) -> Result<usize, StoreError<Self::Error>>;

    /// Returns the installed file at `index` (in directory order), if any.
    fn file(&mut self, index: usize) -> Result<Option<FileInfo>, StoreError<Self::Error>>;

    /// Looks up an installed file by name.
    fn find(&mut self, name: &str) -> Result<Option<FileInfo>, StoreError<Self::Error>>;

    /// Reads bytes of an installed file; returns how many were read.
    fn read(
        &mut self,
        name: &str,
        offset: u32,
        buf: &mut [u8],
    ) -> Result<usize, StoreError<Self::Error>>;

    /// Returns the bytes that new files may still take, counted in whole sectors.
    fn free_space(&mut self) -> Result<u32, StoreError<Self::Error>>;

    /// Returns the bytes a file of `size` bytes takes, rounded up to whole sectors.
    fn space_needed(&self, size: u32) -> u32;

    /// Returns the erase size that pending file writes are organised in.
    fn erase_size(&self) -> u32;

    /// Returns the write size of pending file writes.
    fn write_size(&self) -> u32;

    /// Creates a pending file of `size` bytes, or returns the existing pending
    /// file of that name and size.
    fn create_pending(
        &mut self,
        name: &str,
        size: u32,
    ) -> Result<Self::Handle, StoreError<Self::Error>>;

    /// Looks up a pending file by name.
    fn find_pending(&mut self, name: &str)
        -> Result<Option<Self::Handle>, StoreError<Self::Error>>;

    /// Erases the sector of a pending file that starts at `offset`.
    fn erase_pending(
        &mut self,
        file: Self::Handle,
        offset: u32,
    ) -> Result<(), StoreError<Self::Error>>;

    /// Writes bytes of a pending file; `offset` and `data.len()` are multiples of the write size.
    fn write_pending(
        &mut self,
        file: Self::Handle,
        offset: u32,
        data: &[u8],
    ) -> Result<(), StoreError<Self::Error>>;

    /// Reads bytes of a pending file.
    fn read_pending(
        &mut self,
        file: Self::Handle,
        offset: u32,
        buf: &mut [u8],
    ) -> Result<(), StoreError<Self::Error>>;

    /// Makes a pending file visible with digest `sha256`, replacing any file of its name.
    fn commit(
        &mut self,
        file: Self::Handle,
        sha256: &Sha256Digest,
    ) -> Result<(), StoreError<Self::Error>>;

    /// Discards every pending file.
    fn discard_pending(&mut self) -> Result<(), StoreError<Self::Error>>;

    /// Removes an installed file; returns whether it existed.
    fn remove(&mut self, name: &str) -> Result<bool, StoreError<Self::Error>>;

    /// Loads the latest job record, if any.
    fn load_job_record(
        &mut self,
        out: &mut [u8; JOB_RECORD_LEN],
    ) -> Result<bool, StoreError<Self::Error>>;

    /// Stores a job record; after a reset either it or the previous one is loaded.
    fn store_job_record(
        &mut self,
        record: &[u8; JOB_RECORD_LEN],
    ) -> Result<(), StoreError<Self::Error>>;

    /// Stores the signed manifest of a new job, replacing the previous one.
    fn store_manifest(
        &mut self,
        job: JobId,
        key_id: u8,
        signature: &Signature,
        body: &[u8],
    ) -> Result<(), StoreError<Self::Error>>;

    /// Loads the stored manifest body into `body`.
    fn load_manifest(
        &mut self,
        body: &mut [u8; MAX_MANIFEST_LEN],
    ) -> Result<Option<StoredManifest>, StoreError<Self::Error>>;

    /// Returns the size of the scratch area used to move a sector's data aside.
    fn scratch_size(&self) -> u32;

    /// Erases the scratch area.
    fn erase_scratch(&mut self) -> Result<(), StoreError<Self::Error>>;

    /// Writes scratch bytes; `offset` and `data.len()` are multiples of the write size.
    fn write_scratch(&mut self, offset: u32, data: &[u8]) -> Result<(), StoreError<Self::Error>>;

    /// Reads scratch bytes.
    fn read_scratch(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), StoreError<Self::Error>>;
}
