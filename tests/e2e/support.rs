//! Harness for the black-box tests: runs the real `sluice` binary on a temp
//! data dir and a free port, and small HTTP/JSON helpers.
//!
//! Every wait here is bounded, and a [`Server`] SIGKILLs its process when it
//! is dropped, so a failing (panicking) test never leaves a server behind.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

/// Timeout of every single HTTP request made by the tests.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub use crate::support_checks::{Rng, assert_no_problems};

/// How long a starting server may take to answer `GET /health`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

/// A port nobody listens on right now (bind to port 0, read it, release it).
/// Files under `dir` (recursively) whose extension is `ext`; none if `dir`
/// does not exist.
pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let path = e.expect("dir entry").path();
        if path.is_dir() {
            out.extend(files_with_extension(&path, ext));
        } else if path.extension().is_some_and(|x| x == ext) {
            out.push(path.display().to_string());
        }
    }
    out
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// An HTTP client whose requests can never hang a test.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("build reqwest client")
}

/// How to start the server.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Extra command-line arguments after `serve --data-dir D --listen A`.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub envs: Vec<(String, String)>,
    /// Give the data dir and the listen address through `SLUICE_DATA_DIR` /
    /// `SLUICE_LISTEN` instead of flags.
    pub config_from_env: bool,
    /// A TOML config file: written to `<root>/config.toml` before every start
    /// and passed with `--config`.
    pub config: Option<String>,
    /// Listen on this port on every start instead of a free one (cluster
    /// nodes, whose addresses are in each other's config, need it).
    pub port: Option<u16>,
    /// The Kafka listener's port (a free one, kept across restarts, if unset).
    pub kafka_port: Option<u16>,
    /// Start the server with this open-file limit, soft and hard (as
    /// `ulimit -n N` would), through util-linux's `prlimit`.
    pub nofile_limit: Option<u64>,
    /// The node serves HTTPS (its config has `[tls]`): URLs are `https://`
    /// and readiness is polled trusting this PEM certificate.
    pub tls_ca: Option<PathBuf>,
    /// A PEM file with a client certificate and its key, shown when polling
    /// readiness (a node with `[tls] client_ca` that requires one).
    pub tls_client: Option<PathBuf>,
    /// The data dir (default: `data` in the server's own temp dir).
    pub data_dir: Option<PathBuf>,
    /// The loopback address both listeners bind (default `127.0.0.1`;
    /// nodes told apart by address use `127.0.0.2` and so on).
    pub ip: Option<String>,
}

impl ServerOptions {
    pub fn args(args: &[&str]) -> Self {
        ServerOptions {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..ServerOptions::default()
        }
    }
}

/// The `sluice` binary running as a child process.
pub struct Server {
    /// Holds the data dir and the server log; removed on drop.
    root: TempDir,
    data_dir: PathBuf,
    log_path: PathBuf,
    port: u16,
    /// The Kafka listener's port, the same on every start (clients reconnect).
    kafka_port: u16,
    options: ServerOptions,
    child: Option<Child>,
    starts: u32,
}

impl Server {
    /// Starts a server with default settings and waits until it is ready.
    pub async fn start() -> Server {
        Server::start_with(ServerOptions::default()).await
    }

    pub async fn start_with(options: ServerOptions) -> Server {
        let root = tempfile::Builder::new()
            .prefix("sluice-e2e-")
            .tempdir()
            .expect("temp dir");
        let data_dir = options.data_dir.clone().unwrap_or_else(|| root.path().join("data"));
        let log_path = root.path().join("server.log");
        let mut server = Server {
            root,
            data_dir,
            log_path,
            port: options.port.unwrap_or_else(free_port),
            kafka_port: options.kafka_port.unwrap_or_else(free_port),
            options,
            child: None,
            starts: 0,
        };
        server.spawn_and_wait().await;
        server
    }

    /// The address both listeners bind, `127.0.0.1` by default.
    fn ip(&self) -> &str {
        self.options.ip.as_deref().unwrap_or("127.0.0.1")
    }

    /// The Kafka bootstrap address, `127.0.0.1:PORT`.
    pub fn kafka(&self) -> String {
        format!("{}:{}", self.ip(), self.kafka_port)
    }

