//! The job record: the engine's persisted view of the job in progress.
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | job id |
//! | 4 | phase (0 none, 1 downloading, 2 committing, 3 staged, 4 trial, 5 reporting) |
//! | 5 | file index being fetched, or commit cursor |
//! | 6..10 | verified bytes of that file |
//! | 10..12 | files done (fetched and verified, or unchanged), one bit per manifest index |
//! | 12..14 | files to fetch, one bit per manifest index |
//! | 14..18 | verified bytes over all files |
//! | 18 | outcome to report (0 none, 1 installed, 2 failed, 3 reverted, 4 rejected, 5 cancelled) |
//! | 19..21 | outcome code |
//! | 21 | flags: 1 the application image is being staged, 2 the install report was delivered |
//! | 22 | relocation in progress (1) or not (0) |
//! | 23 | manifest index of the relocated file |
//! | 24..28 | offset of the relocated sector in its file |
//! | 28..32 | bytes moved into scratch |
//! | 32..36 | CRC-32 of those bytes |
//! | 36..48 | reserved, zero |
//!
//! A record that cannot be decoded reads as no job: the engine then starts
//! from a clean state, which re-fetches at most the job it forgot.

use syssync_proto::message::JobOutcome;
use syssync_proto::{FailureCode, JobId, RejectReason, RevertReason};

use crate::store::JOB_RECORD_LEN;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Downloading,
    Committing,
    Staged,
    Trial,
    Reporting,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Relocation {
    pub(crate) file: u8,
    pub(crate) sector: u32,
    pub(crate) len: u32,
    pub(crate) crc: u32,
}

