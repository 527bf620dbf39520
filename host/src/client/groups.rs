//! `sluice group list|describe|reset|delete|delete-offsets`: consumer groups over the
//! HTTP API (`/groups`), as tables or the server's JSON.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::args::{Conn, Output};
use super::commands::{arr, show};
use super::error::ClientError;
use super::http::{Client, seg};
use super::output::{Table, cell};

#[derive(Args, Debug)]
pub struct GroupArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub cmd: GroupCmd,
}

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// List groups (with members, or with committed offsets only).
    List,
    /// Members, assignments, committed offsets and lag of a group.
    Describe { group: String },
    /// Move a group's offsets on a stream (only while it has no members):
    /// give exactly one of --to-earliest, --to-latest, --to-offset, --to-timestamp.
    Reset {
        group: String,
        stream: String,
        #[arg(long)]
        to_earliest: bool,
        #[arg(long)]
        to_latest: bool,
        #[arg(long)]
        to_offset: Option<u64>,
        /// Milliseconds since the epoch: the first record at or after it.
        #[arg(long)]
        to_timestamp: Option<u64>,
        /// Only these partitions (repeatable); all when absent.
        #[arg(long = "partition")]
        partitions: Vec<u32>,
    },
    /// Delete a group without members, and its committed offsets.
    Delete { group: String },
    /// Delete a group's committed offsets on a stream (refused while a
    /// member consumes it).
    DeleteOffsets {
        group: String,
        stream: String,
        /// Only this partition; all when absent.
        #[arg(long)]
        partition: Option<u32>,
    },
}

fn offsets_table(offsets: &Value) -> String {
    let mut t = Table::new(&["STREAM", "PARTITION", "OFFSET", "END", "LAG"]);
    for o in arr(offsets) {
        t.row(vec![
            cell(&o["stream"]),
            cell(&o["partition"]),
            cell(&o["offset"]),
            cell(&o["end_offset"]),
            cell(&o["lag"]),
        ]);
    }
    t.render()
}

pub async fn group(c: &Client, out: Output, cmd: GroupCmd) -> Result<(), ClientError> {
    match cmd {
        GroupCmd::List => {
            let v = c.get_all("/groups", "groups").await?;
            show(out, &v, || {
                let mut t = Table::new(&["GROUP", "STATE", "PROTOCOL TYPE", "GROUP TYPE"]);
                for g in arr(&v["groups"]) {
                    t.row(vec![
                        cell(&g["group"]),
                        cell(&g["state"]),
                        cell(&g["protocol_type"]),
                        cell(&g["group_type"]),
                    ]);
                }
                t.render()
            })
        }
        GroupCmd::Describe { group } => {
            let v = c.get(&format!("/groups/{}", seg(&group))).await?;
            show(out, &v, || {
                let mut text = format!(
                    "group `{}` ({}): {}\n",
                    group,
                    cell(&v["group_type"]),
                    cell(&v["state"])
                );
                let mut t = Table::new(&["MEMBER", "CLIENT", "HOST", "ASSIGNMENT"]);
                for m in arr(&v["members"]) {
                    let assignment: Vec<String> = arr(&m["assignment"])
                        .iter()
                        .map(|a| format!("{}{}", cell(&a["stream"]), a["partitions"]))
                        .collect();
                    t.row(vec![
                        cell(&m["member_id"]),
                        cell(&m["client_id"]),
                        cell(&m["client_host"]),
                        assignment.join(" "),
                    ]);
                }
                text.push_str(&t.render());
                text.push_str(&offsets_table(&v["offsets"]));
                text
            })
        }
        GroupCmd::Reset {
            group,
            stream,
            to_earliest,
            to_latest,
            to_offset,
            to_timestamp,
            partitions,
        } => {
            let mut body = json!({ "stream": stream });
            match (to_earliest, to_latest, to_offset, to_timestamp) {
                (true, false, None, None) => body["to"] = json!("earliest"),
                (false, true, None, None) => body["to"] = json!("latest"),
                (false, false, Some(o), None) => body["offset"] = json!(o),
                (false, false, None, Some(t)) => body["timestamp"] = json!(t),
                _ => {
                    return Err(ClientError::Input(
                        "give exactly one of --to-earliest, --to-latest, --to-offset, --to-timestamp".into(),
                    ));
                }
            }
            if !partitions.is_empty() {
                body["partitions"] = json!(partitions);
            }
            let v = c.post(&format!("/groups/{}/reset", seg(&group)), &body).await?;
            show(out, &v, || offsets_table(&v["offsets"]))
        }
        GroupCmd::DeleteOffsets {
            group,
            stream,
            partition,
        } => {
            let mut path = format!("/groups/{}/offsets?stream={}", seg(&group), seg(&stream));
            if let Some(p) = partition {
                path.push_str(&format!("&partition={p}"));
            }
            let v = c.delete(&path).await?;
            show(out, &v, || offsets_table(&v["offsets"]))
        }
        GroupCmd::Delete { group } => {
            let v = c.delete(&format!("/groups/{}", seg(&group))).await?;
            show(out, &v, || format!("group `{group}` deleted\n"))
        }
    }
}
