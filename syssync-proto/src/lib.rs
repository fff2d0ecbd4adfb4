//! Wire format of syssync: the messages between embedded devices and an update
//! server, their framing, authentication and segmentation.
//!
//! - [`message`]: the messages. A device starts every exchange with a
//!   [`DeviceMessage`]; the server answers with one [`ServerMessage`].
//! - [`frame`]: a frame is a version byte, a type byte, the postcard-encoded
//!   body, an 8-byte truncated HMAC-SHA256 tag under the device's own key, and a
//!   CRC-32. A server reply's tag is bound to the replay counter of the request
//!   it answers, so neither a gateway nor another device can forge or replay one.
//! - [`manifest`]: the release manifest, signed with Ed25519 by a release key
//!   that the update server need not hold.
//! - [`segment`]: segmentation for classic CAN and CAN FD links, with
//!   caller-provided buffers.
//! - [`crypto`]: the [`Crypto`] trait; [`RustCrypto`] is the software default
//!   (feature `rustcrypto`), a hardware engine can replace it. `SaltyCrypto`
//!   (feature `salty`) verifies Ed25519 with the smaller and slower `salty`
//!   crate, and `CompactCrypto` (feature `compact`) with this crate's own
//!   code, smaller and slower again, for targets short of flash.
//!
//! The crate is `no_std` without `alloc`; every collection is bounded by a
//! constant in [`limits`]. The message types derive serde's traits for
//! servers and tools. The paths a device uses read and write postcard's
//! layout by hand, with the same bytes and errors: decoding server replies
//! and manifests, and encoding its requests and the inventory digest.
//! In the Cortex-M4 device-side size probe that takes about 3.4 KiB less
//! code than serde's generated implementations. `docs/PROTOCOL.md` in the repository specifies the
//! format byte by byte, with golden vectors that the tests check.
//!
//! # Example: one check-in and its reply
//!
//! ```
//! # #[cfg(feature = "rustcrypto")] {
//! use syssync_proto::frame::{encode_downlink, encode_uplink, Binding, Frame};
//! use syssync_proto::message::{CheckIn, DeviceMessage, Idle, ServerMessage, UplinkHeader};
//! use syssync_proto::{DeviceId, DeviceKey, RustCrypto};
//!
//! let crypto = RustCrypto;
//! let key = DeviceKey([7; 32]);
//! let header = UplinkHeader { device: DeviceId(1234), counter: 41 };
//!
//! // Device: encode a check-in.
//! let check_in = DeviceMessage::CheckIn(CheckIn { job: None, inventory: [0xAB; 8], location: None });
//! let mut uplink = [0u8; 64];
//! let len = encode_uplink(&crypto, &key, header, &check_in, &mut uplink).unwrap();
//! assert_eq!(len, 27);
//!
//! // Server: look up the sender's key, verify, decode, reply.
//! let frame = Frame::parse(&uplink[..len]).unwrap();
//! assert_eq!(frame.uplink_header().unwrap().device, DeviceId(1234));
//! let (header, message) = frame.open_uplink(&crypto, &key).unwrap();
//! assert_eq!(message, check_in);
//! let reply = ServerMessage::Idle(Idle { interval_s: 900 });
//! let mut downlink = [0u8; 32];
//! let len = encode_downlink(&crypto, &key, Binding::from(header), &reply, &mut downlink).unwrap();
//! assert_eq!(len, 16);
//!
//! // Device: the reply verifies only against the counter of its own request.
//! let frame = Frame::parse(&downlink[..len]).unwrap();
//! assert_eq!(frame.open_downlink(&crypto, &key, Binding::from(header)).unwrap(), reply);
//! let stale = Binding { device: DeviceId(1234), counter: 40 };
//! assert!(frame.open_downlink(&crypto, &key, stale).is_err());
//! # }
//! ```
#![no_std]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(feature = "std")]
extern crate std;

mod codec;
pub mod codes;
pub mod crypto;
pub mod error;
pub mod frame;
pub mod limits;
pub mod manifest;
pub mod message;
pub mod segment;
pub mod types;

pub use codes::{FailureCode, RefusalCode, RejectReason, RevertReason};
#[cfg(feature = "compact")]
pub use crypto::CompactCrypto;
#[cfg(feature = "rustcrypto")]
pub use crypto::RustCrypto;
#[cfg(feature = "salty")]
pub use crypto::SaltyCrypto;
pub use crypto::{Crypto, Sha256Hasher};
pub use error::{BodyError, EncodeError, FrameError, ManifestError};
pub use frame::{Binding, Frame};
pub use limits::*;
pub use manifest::{
    FileKind, Manifest, ManifestFile, SignedManifest, TrustedKey, MAX_SIGNED_MANIFEST_LEN,
};
pub use message::{DeviceMessage, MessageType, ServerMessage, UplinkHeader};
pub use types::{
    name_from_utf8, AccountId, DeviceId, DeviceKey, FileName, InventoryDigest, JobId, Location,
    NameError, Sha256Digest, Signature, TargetType, Version,
};
