//! Errors of the management face. Every error leaves the stored records unchanged.

use core::fmt;

use syssync_proto::{AccountId, DeviceId, JobId, ManifestError};

use crate::model::{GroupId, JobStatus, ReleaseId};

/// The reason a management command or query was rejected.
///
/// A record of another account is reported as not found, exactly as a record
/// that does not exist, so that no account learns what another one has.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManagementError {
    /// The calling account does not exist.
    UnknownAccount(AccountId),
    /// No device with this id belongs to the calling account.
    UnknownDevice(DeviceId),
    /// A device with this id is already registered (to any account).
    DeviceExists(DeviceId),
    /// The account has not registered this target type.
    UnknownTargetType(String),
    /// No release with this id belongs to the calling account.
    UnknownRelease(ReleaseId),
    /// No group with this id belongs to the calling account.
    UnknownGroup(GroupId),
    /// No job with this id belongs to the calling account.
    UnknownJob(JobId),
    /// The release must be approved before it can be deployed.
    ReleaseNotApproved(ReleaseId),
    /// The release is approved and can no longer change.
    ReleaseApproved(ReleaseId),
    /// An open job deploys the release, so it cannot be deleted.
    ReleaseInUse(ReleaseId),
    /// The account already has a release of this target type and version.
    DuplicateRelease(ReleaseId),
    /// The manifest could not be decoded or its signature did not verify.
    Manifest(ManifestError),
    /// The number of uploaded files differs from the manifest's.
    ArtifactCount {
        /// Files in the manifest.
        expected: usize,
        /// Files uploaded.
        received: usize,
    },
    /// An uploaded file's size or SHA-256 differs from its manifest entry.
    ArtifactMismatch {
        /// Index of the file in the manifest.
        index: usize,
    },
    /// An input is larger than the server accepts.
    TooLarge {
        /// Which input.
        what: &'static str,
        /// Its size (bytes or entries).
        size: usize,
        /// The maximum.
        max: usize,
    },
    /// An input value is invalid.
    Invalid {
        /// Which input.
        what: &'static str,
        /// The problem with it.
        reason: &'static str,
    },
    /// The device has no pending handover to the calling account.
    NoTransferOffer(DeviceId),
    /// The job's status does not allow the command.
    JobStatus {
        /// The job.
        job: JobId,
        /// Its status.
        status: JobStatus,
    },
}

impl fmt::Display for ManagementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManagementError::UnknownAccount(id) => write!(f, "account {} not found", id.0),
            ManagementError::UnknownDevice(id) => write!(f, "device {} not found", id.0),
            ManagementError::DeviceExists(id) => {
                write!(f, "device {} is already registered", id.0)
            }
            ManagementError::UnknownTargetType(name) => write!(
                f,
                "target type {name:?} is not registered; add it to the account first"
            ),
            ManagementError::UnknownRelease(id) => write!(f, "release {} not found", id.0),
            ManagementError::UnknownGroup(id) => write!(f, "group {} not found", id.0),
            ManagementError::UnknownJob(id) => write!(f, "job {} not found", id.0),
            ManagementError::ReleaseNotApproved(id) => {
                write!(
                    f,
                    "release {} is not approved; approve it before deploying",
                    id.0
                )
            }
            ManagementError::ReleaseApproved(id) => {
                write!(f, "release {} is approved and cannot change", id.0)
            }
            ManagementError::ReleaseInUse(id) => {
                write!(f, "release {} is deployed by an open job", id.0)
            }
            ManagementError::DuplicateRelease(id) => write!(
                f,
                "release {} already has this target type and version",
                id.0
            ),
            ManagementError::Manifest(error) => write!(f, "manifest rejected: {error}"),
            ManagementError::ArtifactCount { expected, received } => write!(
                f,
                "manifest lists {expected} files but {received} were uploaded"
            ),
            ManagementError::ArtifactMismatch { index } => write!(
                f,
                "uploaded file {index} does not match the size or SHA-256 in the manifest"
            ),
            ManagementError::TooLarge { what, size, max } => {
                write!(f, "{what} of {size} exceeds the maximum of {max}")
            }
            ManagementError::Invalid { what, reason } => write!(f, "invalid {what}: {reason}"),
            ManagementError::NoTransferOffer(id) => {
                write!(f, "device {} has no handover offered to this account", id.0)
            }
            ManagementError::JobStatus { job, status } => {
                write!(f, "job {} is {status:?}, which does not allow this", job.0)
            }
        }
    }
}

impl std::error::Error for ManagementError {}
