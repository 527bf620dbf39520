//! The client subcommands' flags (clap). `main.rs` flattens [`Command`] next
//! to `serve`; every client subcommand carries the [`Conn`] flags (the local
//! `plugin new` and `plugin test` use only `--output`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

/// Client subcommands: they talk to a running server over HTTP.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create, list, describe or delete streams.
    Stream(StreamArgs),
    /// Append records to a partition: lines of stdin or a file, or JSON records.
    Produce(ProduceArgs),
    /// Read records of a partition from an offset or the end (--follow to keep reading).
    Consume(ConsumeArgs),
    /// Upload, list or delete plugins; create (`new`) and try (`test`) one locally.
    Plugin(PluginArgs),
    /// Create, list, inspect, pause, resume or delete pipelines.
    Pipeline(PipelineArgs),
    /// Request a compaction of a stream's tiered data (or --status to show it).
    Compact(CompactArgs),
    /// The server's health and counts, or a stream's per-partition status.
    Status(StatusArgs),
    /// List, describe, reset or delete consumer groups.
    Group(super::groups::GroupArgs),
    /// Create, list, describe or delete views (read-only topics through a plugin).
    View(super::views::ViewArgs),
}

/// How to reach the server and how to print. The token comes from
/// `SLUICE_AUTH_TOKEN` only, so it never shows in `ps`.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// Server base URL (`https://` for a node with `[tls]`).
    #[arg(long, env = "SLUICE_SERVER", default_value = "http://127.0.0.1:8080", global = true)]
    pub server: String,
    /// PEM file of the CA (or self-signed certificate) an `https://` server's
    /// certificate must chain to; default: the system's trusted roots.
    #[arg(long, env = "SLUICE_CA", global = true)]
    pub ca: Option<std::path::PathBuf>,
    /// PEM client certificate (leaf first) for a node that asks for one
    /// (`[tls] client_ca`); with `--client-key`.
    #[arg(long, env = "SLUICE_CLIENT_CERT", global = true)]
    pub client_cert: Option<std::path::PathBuf>,
    /// PEM private key of `--client-cert`.
    #[arg(long, env = "SLUICE_CLIENT_KEY", global = true)]
    pub client_key: Option<std::path::PathBuf>,
    /// `table` for people, `json` for scripts.
    #[arg(long, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    /// Timeout of every request, e.g. `30s`, `500ms`, `2m`.
    #[arg(long, default_value = "30s", value_parser = parse_duration, global = true)]
    pub timeout: Duration,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct StreamArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub cmd: StreamCmd,
}

