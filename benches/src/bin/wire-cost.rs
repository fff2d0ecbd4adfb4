//! Prints the bytes of one steady-state check-in, one "nothing to do" reply
//! and one KiB of download for syssync, next to the same exchange in the
//! hawkBit DDI API, the Mender device API and an LwM2M registration update.
//!
//! Usage: `cargo run --release -p benches --bin wire-cost [-- --show]`;
//! `--show` prints every counted message.
//!
//! syssync figures are encoded frames. The others are example messages built
//! here from the published formats. `docs/PERFORMANCE.md` lists the fields
//! and headers counted and the lengths assumed for identifiers and tokens. Transport and security layers (TCP, TLS, UDP, DTLS, IP) are not
//! counted for any of them.

use std::process::ExitCode;

use benches::samples;
use syssync_proto::frame::{encode_downlink, encode_uplink};
use syssync_proto::message::{Chunk, ChunkRequest, DeviceMessage, Idle, ServerMessage};
use syssync_proto::{EncodeError, JobId, RustCrypto, MAX_FRAME_LEN};

const HOST: &str = "updates.example.com";
/// Device name in the HTTP APIs' paths.
const DEVICE_NAME: &str = "device-700001";
/// Offset of the example KiB in the 615,388-byte image.
const OFFSET: u32 = 523_264;
const IMAGE_SIZE: u32 = 615_388;

/// One row of the table: bytes up, bytes down, and the messages counted.
struct Exchange {
    up: usize,
    down: usize,
    shown: Vec<String>,
}

impl Exchange {
    fn text(up: &str, down_head: &str, down_body: usize) -> Self {
        Self {
            up: up.len(),
            down: down_head.len() + down_body,
            shown: vec![
                up.to_string(),
                format!("{down_head}<{down_body} body bytes>"),
            ],
        }
    }
}

type Rows = (Exchange, Exchange, Exchange);

fn syssync_frames() -> Result<(Exchange, Exchange, Exchange, Exchange), EncodeError> {
    let crypto = RustCrypto;
    let key = samples::device_key();
    let mut out = [0u8; MAX_FRAME_LEN];
    let mut up = |message: &DeviceMessage| {
        encode_uplink(&crypto, &key, samples::header(), message, &mut out)
    };
    let check_in = up(&samples::steady_check_in())?;
    let request = |length: u16| {
        DeviceMessage::ChunkRequest(ChunkRequest {
            job: JobId(1_042),
            file: 0,
            offset: OFFSET,
            length,
        })
    };
    let request_1k = up(&request(1024))?;
    let request_4k = up(&request(4096))?;

    let mut out = [0u8; MAX_FRAME_LEN];
    let mut down = |message: &ServerMessage<'_>| {
        encode_downlink(&crypto, &key, samples::binding(), message, &mut out)
    };
    let idle = down(&ServerMessage::Idle(Idle { interval_s: 900 }))?;
    let data = [0xA5u8; 4096];
    let chunk_1k = down(&ServerMessage::Chunk(Chunk {
        data: &data[..1024],
    }))?;
    let chunk_4k = down(&ServerMessage::Chunk(Chunk { data: &data }))?;
    let frame = |name: &str, len: usize| format!("{name}: {len}-byte frame");
    Ok((
        Exchange {
            up: check_in,
            down: 0,
            shown: vec![frame("CheckIn (no job, 8-byte inventory digest)", check_in)],
        },
        Exchange {
            up: 0,
            down: idle,
            shown: vec![frame("Idle (interval 900 s)", idle)],
        },
        Exchange {
            up: request_1k,
            down: chunk_1k,
            shown: vec![
                frame("ChunkRequest (1024 bytes)", request_1k),
                frame("Chunk (1024 bytes)", chunk_1k),
            ],
        },
        Exchange {
            up: request_4k,
            down: chunk_4k,
            shown: vec![
                frame("ChunkRequest (4096 bytes)", request_4k),
                frame("Chunk (4096 bytes)", chunk_4k),
            ],
        },
    ))
}

