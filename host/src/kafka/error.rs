//! The one place where errors become Kafka error codes: the node's
//! [`Error`] (by its stable code, then its kind) and the produce path's
//! [`BatchError`]. Handlers put what this returns in their answers.

use kafka_protocol::ResponseError as K;

use super::batch::BatchError;
use crate::error::{Error, ErrorKind};
use crate::node::{CommitRefused, GroupError, GroupOpError};

/// The Kafka error code for a node error.
pub(super) fn code_of(e: &Error) -> i16 {
    let k = match e.code() {
        "stream_not_found" | "partition_not_found" => K::UnknownTopicOrPartition,
        "offset_out_of_range" | "trimmed" => K::OffsetOutOfRange,
        "not_leader" => K::NotLeaderOrFollower,
        "not_coordinator" => K::NotCoordinator,
        "coordinator_unavailable" => K::CoordinatorNotAvailable,
        "stream_exists" | "view_exists" => K::TopicAlreadyExists,
        "view_not_found" => K::UnknownTopicOrPartition,
        // Produce to, or delete as a stream, a view: the message says why.
        "view_read_only" => K::InvalidTopicException,
        "invalid_name" => K::InvalidTopicException,
        "not_enough_replicas" => K::NotEnoughReplicas,
        "replication_timeout" => K::RequestTimedOut,
        "shutting_down" | "replica_unavailable" => K::LeaderNotAvailable,
        "storage_failed" | "wal_fenced" | "object_store_unavailable" | "data_corrupt" | "io_error" | "disk_full" => {
            K::KafkaStorageError
        }
        "invalid_config" => K::InvalidConfig,
        "key_required" => K::InvalidRecord,
        "stream_in_use" => K::PolicyViolation,
        "out_of_order_sequence" => K::OutOfOrderSequenceNumber,
        "invalid_producer_epoch" => K::InvalidProducerEpoch,
        "unauthorized" => K::SaslAuthenticationFailed,
        _ => match e.kind() {
            ErrorKind::Invalid | ErrorKind::UnsupportedType => K::InvalidRequest,
            ErrorKind::Unauthorized => K::SaslAuthenticationFailed,
            ErrorKind::Forbidden => K::ClusterAuthorizationFailed,
            ErrorKind::NotFound => K::UnknownTopicOrPartition,
            ErrorKind::NotAllowed | ErrorKind::Conflict => K::PolicyViolation,
            ErrorKind::TooLarge => K::MessageTooLarge,
            ErrorKind::PluginFailed => K::InvalidRecord,
            ErrorKind::Unavailable => K::LeaderNotAvailable,
            ErrorKind::Misdirected => K::NotLeaderOrFollower,
            ErrorKind::Timeout => K::RequestTimedOut,
            ErrorKind::Data | ErrorKind::StorageFull => K::KafkaStorageError,
            ErrorKind::Internal => K::UnknownServerError,
        },
    };
    k.code()
}

/// The Kafka error code for an election that failed (ElectLeaders): the
/// preferred replica out of sync or not answering, or no replica to take
/// over; anything else as [`code_of`].
pub(super) fn election_code(e: &Error) -> i16 {
    match e.code() {
        "not_in_sync" | "replica_unavailable" => K::PreferredLeaderNotAvailable.code(),
        "no_eligible_leader" => K::EligibleLeadersNotAvailable.code(),
        _ => code_of(e),
    }
}

/// The Kafka error code for a refused record set.
pub(super) fn batch_code(e: &BatchError) -> i16 {
    match e {
        BatchError::Corrupt(_) => K::CorruptMessage,
        BatchError::TooLarge(_) => K::MessageTooLarge,
        BatchError::Unsupported(_) => K::InvalidRecord,
    }
    .code()
}

/// The Kafka error code for a group request the coordinator refused.
pub(super) fn group_code(e: &GroupError) -> i16 {
    match e {
        GroupError::MemberIdRequired { .. } => K::MemberIdRequired,
        GroupError::UnknownMemberId => K::UnknownMemberId,
        GroupError::IllegalGeneration => K::IllegalGeneration,
        GroupError::RebalanceInProgress => K::RebalanceInProgress,
        GroupError::InconsistentGroupProtocol => K::InconsistentGroupProtocol,
        GroupError::InvalidSessionTimeout => K::InvalidSessionTimeout,
        GroupError::GroupMaxSizeReached => K::GroupMaxSizeReached,
        GroupError::GroupIdNotFound => K::GroupIdNotFound,
        GroupError::NonEmptyGroup => K::NonEmptyGroup,
        GroupError::GroupSubscribedToTopic => K::GroupSubscribedToTopic,
        GroupError::FencedInstanceId => K::FencedInstanceId,
        GroupError::InvalidGroupId => K::InvalidGroupId,
        // No Kafka code says "too many groups on this node": a policy refusal.
        GroupError::TooManyGroups => K::PolicyViolation,
        GroupError::TooLarge => K::InvalidRequest,
        GroupError::CoordinatorNotAvailable => K::CoordinatorNotAvailable,
        GroupError::NotCoordinator { .. } => K::NotCoordinator,
        GroupError::FencedMemberEpoch => K::FencedMemberEpoch,
        GroupError::StaleMemberEpoch => K::StaleMemberEpoch,
        GroupError::UnreleasedInstanceId => K::UnreleasedInstanceId,
        GroupError::UnsupportedAssignor => K::UnsupportedAssignor,
        GroupError::InvalidRegularExpression(_) => K::InvalidRegularExpression,
        GroupError::InvalidRequest(_) => K::InvalidRequest,
        GroupError::UnsupportedVersion => K::UnsupportedVersion,
    }
    .code()
}