#[derive(Subcommand, Debug)]
pub enum StreamCmd {
    /// Create a stream.
    Create {
        name: String,
        /// Number of partitions.
        #[arg(short, long, default_value_t = 1)]
        partitions: u32,
        /// Drop tiered data older than this many milliseconds.
        #[arg(long)]
        retention_ms: Option<u64>,
        /// Keep about this much tiered data per partition, e.g. `1GiB`.
        #[arg(long)]
        retention_bytes: Option<bytesize::ByteSize>,
        /// `delete` (default), `compact` or `compact,delete`.
        #[arg(long)]
        cleanup: Option<String>,
        /// Key-policy plugin of a `compact` cleanup.
        #[arg(long)]
        compaction_plugin: Option<String>,
        /// `KEY=VALUE` configuration of the compaction plugin (repeatable).
        #[arg(long = "compaction-config", value_parser = parse_key_value)]
        compaction_config: Vec<(String, String)>,
        /// Replicas per partition on a cluster (default 1: this node only).
        #[arg(long)]
        replication_factor: Option<u32>,
        /// In-sync replicas `acks=all` needs, 1 to the factor (default:
        /// the node's `[cluster] min_insync_replicas`).
        #[arg(long)]
        min_insync_replicas: Option<u32>,
        /// The largest record batch a Kafka producer may send, e.g. `1MiB`
        /// (at most the node's `max_batch_bytes`, which applies otherwise).
        #[arg(long)]
        max_message_bytes: Option<bytesize::ByteSize>,
    },
    /// Move a partition's leadership to another replica (manual failover).
    Leader {
        name: String,
        #[arg(short, long, default_value_t = 0)]
        partition: u32,
        /// The node id to lead.
        #[arg(long)]
        node: u32,
        /// Move even if the node is not in sync (acknowledged records it
        /// misses are lost).
        #[arg(long)]
        force: bool,
    },
    /// Elect partition leaders by rule: the preferred replica (the first of
    /// each partition's assignment) leads again if it is in sync, e.g.
    /// after a node restarted; or, with `--unclean`, fail over from a
    /// leader that does not answer.
    Elect {
        name: String,
        /// One partition (default: every partition of the stream).
        #[arg(short, long)]
        partition: Option<u32>,
        /// Only when the leader does not answer: the reachable replica in
        /// sync as it last heard, then with the longest log, leads
        /// (acknowledged records it misses are lost).
        #[arg(long)]
        unclean: bool,
    },
    /// List streams.
    List,
    /// Show a stream's settings and per-partition offsets.
    Describe { name: String },
    /// Change a stream's retention, minimum in-sync replicas, largest Kafka
    /// batch or compaction tuning, or give it more partitions.
    Alter {
        name: String,
        /// A larger partition count (the new partitions start empty).
        #[arg(short, long)]
        partitions: Option<u32>,
        /// Drop tiered data older than this many milliseconds; `none`
        /// removes the limit.
        #[arg(long, value_name = "MS|none")]
        retention_ms: Option<String>,
        /// Keep about this much tiered data per partition, e.g. `1GiB`;
        /// `none` removes the limit.
        #[arg(long, value_name = "SIZE|none")]
        retention_bytes: Option<String>,
        /// In-sync replicas `acks=all` needs on a replicated stream, 1 to
        /// its factor; `none`: the node's setting again.
        #[arg(long, value_name = "N|none")]
        min_insync_replicas: Option<String>,
        /// The largest record batch a Kafka producer may send, e.g. `1MiB`;
        /// `none`: the node's `max_batch_bytes` again.
        #[arg(long, value_name = "SIZE|none")]
        max_message_bytes: Option<String>,
        /// A compacted stream: how long a tombstone stays after compaction
        /// reaches it.
        #[arg(long, value_name = "MS")]
        delete_retention_ms: Option<u64>,
        /// A compacted stream: segments younger than this are not
        /// compacted yet.
        #[arg(long, value_name = "MS")]
        min_compaction_lag_ms: Option<u64>,
        /// A compacted stream: the dirty ratio (0 to 1) that starts a run.
        #[arg(long, value_name = "RATIO")]
        min_cleanable_dirty_ratio: Option<f64>,
    },
    /// Delete a partition's records below an offset (its start moves there).
    DeleteRecords {
        name: String,
        #[arg(short, long, default_value_t = 0)]
        partition: u32,
        /// Delete the records below this offset; without it, every record.
        #[arg(long)]
        before: Option<u64>,
    },
    /// Delete a stream and its data.
    Delete { name: String },
}

#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub conn: Conn,
    pub stream: String,
    #[arg(short, long, default_value_t = 0)]
    pub partition: u32,
    /// Read from this file instead of stdin.
    #[arg(short, long)]
    pub file: Option<PathBuf>,
    /// The input is JSON records as the API takes them: an array, `{"records": [...]}`,
    /// or one record object per line. Otherwise every line is one record's value.
    #[arg(long)]
    pub json: bool,
    /// With lines: split each line at the first SEP into key and value.
    #[arg(long, value_name = "SEP", conflicts_with = "json")]
    pub key_separator: Option<String>,
    /// Records per request.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// `leader`: durable on the leader; `all`: on every in-sync replica.
    #[arg(long, value_enum, default_value_t = AcksArg::Leader)]
    pub acks: AcksArg,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcksArg {
    Leader,
    All,
}

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub conn: Conn,
    pub stream: String,
    #[arg(short, long, default_value_t = 0)]
    pub partition: u32,
    /// First offset to read [default: the partition's start].
    #[arg(long, conflicts_with = "from_end")]
    pub offset: Option<u64>,
    /// Start at the end: only records produced from now on (with --follow).
    #[arg(long)]
    pub from_end: bool,
    /// Keep reading new records until interrupted (or --max-records).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Stop after this many records.
    #[arg(short = 'n', long)]
    pub max_records: Option<u64>,
    /// With --follow, the pause after a long-poll that found nothing, e.g. `500ms`.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Read through this transform plugin.
    #[arg(long)]
    pub plugin: Option<String>,
    #[arg(long, requires = "plugin")]
    pub plugin_version: Option<u32>,
    /// `KEY=VALUE` plugin configuration (repeatable).
    #[arg(long, requires = "plugin", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,
}

#[derive(Args, Debug)]
pub struct PluginArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub cmd: PluginCmd,
}

