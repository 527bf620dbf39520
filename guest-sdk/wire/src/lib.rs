//! Byte encodings shared by the Sluice host and its plugins.
//!
//! * The **record body** is how one record is stored in a WAL batch, in
//!   segment objects, and inside plugin batches.
//! * A **plugin batch** is what crosses the Wasm boundary: a count, then per
//!   record its offset and body.
//!
//! All integers are little-endian. Decoding never panics and never copies:
//! views borrow from the input, and headers are parsed lazily, so decoding a
//! record allocates nothing.
//!
//! ```text
//! record body
//! +--------------+-----------+-----+-----------+-------+-----------+---------+
//! | timestamp_ms | key_len+1 | key | value_len | value | n_headers | headers |
//! | u64          | u32       |     | u32       |       | u16       |         |
//! +--------------+-----------+-----+-----------+-------+-----------+---------+
//!   key_len+1 = 0 encodes "no key" (distinct from an empty key)
//!   value_len = 0xFFFF_FFFF encodes a null value (distinct from an empty
//!   one; no value bytes follow)
//!   header: name_len u16 | name (UTF-8) | value_len u32 | value
//!   (a header's value_len = 0xFFFF_FFFF: a null header value)
//!
//! plugin batch
//! +-------+--------------------------------------------+
//! | count | count x ( offset u64 | record body )       |
//! | u32   |                                            |
//! +-------+--------------------------------------------+
//! ```

#![forbid(unsafe_code)]

use std::fmt;

/// Most headers on one record.
pub const MAX_HEADERS: usize = u16::MAX as usize;
/// Longest header name in bytes.
pub const MAX_HEADER_NAME: usize = u16::MAX as usize;
/// Longest key or value in bytes.
pub const MAX_FIELD: usize = u32::MAX as usize - 1;
/// Bytes of a record body besides key, value and headers.
pub const RECORD_FRAMING: usize = 8 + 4 + 4 + 2;
/// Bytes each header adds besides its name and value.
pub const HEADER_FRAMING: usize = 2 + 4;
/// The `value_len` that encodes a null value (longer than `MAX_FIELD`).
pub const NULL_VALUE_LEN: u32 = u32::MAX;

/// Why bytes are not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The input ends inside record `index`.
    Truncated { index: u32 },
    /// A header name of record `index` is not UTF-8.
    HeaderName { index: u32 },
    /// Bytes remain after the last record.
    Trailing { extra: usize },
    /// A field is too long for the encoding.
    TooLong { what: &'static str, len: usize },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated { index } => write!(f, "input ends inside record {index}"),
            WireError::HeaderName { index } => write!(f, "a header name of record {index} is not UTF-8"),
            WireError::Trailing { extra } => write!(f, "{extra} bytes after the last record"),
            WireError::TooLong { what, len } => write!(f, "{what} of {len} bytes is too long for the encoding"),
        }
    }
}

impl std::error::Error for WireError {}

/// A decoded record body, borrowing from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub timestamp_ms: u64,
    pub key: Option<&'a [u8]>,
    /// The value; empty when it is null (`value_is_null`).
    pub value: &'a [u8],
    /// The record has a null value (a Kafka tombstone), not an empty one.
    pub value_is_null: bool,
    headers: Headers<'a>,
    /// The whole encoded body, for copying a record through unchanged.
    pub raw: &'a [u8],
}

impl<'a> RecordView<'a> {
    pub fn headers(&self) -> Headers<'a> {
        self.headers
    }

    /// The value, `None` when it is null.
    pub fn value_opt(&self) -> Option<&'a [u8]> {
        (!self.value_is_null).then_some(self.value)
    }
}

/// Lazily parsed headers of a record (already validated when decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers<'a> {
    buf: &'a [u8],
    count: u16,
}

impl<'a> Headers<'a> {
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The first header with this name.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Names and values; a null value reads as empty (see
    /// [`Headers::iter_nullable`]).
    pub fn iter(&self) -> HeaderIter<'a> {
        HeaderIter(self.iter_nullable())
    }

    /// Names and values, a null value as `None`.
    pub fn iter_nullable(&self) -> NullableHeaderIter<'a> {
        NullableHeaderIter {
            r: Reader { buf: self.buf, pos: 0 },
            left: self.count,
        }
    }
}