pub(crate) const FLAG_STAGING: u8 = 1;
pub(crate) const FLAG_INSTALL_REPORTED: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct JobRecord {
    pub(crate) job: JobId,
    pub(crate) phase: Phase,
    pub(crate) file: u8,
    pub(crate) offset: u32,
    pub(crate) done: u16,
    pub(crate) fetch: u16,
    pub(crate) bytes_done: u32,
    pub(crate) outcome: Option<JobOutcome>,
    pub(crate) flags: u8,
    pub(crate) relocation: Option<Relocation>,
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

impl JobRecord {
    pub(crate) fn new(job: JobId, phase: Phase) -> Self {
        JobRecord {
            job,
            phase,
            file: 0,
            offset: 0,
            done: 0,
            fetch: 0,
            bytes_done: 0,
            outcome: None,
            flags: 0,
            relocation: None,
        }
    }

    pub(crate) fn has_flag(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    pub(crate) fn encode(record: Option<&JobRecord>) -> [u8; JOB_RECORD_LEN] {
        let Some(record) = record else {
            return [0; JOB_RECORD_LEN];
        };
        let phase = match record.phase {
            Phase::Downloading => 1,
            Phase::Committing => 2,
            Phase::Staged => 3,
            Phase::Trial => 4,
            Phase::Reporting => 5,
        };
        let (kind, code) = match record.outcome {
            None => (0, 0),
            Some(JobOutcome::Installed) => (1, 0),
            Some(JobOutcome::Failed(code)) => (2, code.0),
            Some(JobOutcome::Reverted(reason)) => (3, reason.0),
            Some(JobOutcome::Rejected(reason)) => (4, reason.0),
            Some(JobOutcome::Cancelled) => (5, 0),
        };
        // No relocation encodes as zero bytes 22 to 35.
        let (moving, relocation) = match record.relocation {
            Some(relocation) => (1, relocation),
            None => (
                0,
                Relocation {
                    file: 0,
                    sector: 0,
                    len: 0,
                    crc: 0,
                },
            ),
        };
        // The whole record is one array literal, built in the returned
        // array, so no field needs a call and no partial record is copied.
        let [job_0, job_1, job_2, job_3] = record.job.0.to_le_bytes();
        let [offset_0, offset_1, offset_2, offset_3] = record.offset.to_le_bytes();
        let [done_0, done_1] = record.done.to_le_bytes();
        let [fetch_0, fetch_1] = record.fetch.to_le_bytes();
        let [bytes_0, bytes_1, bytes_2, bytes_3] = record.bytes_done.to_le_bytes();
        let [code_0, code_1] = code.to_le_bytes();
        let [sector_0, sector_1, sector_2, sector_3] = relocation.sector.to_le_bytes();
        let [len_0, len_1, len_2, len_3] = relocation.len.to_le_bytes();
        let [crc_0, crc_1, crc_2, crc_3] = relocation.crc.to_le_bytes();
        [
            job_0,
            job_1,
            job_2,
            job_3,
            phase,
            record.file,
            offset_0,
            offset_1,
            offset_2,
            offset_3,
            done_0,
            done_1,
            fetch_0,
            fetch_1,
            bytes_0,
            bytes_1,
            bytes_2,
            bytes_3,
            kind,
            code_0,
            code_1,
            record.flags,
            moving,
            relocation.file,
            sector_0,
            sector_1,
            sector_2,
            sector_3,
            len_0,
            len_1,
            len_2,
            len_3,
            crc_0,
            crc_1,
            crc_2,
            crc_3,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ]
    }

    pub(crate) fn decode(bytes: &[u8; JOB_RECORD_LEN]) -> Option<JobRecord> {
        let phase = match bytes[4] {
            1 => Phase::Downloading,
            2 => Phase::Committing,
            3 => Phase::Staged,
            4 => Phase::Trial,
            5 => Phase::Reporting,
            _ => return None,
        };
        let code = read_u16(bytes, 19);
        let outcome = match bytes[18] {
            0 => None,
            1 => Some(JobOutcome::Installed),
            2 => Some(JobOutcome::Failed(FailureCode(code))),
            3 => Some(JobOutcome::Reverted(RevertReason(code))),
            4 => Some(JobOutcome::Rejected(RejectReason(code))),
            5 => Some(JobOutcome::Cancelled),
            _ => return None,
        };
        let relocation = match bytes[22] {
            0 => None,
            1 => Some(Relocation {
                file: bytes[23],
                sector: read_u32(bytes, 24),
                len: read_u32(bytes, 28),
                crc: read_u32(bytes, 32),
            }),
            _ => return None,
        };
        if phase == Phase::Reporting && outcome.is_none() {
            return None;
        }
        Some(JobRecord {
            job: JobId(read_u32(bytes, 0)),
            phase,
            file: bytes[5],
            offset: read_u32(bytes, 6),
            done: read_u16(bytes, 10),
            fetch: read_u16(bytes, 12),
            bytes_done: read_u32(bytes, 14),
            outcome,
            flags: bytes[21],
            relocation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        // Proves that every field survives encoding, and that an all-zero record reads as no job.
        let record = JobRecord {
            job: JobId(77),
            phase: Phase::Reporting,
            file: 3,
            offset: 4096,
            done: 0b101,
            fetch: 0b111,
            bytes_done: 9000,
            outcome: Some(JobOutcome::Reverted(RevertReason::TRIAL_LIMIT)),
            flags: FLAG_STAGING,
            relocation: Some(Relocation {
                file: 1,
                sector: 2048,
                len: 512,
                crc: 0xDEAD_BEEF,
            }),
        };
        let bytes = JobRecord::encode(Some(&record));
        assert_eq!(JobRecord::decode(&bytes), Some(record));
        assert_eq!(JobRecord::decode(&JobRecord::encode(None)), None);

        // The journal's layout on flash, byte by byte.
        let [reason_0, reason_1] = RevertReason::TRIAL_LIMIT.0.to_le_bytes();
        #[rustfmt::skip]
        let head = [
            77, 0, 0, 0,            // job
            5,                      // phase: reporting
            3,                      // file
            0x00, 0x10, 0, 0,       // offset
            0b101, 0,               // done
            0b111, 0,               // fetch
            0x28, 0x23, 0, 0,       // bytes done
            3,                      // outcome: reverted
            reason_0, reason_1,     // revert reason
            FLAG_STAGING,           // flags
            1,                      // relocation present
            1,                      // relocation file
            0x00, 0x08, 0, 0,       // relocation sector
            0x00, 0x02, 0, 0,       // relocation length
            0xEF, 0xBE, 0xAD, 0xDE, // relocation CRC
        ];
        assert_eq!(bytes[..36], head);
        assert!(bytes[36..].iter().all(|byte| *byte == 0));
    }
}