/// The Kafka error code for a group operation that also touches stored
/// offsets: the coordinator's refusal, or the node's error.
pub(super) fn group_op_code(e: &GroupOpError) -> i16 {
    match e {
        GroupOpError::Group(g) => group_code(g),
        GroupOpError::Node(n) => code_of(n),
    }
}

/// The Kafka error code for one partition's refused offset commit.
pub(super) fn commit_code(e: &CommitRefused) -> i16 {
    match e {
        CommitRefused::UnknownPartition { .. } => K::UnknownTopicOrPartition,
        CommitRefused::MetadataTooLarge { .. } => K::OffsetMetadataTooLarge,
    }
    .code()
}

/// Codes used directly by handlers, named once.
pub(super) mod codes {
    use kafka_protocol::ResponseError as K;

    pub fn offset_out_of_range() -> i16 {
        K::OffsetOutOfRange.code()
    }
    pub fn unknown_topic() -> i16 {
        K::UnknownTopicOrPartition.code()
    }
    pub fn unknown_server_error() -> i16 {
        K::UnknownServerError.code()
    }
    pub fn unsupported_version() -> i16 {
        K::UnsupportedVersion.code()
    }
    pub fn invalid_required_acks() -> i16 {
        K::InvalidRequiredAcks.code()
    }
    pub fn invalid_partitions() -> i16 {
        K::InvalidPartitions.code()
    }
    pub fn invalid_replica_assignment() -> i16 {
        K::InvalidReplicaAssignment.code()
    }
    pub fn invalid_replication_factor() -> i16 {
        K::InvalidReplicationFactor.code()
    }
    pub fn invalid_config() -> i16 {
        K::InvalidConfig.code()
    }
    pub fn invalid_request() -> i16 {
        K::InvalidRequest.code()
    }
    pub fn fetch_session_not_found() -> i16 {
        K::FetchSessionIdNotFound.code()
    }
    pub fn invalid_fetch_session_epoch() -> i16 {
        K::InvalidFetchSessionEpoch.code()
    }
    pub fn transactions_unsupported() -> i16 {
        K::TransactionalIdAuthorizationFailed.code()
    }
    pub fn sasl_failed() -> i16 {
        K::SaslAuthenticationFailed.code()
    }
    pub fn unsupported_sasl_mechanism() -> i16 {
        K::UnsupportedSaslMechanism.code()
    }
    pub fn illegal_sasl_state() -> i16 {
        K::IllegalSaslState.code()
    }
    pub fn coordinator_not_available() -> i16 {
        K::CoordinatorNotAvailable.code()
    }
    pub fn leader_not_available() -> i16 {
        K::LeaderNotAvailable.code()
    }
    pub fn invalid_group_id() -> i16 {
        K::InvalidGroupId.code()
    }
    /// A negative committed offset.
    pub fn invalid_commit_offset() -> i16 {
        K::InvalidRequest.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_errors_map_to_the_kafka_codes_clients_act_on() {
        let e = |kind, code| Error::new(kind, code, "x");
        assert_eq!(code_of(&e(ErrorKind::NotFound, "stream_not_found")), 3);
        assert_eq!(code_of(&e(ErrorKind::Invalid, "offset_out_of_range")), 1);
        assert_eq!(code_of(&e(ErrorKind::Misdirected, "not_leader")), 6);
        assert_eq!(code_of(&e(ErrorKind::TooLarge, "payload_too_large")), 10);
        assert_eq!(code_of(&e(ErrorKind::Conflict, "stream_exists")), 36);
        assert_eq!(code_of(&e(ErrorKind::Unavailable, "not_enough_replicas")), 19);
        assert_eq!(code_of(&e(ErrorKind::Invalid, "invalid_name")), 17);
        assert_eq!(code_of(&e(ErrorKind::Internal, "something_new")), -1);
        assert_eq!(code_of(&e(ErrorKind::StorageFull, "disk_full")), 56);
        assert_eq!(batch_code(&BatchError::Corrupt("x".into())), 2);
        assert_eq!(batch_code(&BatchError::TooLarge("x".into())), 10);
    }
}
