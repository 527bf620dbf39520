use super::*;
use proptest::prelude::*;

type Owned = (u64, u64, Option<Vec<u8>>, Vec<u8>, Vec<(String, Vec<u8>)>);

fn arb() -> impl Strategy<Value = Owned> {
    (
        any::<u64>(),
        any::<u64>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..30)),
        proptest::collection::vec(any::<u8>(), 0..100),
        proptest::collection::vec(("\\PC{0,6}", proptest::collection::vec(any::<u8>(), 0..10)), 0..4),
    )
}

fn write(records: &[Owned]) -> Vec<u8> {
    let mut w = BatchWriter::default();
    for (off, ts, k, v, h) in records {
        w.push(
            *off,
            *ts,
            k.as_deref(),
            v,
            h.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
        )
        .unwrap();
    }
    w.finish()
}

proptest! {
    #[test]
    fn batch_round_trip(records in proptest::collection::vec(arb(), 0..12)) {
        let buf = write(&records);
        let got = decode_batch(&buf).unwrap();
        prop_assert_eq!(got.len(), records.len());
        for (g, (off, ts, k, v, h)) in got.iter().zip(&records) {
            prop_assert_eq!(g.offset, *off);
            prop_assert_eq!(g.record.timestamp_ms, *ts);
            prop_assert_eq!(g.record.key, k.as_deref());
            prop_assert_eq!(g.record.value, v.as_slice());
            let hs: Vec<(String, Vec<u8>)> = g.record.headers().iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect();
            prop_assert_eq!(&hs, h);
        }
        // Copying bodies through unchanged gives the same bytes.
        let mut w = BatchWriter::default();
        for g in &got { w.push_raw(g.offset, &g.record).unwrap(); }
        prop_assert_eq!(w.finish(), buf);
    }

    #[test]
    fn any_truncation_or_extension_is_an_error(records in proptest::collection::vec(arb(), 1..5),
                                               cut in any::<prop::sample::Index>()) {
        let buf = write(&records);
        let cut = cut.index(buf.len());
        prop_assert!(decode_batch(&buf[..cut]).is_err());
        let mut longer = buf.clone();
        longer.push(0);
        prop_assert_eq!(decode_batch(&longer), Err(WireError::Trailing { extra: 1 }));
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_batch(&bytes);
        let _ = decode_records(&bytes, 3);
    }
}

#[test]
fn huge_count_does_not_preallocate() {
    let mut buf = u32::MAX.to_le_bytes().to_vec();
    buf.extend_from_slice(&[0; 8]);
    assert!(matches!(decode_batch(&buf), Err(WireError::Truncated { .. })));
}

#[test]
fn bad_header_name_is_reported() {
    let mut out = Vec::new();
    encode_record(&mut out, 1, None, b"v", [("ok", &b"x"[..])]).unwrap();
    let n = out.len();
    out[n - 6] = 0xff; // first byte of the name "ok"
    let mut pos = 0;
    assert_eq!(
        decode_record(&out, &mut pos, 7),
        Err(WireError::HeaderName { index: 7 })
    );
}

#[test]
fn null_value_is_distinct_from_empty() {
    let mut out = Vec::new();
    encode_record_nullable(&mut out, 5, Some(b"k"), None, [("h", Some(&b"x"[..])), ("n", None)]).unwrap();
    encode_record_nullable(&mut out, 6, Some(b"k"), Some(b""), []).unwrap();
    encode_record(&mut out, 7, None, b"v", []).unwrap();
    let views = decode_records(&out, 3).unwrap();
    assert_eq!(views[0].value_opt(), None);
    assert!(views[0].value_is_null && views[0].value.is_empty());
    assert_eq!(views[0].headers().get("h"), Some(&b"x"[..]));
    // A null header value: `None` to those who ask, empty to the rest.
    let nullable: Vec<_> = views[0].headers().iter_nullable().collect();
    assert_eq!(nullable, vec![("h", Some(&b"x"[..])), ("n", None)]);
    assert_eq!(views[0].headers().get("n"), Some(&b""[..]));
    assert_eq!(views[1].value_opt(), Some(&b""[..]));
    assert_eq!(views[2].value_opt(), Some(&b"v"[..]));
    // Copied through unchanged, the null survives.
    let mut w = BatchWriter::default();
    for (i, v) in views.iter().enumerate() {
        w.push_raw(i as u64, v).unwrap();
    }
    let batch = w.finish();
    let back = decode_batch(&batch).unwrap();
    assert!(back[0].record.value_is_null && !back[1].record.value_is_null);
    // A null record body is its framing and key only.
    let mut one = Vec::new();
    encode_record_nullable(&mut one, 0, None, None, []).unwrap();
    assert_eq!(one.len(), RECORD_FRAMING);
}
