//! The errors of the consumer-group coordinator.
//!
//! Each variant is one answer a Kafka face translates into one Kafka error
//! code (`MEMBER_ID_REQUIRED`, `UNKNOWN_MEMBER_ID`, ...). Only
//! `MemberIdRequired` (the id the client must rejoin with), `InvalidRequest`
//! and `InvalidRegularExpression` (what is wrong) carry data. Errors are
//! cheap to clone so one can be sent to every waiting request of a group.

/// Why a group request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// A new member must rejoin with this id (JoinGroup v4+).
    #[error("a new member must rejoin with the member id {member_id} it was given")]
    MemberIdRequired { member_id: String },
    /// The member id is not (or no longer) a member of the group.
    #[error("unknown member id")]
    UnknownMemberId,
    /// The generation id is not the group's current one.
    #[error("the generation id is not the group's current generation")]
    IllegalGeneration,
    /// The group is rebalancing: the member must rejoin.
    #[error("the group is rebalancing; the member must rejoin")]
    RebalanceInProgress,
    /// The protocol type or the protocols do not match the group's.
    #[error("the protocol type or protocols do not match the rest of the group")]
    InconsistentGroupProtocol,
    /// The session timeout is outside the coordinator's allowed range.
    #[error("the session timeout is outside the coordinator's allowed range")]
    InvalidSessionTimeout,
    /// The group already has its maximum number of members.
    #[error("the group already has its maximum number of members")]
    GroupMaxSizeReached,
    /// No group with this id exists.
    #[error("no such group")]
    GroupIdNotFound,
    /// Only an empty group can be deleted.
    #[error("the group still has members")]
    NonEmptyGroup,
    /// A member of the group subscribes to the topic: its committed offsets
    /// stay (OffsetDelete).
    #[error("a member of the group subscribes to the topic")]
    GroupSubscribedToTopic,
    /// The static instance id now belongs to another member id.
    #[error("the group instance id is now held by another member id")]
    FencedInstanceId,
    /// The group id is empty or longer than the limit.
    #[error("the group id is empty or too long")]
    InvalidGroupId,
    /// A join would create a group beyond the coordinator's maximum.
    #[error("the coordinator already holds its maximum number of groups")]
    TooManyGroups,
    /// A member id, instance id, client id, client host, protocol type or
    /// name, the protocol metadata or an assignment is over its limit.
    #[error("an id, protocol name, protocol metadata or assignment is over its size limit")]
    TooLarge,
    /// The coordinator is shutting down (or the request was abandoned).
    #[error("the group coordinator is not available")]
    CoordinatorNotAvailable,
    /// Another node coordinates this group (in a cluster: it leads the
    /// group's offsets partition); the client asks FindCoordinator again.
    #[error("this node does not coordinate the group; node {node} does")]
    NotCoordinator { node: u32 },
    /// Consumer protocol: the member's epoch is ahead of (or, in a
    /// heartbeat, not a recent one of) the coordinator's; it must give up
    /// its partitions and join again.
    #[error("the member epoch is fenced; the member must join again")]
    FencedMemberEpoch,
    /// Consumer protocol: an offset commit or fetch names an older epoch
    /// than the member's; it retries with the one its next heartbeat gets.
    #[error("the member epoch is stale")]
    StaleMemberEpoch,
    /// Consumer protocol: another member still holds the static instance id.
    #[error("the instance id is still held by another member of the group")]
    UnreleasedInstanceId,
    /// Consumer protocol: the server assignor asked for is not offered.
    #[error("the server assignor is not supported (uniform and range are)")]
    UnsupportedAssignor,
    /// Consumer protocol: the subscription's regular expression is invalid.
    #[error("invalid regular expression: {0}")]
    InvalidRegularExpression(String),
    /// A request missing what it must carry.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A member of a consumer-protocol group committed with an
    /// OffsetCommit version older than 9 (which has no member epoch).
    #[error("members of a consumer-protocol group must commit with OffsetCommit v9 or later")]
    UnsupportedVersion,
}
