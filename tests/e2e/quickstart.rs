//! The README's quick start, run as written: its `serve` block starts the
//! binary under test and its client block runs in bash (`set -euo pipefail`)
//! against it. Two substitutions, both outside the commands' meaning: the
//! install block is replaced by putting the binary under test first on
//! `PATH`, and the default port 8080 by a free one (parallel tests).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, free_port};

/// The body of the fenced block after `<!-- quickstart:NAME -->`.
fn block(readme: &str, name: &str) -> String {
    let marker = format!("<!-- quickstart:{name} -->");
    let after = readme
        .split_once(&marker)
        .unwrap_or_else(|| panic!("README has no {marker}"))
        .1;
    let body = after
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .unwrap_or_else(|| panic!("no ```sh block after {marker}"))
        .0;
    body.to_string()
}

/// Kills the server (and reaps it) however the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bin_dir(tmp: &Path) -> PathBuf {
    let dir = tmp.join("bin");
    std::fs::create_dir_all(&dir).expect("bin dir");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_sluice"), dir.join("sluice")).expect("symlink sluice");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quick_start_works_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README");
    let install = block(&readme, "install");
    assert!(
        install.trim_start().starts_with("cargo install --locked --path host"),
        "the install step changed; update this test: {install}"
    );
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let with_port = |s: &str| s.replace("http://127.0.0.1:8080", &base);
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = format!(
        "{}:{}",
        bin_dir(tmp.path()).display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let listen = format!("127.0.0.1:{port}");

    let serve = block(&readme, "serve");
    let serve_cmd = serve.lines().find(|l| !l.trim().is_empty()).expect("a serve command");
    let log = std::fs::File::create(tmp.path().join("server.log")).expect("log file");
    let child = Command::new("bash")
        .arg("-c")
        .arg(format!("exec {}", serve_cmd.split('#').next().unwrap_or_default()))
        .current_dir(tmp.path())
        .env("PATH", &path)
        .env("SLUICE_LISTEN", &listen)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start the serve block");
    let _server = Running(child);
    let client = support::client();
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{base}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the server never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        tmp.path().join("sluice-data").is_dir(),
        "data goes to ./sluice-data as the README says"
    );

    let script = format!("set -euo pipefail\n{}", with_port(&block(&readme, "client")));
    let out = tokio::task::spawn_blocking({
        let (dir, path, base) = (tmp.path().to_path_buf(), path.clone(), base.clone());
        move || {
            Command::new("bash")
                .arg("-c")
                .arg(script)
                .current_dir(dir)
                .env("PATH", path)
                .env("SLUICE_SERVER", base)
                .stdin(Stdio::null())
                .output()
        }
    })
    .await
    .expect("join")
    .expect("run the client block");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the quick start failed:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for want in [
        "first order",
        "second order",
        r#""value":"first order""#,
        r#"sluice_append_records_total{stream="orders"} 2"#,
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
}
