//! What the crash matrix expects of a node besides its records: streams,
//! plugin versions and a pipeline, changed by admin requests that a SIGKILL
//! may cut short. An acknowledged change must survive every later crash; a
//! change whose request failed may or may not have happened, and once a
//! restart shows which, that is what must stay.

use std::collections::{BTreeMap, HashSet};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_test_artifacts as wasm;

use crate::support::{self, Rng, Server};

/// The stream the load writes to, and the pipeline's output.
pub const MAIN: &str = "main";
pub const OUT: &str = "out";
pub const PLUGIN: &str = "upper";
pub const PIPELINE: &str = "shout";

/// Whether something exists, as far as the test knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Yes,
    No,
    /// Its request failed (the server was killed): either way is fine,
    /// until a restart shows which.
    Maybe,
}

/// An admin request the ops task makes.
#[derive(Debug, Clone)]
pub enum Op {
    CreateStream { name: String, partitions: u32 },
    DeleteStream { name: String },
    UploadPlugin,
    CreatePipeline,
}

/// The node's metadata as the test knows it.
#[derive(Debug, Default)]
pub struct World {
    /// Name -> (partitions, existence).
    pub streams: BTreeMap<String, (u32, Known)>,
    /// Versions of [`PLUGIN`] acknowledged, and attempted (the difference
    /// are uploads whose answer was lost).
    pub plugin_acked: u64,
    pub plugin_tried: u64,
    pub pipeline: Option<Known>,
    next_stream: u32,
}

impl World {
    pub fn stream_exists(&self, name: &str) -> bool {
        self.streams.get(name).is_some_and(|(_, k)| *k == Known::Yes)
    }

    /// Up to three admin requests for one cycle, each possible now.
    pub fn plan(&mut self, rng: &mut Rng) -> Vec<Op> {
        let mut ops = Vec::new();
        let mut touched: HashSet<String> = HashSet::new();
        for _ in 0..rng.range(0, 3) {
            let op = match rng.range(0, 4) {
                0 | 1 => {
                    self.next_stream += 1;
                    Op::CreateStream {
                        name: format!("x{}", self.next_stream),
                        partitions: rng.range(1, 3) as u32,
                    }
                }
                2 => {
                    let extras: Vec<&String> = self
                        .streams
                        .iter()
                        .filter(|(n, (_, k))| n.starts_with('x') && *k == Known::Yes && !touched.contains(*n))
                        .map(|(n, _)| n)
                        .collect();
                    match extras.is_empty() {
                        true => continue,
                        false => {
                            let name = extras[rng.range(0, extras.len() as u64 - 1) as usize].clone();
                            touched.insert(name.clone());
                            Op::DeleteStream { name }
                        }
                    }
                }
                3 if self.plugin_acked == 0 || self.pipeline.is_some() => Op::UploadPlugin,
                _ if self.pipeline.is_none() && self.plugin_acked > 0 && touched.insert(PIPELINE.into()) => {
                    if !self.stream_exists(OUT) {
                        ops.push(Op::CreateStream {
                            name: OUT.into(),
                            partitions: 2,
                        });
                    }
                    Op::CreatePipeline
                }
                _ => continue,
            };
            ops.push(op);
        }
        ops
    }

    /// Records what a request did: `ok` if it was acknowledged.
    pub fn record(&mut self, op: &Op, ok: bool) {
        let k = if ok { Known::Yes } else { Known::Maybe };
        match op {
            Op::CreateStream { name, partitions } => {
                self.streams.insert(name.clone(), (*partitions, k));
            }
            Op::DeleteStream { name } => {
                if let Some(s) = self.streams.get_mut(name) {
                    s.1 = if ok { Known::No } else { Known::Maybe };
                }
            }
            Op::UploadPlugin => {
                self.plugin_tried += 1;
                if ok {
                    self.plugin_acked = self.plugin_tried;
                }
            }
            Op::CreatePipeline => self.pipeline = Some(k),
        }
    }

