//! HTTP produce measured with an external load generator: `wrk` (Debian
//! package `wrk`) posts single 1 KiB records, one per request, over keep-alive
//! connections to a node served in this process, on the same disk as the
//! WAL benchmark, spread over the stream's partitions. Then the same wrk
//! against `GET /health` of that node: the HTTP stack alone (no body, no
//! WAL) with the load generator on the same cores, the ceiling of any
//! request the node answers.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use sluice_host::{Host, Settings};

/// What wrk reported.
pub struct WrkRun {
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

const PARTITIONS: u32 = 16;

/// Produce through HTTP and `GET /health` of the same node.
pub struct HttpRuns {
    pub produce: WrkRun,
    pub health: WrkRun,
}

/// Serves a fresh node with its data in `dir` and runs wrk against it with
/// `connections` connections for `duration`, producing, then on
/// `/health`. `Ok(None)` when wrk is not installed.
pub async fn http_produce(dir: &Path, connections: usize, duration: Duration) -> anyhow::Result<Option<HttpRuns>> {
    if Command::new("wrk").arg("--version").output().is_err() {
        return Ok(None);
    }
    let settings = Settings {
        data_dir: dir.join("node"),
        ..Settings::default()
    };
    let host = Host::open(settings).await?;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = http.local_addr()?;
    let serving = host.clone();
    let server = tokio::spawn(async move { sluice_host::http::serve(&serving, http, std::future::pending()).await });
    host.create_stream("bench", PARTITIONS).await?;

    let script = dir.join("produce.lua");
    std::fs::write(&script, lua_script()).with_context(|| format!("write {}", script.display()))?;
    let produce = wrk(connections, duration, Some(&script), &format!("http://{addr}")).await;
    let health = match &produce {
        Ok(_) => wrk(connections, duration, None, &format!("http://{addr}/health")).await,
        Err(_) => Err(anyhow::anyhow!("not run")),
    };
    server.abort();
    host.shutdown().await;
    Ok(Some(HttpRuns {
        produce: produce?,
        health: health?,
    }))
}

/// One wrk run: with `script` (a Lua request generator) or plain GETs.
async fn wrk(connections: usize, duration: Duration, script: Option<&Path>, url: &str) -> anyhow::Result<WrkRun> {
    let mut wrk = Command::new("wrk");
    wrk.arg("-t2")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--latency");
    if let Some(script) = script {
        wrk.arg("-s").arg(script);
    }
    wrk.arg(url);
    let out = tokio::task::spawn_blocking(move || wrk.output())
        .await
        .context("wrk thread")?
        .context("run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("Non-2xx") || text.contains("Socket errors") {
        bail!(
            "wrk failed ({}):\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse(&text)
}

/// One request per call: `[{"value": 1024 × "x"}]` to the next partition.
fn lua_script() -> String {
    format!(
        r#"local body = '[{{"value":"' .. string.rep("x", 1024) .. '"}}]'
local headers = {{["Content-Type"] = "application/json"}}
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/streams/bench/partitions/" .. (n % {PARTITIONS}) .. "/records", headers, body)
end
"#
    )
}

fn parse(text: &str) -> anyhow::Result<WrkRun> {
    let field = |prefix: &str| -> anyhow::Result<&str> {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
            .with_context(|| format!("no `{prefix}` in wrk's output:\n{text}"))
    };
    let requests_per_s = field("Requests/sec:")?.parse().context("Requests/sec")?;
    Ok(WrkRun {
        requests_per_s,
        p50_ms: latency_ms(field("50%")?)?,
        p99_ms: latency_ms(field("99%")?)?,
    })
}

/// wrk's latency: `812.00us`, `1.23ms`, `2.01s`.
fn latency_ms(v: &str) -> anyhow::Result<f64> {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e3)
    } else {
        bail!("wrk latency `{v}`")
    };
    Ok(num.parse::<f64>().with_context(|| format!("wrk latency `{v}`"))? * scale)
}
