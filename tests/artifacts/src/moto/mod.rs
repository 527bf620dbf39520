//! A real S3-protocol server for tests: [moto](https://pypi.org/project/moto/)
//! in server mode, one per test process (or one shared one in CI).
//!
//! Where the server comes from, in order:
//! 1. `SLUICE_TEST_S3_ENDPOINT` (e.g. `http://127.0.0.1:5055`): an already
//!    running server; `.ci/run` starts one and sets this.
//! 2. Otherwise this module starts `moto_server` on a free port, found at
//!    `SLUICE_MOTO_SERVER`, else `<workspace>/.ci/moto-venv/bin/moto_server`,
//!    else `moto_server` on `PATH`. The child is tied to this process by a
//!    small shell watchdog and goes away at most about a second after the test
//!    process exits, however it exits.
//! 3. If none of those exists, it installs moto ([`MOTO_REQUIREMENT`]) into
//!    `<workspace>/.ci/moto-venv` (`python3 -m venv`, then `pip install`),
//!    once per checkout, printing one line to stderr, and starts it from
//!    there. Processes installing at the same time take turns on a lock
//!    (`.ci/moto-venv.lock`, an OS file lock, so a killed installer never
//!    leaves it held); a venv whose install did not finish is rebuilt. This
//!    needs `python3` with its `venv` module (on Debian/Ubuntu the
//!    `python3-venv` package) and access to PyPI.
//!
//! S3 tests never skip silently: if no server can be had, [`server`] and
//! [`server_or_skip`] panic saying why and what to do (one line when moto
//! cannot be installed). The one way to skip them is to ask:
//! `SLUICE_SKIP_S3_TESTS=1` makes [`server_or_skip`] return `None` (after a
//! note on stderr naming the test), and [`try_server`] too, without looking
//! for or installing moto. Under `CI=true` that variable is ignored.
//!
//! ```no_run
//! let Some(s3) = sluice_test_artifacts::moto::server_or_skip("my_test") else { return };
//! let bucket = s3.unique_bucket("mytest");
//! // run sluice with `s3.env_vars()` against `s3://{bucket}/...`
//! ```
//!
//! moto keeps everything in memory and the server is shared by every test of
//! the process (and in CI by every test binary), so use [`S3Server::unique_bucket`]
//! or unique prefixes. moto accepts any credentials and does not check
//! signatures; the raw-HTTP helpers here send a dummy `Authorization` header
//! only so that moto treats requests as authenticated rather than anonymous.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream, ToSocketAddrs as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use install::{find_binary, say};

mod install;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Environment variable naming an already running S3 endpoint to use.
pub const ENDPOINT_VAR: &str = "SLUICE_TEST_S3_ENDPOINT";
/// Environment variable naming the `moto_server` executable.
pub const BINARY_VAR: &str = "SLUICE_MOTO_SERVER";
/// Environment variable that, set to `1` (outside CI), skips the S3 tests.
pub const SKIP_VAR: &str = "SLUICE_SKIP_S3_TESTS";
/// What gets installed into `.ci/moto-venv`. `.ci/run` reads the pin from
/// this line (keep it on one line), so this is the one place to change it.
pub const MOTO_REQUIREMENT: &str = "moto[server]==5.2.5";

/// The venv, relative to the workspace root.
const VENV: &str = ".ci/moto-venv";
/// Lock file serializing installs, relative to the workspace root.
const VENV_LOCK: &str = ".ci/moto-venv.lock";
/// What else a user can do, for error messages.
const ALTERNATIVES: &str = "or set SLUICE_MOTO_SERVER to a moto_server binary, or \
     SLUICE_TEST_S3_ENDPOINT to a running S3 endpoint, or SLUICE_SKIP_S3_TESTS=1 to skip the S3 tests (not under \
     CI=true)";

/// Readiness polling: at most `READY_TRIES` × `READY_INTERVAL` (20 s; a cold
/// moto start with byte-compilation on a busy machine can take several).
const READY_TRIES: u32 = 200;
const READY_INTERVAL: Duration = Duration::from_millis(100);
/// Attempts at starting moto, each on a fresh free port (another process may
/// grab the port between probing and moto binding it).
const START_ATTEMPTS: u32 = 3;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Credentials moto accepts (it accepts any).
const ACCESS_KEY: &str = "test";
const SECRET_KEY: &str = "test";
const REGION: &str = "us-east-1";
/// A syntactically valid but unsigned SigV4 header; moto does not verify it.
const DUMMY_AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20200101/us-east-1/s3/aws4_request, \
     SignedHeaders=host, Signature=0000000000000000000000000000000000000000000000000000000000000000";