#[derive(Subcommand, Debug)]
pub enum PluginCmd {
    /// Upload a `.wasm` component as the next version of NAME.
    Upload { name: String, file: PathBuf },
    /// List plugins and their versions.
    List,
    /// Delete a plugin (all versions).
    Delete { name: String },
    /// Create a plugin crate on sluice-sdk, ready to build, test and upload (local).
    New(PluginNewArgs),
    /// Run a built plugin on sample records, without a server (local).
    Test(PluginTestArgs),
}

/// Which world a new plugin implements.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKindArg {
    /// Records in, records out (filter, map, fan-out).
    Transform,
    /// A compaction key policy: one decision per record.
    Compaction,
}

#[derive(Args, Debug)]
pub struct PluginNewArgs {
    /// Crate name: letters, digits, `-` and `_`, starting with a letter.
    pub name: String,
    #[arg(long, value_enum)]
    pub kind: PluginKindArg,
    /// Directory to create (absent or empty) [default: ./NAME].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// A local sluice-sdk checkout (the `guest-sdk` folder) to depend on by
    /// path [default: `sluice-sdk = "0.1"` from the registry].
    #[arg(long, env = "SLUICE_SDK_PATH")]
    pub sdk_path: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PluginTestArgs {
    /// The plugin's `.wasm` component (transform or compaction; detected).
    pub file: PathBuf,
    /// Records as JSON: an array, `{"records": [...]}` or one object per
    /// line, like `produce --json` (`-` reads stdin).
    #[arg(short, long, required_unless_present = "value")]
    pub input: Option<PathBuf>,
    /// One record with this value (repeatable), instead of --input.
    #[arg(long, conflicts_with = "input")]
    pub value: Vec<String>,
    /// `KEY=VALUE` plugin configuration (repeatable).
    #[arg(long, value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,
    /// Time one plugin call may take, as on the server [default: 5s].
    #[arg(long, value_parser = parse_duration)]
    pub plugin_call_timeout: Option<Duration>,
    /// Linear memory the plugin may use, as on the server [default: 64MiB].
    #[arg(long)]
    pub plugin_memory_bytes: Option<bytesize::ByteSize>,
}

#[derive(Args, Debug)]
pub struct PipelineArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub cmd: PipelineCmd,
}

#[derive(Subcommand, Debug)]
pub enum PipelineCmd {
    /// Create (and start) a pipeline: FROM stream → plugin → TO stream.
    Create {
        name: String,
        /// Input stream.
        #[arg(long)]
        from: String,
        /// Output stream.
        #[arg(long)]
        to: String,
        #[arg(long)]
        plugin: String,
        /// Pin a plugin version [default: the latest].
        #[arg(long)]
        plugin_version: Option<u32>,
        /// `KEY=VALUE` plugin configuration (repeatable).
        #[arg(long, value_parser = parse_key_value)]
        config: Vec<(String, String)>,
        /// Input records per batch.
        #[arg(long)]
        batch_records: Option<u32>,
        /// Create paused.
        #[arg(long)]
        paused: bool,
    },
    /// List pipelines with their state and lag.
    List,
    /// A pipeline's state, error and per-partition position and lag.
    Status {
        name: String,
    },
    Pause {
        name: String,
    },
    Resume {
        name: String,
    },
    Delete {
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct CompactArgs {
    #[command(flatten)]
    pub conn: Conn,
    pub stream: String,
    /// Show the stream's compaction status instead of requesting a run.
    #[arg(long)]
    pub status: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// A stream: show its per-partition WAL, tiering and upload lag.
    pub stream: Option<String>,
}

impl Command {
    pub fn conn(&self) -> &Conn {
        match self {
            Command::Stream(a) => &a.conn,
            Command::Produce(a) => &a.conn,
            Command::Consume(a) => &a.conn,
            Command::Plugin(a) => &a.conn,
            Command::Pipeline(a) => &a.conn,
            Command::Compact(a) => &a.conn,
            Command::Status(a) => &a.conn,
            Command::Group(a) => &a.conn,
            Command::View(a) => &a.conn,
        }
    }
}

/// `KEY=VALUE`.
pub(super) fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// `250ms`, `30s`, `2m`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 500ms, 30s or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (ms, s, m)")),
    };
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("`{s}` must be more than 0 and at most a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_pairs() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("abc").is_err());
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_key_value("=x").is_err());
        assert!(parse_key_value("x").is_err());
    }
}