impl<'a> IntoIterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);
    type IntoIter = HeaderIter<'a>;
    fn into_iter(self) -> HeaderIter<'a> {
        self.iter()
    }
}

pub struct HeaderIter<'a>(NullableHeaderIter<'a>);

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a str, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(n, v)| (n, v.unwrap_or_default()))
    }
}

pub struct NullableHeaderIter<'a> {
    r: Reader<'a>,
    left: u16,
}

impl<'a> Iterator for NullableHeaderIter<'a> {
    type Item = (&'a str, Option<&'a [u8]>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Validated at decode time, so these cannot fail; stop quietly if they do.
        let n = self.r.u16()? as usize;
        let name = std::str::from_utf8(self.r.take(n)?).ok()?;
        match self.r.u32()? {
            NULL_VALUE_LEN => Some((name, None)),
            vlen => Some((name, Some(self.r.take(vlen as usize)?))),
        }
    }
}

/// Appends one record body with a (non-null) value to `out`.
pub fn encode_record<'h>(
    out: &mut Vec<u8>,
    timestamp_ms: u64,
    key: Option<&[u8]>,
    value: &[u8],
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
) -> Result<(), WireError> {
    encode_record_nullable(
        out,
        timestamp_ms,
        key,
        Some(value),
        headers.into_iter().map(|(n, v)| (n, Some(v))),
    )
}

/// Appends one record body to `out`; a `None` value or header value is
/// stored as null.
pub fn encode_record_nullable<'h>(
    out: &mut Vec<u8>,
    timestamp_ms: u64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
) -> Result<(), WireError> {
    check_len("key", key.map_or(0, <[u8]>::len), MAX_FIELD)?;
    check_len("value", value.map_or(0, <[u8]>::len), MAX_FIELD)?;
    out.extend_from_slice(&timestamp_ms.to_le_bytes());
    match key {
        None => out.extend_from_slice(&0u32.to_le_bytes()),
        Some(k) => {
            out.extend_from_slice(&(k.len() as u32 + 1).to_le_bytes());
            out.extend_from_slice(k);
        }
    }
    match value {
        None => out.extend_from_slice(&NULL_VALUE_LEN.to_le_bytes()),
        Some(v) => {
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
    }
    let count_at = out.len();
    out.extend_from_slice(&[0, 0]);
    let mut count = 0usize;
    for (name, v) in headers {
        count += 1;
        check_len("header list", count, MAX_HEADERS)?;
        check_len("header name", name.len(), MAX_HEADER_NAME)?;
        check_len("header value", v.map_or(0, <[u8]>::len), MAX_FIELD)?;
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        match v {
            None => out.extend_from_slice(&NULL_VALUE_LEN.to_le_bytes()),
            Some(v) => {
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
        }
    }
    out[count_at..count_at + 2].copy_from_slice(&(count as u16).to_le_bytes());
    Ok(())
}

fn check_len(what: &'static str, len: usize, max: usize) -> Result<(), WireError> {
    if len > max {
        Err(WireError::TooLong { what, len })
    } else {
        Ok(())
    }
}

/// Decodes the record body at `*pos`, advancing `*pos` past it.
pub fn decode_record<'a>(buf: &'a [u8], pos: &mut usize, index: u32) -> Result<RecordView<'a>, WireError> {
    let start = *pos;
    let mut r = Reader { buf, pos: start };
    let t = WireError::Truncated { index };
    let timestamp_ms = r.u64().ok_or(t.clone())?;
    let key = match r.u32().ok_or(t.clone())? {
        0 => None,
        n => Some(r.take(n as usize - 1).ok_or(t.clone())?),
    };
    let (value, value_is_null) = match r.u32().ok_or(t.clone())? {
        NULL_VALUE_LEN => (&buf[r.pos..r.pos], true),
        vlen => (r.take(vlen as usize).ok_or(t.clone())?, false),
    };
    let count = r.u16().ok_or(t.clone())?;
    let headers_start = r.pos;
    for _ in 0..count {
        let n = r.u16().ok_or(t.clone())? as usize;
        let name = r.take(n).ok_or(t.clone())?;
        std::str::from_utf8(name).map_err(|_| WireError::HeaderName { index })?;
        match r.u32().ok_or(t.clone())? {
            NULL_VALUE_LEN => {}
            vlen => {
                r.take(vlen as usize).ok_or(t.clone())?;
            }
        }
    }
    *pos = r.pos;
    Ok(RecordView {
        timestamp_ms,
        key,
        value,
        value_is_null,
        headers: Headers {
            buf: &buf[headers_start..r.pos],
            count,
        },
        raw: &buf[start..r.pos],
    })
}

