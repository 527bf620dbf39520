//! The HTTP listener's limits against a real server process: connections
//! that send no request head in time (fresh, idle after an answer, or
//! sending their head slowly) are closed; beyond `max_connections` a new
//! connection waits until one closes; beyond `max_concurrent_requests` a
//! request waits while `/health` and `/ready` still answer; `/ready`
//! answers 200 with no problems on a healthy node.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{self, Server, ServerOptions};

fn connect(server: &Server) -> TcpStream {
    let addr = server.base().trim_start_matches("http://").to_string();
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s
}

/// Reads until the server closes the connection; returns how long it took
/// (panics if it stays open for 10 s).
fn closed_after(mut s: TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return started.elapsed(),
            Err(e) => panic!("the server kept the connection open: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_closed_within_the_idle_timeout() {
    let server = Server::start_with(ServerOptions {
        config: Some("[http]\nidle_timeout = \"500ms\"\n".into()),
        ..ServerOptions::default()
    })
    .await;
    // A connection that never sends anything.
    let fresh = connect(&server);
    // One that sends half a request head and stops.
    let mut slow = connect(&server);
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .expect("write");
    // One that got an answer and then stays idle (keep-alive).
    let mut idle = connect(&server);
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).expect("answer");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let handles = [fresh, slow, idle].map(|s| std::thread::spawn(move || closed_after(s)));
    for h in handles {
        let took = h.join().expect("reader");
        assert!(took < Duration::from_secs(5), "closed after {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_and_probes_skip_the_request_limit() {
    let server = Server::start_with(ServerOptions {
        config: Some("[http]\nidle_timeout = \"30s\"\nmax_connections = 3\nmax_concurrent_requests = 1\n".into()),
        ..ServerOptions::default()
    })
    .await;
    let c = support::client();
    support::create_stream(&c, &server, "t", 1).await;
    let ready: Value = c
        .get(server.url("/ready"))
        .send()
        .await
        .expect("ready")
        .json()
        .await
        .expect("json");
    assert_eq!(ready, json!({"ready": true, "problems": []}));

    // One request slot: a long-poll holds it; another request waits, while
    // the probes still answer.
    let poll = {
        let url = format!("{}?offset=0&wait_ms=3000", support::records_url(&server, "t", 0));
        tokio::spawn(async move { support::client().get(url).send().await.map(|r| r.status()) })
    };
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .expect("client");
    // Until the long-poll has reached the node, a request may still get
    // the slot; once it holds it, a request waits.
    let mut held = false;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        match quick.get(server.url("/streams")).send().await {
            Err(e) if e.is_timeout() => {
                held = true;
                break;
            }
            Err(e) => panic!("GET /streams: {e}"),
            Ok(_) => assert!(!poll.is_finished(), "the long-poll ended before holding the slot"),
        }
    }
    assert!(held, "a second request must wait for the slot");
    // The probe goes over the pool's idle connection: the cap of 3 is
    // already reached by that one, the long-poll's and the abandoned
    // request's (the server notices that one closed only when it reads).
    let health = tokio::time::timeout(Duration::from_millis(1500), c.get(server.url("/health")).send())
        .await
        .expect("health answers at once")
        .expect("health");
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    assert_eq!(poll.await.expect("poll").expect("long-poll").as_u16(), 200);

    // The pool's idle connection and three more fill the cap (the last of
    // them may already wait); one more waits in the accept queue until
    // some close.
    let a = connect(&server);
    let b = connect(&server);
    let c2 = connect(&server);
    let mut waiting = connect(&server);
    waiting
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("write");
    waiting
        .set_read_timeout(Some(Duration::from_millis(800)))
        .expect("timeout");
    let mut buf = [0u8; 512];
    assert!(waiting.read(&mut buf).is_err(), "served beyond the connection cap");
    drop((a, b, c2));
    drop(c);
    drop(quick);
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let n = waiting.read(&mut buf).expect("served once a connection closed");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

/// `--auth-token-file`: the token comes from a file (not the command
/// line, which `ps` shows); an empty file is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_can_come_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("token");
    std::fs::write(&path, "from-a-file\n").expect("write");
    let server = Server::start_with(ServerOptions::args(&["--auth-token-file", &path.to_string_lossy()])).await;
    let c = support::client();
    let resp = c.get(server.url("/streams")).send().await.expect("get");
    assert_eq!(resp.status(), reqwest::StatusCode::UNAUTHORIZED);
    let resp = c
        .get(server.url("/streams"))
        .bearer_auth("from-a-file")
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), reqwest::StatusCode::OK);

    std::fs::write(&path, "\n").expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--kafka-listen", "off", "--auth-token-file"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