    pub fn base(&self) -> String {
        let scheme = if self.options.tls_ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.ip(), self.port)
    }

    /// `path` must start with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base(), path)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The options the next [`Server::restart`] uses (e.g. another config).
    pub fn options_mut(&mut self) -> &mut ServerOptions {
        &mut self.options
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is not running").id()
    }

    /// SIGKILL (`kill -9`): the process gets no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (e.g. "TERM", "INT") and waits up to `timeout` for the
    /// process to exit. Panics (after a SIGKILL) if it does not exit in time.
    pub async fn signal_and_wait(&mut self, signal: &str, timeout: Duration) -> ExitStatus {
        let pid = self.pid();
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .expect("run `kill`");
        assert!(status.success(), "`kill -{signal} {pid}` failed: {status}");
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("server is running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "server did not exit within {timeout:?} after SIG{signal}\n{}",
                    self.log_tail(60)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Starts the server on the same data dir and SIGKILLs it `after` the
    /// spawn, whether or not it is ready by then (a crash during recovery).
    pub async fn start_and_kill_after(&mut self, after: Duration) {
        assert!(self.child.is_none(), "start_and_kill_after() of a running server");
        self.spawn();
        tokio::time::sleep(after).await;
        self.kill();
    }

    /// Starts the server again on the same data dir (and, when it is free,
    /// the same port) and waits until it is ready.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "restart() of a running server");
        self.spawn_and_wait().await;
    }

    async fn spawn_and_wait(&mut self) {
        for attempt in 0.. {
            self.spawn();
            match self.wait_ready().await {
                Ok(()) => return,
                // Someone else took our port while the server was down: try
                // another (a fixed port: the same one again, a bit later).
                Err(status) if attempt < 2 && self.log_since_start().contains("in use") => {
                    eprintln!("server exited with {status} (port {} taken?); retrying", self.port);
                    match self.options.port {
                        Some(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                        None => self.port = free_port(),
                    }
                    if self.options.kafka_port.is_none() && self.starts == 1 {
                        self.kafka_port = free_port();
                    }
                }
                Err(status) => panic!("server exited during start-up with {status}\n{}", self.log_tail(60)),
            }
        }
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open server log");
        use std::io::Write;
        writeln!(log, "=== e2e: start #{} on port {} ===", self.starts, self.port).expect("write server log");
        let mut cmd = match self.options.nofile_limit {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(env!("CARGO_BIN_EXE_sluice"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_sluice")),
        };
        cmd.arg("serve");
        // Only what the test says may configure the server.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("SLUICE_") {
                cmd.env_remove(k);
            }
        }
        let listen = format!("{}:{}", self.ip(), self.port);
        let kafka = self.kafka();
        if self.options.config_from_env {
            cmd.env("SLUICE_DATA_DIR", &self.data_dir)
                .env("SLUICE_LISTEN", &listen)
                .env("SLUICE_KAFKA_LISTEN", &kafka);
        } else {
            cmd.arg("--data-dir")
                .arg(&self.data_dir)
                .args(["--listen", &listen, "--kafka-listen", &kafka]);
        }
        if let Some(config) = &self.options.config {
            let path = self.root.path().join("config.toml");
            std::fs::write(&path, config).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            cmd.arg("--config").arg(&path);
        }
        cmd.args(&self.options.args);
        for (k, v) in &self.options.envs {
            cmd.env(k, v);
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn the sluice binary"));
    }

    /// Polls `GET /health` until it answers 200 `{"status":"ok"}`. Returns
    /// the exit status if the process dies first; panics on timeout.
    async fn wait_ready(&mut self) -> Result<(), ExitStatus> {
        let mut client = reqwest::Client::builder().timeout(Duration::from_secs(1));
        if let Some(ca) = &self.options.tls_ca {
            let pem = std::fs::read(ca).expect("read the test CA");
            client = client.tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).expect("PEM"));
        }
        if let Some(identity) = &self.options.tls_client {
            let pem = std::fs::read(identity).expect("read the test client identity");
            client = client.identity(reqwest::Identity::from_pem(&pem).expect("PEM identity"));
        }
        let client = client.build().expect("client");
        let url = self.url("/health");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().expect("spawned").try_wait().expect("try_wait") {
                self.child = None;
                return Err(status);
            }
            if let Ok(resp) = client.get(&url).send().await
                && resp.status() == StatusCode::OK
                && let Ok(body) = resp.json::<Value>().await
                && body == json!({"status": "ok"})
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!("server not ready within {READY_TIMEOUT:?}\n{}", self.log_tail(60));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            let mut bytes = Vec::new();
            let _ = f.read_to_end(&mut bytes);
            s = String::from_utf8_lossy(&bytes).into_owned();
        }
        s
    }

    fn log_since_start(&self) -> String {
        let log = self.log();
        let marker = format!("=== e2e: start #{} ", self.starts);
        match log.rfind(&marker) {
            Some(i) => log[i..].to_string(),
            None => log,
        }
    }

    /// The last `n` lines of the server's stdout/stderr (all runs).
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(n);
        format!(
            "--- server log {} (last {} lines) ---\n{}\n--- end of server log ---",
            self.log_path.display(),
            lines.len() - from,
            lines[from..].join("\n")
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(80));
            // Keep the data dir for a post-mortem when asked to.
            if std::env::var_os("SLUICE_E2E_KEEP").is_some() {
                let path = std::mem::replace(&mut self.root, TempDir::new().expect("temp dir")).keep();
                eprintln!("kept the test's data dir and log in {}", path.display());
            }
        }
    }
}

