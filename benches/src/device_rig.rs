//! A device running the syssync engine on `flash-sim`, with a minimal server,
//! for measuring the engine's cost per downloaded chunk.
//!
//! The device uses rollback-fsm's application side for staging and the NOR
//! file store, all on `flash-sim` devices with 4 KiB sectors and 4-byte writes.
//! The server offers one release (an application image) and replies to chunk
//! requests with the requested bytes. [`Rig::receive_chunk`] is the measured step: the engine takes one
//! chunk frame (CRC-32, MAC, decode, SHA-256, flash write) and encodes its
//! next request. The server's encoding of the reply is done outside it.

use flash_sim::{FlashConfig, FlashSim, PowerRail};
use rollback_fsm::{Layout, Partition, Settings};
use syssync_device::boot::setting;
use syssync_device::rollback::RollbackFsmBoot;
use syssync_device::{Config, Engine, Instant, NorFileStore};
use syssync_proto::frame::{encode_downlink, Binding, Frame};
use syssync_proto::manifest::{self, FileKind, Manifest, ManifestFile, SignedManifest};
use syssync_proto::message::{Chunk, DeviceMessage, Idle, JobOffer, MessageType, ServerMessage};
use syssync_proto::{Crypto, DeviceKey, JobId, RustCrypto, TrustedKey, Version, MAX_FRAME_LEN};

use crate::samples::{device_key, DEVICE, RELEASE_SECRET};

/// Flash device of the rig: 4 KiB sectors, 4-byte writes.
pub type RigFlash = FlashSim<4096, 4>;
/// Boot side of the rig.
pub type RigBoot = RollbackFsmBoot<RigFlash, RigFlash, RigFlash>;
/// Engine of the rig.
pub type RigEngine = Engine<RigBoot, NorFileStore<RigFlash>, RustCrypto>;

const TARGET: &str = "bench-board";
const SECTOR: u32 = 4096;
const SETTINGS: Partition = Partition::new(0, 2 * SECTOR);
/// Bound on engine round trips while reaching the first chunk request.
const MAX_SETUP_STEPS: usize = 1_000;

/// Error of the rig's setup: which step failed and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RigError(pub String);

impl std::fmt::Display for RigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RigError {}

fn fail(step: &str, error: impl std::fmt::Debug) -> RigError {
    RigError(format!("{step} failed: {error:?}"))
}

/// The server side: one release with an application image.
struct MiniServer {
    key: DeviceKey,
    image: Vec<u8>,
    manifest_body: Vec<u8>,
    signature: syssync_proto::Signature,
    offered: bool,
}

impl MiniServer {
    fn new(image: Vec<u8>) -> Result<Self, RigError> {
        let mut files = heapless::Vec::new();
        let file = ManifestFile {
            kind: FileKind::Application,
            name: "app.bin"
                .try_into()
                .map_err(|error| fail("file name", error))?,
            size: image.len() as u32,
            sha256: RustCrypto.sha256(&[&image]),
        };
        files.push(file).map_err(|error| fail("manifest", error))?;
        let release = Manifest {
            target: TARGET.try_into().map_err(|error| fail("target", error))?,
            version: Version::new(2, 0, 0, 0),
            security_counter: 1,
            expires_at: u64::MAX,
            files,
            remove: heapless::Vec::new(),
        };
        let mut buf = [0u8; syssync_proto::MAX_MANIFEST_LEN];
        let manifest_body = release
            .encode(&mut buf)
            .map_err(|error| fail("manifest encoding", error))?
            .to_vec();
        let signature = manifest::sign(&manifest_body, &RELEASE_SECRET);
        Ok(Self {
            key: device_key(),
            image,
            manifest_body,
            signature,
            offered: false,
        })
    }

    /// Returns the reply frame to one request frame.
    fn handle(&mut self, request: &[u8]) -> Result<Vec<u8>, RigError> {
        let frame = Frame::parse(request).map_err(|error| fail("request parse", error))?;
        let (header, message) = frame
            .open_uplink(&RustCrypto, &self.key)
            .map_err(|error| fail("request MAC", error))?;
        let idle = ServerMessage::Idle(Idle { interval_s: 900 });
        let reply = match message {
            DeviceMessage::CheckIn(_) if !self.offered => {
                self.offered = true;
                ServerMessage::JobOffer(JobOffer {
                    job: JobId(1),
                    reset_window: None,
                    manifest: SignedManifest {
                        key_id: 1,
                        body: &self.manifest_body,
                        signature: self.signature,
                    },
                })
            }
            DeviceMessage::ChunkRequest(request) => {
                let start = (request.offset as usize).min(self.image.len());
                let end = (start + usize::from(request.length)).min(self.image.len());
                ServerMessage::Chunk(Chunk {
                    data: &self.image[start..end],
                })
            }
            _ => idle,
        };
        let mut out = vec![0u8; MAX_FRAME_LEN];
        let len = encode_downlink(
            &RustCrypto,
            &self.key,
            Binding::from(header),
            &reply,
            &mut out,
        )
        .map_err(|error| fail("reply encoding", error))?;
        out.truncate(len);
        Ok(out)
    }
}

/// A device with an engine in the middle of a download, and its server.
pub struct Rig {
    engine: RigEngine,
    server: MiniServer,
    now: Instant,
    reply: Option<Vec<u8>>,
    transmit: Vec<u8>,
    chunks: u64,
}

fn flash(rail: &PowerRail, size: u32) -> Result<RigFlash, RigError> {
    RigFlash::new(FlashConfig::new(size as usize), rail.clone()).map_err(|e| fail("flash", e))
}