/// A running S3-protocol server.
#[derive(Debug)]
pub struct S3Server {
    /// Base URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub endpoint: String,
}

/// Whether skipping the S3 tests was asked for: `SLUICE_SKIP_S3_TESTS` set
/// to anything but empty, `0` or `false`, and not under `CI=true`.
fn skip_requested() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    !ci && std::env::var(SKIP_VAR).is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// Whether S3 tests must run (and so fail if no server can be had): always,
/// unless `SLUICE_SKIP_S3_TESTS=1` outside CI.
pub fn required() -> bool {
    !skip_requested()
}

/// The process-wide server, started (and if need be installed) on first use;
/// `None` if it cannot be had or skipping was asked for (the reason is
/// printed once to stderr).
pub fn try_server() -> Option<&'static S3Server> {
    state().as_ref().ok()
}

/// Whether an S3 server is available ([`try_server`] is `Some`).
pub fn available() -> bool {
    try_server().is_some()
}

/// The process-wide server, started (and if need be installed) on first use.
///
/// # Panics
/// If no server can be had, with the reason and what to do.
pub fn server() -> &'static S3Server {
    match state() {
        Ok(server) => server,
        Err(e) => panic!("{e}"),
    }
}

/// For tests: the server, or a panic if it cannot be had (see [`server`]);
/// `None`, after a note naming `test` on stderr (shown even when the test
/// passes), only when skipping was asked for with `SLUICE_SKIP_S3_TESTS=1`.
pub fn server_or_skip(test: &str) -> Option<&'static S3Server> {
    if required() {
        return Some(server());
    }
    say(&format!("skipping {test}: {SKIP_VAR} is set"));
    None
}

fn state() -> &'static Result<S3Server, String> {
    static STATE: OnceLock<Result<S3Server, String>> = OnceLock::new();
    STATE.get_or_init(|| {
        let result = init();
        if let Err(e) = &result {
            eprintln!("moto: {e}");
        }
        result
    })
}

