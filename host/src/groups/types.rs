//! The coordinator's plain data: limits, requests, answers and the views
//! `describe` and `list` return.
//!
//! Nothing here has behaviour beyond defaults and names; the invariants live
//! in `group.rs` (one group's state machine) and `mod.rs` (the map of
//! groups). Byte strings are `Bytes`, so answering many members shares
//! rather than copies the metadata.

use std::time::Duration;

use bytes::Bytes;

/// Bounds on what clients may make the coordinator hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Groups held at once; a join that would create one more fails
    /// [`TooManyGroups`](super::GroupError::TooManyGroups).
    pub max_groups: usize,
    /// Members (including those that still have to come back with their
    /// assigned id) per group.
    pub max_members: usize,
    /// Smallest session timeout a member may ask for
    /// (Kafka's `group.min.session.timeout.ms`).
    pub min_session: Duration,
    /// Largest session timeout (`group.max.session.timeout.ms`).
    pub max_session: Duration,
    /// How long a rebalance of an empty group waits for more members
    /// (`group.initial.rebalance.delay.ms`), capped by the rebalance
    /// timeout; extended while new members keep arriving. Zero turns the
    /// delay off.
    pub initial_rebalance_delay: Duration,
    /// Bytes of one member's protocols (names and metadata together), and
    /// of one member's assignment.
    pub max_metadata_bytes: usize,
    /// Bytes of a group id, member id, instance id, client id, client host,
    /// protocol type or protocol name. Generated member ids always fit.
    pub max_id_bytes: usize,
    /// Consumer-protocol groups: a member that does not heartbeat for this
    /// long leaves (`group.consumer.session.timeout.ms`).
    pub consumer_session: Duration,
    /// Consumer-protocol groups: how often members heartbeat
    /// (`group.consumer.heartbeat.interval.ms`).
    pub consumer_heartbeat: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_groups: 10_000,
            max_members: 1_000,
            min_session: Duration::from_secs(6),
            max_session: Duration::from_secs(30 * 60),
            initial_rebalance_delay: Duration::from_secs(3),
            max_metadata_bytes: 1 << 20,
            max_id_bytes: 255,
            consumer_session: Duration::from_secs(45),
            consumer_heartbeat: Duration::from_secs(5),
        }
    }
}

/// A JoinGroup request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    /// Set for a static member (KIP-345 style membership).
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    /// For example `consumer`; every member of a group must use the same.
    pub protocol_type: String,
    /// `(assignor name, metadata)`, most preferred first.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member first gets
    /// [`MemberIdRequired`](super::GroupError::MemberIdRequired).
    pub require_known_member_id: bool,
}

/// The answer to a join: the generation the member is part of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub generation_id: i32,
    pub protocol_type: String,
    pub protocol_name: String,
    pub leader: String,
    pub member_id: String,
    /// Every member with its metadata for the chosen protocol, in join
    /// order; only in the leader's answer (empty for followers).
    pub members: Vec<JoinMember>,
}

/// One member as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// A SyncGroup request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// SyncGroup v5+: checked against the group's when present.
    pub protocol_type: Option<String>,
    /// SyncGroup v5+: checked against the group's when present.
    pub protocol_name: Option<String>,
    /// `(member id, assignment)`; only the leader sends these.
    pub assignments: Vec<(String, Bytes)>,
}

/// The answer to a sync: this member's assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub protocol_type: String,
    pub protocol_name: String,
    pub assignment: Bytes,
}

/// The states of Kafka's classic group protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members (the group may still have pending ones).
    Empty,
    /// Waiting for the members to (re)join.
    PreparingRebalance,
    /// A generation is formed; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// The group does not exist (for answers about unknown groups).
    Dead,
}

impl GroupState {
    /// The state's name as Kafka reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

impl From<GroupState> for String {
    fn from(state: GroupState) -> String {
        state.as_str().to_string()
    }
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    /// The members' protocol type; kept once set, also while Empty.
    pub protocol_type: String,
    /// The chosen protocol; empty unless Stable (as Kafka reports it).
    pub protocol_name: String,
    /// In join order.
    pub members: Vec<MemberDescription>,
}

/// One member in a [`GroupDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// The metadata for the chosen protocol; empty unless Stable.
    pub metadata: Bytes,
    /// The member's assignment; empty unless Stable.
    pub assignment: Bytes,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// As ListGroups names it (`Stable`, `Reconciling`, ...).
    pub state: String,
    /// `classic` or `consumer` (the group protocol, ListGroups v5).
    pub group_type: &'static str,
}