/// A hawkBit target token of 32 characters.
const HAWKBIT_TOKEN: &str = "2f3c9d1e8a7b6c5d4e3f2a1b0c9d8e7f";

fn hawkbit() -> Rows {
    let poll = format!(
        "GET /DEFAULT/controller/v1/{DEVICE_NAME} HTTP/1.1\r\nHost: {HOST}\r\n\
         Authorization: TargetToken {HAWKBIT_TOKEN}\r\nAccept: application/hal+json\r\n\r\n"
    );
    let body = r#"{"config":{"polling":{"sleep":"00:15:00"}}}"#;
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/hal+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let end = OFFSET + 1023;
    let get = format!(
        "GET /DEFAULT/controller/v1/{DEVICE_NAME}/softwaremodules/7/artifacts/firmware.bin HTTP/1.1\r\n\
         Host: {HOST}\r\nAuthorization: TargetToken {HAWKBIT_TOKEN}\r\nRange: bytes={OFFSET}-{end}\r\n\r\n"
    );
    let partial = format!(
        "HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\n\
         Content-Range: bytes {OFFSET}-{end}/{IMAGE_SIZE}\r\nContent-Length: 1024\r\n\r\n"
    );
    let mut poll_row = Exchange::text(&poll, "", 0);
    poll_row.shown.truncate(1);
    let reply_row = Exchange {
        up: 0,
        down: reply.len(),
        shown: vec![reply],
    };
    (poll_row, reply_row, Exchange::text(&get, &partial, 1024))
}

/// Builds a stand-in of a Mender device JWT of the same length: RS256 header,
/// the claims listed in `docs/PERFORMANCE.md` and a 256-byte (RSA-2048)
/// signature, each base64url-encoded.
fn mender_jwt() -> String {
    let base64url_len = |bytes: usize| (bytes * 4).div_ceil(3);
    let header = r#"{"alg":"RS256","typ":"JWT"}"#;
    let claims = r#"{"jti":"0b5e9c1e-7d2a-4f7e-9b1a-3c6d8e2f4a10","sub":"5f8a1c2e-3b4d-4e6f-8a9b-0c1d2e3f4a5b","exp":1893456000,"iat":1892851200,"iss":"Mender","mender.device":true}"#;
    let parts = [
        base64url_len(header.len()),
        base64url_len(claims.len()),
        base64url_len(256),
    ];
    parts
        .iter()
        .map(|len| "x".repeat(*len))
        .collect::<Vec<_>>()
        .join(".")
}

fn mender() -> Rows {
    let jwt = mender_jwt();
    let poll = format!(
        "GET /api/devices/v1/deployments/device/deployments/next?artifact_name=release-1.9.4&device_type=esp8266-4m HTTP/1.1\r\n\
         Host: {HOST}\r\nAuthorization: Bearer {jwt}\r\n\r\n"
    );
    let reply = "HTTP/1.1 204 No Content\r\n\r\n".to_string();
    // Artifacts come from a pre-signed storage URL (S3 signature version 4).
    let url = "/mender-artifact-storage/7d2a0b5e-9c1e-4f7e-9b1a-3c6d8e2f4a10?X-Amz-Algorithm=AWS4-HMAC-SHA256\
               &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20300101%2Fus-east-1%2Fs3%2Faws4_request\
               &X-Amz-Date=20300101T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
               &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
    let end = OFFSET + 1023;
    let get =
        format!("GET {url} HTTP/1.1\r\nHost: s3.{HOST}\r\nRange: bytes={OFFSET}-{end}\r\n\r\n");
    let partial = format!(
        "HTTP/1.1 206 Partial Content\r\nContent-Type: application/vnd.mender-artifact\r\n\
         Content-Range: bytes {OFFSET}-{end}/{IMAGE_SIZE}\r\nContent-Length: 1024\r\n\r\n"
    );
    let mut poll_row = Exchange::text(&poll, "", 0);
    poll_row.shown.truncate(1);
    let reply_row = Exchange {
        up: 0,
        down: reply.len(),
        shown: vec![reply],
    };
    (poll_row, reply_row, Exchange::text(&get, &partial, 1024))
}