    /// Compares the restarted node with what it acknowledged; settles every
    /// `Maybe` to what the node shows.
    pub async fn check(&mut self, server: &Server, problems: &mut Vec<String>) {
        let client = support::client();
        let listed = get(&client, server, "/streams").await;
        let mut seen: BTreeMap<String, u32> = BTreeMap::new();
        for s in listed["streams"].as_array().into_iter().flatten() {
            let name = s["name"].as_str().unwrap_or_default().to_string();
            let parts = s["partitions"].as_array().map_or(0, Vec::len) as u32;
            seen.insert(name, parts);
        }
        for (name, parts) in &seen {
            if !self.streams.contains_key(name) {
                problems.push(format!("stream {name} ({parts} partitions) was never created"));
            }
        }
        for (name, (parts, known)) in self.streams.iter_mut() {
            match (seen.get(name), *known) {
                (Some(p), Known::Yes | Known::Maybe) if p != parts => {
                    problems.push(format!("stream {name}: {p} partitions, created with {parts}"));
                }
                (Some(_), Known::No) => problems.push(format!("stream {name} was deleted and is back")),
                (None, Known::Yes) => problems.push(format!("acknowledged stream {name} is missing")),
                (Some(_), _) => *known = Known::Yes,
                (None, _) => *known = Known::No,
            }
        }
        let plugins = get(&client, server, "/plugins").await;
        let versions = plugins["plugins"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == PLUGIN)
            .and_then(|p| p["versions"].as_array())
            .map_or(0, Vec::len) as u64;
        if versions < self.plugin_acked || versions > self.plugin_tried {
            problems.push(format!(
                "plugin {PLUGIN}: {versions} versions; {} acknowledged, {} tried",
                self.plugin_acked, self.plugin_tried
            ));
        }
        self.plugin_acked = versions;
        self.plugin_tried = versions;
        if let Some(known) = self.pipeline {
            let resp = client
                .get(server.url(&format!("/pipelines/{PIPELINE}")))
                .send()
                .await
                .expect("GET pipeline");
            let (status, body) = support::json_of(resp).await;
            match (status, known) {
                (StatusCode::OK, _) => {
                    let want = json!({"input": MAIN, "output": OUT, "plugin": PLUGIN});
                    let got = json!({"input": body["input"], "output": body["output"], "plugin": body["plugin"]});
                    if got != want {
                        problems.push(format!("pipeline {PIPELINE} changed: {body}"));
                    }
                    if body["state"] == "failed" {
                        problems.push(format!("pipeline {PIPELINE} failed: {body}"));
                    }
                    self.pipeline = Some(Known::Yes);
                }
                (StatusCode::NOT_FOUND, Known::Maybe) => self.pipeline = None,
                (s, _) => problems.push(format!("acknowledged pipeline {PIPELINE}: {s} {body}")),
            }
        }
    }
}

/// Runs `ops` in order until one fails (the server was killed); returns
/// each op with whether it was acknowledged. A refusal while the server is
/// up is a bug: it panics.
pub async fn run_ops(server_base: String, ops: Vec<Op>) -> Vec<(Op, bool)> {
    let client = support::client();
    let mut done = Vec::new();
    for op in ops {
        let req = match &op {
            Op::CreateStream { name, partitions } => client
                .post(format!("{server_base}/streams"))
                .json(&json!({"name": name, "partitions": partitions})),
            Op::DeleteStream { name } => client.delete(format!("{server_base}/streams/{name}")),
            Op::UploadPlugin => client
                .put(format!("{server_base}/plugins/{PLUGIN}"))
                .header(reqwest::header::CONTENT_TYPE, "application/wasm")
                .body(wasm::read(wasm::UPPER)),
            Op::CreatePipeline => client.post(format!("{server_base}/pipelines")).json(&json!({
                "name": PIPELINE, "input": MAIN, "output": OUT, "plugin": PLUGIN, "batch_records": 7,
            })),
        };
        match req.send().await {
            Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                Ok(_) => done.push((op, true)),
                Err(_) => {
                    done.push((op, false));
                    return done;
                }
            },
            Ok(resp) => {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                // Only a server on its way down answers 503.
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{op:?} refused: {body}");
                done.push((op, false));
                return done;
            }
            Err(_) => {
                done.push((op, false));
                return done;
            }
        }
    }
    done
}

/// Every record the pipeline wrote: each the upper-cased value of a record
/// stored in [`MAIN`], none twice.
pub async fn check_pipeline_output(
    server: &Server,
    main_values: &HashSet<String>,
    problems: &mut Vec<String>,
) -> usize {
    let client = support::client();
    let mut seen = HashSet::new();
    for p in 0..2 {
        for r in support::read_all(&client, server, OUT, p, "").await {
            let v = r["value"].as_str().unwrap_or_default().to_string();
            if !main_values.contains(&v.to_lowercase()) {
                problems.push(format!("{OUT}/{p}: {v} is no upper-cased input record"));
            }
            if !seen.insert(v.clone()) {
                problems.push(format!("{OUT}/{p}: {v} was written twice"));
            }
        }
    }
    seen.len()
}

async fn get(client: &reqwest::Client, server: &Server, path: &str) -> Value {
    let resp = client
        .get(server.url(path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    support::expect_json(resp, StatusCode::OK).await
}
