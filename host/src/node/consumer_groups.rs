//! Consumer-protocol groups (ConsumerGroupHeartbeat) on the facade: the
//! coordinator's heartbeat, description and the member checks of offset
//! fetches, each refused with `NotCoordinator` where another node
//! coordinates the group.
//!
//! Invariant: the topics a group sees are the node's streams and views,
//! read through the [`Topics`] the face passes (it names topics by id).

use super::Host;
use crate::groups::{ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatAnswer, GroupError, Topics};

impl Host {
    /// One heartbeat of a consumer-protocol member.
    pub fn consumer_group_heartbeat(
        &self,
        req: ConsumerHeartbeat,
        topics: &dyn Topics,
    ) -> Result<ConsumerHeartbeatAnswer, GroupError> {
        self.check_coordinator(&req.group_id)?;
        self.inner.groups.consumer_heartbeat(req, topics)
    }

    /// The consumer-protocol group `group`: `Ok(None)` when there is no such
    /// group (or it is a classic one).
    pub fn describe_consumer_group(&self, group: &str) -> Result<Option<ConsumerGroupDescription>, GroupError> {
        self.check_coordinator(group)?;
        Ok(self.inner.groups.describe_consumer(group))
    }

    /// OffsetFetch v9+: a member of a consumer-protocol group must name its
    /// current epoch.
    pub fn check_group_offset_fetch(&self, group: &str, member: Option<&str>, epoch: i32) -> Result<(), GroupError> {
        self.check_coordinator(group)?;
        self.inner.groups.check_offset_fetch(group, member, epoch)
    }
}