/// CoAP (RFC 7252) message bytes: 4-byte header, 4-byte token, options, and
/// `payload` after the 0xFF marker when there is one.
fn coap_len(options: &[(u16, usize)], payload: usize) -> usize {
    let mut len = 4 + 4;
    let mut previous = 0;
    for (number, value) in options {
        let delta = number - previous;
        previous = *number;
        let extended = |n: usize| match n {
            0..=12 => 0,
            13..=268 => 1,
            _ => 2,
        };
        len += 1 + extended(usize::from(delta)) + extended(*value) + value;
    }
    if payload > 0 {
        len += 1 + payload;
    }
    len
}

fn lwm2m() -> Rows {
    const URI_PATH: u16 = 11;
    const CONTENT_FORMAT: u16 = 12;
    const BLOCK2: u16 = 23;
    // Update: POST /rd/5a3f with no query (lifetime unchanged) and no payload.
    let update = coap_len(&[(URI_PATH, 2), (URI_PATH, 4)], 0);
    // 2.04 Changed, piggybacked on the ACK.
    let changed = coap_len(&[], 0);
    // Firmware pull (object 5, package URI coap://host/fw/app.bin) with
    // 1024-byte blocks: block 511 needs a 2-byte Block2 value.
    let get = coap_len(&[(URI_PATH, 2), (URI_PATH, 7), (BLOCK2, 2)], 0);
    let block = coap_len(&[(CONTENT_FORMAT, 1), (BLOCK2, 2)], 1024);
    (
        Exchange {
            up: update,
            down: 0,
            shown: vec![format!("Update POST /rd/5a3f: {update} bytes")],
        },
        Exchange {
            up: 0,
            down: changed,
            shown: vec![format!("2.04 Changed: {changed} bytes")],
        },
        Exchange {
            up: get,
            down: block,
            shown: vec![
                format!("GET /fw/app.bin with Block2: {get} bytes"),
                format!("2.05 Content with Block2 and 1024 bytes: {block} bytes"),
            ],
        },
    )
}

/// Bytes a security layer adds to each message it carries.
#[derive(Clone, Copy)]
enum Security {
    /// The frame carries its own tag and CRC: nothing is added.
    None,
    /// TLS 1.2 record with AES-GCM: 5-byte header (RFC 5246), 8-byte explicit
    /// nonce and 16-byte tag (RFC 5288).
    Tls12Gcm,
    /// DTLS 1.2 record with AES-CCM-8: 13-byte header (RFC 6347), 8-byte
    /// explicit nonce and 8-byte tag (RFC 6655).
    Dtls12Ccm8,
}

impl Security {
    fn per_message(self) -> usize {
        match self {
            Self::None => 0,
            Self::Tls12Gcm => 5 + 8 + 16,
            Self::Dtls12Ccm8 => 13 + 8 + 8,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::None => "none (MAC and CRC in the frame)",
            Self::Tls12Gcm => "TLS 1.2, AES-GCM",
            Self::Dtls12Ccm8 => "DTLS 1.2, AES-CCM-8",
        }
    }
}