/// Reads a response as `(status, JSON body)`; panics if the body is not JSON.
pub async fn json_of(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let ctype = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().await.expect("read response body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("answer {status} is not JSON ({e}), content-type {ctype:?}: {text:?}"));
    assert!(
        ctype.starts_with("application/json"),
        "answer {status} has content-type {ctype:?}, want application/json: {text}"
    );
    (status, body)
}

/// Asserts the status and returns the JSON body.
pub async fn expect_json(resp: reqwest::Response, want: StatusCode) -> Value {
    let url = resp.url().clone();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, want, "{url}: unexpected status, body {body}");
    body
}

/// Asserts an error answer: `status` and `{"error":{"code": code, "message": "..."}}`.
pub async fn expect_error(resp: reqwest::Response, want: StatusCode, code: &str) -> Value {
    let url = resp.url().clone();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, want, "{url}: unexpected status, body {body}");
    assert_eq!(body["error"]["code"], code, "{url}: unexpected error code, body {body}");
    let message = body["error"]["message"].as_str();
    assert!(
        message.is_some_and(|m| !m.is_empty()),
        "{url}: error without a message: {body}"
    );
    body
}

/// `POST /streams`; asserts 201 and the shape of the answer.
pub async fn create_stream(client: &reqwest::Client, server: &Server, name: &str, partitions: u32) -> Value {
    let resp = client
        .post(server.url("/streams"))
        .json(&json!({"name": name, "partitions": partitions}))
        .send()
        .await
        .expect("POST /streams");
    let body = expect_json(resp, StatusCode::CREATED).await;
    assert_eq!(body["name"], name, "{body}");
    assert!(body["id"].is_u64(), "{body}");
    assert!(body["created_ms"].is_u64(), "{body}");
    let parts = body["partitions"].as_array().expect("partitions array");
    assert_eq!(parts.len(), partitions as usize, "{body}");
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(
            p,
            &json!({"partition": i, "start_offset": 0, "end_offset": 0}),
            "{body}"
        );
    }
    body
}

pub fn records_url(server: &Server, stream: &str, partition: u32) -> String {
    server.url(&format!("/streams/{stream}/partitions/{partition}/records"))
}

/// `POST .../records`; asserts 200 and a consistent ack, returns the offsets.
pub async fn produce(
    client: &reqwest::Client,
    server: &Server,
    stream: &str,
    partition: u32,
    records: &Value,
) -> Vec<u64> {
    let resp = client
        .post(records_url(server, stream, partition))
        .json(records)
        .send()
        .await
        .expect("produce request");
    let ack = expect_json(resp, StatusCode::OK).await;
    let n = records
        .as_array()
        .or_else(|| records["records"].as_array())
        .expect("records")
        .len();
    check_ack(&ack, n).unwrap_or_else(|e| panic!("{e}"))
}

