//! The `[groups]` section: limits and timings of consumer groups (Kafka's
//! group coordinator settings, with Kafka's defaults).

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupSettings {
    /// Groups this node coordinates; a join that would create one more is
    /// refused.
    pub max_groups: usize,
    /// Members of one group (`group.max.size`).
    pub max_members: usize,
    /// Shortest session timeout a member may ask for
    /// (`group.min.session.timeout.ms`).
    #[serde(with = "humantime_serde")]
    pub min_session_timeout: Duration,
    /// Longest session timeout (`group.max.session.timeout.ms`).
    #[serde(with = "humantime_serde")]
    pub max_session_timeout: Duration,
    /// How long a new group waits for more members before its first
    /// rebalance completes (`group.initial.rebalance.delay.ms`).
    #[serde(with = "humantime_serde")]
    pub initial_rebalance_delay: Duration,
    /// Consumer-protocol groups (ConsumerGroupHeartbeat): a member that
    /// does not heartbeat for this long leaves the group
    /// (`group.consumer.session.timeout.ms`).
    #[serde(with = "humantime_serde")]
    pub consumer_session_timeout: Duration,
    /// Consumer-protocol groups: how often members heartbeat
    /// (`group.consumer.heartbeat.interval.ms`); a member learns of a new
    /// assignment at its next heartbeat.
    #[serde(with = "humantime_serde")]
    pub consumer_heartbeat_interval: Duration,
    /// In a cluster: partitions of the replicated `__consumer_offsets`
    /// (`offsets.topic.num.partitions`); a group's coordinator is the
    /// leader of the partition its id hashes to. A single node uses one.
    /// Fixed once the stream exists.
    pub offsets_partitions: u32,
}

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings {
            max_groups: 10_000,
            max_members: 1_000,
            min_session_timeout: Duration::from_secs(6),
            max_session_timeout: Duration::from_secs(30 * 60),
            initial_rebalance_delay: Duration::from_secs(3),
            consumer_session_timeout: Duration::from_secs(45),
            consumer_heartbeat_interval: Duration::from_secs(5),
            offsets_partitions: 4,
        }
    }
}

impl GroupSettings {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.max_groups == 0 || self.max_members == 0 {
            return Err("groups.max_groups and groups.max_members must be positive".into());
        }
        if self.min_session_timeout > self.max_session_timeout {
            return Err("groups.min_session_timeout must not exceed groups.max_session_timeout".into());
        }
        if !(1..=256).contains(&self.offsets_partitions) {
            return Err("groups.offsets_partitions must be between 1 and 256".into());
        }
        if self.consumer_heartbeat_interval < Duration::from_millis(100)
            || self.consumer_heartbeat_interval >= self.consumer_session_timeout
        {
            return Err("groups.consumer_heartbeat_interval must be at least 100ms and below \
                 groups.consumer_session_timeout"
                .into());
        }
        if self.consumer_session_timeout > Duration::from_secs(30 * 60) {
            return Err("groups.consumer_session_timeout must be at most 30m".into());
        }
        if self.initial_rebalance_delay > Duration::from_secs(300) {
            return Err("groups.initial_rebalance_delay must be at most 5m".into());
        }
        Ok(())
    }
}
