#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The `sluice` binary: parses flags into raw options, layers them over the
//! config file and defaults into validated [`Settings`], and calls the library.
//! The client subcommands (`stream`, `produce`, ...) go to
//! [`sluice_host::client`], which talks to a running server over HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_host::{Host, Settings};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "sluice", version, about = "Sluice: a WebAssembly-pluggable stream processor")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: the WAL, streams and the HTTP API.
    Serve(ServeArgs),
    #[command(flatten)]
    Client(sluice_host::client::Command),
}

/// Flags override environment variables, which override the config file,
/// which overrides the built-in defaults.
#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file (every field optional; see docs/OPERATIONS.md).
    #[arg(long, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: ./sluice-data]
    #[arg(long, env = "SLUICE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// HTTP listen address [default: 127.0.0.1:8080]
    #[arg(long, env = "SLUICE_LISTEN")]
    listen: Option<SocketAddr>,
    /// Kafka protocol listen address, or `off` [default: 127.0.0.1:9092]
    #[arg(long, env = "SLUICE_KAFKA_LISTEN", value_parser = parse_kafka_listen)]
    kafka_listen: Option<KafkaListen>,
    /// `host:port` Kafka clients are told to connect to [default: the
    /// address they reached this node at]
    #[arg(long, env = "SLUICE_KAFKA_ADVERTISED")]
    kafka_advertised: Option<String>,
    /// Bearer token required on every request but /health, /ready and
    /// /openapi.json (prefer --auth-token-file: arguments show in `ps`).
    #[arg(
        long,
        env = "SLUICE_AUTH_TOKEN",
        hide_env_values = true,
        conflicts_with = "auth_token_file"
    )]
    auth_token: Option<String>,
    /// A file holding the bearer token (its first line; surrounding
    /// whitespace is ignored).
    #[arg(long, env = "SLUICE_AUTH_TOKEN_FILE")]
    auth_token_file: Option<PathBuf>,
    /// Largest request body, e.g. "16MiB".
    #[arg(long, env = "SLUICE_MAX_REQUEST_BYTES")]
    max_request_bytes: Option<bytesize::ByteSize>,
    /// Object store for tiered data: s3://bucket/prefix, file:///path, memory://
    /// [default: a file store in <data-dir>/objects]
    #[arg(long, env = "SLUICE_OBJECT_STORE")]
    object_store: Option<String>,
    /// Where the WAL lives: `local` (segment files in the data dir) or
    /// `object` (in the object store: nothing local survives or is needed)
    /// [default: local]
    #[arg(long, env = "SLUICE_WAL", value_enum)]
    wal: Option<WalArg>,
    /// Largest segment object uploaded at once, e.g. "512MiB".
    #[arg(long, env = "SLUICE_UPLOAD_CHUNK_BYTES")]
    upload_chunk_bytes: Option<bytesize::ByteSize>,
    /// Log lines on stderr: `text` for people, `json` (one object per line)
    /// for log collectors. `RUST_LOG` filters either.
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// `--kafka-listen`: an address, or `off`.
#[derive(Clone, Copy)]
struct KafkaListen(Option<SocketAddr>);

fn parse_kafka_listen(text: &str) -> Result<KafkaListen, String> {
    sluice_host::config::parse_listen_or_off(text).map(KafkaListen)
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum WalArg {
    Local,
    Object,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

impl ServeArgs {
    fn into_settings(self) -> anyhow::Result<Settings> {
        let mut s = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file `{}`", path.display()))?;
                Settings::from_toml(&text)?
            }
            None => Settings::default(),
        };
        if let Some(v) = self.data_dir {
            s.data_dir = v;
        }
        if let Some(v) = self.listen {
            s.listen = v;
        }
        if let Some(KafkaListen(v)) = self.kafka_listen {
            s.kafka_listen = v;
        }
        if let Some(v) = self.kafka_advertised {
            s.kafka_advertised = Some(v);
        }
        if let Some(v) = self.auth_token {
            s.auth_token = Some(v);
        }
        if let Some(path) = &self.auth_token_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the auth token file `{}`", path.display()))?;
            let token = text.lines().next().unwrap_or("").trim().to_string();
            if token.is_empty() {
                anyhow::bail!("the auth token file `{}` is empty", path.display());
            }
            s.auth_token = Some(token);
        }
        if let Some(v) = self.max_request_bytes {
            s.max_request_bytes = v;
        }
        if let Some(v) = self.object_store {
            s.object_store = Some(v);
        }
        if let Some(v) = self.wal {
            s.wal = match v {
                WalArg::Local => sluice_host::config::WalKind::Local,
                WalArg::Object => sluice_host::config::WalKind::Object,
            };
        }
        if let Some(v) = self.upload_chunk_bytes {
            s.upload_chunk_bytes = v;
        }
        s.validate()?;
        Ok(s)
    }
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    // The server logs at `info`; a client only warns (its output is for people and scripts).
    let (default_level, format) = match &cli.command {
        Command::Serve(args) => ("info", args.log_format),
        Command::Client(_) => ("warn", LogFormat::Text),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        // One JSON object per line; the event's fields (`message` included) at the top level.
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime
            .block_on(serve(args.into_settings()?))
            .map(|()| ExitCode::SUCCESS),
        Command::Client(cmd) => Ok(runtime.block_on(sluice_host::client::run(cmd))),
    }
}

async fn serve(mut settings: Settings) -> anyhow::Result<()> {
    let limit = sluice_host::fdlimit::raise();
    sluice_host::fdlimit::fit_connection_caps(&mut settings, limit);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let kafka = match settings.kafka_listen {
        Some(a) => Some(sluice_host::kafka::bind(a).await?),
        None => None,
    };
    let kafka_beyond = settings.kafka_listen.is_some_and(|k| !k.ip().is_loopback());
    if settings.auth_token.is_none()
        && !settings.tls.certificates_required()
        && (!settings.listen.ip().is_loopback() || kafka_beyond)
    {
        tracing::warn!(
            listen = %settings.listen,
            kafka_listen = ?settings.kafka_listen,
            "listening beyond this machine WITHOUT an auth token: anyone who reaches the port can read, write and \
             delete everything; set --auth-token-file (see docs/SECURITY.md)"
        );
    }
    let host = Host::open(settings).await?;
    let tls = &host.settings().tls;
    let (scheme, kafka_tls) = match tls.enabled() {
        true => ("https", " over TLS"),
        false => ("http", ""),
    };
    let certs = match (&tls.client_ca, tls.certificates_required()) {
        (None, _) => "",
        (Some(_), true) => " (client certificates required)",
        (Some(_), false) => " (client certificates requested)",
    };
    tracing::info!(%addr, data_dir = %host.settings().data_dir.display(), "sluice listening on {scheme}://{addr}{certs}");
    let kafka = match kafka {
        Some(listener) => {
            let kafka_addr = listener.local_addr()?;
            tracing::info!(%kafka_addr, "sluice listening for Kafka clients on {kafka_addr}{kafka_tls}{certs}");
            Some(tokio::spawn(sluice_host::kafka::serve(host.clone(), listener)))
        }
        None => {
            tracing::info!("Kafka listener off");
            None
        }
    };
    sluice_host::http::serve(&host, listener, shutdown_signal()).await?;
    if let Some(k) = kafka {
        k.abort();
    }
    tracing::info!("sluice stopped cleanly");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the server");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested; draining requests and syncing the WAL");
}