/// Checks `{"base_offset":N,"count":M}` (and nothing else: no per-record
/// list) for a batch of `n`; returns the offsets `N..N+M`.
pub fn check_ack(ack: &Value, n: usize) -> Result<Vec<u64>, String> {
    let bad = |why: &str| Err(format!("bad produce ack ({why}) for {n} records: {ack}"));
    let (Some(base), Some(count)) = (ack["base_offset"].as_u64(), ack["count"].as_u64()) else {
        return bad("missing fields");
    };
    if ack.as_object().map(|o| o.len()) != Some(2) {
        return bad("fields other than base_offset and count");
    }
    if count != n as u64 {
        return bad("count");
    }
    Ok((base..base + count).collect())
}

/// Reads a whole partition by paging with `offset` / `next_offset` until
/// `next_offset == end_offset`. Checks the paging invariants on the way.
pub async fn read_all(
    client: &reqwest::Client,
    server: &Server,
    stream: &str,
    partition: u32,
    extra_query: &str,
) -> Vec<Value> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    let mut start = None;
    for _page in 0..100_000 {
        let url = format!(
            "{}?offset={offset}&max_records=500{extra_query}",
            records_url(server, stream, partition)
        );
        let resp = client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let page = expect_json(resp, StatusCode::OK).await;
        let records = page["records"]
            .as_array()
            .unwrap_or_else(|| panic!("{url}: no records: {page}"));
        let next = page["next_offset"].as_u64().expect("next_offset");
        let end = page["end_offset"].as_u64().expect("end_offset");
        let s = page["start_offset"].as_u64().expect("start_offset");
        assert_eq!(*start.get_or_insert(s), s, "{url}: start_offset changed while reading");
        assert!(next <= end, "{url}: next_offset {next} > end_offset {end}");
        if let Some(first) = records.first() {
            assert_eq!(
                first["offset"], offset,
                "{url}: first record is not at the requested offset"
            );
            assert_eq!(
                next,
                offset + records.len() as u64,
                "{url}: next_offset does not follow the records returned"
            );
        }
        out.extend(records.iter().cloned());
        if next == end {
            return out;
        }
        assert!(
            !records.is_empty(),
            "{url}: empty page before the end (next_offset {next}, end_offset {end})"
        );
        offset = next;
    }
    panic!("reading {stream}/{partition} did not reach the end");
}

/// Reads a partition to its end, following `next_offset` across gaps (the
/// offsets compaction or retention dropped); checks offsets only rise.
pub async fn read_gapped(client: &reqwest::Client, server: &Server, stream: &str, partition: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for _ in 0..10_000 {
        let url = format!(
            "{}?offset={offset}&max_records=500",
            records_url(server, stream, partition)
        );
        let page = expect_json(client.get(&url).send().await.expect("GET records"), StatusCode::OK).await;
        let records = page["records"].as_array().expect("records").clone();
        let next = page["next_offset"].as_u64().expect("next_offset");
        let end = page["end_offset"].as_u64().expect("end_offset");
        for w in records.windows(2) {
            assert!(
                w[0]["offset"].as_u64() < w[1]["offset"].as_u64(),
                "offsets out of order: {page}"
            );
        }
        out.extend(records);
        if next >= end {
            return out;
        }
        assert!(next > offset, "no progress at {offset}: {page}");
        offset = next;
    }
    panic!("read did not finish");
}

/// `GET /streams/{stream}/status`: each partition's `wal_start_offset`
/// (offsets below it are served from the object store), and the status.
pub async fn wal_starts(client: &reqwest::Client, server: &Server, stream: &str) -> (Vec<u64>, Value) {
    let resp = client
        .get(server.url(&format!("/streams/{stream}/status")))
        .send()
        .await
        .expect("GET status");
    let st = expect_json(resp, StatusCode::OK).await;
    let parts = st["partitions"]
        .as_array()
        .unwrap_or_else(|| panic!("no partitions: {st}"));
    let starts = parts
        .iter()
        .map(|p| {
            p["wal_start_offset"]
                .as_u64()
                .unwrap_or_else(|| panic!("no wal_start_offset: {st}"))
        })
        .collect();
    (starts, st)
}
