//! Finding offsets: the first record at or after a time (Kafka ListOffsets
//! by timestamp, `?timestamp=` on HTTP reads), and checks the faces share.

use super::{Host, ReadLimits};
use crate::error::Error;

/// Records read per step while searching by time.
const SCAN_RECORDS: usize = 10_000;

/// Where a time search landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOffset {
    /// The first offset whose record's timestamp is at or after the time asked for.
    pub offset: u64,
    /// That record's timestamp.
    pub timestamp_ms: u64,
}

impl Host {
    /// The first record of `partition` with a timestamp at or after
    /// `timestamp_ms` (Kafka's ListOffsets rule: timestamps need not grow
    /// with offsets, the first match in offset order wins); `None` if no
    /// record is that recent.
    pub async fn offset_for_timestamp(
        &self,
        stream: &str,
        partition: u32,
        timestamp_ms: u64,
    ) -> Result<Option<TimeOffset>, Error> {
        let info = self.describe_stream(stream)?;
        let range = info.partitions.get(partition as usize).copied().ok_or_else(|| {
            Error::from(crate::log::LogError::PartitionNotFound {
                stream: stream.into(),
                partition,
                partitions: info.partitions.len() as u32,
            })
        })?;
        let mut offset = range.start;
        let limits = ReadLimits {
            max_records: SCAN_RECORDS,
            max_bytes: usize::try_from(self.settings().max_read_bytes.as_u64()).unwrap_or(usize::MAX),
        };
        loop {
            let batch = match self.read(stream, partition, offset, limits).await {
                Ok(b) => b,
                // Retention moved the start while we searched: go on from it.
                Err(e) if e.code() == "offset_out_of_range" || e.code() == "trimmed" => {
                    let start = self
                        .describe_stream(stream)?
                        .partitions
                        .get(partition as usize)
                        .map(|r| r.start);
                    match start {
                        Some(s) if s > offset => {
                            offset = s;
                            continue;
                        }
                        _ => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            };
            if let Some(r) = batch.records.iter().find(|r| r.record.timestamp_ms >= timestamp_ms) {
                return Ok(Some(TimeOffset {
                    offset: r.offset,
                    timestamp_ms: r.record.timestamp_ms,
                }));
            }
            if batch.records.is_empty() || batch.next_offset >= batch.end_offset {
                return Ok(None);
            }
            offset = batch.next_offset;
        }
    }

    /// Whether `presented` is the node's token (always true when no token is
    /// set). Compares in time independent of where the bytes differ.
    pub fn token_matches(&self, presented: &[u8]) -> bool {
        match &self.settings().auth_token {
            None => true,
            Some(token) => {
                let token = token.as_bytes();
                let mut diff = u8::from(token.len() != presented.len());
                for (i, t) in token.iter().enumerate() {
                    diff |= t ^ presented.get(i).copied().unwrap_or(!t);
                }
                diff == 0
            }
        }
    }

    /// Checks a stream name against the rules streams are created with.
    pub fn check_stream_name(name: &str) -> Result<(), Error> {
        Ok(crate::log::meta::validate_name(name)?)
    }
}