/// Decodes `count` consecutive record bodies filling `buf` exactly.
pub fn decode_records(buf: &[u8], count: u32) -> Result<Vec<RecordView<'_>>, WireError> {
    let mut pos = 0;
    let mut out = Vec::with_capacity(count.min(1 << 16) as usize);
    for index in 0..count {
        out.push(decode_record(buf, &mut pos, index)?);
    }
    if pos != buf.len() {
        return Err(WireError::Trailing { extra: buf.len() - pos });
    }
    Ok(out)
}

/// Builds a plugin batch.
#[derive(Debug)]
pub struct BatchWriter {
    buf: Vec<u8>,
    count: u32,
}

impl Default for BatchWriter {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl BatchWriter {
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes + 4);
        buf.extend_from_slice(&[0; 4]);
        BatchWriter { buf, count: 0 }
    }

    /// Appends a record built from parts.
    pub fn push<'h>(
        &mut self,
        offset: u64,
        timestamp_ms: u64,
        key: Option<&[u8]>,
        value: &[u8],
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) -> Result<(), WireError> {
        let headers = headers.into_iter().map(|(n, v)| (n, Some(v)));
        self.push_nullable(offset, timestamp_ms, key, Some(value), headers)
    }

    /// Appends a record built from parts; a `None` value or header value is
    /// null.
    pub fn push_nullable<'h>(
        &mut self,
        offset: u64,
        timestamp_ms: u64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
    ) -> Result<(), WireError> {
        let mark = self.buf.len();
        self.buf.extend_from_slice(&offset.to_le_bytes());
        if let Err(e) = encode_record_nullable(&mut self.buf, timestamp_ms, key, value, headers) {
            self.buf.truncate(mark);
            return Err(e);
        }
        self.bump()
    }

    /// Appends an already encoded record body unchanged (no re-encoding).
    pub fn push_raw(&mut self, offset: u64, body: &RecordView<'_>) -> Result<(), WireError> {
        self.buf.extend_from_slice(&offset.to_le_bytes());
        self.buf.extend_from_slice(body.raw);
        self.bump()
    }

    fn bump(&mut self) -> Result<(), WireError> {
        self.count = self.count.checked_add(1).ok_or(WireError::TooLong {
            what: "record count of a batch",
            len: u32::MAX as usize,
        })?;
        Ok(())
    }

    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf[0..4].copy_from_slice(&self.count.to_le_bytes());
        self.buf
    }
}

/// A record of a plugin batch: its offset and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRecord<'a> {
    pub offset: u64,
    pub record: RecordView<'a>,
}

/// Decodes a whole plugin batch.
pub fn decode_batch(buf: &[u8]) -> Result<Vec<BatchRecord<'_>>, WireError> {
    let mut r = Reader { buf, pos: 0 };
    let count = r.u32().ok_or(WireError::Truncated { index: 0 })?;
    // Every record takes at least 8 + RECORD_FRAMING bytes: bound the allocation.
    let plausible = (buf.len() / (8 + RECORD_FRAMING)) as u32;
    let mut out = Vec::with_capacity(count.min(plausible) as usize);
    let mut pos = r.pos;
    for index in 0..count {
        let mut rr = Reader { buf, pos };
        let offset = rr.u64().ok_or(WireError::Truncated { index })?;
        pos = rr.pos;
        let record = decode_record(buf, &mut pos, index)?;
        out.push(BatchRecord { offset, record });
    }
    if pos != buf.len() {
        return Err(WireError::Trailing { extra: buf.len() - pos });
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|s| u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let s = self.take(8)?;
        let mut b = [0u8; 8];
        b.copy_from_slice(s);
        Some(u64::from_le_bytes(b))
    }
}

#[cfg(test)]
mod tests;