fn init() -> Result<S3Server, String> {
    if skip_requested() {
        return Err(format!("S3 tests skipped: {SKIP_VAR} is set"));
    }
    if let Ok(endpoint) = std::env::var(ENDPOINT_VAR) {
        let server = S3Server {
            endpoint: endpoint.trim().trim_end_matches('/').to_owned(),
        };
        wait_ready(&server, || Ok(())).map_err(|e| format!("{ENDPOINT_VAR}={endpoint} does not answer: {e}"))?;
        return Ok(server);
    }
    let binary = find_binary()?;
    let mut last_error = String::new();
    for _ in 0..START_ATTEMPTS {
        match start(&binary) {
            Ok(server) => return Ok(server),
            Err(e) => last_error = e,
        }
    }
    Err(format!(
        "moto_server ({}) did not start after {START_ATTEMPTS} attempts: {last_error}",
        binary.display()
    ))
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot probe for a free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Watchdog: runs moto in the background and kills it once the test process
/// (`$1`) is gone, or on a signal; exits (so the parent can see it) if moto
/// dies on its own, e.g. because the port was taken.
const WATCHDOG: &str = r#"
"$2" -H 127.0.0.1 -p "$3" </dev/null &
child=$!
trap 'kill "$child" 2>/dev/null; exit 0' HUP INT TERM
while kill -0 "$1" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 1; done
kill "$child" 2>/dev/null
wait "$child"
"#;

fn start(binary: &Path) -> Result<S3Server, String> {
    let port = free_port()?;
    let log_path = std::env::temp_dir().join(format!("sluice-moto-{}-{port}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("sh")
        .arg(std::process::id().to_string())
        .arg(binary)
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    let server = S3Server {
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let ready = wait_ready(&server, || match watchdog.try_wait() {
        Ok(Some(status)) => Err(format!("moto_server exited ({status})")),
        Ok(None) => Ok(()),
        Err(e) => Err(e.to_string()),
    });
    let result = match ready {
        Ok(()) => Ok(server),
        Err(e) => {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(format!("{e}; its output:\n{}", tail.join("\n")))
        }
    };
    // The running server keeps its (open, unlinked) log; nothing to clean up.
    let _ = std::fs::remove_file(&log_path);
    result
}

/// Polls `GET /` until the server answers with any HTTP status, calling
/// `alive` between tries to give up early if the server process died.
fn wait_ready(server: &S3Server, mut alive: impl FnMut() -> Result<(), String>) -> Result<(), String> {
    let mut last_error = String::new();
    for _ in 0..READY_TRIES {
        match server.request("GET", "/", &[]) {
            Ok(_) => return Ok(()),
            Err(e) => last_error = e,
        }
        alive()?;
        std::thread::sleep(READY_INTERVAL);
    }
    Err(format!(
        "no HTTP answer at {} within {:?}: {last_error}",
        server.endpoint,
        READY_INTERVAL * READY_TRIES
    ))
}

/// An HTTP response from [`S3Server::request`].
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl S3Server {
    /// Variables a sluice process (or anything using `object_store`'s
    /// `AmazonS3Builder::from_env`) needs to reach this server.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Creates bucket `name` (succeeds if it already exists).
    pub fn create_bucket(&self, name: &str) -> Result<(), String> {
        let response = self.request("PUT", &format!("/{name}"), &[])?;
        expect_ok(&response, &format!("PUT bucket {name}"))
    }

    /// Creates a bucket with a fresh name starting with (a sanitised) `tag`
    /// and returns the name.
    ///
    /// # Panics
    /// If the bucket cannot be created.
    pub fn unique_bucket(&self, tag: &str) -> String {
        let name = unique_bucket_name(tag);
        if let Err(e) = self.create_bucket(&name) {
            panic!("cannot create bucket {name} at {}: {e}", self.endpoint);
        }
        name
    }

    /// Stores `body` at `key` (unencoded; `/` separates path segments).
    pub fn put_object(&self, bucket: &str, key: &str, body: &[u8]) -> Result<(), String> {
        let response = self.request("PUT", &object_path(bucket, key), body)?;
        expect_ok(&response, &format!("PUT s3://{bucket}/{key}"))
    }

    /// The object at `key`, or `None` if there is none.
    pub fn get_object(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        let response = self.request("GET", &object_path(bucket, key), &[])?;
        if response.status == 404 {
            return Ok(None);
        }
        expect_ok(&response, &format!("GET s3://{bucket}/{key}"))?;
        Ok(Some(response.body))
    }

    /// Keys under `prefix`, sorted (the first 1000 only; no pagination).
    pub fn list_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, String> {
        let path = format!("/{bucket}?list-type=2&prefix={}", percent_encode(prefix, false));
        let response = self.request("GET", &path, &[])?;
        expect_ok(&response, &format!("LIST s3://{bucket}/{prefix}"))?;
        let xml = String::from_utf8_lossy(&response.body);
        let mut keys: Vec<String> = xml
            .split("<Key>")
            .skip(1)
            .filter_map(|s| s.split_once("</Key>"))
            .map(|(key, _)| xml_unescape(key))
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// One raw HTTP/1.1 request (`path` already percent-encoded, starting
    /// with `/`), with a dummy `Authorization` header; bounded by timeouts.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Result<Response, String> {
        let authority = self
            .endpoint
            .strip_prefix("http://")
            .ok_or_else(|| format!("endpoint {} is not http://", self.endpoint))?;
        let authority = authority.split('/').next().unwrap_or(authority);
        let addr = authority
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {authority}: {e}"))?
            .next()
            .ok_or_else(|| format!("{authority} resolves to nothing"))?;
        let mut stream =
            TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
        stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: {DUMMY_AUTH}\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .map_err(|e| format!("{method} {path}: write: {e}"))?;
        stream
            .write_all(body)
            .map_err(|e| format!("{method} {path}: write: {e}"))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .map_err(|e| format!("{method} {path}: read: {e}"))?;
        parse_response(&raw).map_err(|e| format!("{method} {path}: {e}"))
    }
}

fn expect_ok(response: &Response, what: &str) -> Result<(), String> {
    if response.status == 200 {
        Ok(())
    } else {
        Err(format!(
            "{what}: HTTP {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        ))
    }
}

fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("incomplete HTTP response ({} bytes)", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/"))
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let len: usize = value.parse().map_err(|_| format!("bad Content-Length {value:?}"))?;
            if body.len() < len {
                return Err(format!("truncated body: {} of {len} bytes", body.len()));
            }
            body.truncate(len);
        } else if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            return Err("chunked responses are not supported".into());
        }
    }
    Ok(Response { status, body })
}

fn object_path(bucket: &str, key: &str) -> String {
    format!("/{bucket}/{}", percent_encode(key, true))
}

/// Percent-encodes all but unreserved characters (and `/` if `keep_slash`).
fn percent_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// A valid S3 bucket name (3–63 of `a-z0-9-`, alphanumeric at both ends)
/// unique across processes and calls: `tag-pid-counter-nanos`.
fn unique_bucket_name(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let mut tag: String = tag.trim_matches('-').chars().take(20).collect();
    tag.truncate(tag.trim_end_matches('-').len());
    if tag.is_empty() {
        tag.push('t');
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()) % 1_000_000_000_000;
    let mut name = format!("{tag}-{}-{n}-{nanos}", std::process::id());
    // Cannot trigger with the bounds above, but keep the limit explicit; the
    // name still ends in a digit.
    name.truncate(63);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_bucket_name(name: &str) -> bool {
        (3..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && name.as_bytes()[0].is_ascii_alphanumeric()
            && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
    }

    #[test]
    fn moto_bucket_names_are_valid_and_distinct() {
        for tag in ["", "---", "My_Test.Name", "x", &"long-tag-".repeat(20), "é"] {
            let a = unique_bucket_name(tag);
            let b = unique_bucket_name(tag);
            assert!(valid_bucket_name(&a), "{a:?} from {tag:?}");
            assert!(valid_bucket_name(&b), "{b:?} from {tag:?}");
            assert_ne!(a, b);
        }
        assert!(unique_bucket_name("Sluice Tier").starts_with("sluice-tier-"));
    }

    #[test]
    fn moto_env_vars() {
        let server = S3Server {
            endpoint: "http://127.0.0.1:1".into(),
        };
        let vars = server.env_vars();
        let get = |k: &str| vars.iter().find(|(name, _)| name == k).map(|(_, v)| v.as_str());
        assert_eq!(get("AWS_ENDPOINT"), Some("http://127.0.0.1:1"));
        assert_eq!(get("AWS_ALLOW_HTTP"), Some("true"));
        assert_eq!(get("AWS_REGION"), Some("us-east-1"));
        assert_eq!(get("AWS_ACCESS_KEY_ID"), Some("test"));
        assert_eq!(get("AWS_SECRET_ACCESS_KEY"), Some("test"));
    }

    #[test]
    fn moto_parse_response() {
        let r = parse_response(b"HTTP/1.1 404 NOT FOUND\r\nContent-Length: 2\r\n\r\nabXX").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"ab"[..]));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab").is_err());
        assert!(parse_response(b"garbage").is_err());
        assert_eq!(percent_encode("a b/c+d", true), "a%20b/c%2Bd");
        assert_eq!(percent_encode("a/b", false), "a%2Fb");
    }

    #[test]
    fn moto_server_serves_buckets_and_objects() {
        let Some(s3) = server_or_skip("moto_server_serves_buckets_and_objects") else {
            return;
        };
        assert!(s3.endpoint.starts_with("http://"), "{}", s3.endpoint);
        // Same process-wide instance on every call.
        assert!(std::ptr::eq(s3, server()));

        let a = s3.unique_bucket("moto-selftest");
        let b = s3.unique_bucket("moto-selftest");
        assert_ne!(a, b);
        s3.create_bucket(&a).expect("creating an existing bucket succeeds");

        let body: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        s3.put_object(&a, "dir/with space+plus.bin", &body).unwrap();
        assert_eq!(
            s3.get_object(&a, "dir/with space+plus.bin").unwrap().as_deref(),
            Some(&body[..])
        );
        assert_eq!(s3.get_object(&a, "missing").unwrap(), None);
        assert_eq!(s3.get_object(&b, "dir/with space+plus.bin").unwrap(), None);
        s3.put_object(&a, "other/x", b"x").unwrap();
        assert_eq!(
            s3.list_keys(&a, "dir/").unwrap(),
            vec!["dir/with space+plus.bin".to_owned()]
        );
        assert_eq!(s3.list_keys(&a, "").unwrap().len(), 2);
        assert!(s3.list_keys(&b, "").unwrap().is_empty());

        // Plain HTTP requests work too.
        let r = s3.request("PUT", &format!("/{b}/raw"), b"hello").unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let r = s3.request("GET", &format!("/{b}/raw"), &[]).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    }
}
