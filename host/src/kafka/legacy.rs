//! Produce v0–v2: advertised (librdkafka refuses a broker whose Produce
//! starts above v0) but refused, since these versions carry the old message
//! sets. Every partition of the request is answered with
//! UNSUPPORTED_VERSION; nothing is written. `kafka-protocol` no longer has
//! these versions, so the few fields needed are read and written here.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::Ctx;
use super::conn::Conn;
use super::dispatch::Reply;
use super::error::codes;

pub(super) fn produce(_ctx: &Ctx, _conn: &mut Conn, frame: Bytes, version: i16) -> Reply {
    match answer(frame, version) {
        Ok(Some(body)) => Reply::Send(body),
        Ok(None) => Reply::Nothing,
        Err(why) => Reply::Close(format!("malformed Produce v{version} request: {why}")),
    }
}

pub(crate) fn answer(mut frame: Bytes, version: i16) -> Result<Option<Bytes>, &'static str> {
    let need = |b: &Bytes, n: usize| if b.remaining() < n { Err("truncated") } else { Ok(()) };
    need(&frame, 8)?;
    frame.advance(4);
    let correlation_id = frame.get_i32();
    skip_string(&mut frame)?; // client id
    need(&frame, 6)?;
    let acks = frame.get_i16();
    let _timeout = frame.get_i32();
    let mut out = BytesMut::new();
    out.put_i32(correlation_id);
    let topics = count(&mut frame)?;
    out.put_i32(topics as i32);
    for _ in 0..topics {
        let name = string(&mut frame)?;
        out.put_i16(name.len() as i16);
        out.put_slice(&name);
        let partitions = count(&mut frame)?;
        out.put_i32(partitions as i32);
        for _ in 0..partitions {
            need(&frame, 8)?;
            let index = frame.get_i32();
            let len = frame.get_i32();
            if len > 0 {
                need(&frame, len as usize)?;
                frame.advance(len as usize);
            }
            out.put_i32(index);
            out.put_i16(codes::unsupported_version());
            out.put_i64(-1);
            if version >= 2 {
                out.put_i64(-1);
            }
        }
    }
    if version >= 1 {
        out.put_i32(0);
    }
    Ok((acks != 0).then(|| out.freeze()))
}

/// An array length, checked against what the frame could hold (4 bytes per element at least).
fn count(b: &mut Bytes) -> Result<usize, &'static str> {
    if b.remaining() < 4 {
        return Err("truncated");
    }
    let n = b.get_i32();
    let n = usize::try_from(n).map_err(|_| "negative array length")?;
    if n > b.remaining() / 4 + 1 {
        return Err("array longer than the frame");
    }
    Ok(n)
}

fn string(b: &mut Bytes) -> Result<Bytes, &'static str> {
    if b.remaining() < 2 {
        return Err("truncated");
    }
    let len = b.get_i16();
    let len = usize::try_from(len).map_err(|_| "null topic name")?;
    if b.remaining() < len {
        return Err("truncated");
    }
    Ok(b.split_to(len))
}

fn skip_string(b: &mut Bytes) -> Result<(), &'static str> {
    if b.remaining() < 2 {
        return Err("truncated");
    }
    let len = b.get_i16();
    if len > 0 {
        if b.remaining() < len as usize {
            return Err("truncated");
        }
        b.advance(len as usize);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produce_v0_to_v2_is_answered_unsupported_per_partition() {
        let mut req = BytesMut::new();
        req.put_i16(0); // api key
        req.put_i16(2); // version
        req.put_i32(77); // correlation id
        req.put_i16(3);
        req.put_slice(b"cli");
        req.put_i16(1); // acks
        req.put_i32(1000);
        req.put_i32(1); // topics
        req.put_i16(1);
        req.put_slice(b"t");
        req.put_i32(2); // partitions
        for p in 0..2 {
            req.put_i32(p);
            req.put_i32(3);
            req.put_slice(b"xyz");
        }
        let mut out = answer(req.clone().freeze(), 2).unwrap().unwrap();
        assert_eq!(out.get_i32(), 77);
        assert_eq!(out.get_i32(), 1);
        assert_eq!(out.get_i16(), 1);
        assert_eq!(out.get_u8(), b't');
        assert_eq!(out.get_i32(), 2);
        for p in 0..2 {
            assert_eq!(out.get_i32(), p);
            assert_eq!(out.get_i16(), 35);
            assert_eq!(out.get_i64(), -1);
            assert_eq!(out.get_i64(), -1);
        }
        assert_eq!(out.get_i32(), 0);
        assert!(out.is_empty());
        for cut in [0, 9, 20, req.len() - 1] {
            assert!(answer(req.clone().freeze().slice(..cut), 2).is_err(), "cut at {cut}");
        }
    }
}