impl Rig {
    /// Builds a provisioned device and a server offering `image`, and runs the
    /// exchange up to the first chunk reply.
    pub fn new(image: Vec<u8>, chunk_size: u16) -> Result<Self, RigError> {
        let rail = PowerRail::new();
        let part = (image.len() as u32).div_ceil(SECTOR) * SECTOR;
        let layout = Layout {
            active: Partition::new(0, part),
            staging: Partition::new(0, part),
            recovery: Partition::new(0, part),
            state: Partition::new(0, 2 * SECTOR),
        };
        let fsm_config =
            rollback_fsm::Config::try_new(layout, TARGET).map_err(|e| fail("layout", e))?;

        let mut settings_flash = flash(&rail, 2 * SECTOR)?;
        {
            let mut settings =
                Settings::new(&mut settings_flash, SETTINGS).map_err(|e| fail("settings", e))?;
            let entries: [(u16, &[u8]); 3] = [
                (setting::DEVICE_ID, &DEVICE.0.to_le_bytes()),
                (setting::DEVICE_KEY, &device_key().0),
                (setting::TARGET_TYPE, TARGET.as_bytes()),
            ];
            for (key, value) in entries {
                settings
                    .write(key, value)
                    .map_err(|e| fail("identity setting", e))?;
            }
        }
        let boot = RigBoot::new(
            fsm_config,
            flash(&rail, part)?,
            flash(&rail, 2 * SECTOR)?,
            settings_flash,
            SETTINGS,
        )
        .map_err(|e| fail("boot side", e))?;
        let store =
            NorFileStore::new(flash(&rail, 64 * 1024)?, 1).map_err(|e| fail("file store", e))?;

        let trusted = TrustedKey {
            id: 1,
            public_key: manifest::public_key(&RELEASE_SECRET),
        };
        let mut config = Config::new(&[trusted]).map_err(|e| fail("engine config", e))?;
        config.chunk_size = chunk_size;
        let now = Instant(0);
        let mut engine =
            Engine::new(config, boot, store, RustCrypto, now, 3).map_err(|e| fail("engine", e))?;
        engine.set_network(now, true);

        let mut rig = Self {
            engine,
            server: MiniServer::new(image)?,
            now,
            reply: None,
            transmit: vec![0u8; MAX_FRAME_LEN],
            chunks: 0,
        };
        rig.reach_first_chunk()?;
        Ok(rig)
    }

    fn reach_first_chunk(&mut self) -> Result<(), RigError> {
        for _ in 0..MAX_SETUP_STEPS {
            self.engine.handle_timeout(self.now);
            while let Some(len) = self.engine.poll_transmit(self.now, &mut self.transmit) {
                let request = self.transmit[..len].to_vec();
                let reply = self.server.handle(&request)?;
                if message_type(&request) == Some(MessageType::ChunkRequest) {
                    self.reply = Some(reply);
                    return Ok(());
                }
                self.engine.handle_frame(self.now, &reply);
            }
            while self.engine.poll_event().is_some() {}
            let next = self.engine.poll_timeout().unwrap_or(self.now);
            self.now = next.max(Instant(self.now.0 + 1));
        }
        Err(RigError("the engine never requested a chunk".into()))
    }

    /// Hands the pending chunk reply to the engine and lets it encode its next
    /// request. Returns the length of that request, or `None` if the engine
    /// sent nothing or no reply was pending.
    ///
    /// This is the measured step. Preparing the following reply is left to
    /// [`prepare_next`](Self::prepare_next), outside the measurement.
    pub fn receive_chunk(&mut self) -> Option<usize> {
        let reply = self.reply.take()?;
        self.engine.handle_frame(self.now, &reply);
        self.chunks += 1;
        self.engine.poll_transmit(self.now, &mut self.transmit)
    }

    /// Lets the server reply to the request of length `len` that
    /// [`receive_chunk`](Self::receive_chunk) produced; returns false when that
    /// request is not a chunk request, which ends the download.
    pub fn prepare_next(&mut self, len: usize) -> Result<bool, RigError> {
        while self.engine.poll_event().is_some() {}
        let request = self.transmit[..len].to_vec();
        if message_type(&request) != Some(MessageType::ChunkRequest) {
            return Ok(false);
        }
        self.reply = Some(self.server.handle(&request)?);
        Ok(true)
    }

    /// Returns the chunks received so far.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// Consumes the rig and returns the engine, for inspection.
    pub fn into_engine(self) -> RigEngine {
        self.engine
    }
}

fn message_type(frame: &[u8]) -> Option<MessageType> {
    Frame::parse(frame).ok().map(|frame| frame.message_type())
}

#[cfg(test)]
mod tests {
    use super::*;
    use syssync_device::BootControl;

    #[test]
    fn rig_downloads_whole_image() {
        // Proves that the rig's steps take the engine through a whole download, one chunk per step.
        let image: Vec<u8> = (0..40_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut rig = Rig::new(image.clone(), 1024).unwrap();
        let mut steps = 0;
        while let Some(len) = rig.receive_chunk() {
            steps += 1;
            if !rig.prepare_next(len).unwrap() {
                break;
            }
            assert!(steps < 100, "download did not end");
        }
        assert_eq!(rig.chunks(), 40);
        let mut staged = vec![0u8; image.len()];
        let (mut boot, _) = rig.into_engine().into_parts();
        boot.read_staging(0, &mut staged).unwrap();
        assert_eq!(staged, image);
    }
}
