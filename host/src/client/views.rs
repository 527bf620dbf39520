//! `sluice view create|list|describe|delete`: views over the HTTP API
//! (`/views`), as tables or the server's JSON. A view is read like a stream
//! (`sluice consume VIEW`, any Kafka consumer).

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::args::{Conn, Output, parse_key_value};
use super::commands::{arr, show};
use super::error::ClientError;
use super::http::{Client, seg};
use super::output::{Table, cell};

#[derive(Args, Debug)]
pub struct ViewArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub cmd: ViewCmd,
}

#[derive(Subcommand, Debug)]
pub enum ViewCmd {
    /// Create a view: ON stream's records through a transform plugin at read time.
    Create {
        name: String,
        /// The input stream.
        #[arg(long)]
        on: String,
        #[arg(long)]
        plugin: String,
        /// Pin a plugin version [default: the latest at each read].
        #[arg(long)]
        plugin_version: Option<u32>,
        /// `KEY=VALUE` plugin configuration (repeatable).
        #[arg(long, value_parser = parse_key_value)]
        config: Vec<(String, String)>,
    },
    /// List views.
    List,
    /// A view's definition and the groups with offsets on it.
    Describe { name: String },
    /// Delete a view (--force: even with groups' offsets on it, which go too).
    Delete {
        name: String,
        #[arg(long)]
        force: bool,
    },
}

fn config_text(v: &Value) -> String {
    arr(v)
        .iter()
        .map(|kv| format!("{}={}", cell(&kv[0]), cell(&kv[1])))
        .collect::<Vec<_>>()
        .join(" ")
}

pub async fn view(c: &Client, out: Output, cmd: ViewCmd) -> Result<(), ClientError> {
    match cmd {
        ViewCmd::Create {
            name,
            on,
            plugin,
            plugin_version,
            config,
        } => {
            let config: Map<String, Value> = config.into_iter().map(|(k, v)| (k, json!(v))).collect();
            let mut body = json!({"name": name, "input": on, "plugin": plugin, "config": config});
            if let Some(v) = plugin_version {
                body["plugin_version"] = json!(v);
            }
            let v = c.post("/views", &body).await?;
            show(out, &v, || format!("view `{name}` created over `{on}`\n"))
        }
        ViewCmd::List => {
            let v = c.get_all("/views", "views").await?;
            show(out, &v, || {
                let mut t = Table::new(&["NAME", "INPUT", "PLUGIN", "PARTITIONS", "CONFIG"]);
                for w in arr(&v["views"]) {
                    t.row(vec![
                        cell(&w["name"]),
                        cell(&w["input"]),
                        cell(&w["plugin"]),
                        cell(&w["partitions"]),
                        config_text(&w["config"]),
                    ]);
                }
                t.render()
            })
        }
        ViewCmd::Describe { name } => {
            let v = c.get(&format!("/views/{}", seg(&name))).await?;
            show(out, &v, || {
                let version = v["plugin_version"].as_u64().map_or("latest".into(), |n| n.to_string());
                let groups: Vec<String> = arr(&v["groups"]).iter().map(cell).collect();
                format!(
                    "view `{name}` over `{}`: plugin {} ({version}), {} partitions\nconfig: {}\ngroups with offsets: {}\n",
                    cell(&v["input"]),
                    cell(&v["plugin"]),
                    cell(&v["partitions"]),
                    config_text(&v["config"]),
                    if groups.is_empty() {
                        "none".into()
                    } else {
                        groups.join(", ")
                    },
                )
            })
        }
        ViewCmd::Delete { name, force } => {
            let path = format!("/views/{}{}", seg(&name), if force { "?force=true" } else { "" });
            let v = c.delete(&path).await?;
            show(out, &v, || format!("view `{name}` deleted\n"))
        }
    }
}
