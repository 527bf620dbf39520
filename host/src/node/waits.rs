//! Long-poll waits: a caught-up reader waits for records on one partition
//! or on any of many (a Kafka fetch of a thousand partitions) instead of
//! polling. Every wait is bounded by the caller's duration and ends when
//! the node starts shutting down. A wait on many partitions holds one
//! timer and one shutdown subscription, and is woken only by the
//! partitions that moved (each waiter polled when its own end changes).

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::{Error, Host};

impl Host {
    /// Waits (at most `wait`) until `partition` holds a record at or after
    /// `offset`, or the node starts shutting down. A consumer that is caught
    /// up calls this between reads instead of polling (long-poll).
    pub async fn wait_for_records(
        &self,
        stream: &str,
        partition: u32,
        offset: u64,
        wait: Duration,
    ) -> Result<(), Error> {
        let mut stopping = self.inner.stopping.subscribe();
        let source = self.source_of(stream);
        let stream = source.as_deref().unwrap_or(stream);
        tokio::select! {
            r = self.inner.log.wait_for_records(stream, partition, offset) => r?,
            _ = tokio::time::sleep(wait) => {}
            _ = stopping.wait_for(|s| *s) => {}
        }
        Ok(())
    }

    /// Waits (at most `wait`) until any of `targets` (stream or view,
    /// partition, offset) holds a record at or after its offset, or the
    /// node starts shutting down. A target that does not exist (deleted
    /// meanwhile) ends the wait at once: the caller's next read reports it.
    pub async fn wait_for_any<'a>(&self, targets: impl IntoIterator<Item = (&'a str, u32, u64)>, wait: Duration) {
        let mut stopping = self.inner.stopping.subscribe();
        let mut waits = FuturesUnordered::new();
        for (stream, partition, offset) in targets {
            let source = self.source_of(stream);
            let stream = source.as_deref().unwrap_or(stream);
            match self.inner.log.records_waiter(stream, partition, offset) {
                Ok(w) => waits.push(w),
                Err(_) => return,
            }
        }
        if waits.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopping.wait_for(|s| *s) => {}
            }
            return;
        }
        tokio::select! {
            _ = waits.next() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stopping.wait_for(|s| *s) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use bytes::Bytes;

    use crate::node::tests_views::open;
    use crate::{Host, Record};

    fn one() -> Vec<Record> {
        vec![Record {
            value: Some(Bytes::from_static(b"v")),
            ..Record::default()
        }]
    }

    /// Waits on partitions 0..8 of `s` at their ends (partition 3 at 1).
    async fn wait(host: &Host, secs: u64) -> Duration {
        let started = Instant::now();
        let targets = (0..8).map(|p| ("s", p, u64::from(p == 3)));
        host.wait_for_any(targets, Duration::from_secs(secs)).await;
        started.elapsed()
    }

    #[tokio::test]
    async fn a_wait_on_many_partitions_ends_with_a_record_on_any_of_them() {
        let dir = tempfile::tempdir().expect("dir");
        let host = open(dir.path()).await;
        host.create_stream("s", 8).await.expect("stream");
        host.append("s", 3, &one()).await.expect("append");
        // Nothing new past the offsets: the wait runs its course.
        assert!(wait(&host, 1).await >= Duration::from_millis(900));
        // A record on the seventh partition listed ends it at once.
        let h = host.clone();
        let appender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            h.append("s", 6, &one()).await.expect("append");
        });
        let took = wait(&host, 30).await;
        appender.await.expect("join");
        assert!(took < Duration::from_secs(10), "{took:?}");
        // Records already past an offset: no wait at all.
        let started = Instant::now();
        host.wait_for_any([("s", 6, 0)], Duration::from_secs(30)).await;
        assert!(started.elapsed() < Duration::from_secs(10));
        // A partition that does not exist ends it too (the read reports it).
        let started = Instant::now();
        host.wait_for_any([("s", 0, 0), ("gone", 0, 0)], Duration::from_secs(30))
            .await;
        assert!(started.elapsed() < Duration::from_secs(10));
        // So does the node starting to stop.
        let h = host.clone();
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            h.begin_stopping();
        });
        let took = wait(&host, 30).await;
        stopper.await.expect("join");
        assert!(took < Duration::from_secs(10), "{took:?}");
    }
}
