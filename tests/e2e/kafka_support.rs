//! Running third-party Kafka clients against a test server: kcat,
//! confluent-kafka / kafka-python through `kafka/clients.py`, KafkaJS
//! through `kafka/kafkajs.js` and @platformatic/kafka through
//! `kafka/platformatic.mjs`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::Server;

/// The driver script for the Python clients.
pub fn clients_py() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/kafka/clients.py")
}

/// Runs `clients.py <lib> <cmd> <args>` and returns its JSON answer;
/// panics with the client's stderr if it fails.
pub fn py(lib: &str, cmd: &str, args: &Value) -> Value {
    let out = py_command(lib, cmd, args)
        .output()
        .expect("run the Python Kafka client");
    parse_py(lib, cmd, &out)
}

pub fn py_command(lib: &str, cmd: &str, args: &Value) -> Command {
    let mut c = Command::new(sluice_test_artifacts::kafka_clients::python());
    c.arg(clients_py())
        .args([lib, cmd, &args.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

pub fn parse_py(lib: &str, cmd: &str, out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{lib} {cmd} failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{lib} {cmd}: not JSON ({e}): {stdout}\n{stderr}"))
}

/// Runs `kafka/kafkajs.js <cmd> <args>` with Node.js and KafkaJS and
/// returns its JSON answer; panics with the client's stderr if it fails.
pub fn js(cmd: &str, args: &Value) -> Value {
    use sluice_test_artifacts::kafka_clients::node_clients;
    node_script(node_clients::node(), "kafkajs.js", "kafkajs", cmd, args)
}

/// Runs `kafka/platformatic.mjs <cmd> <args>` with Node.js and
/// @platformatic/kafka and returns the JSON it prints.
pub fn platformatic(cmd: &str, args: &Value) -> Value {
    use sluice_test_artifacts::kafka_clients::node_clients;
    let node = node_clients::node_at_least(node_clients::PLATFORMATIC_NODE);
    node_script(node, "platformatic.mjs", "platformatic", cmd, args)
}

fn node_script(node: &std::path::Path, script: &str, client: &str, cmd: &str, args: &Value) -> Value {
    use sluice_test_artifacts::kafka_clients::node_clients;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/e2e/kafka")
        .join(script);
    let out = Command::new(node)
        .arg(script)
        .args([cmd, &args.to_string()])
        .env("NODE_PATH", node_clients::node_modules())
        .stdin(Stdio::null())
        .output()
        .expect("run node");
    parse_py(client, cmd, &out)
}

/// Runs kcat with `args` and `stdin`; returns stdout, panics on failure.
pub fn kcat(args: &[&str], stdin: &[u8]) -> String {
    kcat_outcome(args, stdin).unwrap_or_else(|e| panic!("kcat {args:?} failed: {e}"))
}

/// Runs kcat with `args` and `stdin`: stdout, or its exit status and
/// stderr when it fails.
pub fn kcat_outcome(args: &[&str], stdin: &[u8]) -> Result<String, String> {
    use std::io::Write;
    let mut child = Command::new(sluice_test_artifacts::kafka_clients::kcat())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kcat");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write to kcat");
    let out = child.wait_with_output().expect("kcat output");
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(format!("({}): {}", out.status, String::from_utf8_lossy(&out.stderr))),
    }
}

/// Hex of bytes, as `clients.py` writes them.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Everything in `topic` partition `partition` through kcat, one line per
/// record in kcat's `-f` format `format`.
pub fn kcat_read_all(bootstrap: &str, topic: &str, partition: u32, format: &str) -> String {
    let partition = partition.to_string();
    kcat(
        &[
            "-b",
            bootstrap,
            "-C",
            "-t",
            topic,
            "-p",
            &partition,
            "-o",
            "beginning",
            "-e",
            "-f",
            format,
        ],
        b"",
    )
}

/// Waits for a `produce_sequence` run to end; asserts it delivered `count`
/// records without an error and returns its report.
/// A confluent-kafka `produce_sequence` running in the background. Its
/// stderr (librdkafka logs a line per failed connection, so many while a
/// server restarts) goes to a file, never to a pipe nobody reads while the
/// test waits, which would stop the producer once the pipe is full.
pub struct Sequence {
    /// Taken by [`Sequence::finish`]; killed on drop otherwise (a failed
    /// test leaves no producer running).
    child: Option<std::process::Child>,
    stderr: tempfile::NamedTempFile,
}

impl Drop for Sequence {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Sequence {
    pub fn spawn(args: &Value) -> Sequence {
        let stderr = tempfile::NamedTempFile::new().expect("stderr file");
        let child = py_command("confluent", "produce_sequence", args)
            .stderr(stderr.reopen().expect("reopen stderr file"))
            .spawn()
            .expect("spawn producer");
        Sequence {
            child: Some(child),
            stderr,
        }
    }

    /// The producer's stderr so far (its last 40 lines).
    pub fn stderr_tail(&self) -> String {
        last_lines(self.stderr.path(), 40)
    }

    /// Waits for the producer and checks it delivered all `count` values
    /// without an error; returns its report.
    pub async fn finish(mut self, count: u64) -> Value {
        let child = self.child.take().expect("a running producer");
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("join the producer")
            .expect("producer output");
        let tail = self.stderr_tail();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "produce_sequence failed ({}):\n{tail}\n{stdout}",
            out.status
        );
        let report: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("produce_sequence printed no JSON ({e}): {stdout}\n{tail}"));
        assert_eq!(report["delivered"], count, "{report}\n{tail}");
        assert_eq!(report["errors"], serde_json::json!([]), "{report}\n{tail}");
        report
    }

    /// Kills the producer and fails the test with what it and the server
    /// said.
    pub fn stalled(self, server: &Server, what: &str) -> ! {
        let tail = self.stderr_tail();
        drop(self);
        panic!("{what}\nproducer stderr:\n{tail}\nserver log:\n{}", server.log_tail(60));
    }
}

/// The last `n` lines of the text file at `path` (empty if unreadable).
pub fn last_lines(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The server's `GET /metrics` text.
pub async fn metrics_text(server: &Server) -> String {
    crate::support::client()
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

/// The sum of metric `name`'s samples whose line contains `with` (a label,
/// or "" for all).
pub async fn metric_sum(server: &Server, name: &str, with: &str) -> f64 {
    sum_in(&metrics_text(server).await, name, with)
}

/// [`metric_sum`] over a scrape's `text`.
pub fn sum_in(text: &str, name: &str, with: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(with))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The values (hex) of partition `partition` of `topic` from `offset` on,
/// `count` of them, read by kafka-python with client settings `config`.
pub fn kp_values(bootstrap: &str, topic: &str, offset: u64, count: usize, config: &Value) -> Vec<String> {
    let got = py(
        "kafkapython",
        "consume",
        &serde_json::json!({"bootstrap": bootstrap, "topic": topic, "partition": 0, "offset": offset,
                            "count": count, "config": config}),
    );
    got["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records: {got}"))
        .iter()
        .map(|r| r["value"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The offsets of the records a `consume` command returned.
pub fn offsets_of(got: &Value) -> Vec<u64> {
    got["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records: {got}"))
        .iter()
        .map(|r| r["offset"].as_u64().expect("offset"))
        .collect()
}
