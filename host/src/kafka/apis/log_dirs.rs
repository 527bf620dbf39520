//! DescribeLogDirs (v1–v4): a node has one log directory, its data
//! directory, holding every partition it stores. The answer lists the
//! partitions asked for (all, when the request names no topics) with their
//! stored bytes (`Host::partition_bytes`) and, from v4, the volume's total
//! and usable bytes (-1 when unknown). Topics and partitions the node does
//! not hold are left out, as Kafka brokers do; views store nothing and are
//! left out too.

use std::collections::BTreeMap;

use kafka_protocol::messages::DescribeLogDirsRequest;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResponse, DescribeLogDirsResult, DescribeLogDirsTopic,
};

use super::{str_bytes, topic_name};
use crate::kafka::Ctx;

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn describe(ctx: &Ctx, r: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let host = &ctx.host;
    // Topic -> the partitions asked for (`None`: all of them).
    let mut wanted: BTreeMap<String, Option<Vec<i32>>> = BTreeMap::new();
    match r.topics {
        None => {
            for s in host.list_streams() {
                wanted.insert(s.name, None);
            }
        }
        Some(topics) => {
            for t in topics {
                let entry = wanted.entry(t.topic.0.to_string()).or_insert_with(|| Some(Vec::new()));
                if let Some(parts) = entry {
                    parts.extend(t.partitions);
                }
            }
        }
    }
    let mut result = DescribeLogDirsResult::default();
    for (name, parts) in wanted {
        let Ok(sizes) = host.partition_bytes(&name) else {
            continue;
        };
        let partitions: Vec<DescribeLogDirsPartition> = sizes
            .into_iter()
            .filter(|p| {
                parts
                    .as_ref()
                    .is_none_or(|ps| ps.iter().any(|i| u32::try_from(*i) == Ok(p.partition)))
            })
            .map(|p| {
                let mut d = DescribeLogDirsPartition::default();
                d.partition_index = i32::try_from(p.partition).unwrap_or(i32::MAX);
                d.partition_size = i64_of(p.bytes);
                d.offset_lag = i64_of(p.unreplicated_records);
                d
            })
            .collect();
        if partitions.is_empty() {
            continue;
        }
        let mut topic = DescribeLogDirsTopic::default();
        topic.name = topic_name(&name);
        topic.partitions = partitions;
        result.topics.push(topic);
    }
    let (dir, space) = host.data_dir_space();
    result.log_dir = str_bytes(dir.display().to_string());
    result.total_bytes = space.map_or(-1, |s| i64_of(s.total_bytes));
    result.usable_bytes = space.map_or(-1, |s| i64_of(s.usable_bytes));
    let mut out = DescribeLogDirsResponse::default();
    out.results = vec![result];
    out
}