fn main() -> ExitCode {
    let show = std::env::args().any(|arg| arg == "--show");
    let (check_in, idle, kib, kib_4k) = match syssync_frames() {
        Ok(frames) => frames,
        Err(error) => {
            eprintln!("wire-cost: encoding a syssync sample failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let (hawkbit_poll, hawkbit_idle, hawkbit_kib) = hawkbit();
    let (mender_poll, mender_idle, mender_kib) = mender();
    let (lwm2m_update, lwm2m_changed, lwm2m_kib) = lwm2m();
    let rows = [
        ("syssync, 1 KiB chunks", Security::None, check_in, idle, kib),
        (
            "hawkBit DDI (HTTP/1.1)",
            Security::Tls12Gcm,
            hawkbit_poll,
            hawkbit_idle,
            hawkbit_kib,
        ),
        (
            "Mender device API v1 (HTTP/1.1)",
            Security::Tls12Gcm,
            mender_poll,
            mender_idle,
            mender_kib,
        ),
        (
            "LwM2M 1.1 registration update (CoAP)",
            Security::Dtls12Ccm8,
            lwm2m_update,
            lwm2m_changed,
            lwm2m_kib,
        ),
    ];
    println!("| client | check-in (up) | nothing to do (down) | 1 KiB download (up + down) | security layer | check-in | nothing to do | 1 KiB download |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, security, check_in, idle, kib) in &rows {
        let extra = security.per_message();
        println!(
            "| {name} | {} | {} | {} + {} = {} | {} | {} | {} | {} |",
            check_in.up,
            idle.down,
            kib.up,
            kib.down,
            kib.up + kib.down,
            security.name(),
            check_in.up + extra,
            idle.down + extra,
            kib.up + kib.down + 2 * extra
        );
    }
    let per_kib = (kib_4k.up + kib_4k.down) as f64 / 4.0;
    println!(
        "| syssync, 4 KiB chunks | | | {} + {} per 4 KiB = {per_kib:.0} per KiB | none | | | {per_kib:.0} |",
        kib_4k.up, kib_4k.down
    );
    if show {
        println!();
        for (name, _, check_in, idle, kib) in &rows {
            println!("## {name}");
            for message in check_in.shown.iter().chain(&idle.shown).chain(&kib.shown) {
                println!("{}", message.replace("\r\n", "\\r\\n\n"));
            }
            println!();
        }
        for message in &kib_4k.shown {
            println!("{message}");
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coap_lengths_follow_rfc7252() {
        // Proves the CoAP byte count: header, token, delta-encoded options with extended lengths, payload marker.
        // GET /temperature: 4 + 4 + (1 + 11) bytes.
        assert_eq!(coap_len(&[(11, 11)], 0), 20);
        // Option 60 (Size1) needs a 1-byte extended delta; a 13-byte value a 1-byte extended length.
        assert_eq!(coap_len(&[(60, 2)], 0), 8 + 1 + 1 + 2);
        assert_eq!(coap_len(&[(11, 13)], 0), 8 + 1 + 1 + 13);
        // A payload adds the 0xFF marker.
        assert_eq!(coap_len(&[], 5), 8 + 1 + 5);
    }

    #[test]
    fn syssync_rows_match_encoded_frames() {
        // Proves that the syssync row counts whole frames: a chunk frame is its data plus 16 bytes.
        let (check_in, idle, kib, kib_4k) = syssync_frames().unwrap();
        assert_eq!(check_in.up, 30);
        assert_eq!(idle.down, 16);
        assert_eq!(kib.down, 1024 + 16);
        assert_eq!(kib_4k.down, 4096 + 16);
        assert!(
            kib.up > 14 && kib.up < 40,
            "chunk request of {} bytes",
            kib.up
        );
    }

    #[test]
    fn http_messages_count_every_byte() {
        // Proves that the HTTP rows count the request line, headers, blank line and body.
        let (poll, reply, download) = hawkbit();
        assert!(poll.shown[0].starts_with("GET /DEFAULT/controller/v1/device-700001 HTTP/1.1\r\n"));
        assert!(poll.shown[0].ends_with("\r\n\r\n"));
        assert_eq!(poll.up, poll.shown[0].len());
        assert_eq!(reply.down, reply.shown[0].len());
        assert!(download.down > 1024);
        let (poll, _, _) = mender();
        assert!(poll.up > mender_jwt().len());
    }
}
