//! The bytes of one group commit before they are written: entry headers and
//! small payloads copied into one buffer, big payloads referenced where the
//! producer left them, and all of it written with positional vectored
//! writes.
//!
//! Invariants:
//! * The parts, written back to back, are exactly the encoded entries in
//!   the order they were pushed; `len` is their total size.
//! * A payload of `COPY_BELOW` bytes or more is never copied in user
//!   space: the kernel copies it once, from the producer's buffer into the
//!   page cache (big entries are bound by the writer thread's copying).

use std::fs::File;
use std::io::IoSlice;
use std::ops::Range;

use bytes::Bytes;

use super::format::{EntryMeta, encode_entry_header, entry_len};

/// Payloads smaller than this are copied next to their header, so a group
/// of small entries is one slice for the kernel.
const COPY_BELOW: usize = 16 * 1024;

/// Slices handed to one `pwritev` (Linux's `IOV_MAX` is 1024).
const MAX_SLICES: usize = 1024;

enum Part {
    Copied(Range<usize>),
    Shared(Bytes),
}

#[derive(Default)]
pub struct GroupBuf {
    copied: Vec<u8>,
    parts: Vec<Part>,
    /// Start in `copied` of the bytes not yet in a part.
    open_from: usize,
    len: usize,
}

impl GroupBuf {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.copied.clear();
        self.parts.clear();
        self.open_from = 0;
        self.len = 0;
    }

    /// Appends the entry framing `payload` at `lsn`.
    pub fn push_entry(&mut self, lsn: u64, meta: &EntryMeta, payload: &Bytes) {
        encode_entry_header(&mut self.copied, lsn, meta, payload);
        if payload.len() < COPY_BELOW {
            self.copied.extend_from_slice(payload);
        } else {
            self.close_copied();
            self.parts.push(Part::Shared(payload.clone()));
        }
        self.len += entry_len(payload.len());
    }

    fn close_copied(&mut self) {
        if self.open_from < self.copied.len() {
            self.parts.push(Part::Copied(self.open_from..self.copied.len()));
            self.open_from = self.copied.len();
        }
    }

    /// Writes all parts at `offset` of `file`, retrying short writes.
    pub fn write_at(&mut self, file: &File, offset: u64) -> std::io::Result<()> {
        self.close_copied();
        let mut slices: Vec<IoSlice<'_>> = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Copied(r) => IoSlice::new(&self.copied[r.clone()]),
                Part::Shared(b) => IoSlice::new(b),
            })
            .collect();
        let mut rest: &mut [IoSlice<'_>] = &mut slices;
        let mut at = offset;
        while !rest.is_empty() {
            let n = rest.len().min(MAX_SLICES);
            let written = match rustix::io::pwritev(file, &rest[..n], at) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(w) => w,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            at = at
                .checked_add(written as u64)
                .ok_or_else(|| std::io::Error::other("segment offset overflows"))?;
            IoSlice::advance_slices(&mut rest, written);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use proptest::prelude::*;

    use super::*;
    use crate::wal::format::{EntryKind, encode_entry};

    fn meta(i: u64) -> EntryMeta {
        EntryMeta {
            kind: EntryKind::Records,
            stream: 7,
            partition: i as u32,
            base_offset: i * 3,
            count: 1,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the mix of small and big payloads (and more slices than
        /// one pwritev takes), the file holds exactly the entries encoded
        /// back to back, at the offset given.
        #[test]
        fn writes_exactly_the_encoded_entries(
            sizes in proptest::collection::vec(prop_oneof![0usize..64, 15_000usize..40_000], 0..40),
            many_big in any::<bool>(),
            offset in 0u64..5000,
        ) {
            let mut sizes = sizes;
            if many_big {
                // More than MAX_SLICES parts in one group.
                sizes.extend(std::iter::repeat_n(COPY_BELOW, 600));
            }
            let dir = tempfile::tempdir().unwrap();
            let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(dir.path().join("seg")).unwrap();
            let mut buf = GroupBuf::default();
            let mut expected = Vec::new();
            for (i, &size) in sizes.iter().enumerate() {
                let payload = Bytes::from((0..size).map(|b| (b * 31 + i) as u8).collect::<Vec<u8>>());
                buf.push_entry(100 + i as u64, &meta(i as u64), &payload);
                encode_entry(&mut expected, 100 + i as u64, &meta(i as u64), &payload);
            }
            prop_assert_eq!(buf.len(), expected.len());
            buf.write_at(&file, offset).unwrap();
            let mut on_disk = vec![0u8; expected.len()];
            file.read_exact_at(&mut on_disk, offset).unwrap();
            prop_assert!(on_disk == expected);
            prop_assert_eq!(file.metadata().unwrap().len(), if expected.is_empty() { 0 } else { offset + expected.len() as u64 });
            buf.clear();
            prop_assert!(buf.is_empty());
        }
    }
}
