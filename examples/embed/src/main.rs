//! Embedding Sluice in a Rust program: no HTTP, just the library.
//!
//! Opens a host on a data directory, creates a stream, appends a few records
//! (each append returns once it is fsync'd), reads them back, and shuts down.
//! Run it with `cargo run -p sluice-example-embed -- [DATA_DIR]`.

use bytes::Bytes;
use sluice_host::{Host, ReadLimits, Record, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let data_dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("sluice-embed-{}", std::process::id())),
    };
    for line in run(&data_dir).await? {
        println!("{line}");
    }
    Ok(())
}

/// Does the work and returns what it would print.
async fn run(data_dir: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let host = Host::open(Settings {
        data_dir: data_dir.to_path_buf(),
        ..Settings::default()
    })
    .await?;

    // Streams survive restarts; creating one that exists is a `Conflict`.
    if host.describe_stream("clicks").is_err() {
        host.create_stream("clicks", 2).await?;
    }

    let batch: Vec<Record> = (0..3)
        .map(|i| Record {
            key: Some(Bytes::from(format!("user-{i}"))),
            value: Some(Bytes::from(format!(r#"{{"page":"/home","n":{i}}}"#))),
            headers: vec![("source".into(), Some(Bytes::from_static(b"example")))],
            timestamp_ms: 1_700_000_000_000 + i,
        })
        .collect();
    let appended = host.append("clicks", 0, &batch).await?;
    out.push(format!(
        "appended offsets {}..{}",
        appended.base_offset,
        appended.base_offset + appended.count as u64
    ));

    let read = host.read("clicks", 0, 0, ReadLimits::default()).await?;
    for r in &read.records {
        out.push(format!(
            "offset {} key {:?} value {}",
            r.offset,
            r.record.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
            String::from_utf8_lossy(r.record.value_bytes())
        ));
    }
    out.push(format!(
        "partition 0 ends at offset {}; data in {}",
        read.end_offset,
        data_dir.display()
    ));
    host.shutdown().await;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn runs_and_data_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = super::run(dir.path()).await.unwrap();
        assert_eq!(first[0], "appended offsets 0..3");
        assert!(first[1].starts_with("offset 0 key Some(\"user-0\")"), "{first:?}");
        let second = super::run(dir.path()).await.unwrap();
        assert_eq!(
            second[0], "appended offsets 3..6",
            "the second run appends after the first"
        );
        assert_eq!(second.len(), 1 + 6 + 1, "all six records are read back: {second:?}");
    }
}
