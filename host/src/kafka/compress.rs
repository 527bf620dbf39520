//! Bounded decompression of Kafka record batches: gzip, snappy (raw and the
//! Java client's "xerial" framing), lz4 (frame format) and zstd.
//!
//! Invariant: no input makes this module hold more than `cap` + one block of
//! decompressed bytes; a batch that would grow past `cap` is refused with
//! [`Inflate::TooLarge`] (a decompression bomb costs its sender, not the node).

use std::io::Read;

use bytes::Bytes;
use kafka_protocol::records::Compression;

/// Why a batch's records could not be decompressed.
#[derive(Debug, thiserror::Error)]
pub(super) enum Inflate {
    #[error("records decompress to more than {cap} bytes")]
    TooLarge { cap: usize },
    #[error("cannot decompress {codec:?} records: {reason}")]
    Corrupt { codec: Compression, reason: String },
}

/// Xerial framing: this header, then `[u32 big-endian length][raw block]`*.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

/// Decompresses `input` (a batch's records section) to at most `cap` bytes.
pub(super) fn inflate(input: &Bytes, codec: Compression, cap: usize) -> Result<Bytes, Inflate> {
    let corrupt = |reason: String| Inflate::Corrupt { codec, reason };
    match codec {
        Compression::None => Ok(input.clone()),
        Compression::Gzip => read_capped(flate2::read::MultiGzDecoder::new(&input[..]), cap, codec),
        Compression::Lz4 => {
            let decoder = lz4::Decoder::new(&input[..]).map_err(|e| corrupt(e.to_string()))?;
            read_capped(decoder, cap, codec)
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(&input[..]).map_err(|e| corrupt(e.to_string()))?;
            read_capped(decoder, cap, codec)
        }
        Compression::Snappy => snappy(input, cap),
    }
}

fn read_capped(reader: impl Read, cap: usize, codec: Compression) -> Result<Bytes, Inflate> {
    let mut out = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(limit).read_to_end(&mut out).map_err(|e| Inflate::Corrupt {
        codec,
        reason: e.to_string(),
    })?;
    if out.len() > cap {
        return Err(Inflate::TooLarge { cap });
    }
    Ok(out.into())
}

fn snappy(input: &[u8], cap: usize) -> Result<Bytes, Inflate> {
    let corrupt = |reason: String| Inflate::Corrupt {
        codec: Compression::Snappy,
        reason,
    };
    if !input.starts_with(XERIAL_MAGIC) {
        let mut out = Vec::new();
        snappy_block(input, cap, &mut out)?;
        return Ok(out.into());
    }
    let mut rest = input
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| corrupt("truncated xerial header".into()))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("truncated block length".into()))?;
        let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|e| corrupt(e.to_string()))?;
        if tail.len() < len {
            return Err(corrupt(format!("block of {len} bytes, {} left", tail.len())));
        }
        let (block, tail) = tail.split_at(len);
        snappy_block(block, cap, &mut out)?;
        rest = tail;
    }
    Ok(out.into())
}

/// Appends one raw snappy block to `out`, checking its declared length
/// against what `cap` leaves before allocating.
fn snappy_block(block: &[u8], cap: usize, out: &mut Vec<u8>) -> Result<(), Inflate> {
    let corrupt = |e: snap::Error| Inflate::Corrupt {
        codec: Compression::Snappy,
        reason: e.to_string(),
    };
    let len = snap::raw::decompress_len(block).map_err(corrupt)?;
    let start = out.len();
    let end = start
        .checked_add(len)
        .filter(|end| *end <= cap)
        .ok_or(Inflate::TooLarge { cap })?;
    out.resize(end, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(corrupt)?;
    out.truncate(start + written);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap().into()
    }

    #[test]
    fn every_codec_round_trips_and_bombs_stop_at_the_cap() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 7).to_le_bytes()).collect();
        let zstd_bytes: Bytes = zstd::encode_all(&data[..], 1).unwrap().into();
        let mut lz4_bytes = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        lz4_bytes.write_all(&data).unwrap();
        let lz4_bytes: Bytes = lz4_bytes.finish().0.into();
        let raw_snappy: Bytes = snap::raw::Encoder::new().compress_vec(&data).unwrap().into();
        let mut xerial = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        for chunk in data.chunks(32 * 1024) {
            let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            xerial.extend_from_slice(&(block.len() as u32).to_be_bytes());
            xerial.extend_from_slice(&block);
        }
        let cases = [
            (Compression::Gzip, gzip(&data)),
            (Compression::Zstd, zstd_bytes),
            (Compression::Lz4, lz4_bytes),
            (Compression::Snappy, raw_snappy),
            (Compression::Snappy, Bytes::from(xerial)),
        ];
        for (codec, compressed) in cases {
            assert_eq!(inflate(&compressed, codec, data.len()).unwrap(), data, "{codec:?}");
            assert!(
                matches!(
                    inflate(&compressed, codec, data.len() - 1),
                    Err(Inflate::TooLarge { .. })
                ),
                "{codec:?}"
            );
            let garbage = Bytes::from(compressed[..compressed.len() / 2].to_vec());
            // A cut stream fails, or (lz4 stops at the cut) comes out short,
            // which the record count check in `batch` then refuses.
            let cut = inflate(&garbage, codec, data.len());
            assert!(
                cut.as_ref().map_or(true, |b| b.len() < data.len()),
                "{codec:?} truncated"
            );
        }
    }
}
