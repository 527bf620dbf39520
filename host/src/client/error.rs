//! The client's one error type, its exit codes and the hints printed with it.
//!
//! Exit codes: `2` when the command or its input is wrong and nothing was
//! sent (the same code clap uses for a usage error); `1` when a request
//! failed: the server is unreachable or timed out, or it answered with an
//! error. An API error keeps the server's stable `code` so scripts and people
//! see the same thing the HTTP API documents. The local plugin commands
//! follow the same split: a file that is not a plugin, bad records, a bad
//! name or a used directory is `2`; a plugin that fails on the records or
//! refuses its config under `plugin test` is `1`, with the plugin's error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::node::offline::PluginError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The command line or its input is wrong; nothing was sent.
    #[error("{0}")]
    Input(String),
    /// A local file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Standard input or output failed.
    #[error("{what}: {source}")]
    Io { what: &'static str, source: std::io::Error },
    /// No TCP connection to the server.
    #[error("cannot reach the sluice server at {url}: {reason} (is it running? set --server or SLUICE_SERVER)")]
    Unreachable { url: String, reason: String },
    /// The server took longer than the request timeout.
    #[error("the sluice server at {url} did not answer within {}s (a busy server, or set --timeout)", after.as_secs_f64())]
    Timeout { url: String, after: Duration },
    /// The server answered with an error body `{"error": {"code", "message"}}`.
    #[error("{message} ({code}, HTTP {status})")]
    Api { status: u16, code: String, message: String },
    /// The server answered something that is not the API's JSON.
    #[error("unexpected answer from {url} (HTTP {status}): {detail}")]
    BadResponse { url: String, status: u16, detail: String },
    /// Any other transport failure (connection reset mid-request, ...).
    #[error("request to {url} failed: {reason}")]
    Transport { url: String, reason: String },
    /// Part of a multi-request command succeeded before another part failed.
    #[error("{source} ({done})")]
    Partial { done: String, source: Box<ClientError> },
    /// A plugin run locally (`plugin test`) failed or was refused: the
    /// runtime's error, naming the plugin.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// A local file or directory could not be written (`plugin new`).
    #[error("cannot write `{}`: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

impl ClientError {
    pub fn input(msg: impl Into<String>) -> ClientError {
        ClientError::Input(msg.into())
    }

    /// `2` for bad input (nothing sent), `1` for a failed request.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ClientError::Input(_) | ClientError::Read { .. } => ExitCode::from(2),
            ClientError::Partial { source, .. } => source.exit_code(),
            // A file that is not a plugin is bad input; a plugin failing on
            // the records (or refusing its config) is a failed run.
            ClientError::Plugin(
                PluginError::Invalid { .. } | PluginError::WrongWorld { .. } | PluginError::IncompatibleVersion { .. },
            ) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }

    /// What to do about it, when there is a useful answer.
    pub fn hint(&self) -> Option<&'static str> {
        let code = match self {
            ClientError::Api { code, .. } => code.as_str(),
            ClientError::Partial { source, .. } => return source.hint(),
            ClientError::Plugin(e) => return plugin_hint(e),
            _ => return None,
        };
        Some(match code {
            "unauthorized" => "set SLUICE_AUTH_TOKEN to the server's token",
            "stream_not_found" => "`sluice stream list` shows the streams",
            "partition_not_found" => "`sluice stream describe STREAM` shows its partitions",
            "plugin_not_found" => "`sluice plugin list` shows the plugins",
            "pipeline_not_found" => "`sluice pipeline list` shows the pipelines",
            "offset_out_of_range" => "`sluice stream describe STREAM` shows each partition's start and end offsets",
            "payload_too_large" => "send smaller batches (--batch-size) or raise the server's max_request_bytes",
            "not_compacted" => "create the stream with --cleanup compact and a --compaction-plugin",
            "plugin_in_use" | "stream_in_use" => "delete the pipelines or streams that use it first",
            "shutting_down" | "storage_failed" | "object_store_unavailable" => {
                "the server cannot serve this now; retry later and check its log"
            }
            "wal_fenced" => "another node took over this node's object-store WAL; restart it or stop it",
            "disk_full" => "the server's data dir is out of disk space: free some, then restart the server",
            "invalid_plugin" | "wrong_plugin_world" | "incompatible_plugin" => {
                "build the plugin with guest-sdk for wasm32-wasip2 (see guest-sdk/README.md)"
            }
            _ => return None,
        })
    }
}

/// What to do about a plugin that failed locally.
fn plugin_hint(e: &PluginError) -> Option<&'static str> {
    Some(match e {
        PluginError::Invalid { .. } | PluginError::WrongWorld { .. } | PluginError::IncompatibleVersion { .. } => {
            "build the plugin with sluice-sdk: cargo build --release --target wasm32-wasip2 (see docs/PLUGINS.md)"
        }
        PluginError::InitFailed { .. } => "check the --config KEY=VALUE pairs the plugin expects",
        PluginError::Timeout { .. } => "--plugin-call-timeout sets the limit (plugin_call_timeout on the server)",
        PluginError::MemoryLimit { .. } => "--plugin-memory-bytes sets the limit (plugin_memory_bytes on the server)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_hints() {
        assert_eq!(ClientError::input("x").exit_code(), ExitCode::from(2));
        let api = ClientError::Api {
            status: 401,
            code: "unauthorized".into(),
            message: "wrong bearer token".into(),
        };
        assert_eq!(api.exit_code(), ExitCode::from(1));
        assert_eq!(api.to_string(), "wrong bearer token (unauthorized, HTTP 401)");
        assert!(api.hint().is_some_and(|h| h.contains("SLUICE_AUTH_TOKEN")));
        let partial = ClientError::Partial {
            done: "2 records were produced before the failure".into(),
            source: Box::new(api),
        };
        assert_eq!(partial.exit_code(), ExitCode::from(1));
        assert!(partial.hint().is_some());
    }
}
