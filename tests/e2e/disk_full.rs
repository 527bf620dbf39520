//! A full disk under the local WAL, on a file system that really fills up
//! (a small tmpfs mounted for the test; skipped, saying so, where it cannot
//! be mounted): appends fail with 507 `disk_full`, then 503
//! `storage_failed` (the WAL fail-stops) while reads go on; nothing
//! acknowledged is lost through a SIGKILL and a restart on the still-full
//! disk, and once space is freed a restart takes appends again.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{self, Server, ServerOptions};

/// A tmpfs mounted on a temp dir, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mib: u32) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

const VALUE_PAD: usize = 1000;

async fn append(server: &Server, values: &[String]) -> reqwest::Response {
    let records: Vec<Value> = values.iter().map(|v| json!({"value": v})).collect();
    support::client()
        .post(support::records_url(server, "f", 0))
        .json(&records)
        .send()
        .await
        .expect("produce request")
}

async fn stored(server: &Server) -> Vec<String> {
    let c = support::client();
    let mut out = Vec::new();
    loop {
        let url = format!(
            "{}?offset={}&max_records=10000",
            support::records_url(server, "f", 0),
            out.len()
        );
        let page = support::expect_json(c.get(url).send().await.expect("read"), StatusCode::OK).await;
        let records = page["records"].as_array().expect("records");
        if records.is_empty() {
            return out;
        }
        out.extend(
            records
                .iter()
                .map(|r| r["value"].as_str().expect("a text value").to_string()),
        );
    }
}

/// `got` starts with `acked`; what follows came from appends that failed
/// (their outcome is unknown), in the order sent.
fn check(got: &[String], acked: &[String], failed: &[String], when: &str) {
    assert!(
        got.len() >= acked.len(),
        "{when}: {} records stored, {} acknowledged",
        got.len(),
        acked.len()
    );
    if let Some(i) = (0..acked.len()).find(|&i| got[i] != acked[i]) {
        panic!("{when}: offset {i} holds {:.20}, acknowledged {:.20}", got[i], acked[i]);
    }
    let rest = &got[acked.len()..];
    assert!(
        rest.iter().all(|v| failed.contains(v)),
        "{when}: records nobody sent after the acknowledged ones"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_appends_clearly_and_loses_nothing_acknowledged() {
    let test = "a_full_disk_fails_appends_clearly_and_loses_nothing_acknowledged";
    let fs = match Tmpfs::mount(24) {
        Ok(fs) => fs,
        Err(why) => {
            println!("{test}: skipped: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    let ballast: PathBuf = fs.path().join("ballast");
    std::fs::write(&ballast, vec![7u8; 4 << 20]).expect("ballast");
    let mut server = Server::start_with(ServerOptions {
        data_dir: Some(fs.path().join("data")),
        config: Some("segment_bytes = \"4MiB\"\nupload_min_bytes = \"1000GiB\"\nupload_interval = \"3600s\"\n".into()),
        ..ServerOptions::default()
    })
    .await;
    support::create_stream(&support::client(), &server, "f", 1).await;

    let mut acked: Vec<String> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    let batch = |i: usize| -> Vec<String> {
        (0..16)
            .map(|j| format!("{i:06}-{j:02}-{}", "x".repeat(VALUE_PAD)))
            .collect()
    };
    let mut i = 0;
    let first_error = loop {
        assert!(i < 10_000, "24 MiB never filled up");
        let values = batch(i);
        let resp = append(&server, &values).await;
        if resp.status() != StatusCode::OK {
            failed.extend(values);
            break support::json_of(resp).await;
        }
        let ack = support::check_ack(&resp.json().await.expect("ack"), 16).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ack[0], acked.len() as u64, "offsets in order");
        acked.extend(values);
        i += 1;
    };
    assert_eq!(first_error.0, StatusCode::INSUFFICIENT_STORAGE, "{}", first_error.1);
    assert_eq!(first_error.1["error"]["code"], "disk_full", "{}", first_error.1);
    println!("{} records acknowledged before the disk filled", acked.len());

    // The WAL fail-stops; reads go on.
    let values = batch(i + 1);
    let resp = append(&server, &values).await;
    failed.extend(values);
    support::expect_error(resp, StatusCode::SERVICE_UNAVAILABLE, "storage_failed").await;
    check(&stored(&server).await, &acked, &failed, "after the failure");

    // SIGKILL, and a restart on the still-full disk: all of it is back, and
    // appends still fail clearly.
    server.kill();
    server.restart().await;
    check(&stored(&server).await, &acked, &failed, "restarted on a full disk");
    let values = batch(i + 2);
    let resp = append(&server, &values).await;
    failed.extend(values);
    let (status, body) = support::json_of(resp).await;
    assert!(
        status == StatusCode::INSUFFICIENT_STORAGE || status == StatusCode::SERVICE_UNAVAILABLE,
        "{status} {body}"
    );

    // Space freed, restarted: appends land right after what is stored.
    std::fs::remove_file(&ballast).expect("remove the ballast");
    server.kill();
    server.restart().await;
    let before = stored(&server).await;
    check(&before, &acked, &failed, "restarted with space");
    let values = batch(i + 3);
    let resp = append(&server, &values).await;
    let ack =
        support::check_ack(&support::expect_json(resp, StatusCode::OK).await, 16).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ack[0], before.len() as u64);
    let after = stored(&server).await;
    assert_eq!(&after[..before.len()], &before[..]);
    assert_eq!(&after[before.len()..], &values[..]);
    server.kill();
}
