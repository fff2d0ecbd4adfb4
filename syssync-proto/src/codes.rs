//! Registered numeric codes: refusals, job failures, reverts and rejections.
//!
//! Each code is a `u16` newtype rather than an enum, so that a peer running a
//! newer protocol minor revision can send a code this build does not know and
//! the value still travels intact (into a report, a log or a dashboard). The
//! associated constants are the registered values; `PROTOCOL.md` lists them.

use core::fmt;

use serde::{Deserialize, Serialize};

macro_rules! code_type {
    (
        $(#[$type_doc:meta])*
        $name:ident {
            $( $(#[$doc:meta])* $constant:ident = $value:literal, $text:literal; )*
        }
    ) => {
        $(#[$type_doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u16);

        impl $name {
            $( $(#[$doc])* pub const $constant: Self = Self($value); )*

            /// Returns the registered short description, or `None` for an unregistered value.
            pub const fn description(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some($text), )*
                    _ => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.description() {
                    Some(text) => write!(f, "{}({} {})", stringify!($name), self.0, text),
                    None => write!(f, "{}({} unregistered)", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.description() {
                    Some(text) => f.write_str(text),
                    None => write!(f, "unregistered code {}", self.0),
                }
            }
        }
    };
}

code_type! {
    /// Reason for a server's refusal of a device request.
    RefusalCode {
        /// The frame's protocol version is not supported by the server.
        UNSUPPORTED_VERSION = 1, "unsupported protocol version";
        /// The device id is not registered.
        UNKNOWN_DEVICE = 2, "unknown device";
        /// The message authentication code did not verify.
        BAD_MAC = 3, "message authentication failed";
        /// The replay counter was not above the last accepted one; `detail` carries that one.
        STALE_COUNTER = 4, "replay counter not above the last accepted one";
        /// The job named in the request does not exist or is not assigned to this device.
        UNKNOWN_JOB = 5, "unknown job";
        /// The job was cancelled, paused or finished and serves no more chunks.
        JOB_NOT_ACTIVE = 6, "job not active";
        /// The request's file index, offset or length is outside the file.
        OUT_OF_RANGE = 7, "file, offset or length out of range";
        /// The server is overloaded; retry after `retry_after_s`.
        BUSY = 8, "server busy";
        /// The registration was rejected (unknown account, bad claim or device owned elsewhere).
        REGISTRATION_REJECTED = 9, "registration rejected";
        /// The request was well-formed but not allowed in the device's current state.
        INVALID_REQUEST = 10, "request invalid in the current state";
    }
}

code_type! {
    /// Reason a device gives for a failed job (in a job report).
    FailureCode {
        /// A downloaded file did not match its size or SHA-256 digest.
        DIGEST_MISMATCH = 1, "file digest mismatch";
        /// Writing to flash failed.
        FLASH_WRITE = 2, "flash write failed";
        /// The files do not fit into the device's storage.
        NO_SPACE = 3, "not enough storage";
        /// The server refused chunk requests for this job.
        DOWNLOAD_REFUSED = 4, "download refused by the server";
        /// The download did not finish within the device's limits.
        DOWNLOAD_TIMEOUT = 5, "download timed out";
        /// The bootloader refused to install the staged image.
        INSTALL_REFUSED = 6, "install refused by the bootloader";
        /// The new image booted but the server's confirm did not arrive in time.
        /// syssync-device reports that case as reverted, with
        /// [`RevertReason::TRIAL_TIMEOUT`], because the bootloader goes back.
        CONFIRM_TIMEOUT = 7, "confirm timed out";
    }
}

code_type! {
    /// Reason for the bootloader's revert to the recovery image.
    RevertReason {
        /// The trial image did not confirm within the trial boot limit.
        TRIAL_LIMIT = 1, "trial boot limit reached";
        /// The application reported that the trial image is unhealthy.
        APPLICATION_FAILURE = 2, "application reported failure";
        /// The staged image failed verification at boot.
        VERIFICATION_FAILED = 3, "staged image failed verification";
        /// The trial image was not confirmed within the device's trial timeout.
        TRIAL_TIMEOUT = 4, "not confirmed within the trial timeout";
    }
}

code_type! {
    /// Reason for a device's rejection of a job offer, sent before any download.
    RejectReason {
        /// The manifest signature did not verify under any trusted release key.
        BAD_SIGNATURE = 1, "manifest signature invalid";
        /// The manifest names another hardware type.
        WRONG_TARGET = 2, "manifest for another target type";
        /// The manifest expired.
        EXPIRED = 3, "manifest expired";
        /// The manifest's security counter is below the device's anti-rollback counter.
        DOWNGRADE = 4, "security counter below the device's";
        /// The files do not fit into the device's storage.
        TOO_LARGE = 5, "files do not fit";
        /// The manifest could not be decoded or breaks a limit.
        MALFORMED = 6, "manifest malformed";
        /// The device is busy with another job or a trial boot.
        BUSY = 7, "device busy with another update";
    }
}
