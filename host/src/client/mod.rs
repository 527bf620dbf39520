//! The `sluice` command-line client: subcommands that talk to a running
//! server over its HTTP API (`stream`, `produce`, `consume`, `plugin`,
//! `pipeline`, `compact`, `status`).
//!
//! Owns the flags ([`args`]), the HTTP client with its timeouts and token
//! ([`http`]), the error type and exit codes ([`error`]: 2 = bad input,
//! nothing sent; 1 = a request failed or the server is unreachable), and
//! the rendering (tables by default, `--output json` for scripts). It uses
//! only the public HTTP API, never the library's internals; the two local
//! plugin-author commands are the exception and need no server: `plugin
//! new` ([`scaffold`]) and `plugin test` ([`plugin_test`], which runs the
//! library's plugin runtime).

pub mod args;
pub mod commands;
pub mod error;
pub mod groups;
pub mod http;
pub mod output;
pub mod plugin_test;
pub mod records;
pub mod scaffold;
pub mod streams;
pub mod tls;
pub mod views;

use std::process::ExitCode;

pub use args::Command;
pub use error::ClientError;
pub use http::Client;

/// Token for the server, from the same variable `sluice serve` reads.
pub const TOKEN_ENV: &str = "SLUICE_AUTH_TOKEN";

/// Runs one client subcommand; prints errors to stderr as `error: ...`
/// (with a `hint: ...` when there is one) and returns the exit code.
pub async fn run(cmd: Command) -> ExitCode {
    match execute(cmd).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(h) = e.hint() {
                eprintln!("hint: {h}");
            }
            e.exit_code()
        }
    }
}

async fn execute(cmd: Command) -> Result<(), ClientError> {
    let conn = cmd.conn().clone();
    // Local commands: no server, so no HTTP client (nor its settings) needed.
    let cmd = match cmd {
        Command::Plugin(args::PluginArgs {
            cmd: args::PluginCmd::New(a),
            ..
        }) => return scaffold::new(conn.output, a),
        Command::Plugin(args::PluginArgs {
            cmd: args::PluginCmd::Test(a),
            ..
        }) => return plugin_test::run(conn.output, a).await,
        other => other,
    };
    let token = std::env::var(TOKEN_ENV).ok();
    let tls = tls::TlsFiles {
        ca: conn.ca.as_deref(),
        cert: conn.client_cert.as_deref(),
        key: conn.client_key.as_deref(),
    };
    let c = Client::new(&conn.server, token, conn.timeout, tls)?;
    let out = conn.output;
    match cmd {
        Command::Stream(a) => streams::stream(&c, out, a.cmd).await,
        Command::Produce(a) => records::produce(&c, out, a).await,
        Command::Consume(a) => records::consume(&c, out, a).await,
        Command::Plugin(a) => commands::plugin(&c, out, a.cmd).await,
        Command::Pipeline(a) => commands::pipeline(&c, out, a.cmd).await,
        Command::Compact(a) => commands::compact(&c, out, a).await,
        Command::Status(a) => commands::status(&c, out, a).await,
        Command::Group(a) => groups::group(&c, out, a.cmd).await,
        Command::View(a) => views::view(&c, out, a.cmd).await,
    }
}
