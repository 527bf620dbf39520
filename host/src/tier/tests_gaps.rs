//! Readers over segments with gaps, as compaction will write them: offsets
//! are preserved, removed records leave holes, and a segment may hold no
//! record at all. Built by rewriting real uploaded segments while the node
//! is down, then reading through a restarted node.

use bytes::Bytes;

use super::manifest::{self, SegmentMeta};
use super::segment::{self, SegmentWriter};
use super::tests::{Store, check, eager, produce, read_all, rec, store, wait_for};
use crate::Host;
use crate::log::record;
use crate::objstore::Remote;

/// Rewrites `seg` keeping the records `keep` accepts, one batch per run of
/// consecutive kept offsets; returns the new segment's manifest entry.
async fn rewrite(remote: &Remote, seg: &SegmentMeta, keep: impl Fn(u64) -> bool) -> SegmentMeta {
    let rel = manifest::segment_rel(1, 0, &seg.key);
    let obj = remote.get(&remote.path(&rel)).await.unwrap().unwrap();
    let (_, index) = segment::parse_tail(&obj[seg.index_pos as usize..]).unwrap();
    let payloads = segment::split_batches(&obj.slice(..seg.index_pos as usize), &index).unwrap();
    let mut kept = Vec::new();
    for (e, p) in index.iter().zip(payloads) {
        kept.extend(
            record::decode_batch(&p, e.base_offset, e.count)
                .unwrap()
                .into_iter()
                .filter(|r| keep(r.offset)),
        );
    }
    let mut w = SegmentWriter::with_gaps(seg.base_offset);
    let mut out = Vec::new();
    let mut run: Vec<crate::OffsetRecord> = Vec::new();
    for r in kept.into_iter().chain(std::iter::once(crate::OffsetRecord {
        offset: u64::MAX,
        record: Default::default(),
    })) {
        if run.last().is_some_and(|l| l.offset + 1 != r.offset) {
            let recs: Vec<_> = run.iter().map(|r| r.record.clone()).collect();
            let payload = record::encode_batch(&recs).unwrap();
            out.extend_from_slice(&w.push(run[0].offset, run.len() as u32, &payload).unwrap());
            run.clear();
        }
        if r.offset != u64::MAX {
            run.push(r);
        }
    }
    let (tail, footer) = w.finish_at(seg.end_offset);
    let index_pos = out.len() as u64;
    out.extend_from_slice(&tail);
    assert_eq!(footer.index_pos, index_pos);
    let key = format!("{:020}-{:020}-compacted.seg", seg.base_offset, seg.end_offset);
    remote
        .put(
            &remote.path(&manifest::segment_rel(1, 0, &key)),
            Bytes::from(out.clone()),
        )
        .await
        .unwrap();
    SegmentMeta {
        key,
        size: out.len() as u64,
        index_pos,
        ..seg.clone()
    }
}

async fn readers_skip_offsets_compaction_removed(kind: Store) {
    let dir = tempfile::tempdir().unwrap();
    let Some((store, prefix)) = store(kind, dir.path()) else {
        return;
    };
    let host = Host::open_with_store(eager(dir.path()), store.clone(), prefix.clone())
        .await
        .unwrap();
    host.create_stream("t", 1).await.unwrap();
    produce(&host, "t", 0, 30, 10).await;
    wait_for(&host, "t", "all tiered, WAL trimmed", |p| p.wal_start_offset == 300).await;
    host.shutdown().await;
    drop(host);

    let remote = Remote::new(store.clone(), prefix.clone(), Default::default());
    let current = manifest::load(&remote, 1, 0).await.unwrap().unwrap();
    assert!(current.segments.len() >= 3, "{current:?}");
    let (s0, s1) = (current.segments[0].clone(), current.segments[1].clone());
    let mut next = current.clone();
    next.segments[0] = rewrite(&remote, &s0, |o| o % 3 == 0).await;
    next.segments[1] = rewrite(&remote, &s1, |_| false).await;
    manifest::commit(&remote, &current, next).await.unwrap();

    let host = Host::open_with_store(eager(dir.path()), store, prefix).await.unwrap();
    let want: Vec<u64> = (0..300)
        .filter(|o| !(s0.base_offset..s0.end_offset).contains(o) || o % 3 == 0)
        .filter(|o| !(s1.base_offset..s1.end_offset).contains(o))
        .collect();
    let got = read_all(&host, "t", 0).await;
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), want);
    for r in &got {
        assert_eq!(r.record, rec(r.offset));
    }
    // Reading from inside the emptied segment moves on to the next records.
    let from = s1.base_offset + 1;
    let b = host.read("t", 0, from, Default::default()).await.unwrap();
    assert_eq!(b.records.first().map(|r| r.offset), Some(s1.end_offset));
    check(&read_all(&host, "t", s1.end_offset).await, s1.end_offset, 300);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_skip_offsets_compaction_removed_memory() {
    readers_skip_offsets_compaction_removed(Store::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_skip_offsets_compaction_removed_s3_protocol_server() {
    readers_skip_offsets_compaction_removed(Store::S3).await;
}
