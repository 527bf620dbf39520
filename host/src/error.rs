//! The public error: a coarse [`ErrorKind`] that tells a caller what to do,
//! a stable machine-readable `code`, and a human message. Subsystem errors
//! (`WalError`, `LogError`, ...) convert into it here, in one place; the HTTP
//! layer maps kinds to status codes in one place too (`http::error`).

use crate::cluster::ClusterError;
use crate::groups::GroupError;
use crate::log::LogError;
use crate::objstore::ObjStoreError;
use crate::pipeline::PipelineError;
use crate::plugin::{PluginError, RegistryError};
use crate::tier::TierError;
use crate::wal::WalError;

/// What the caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Fix the request.
    Invalid,
    /// Missing credentials or wrong token.
    Unauthorized,
    /// Refused whatever the credentials (a browser's cross-site request).
    Forbidden,
    /// The named thing does not exist.
    NotFound,
    /// The method is not supported on this resource.
    NotAllowed,
    /// The request conflicts with current state (e.g. already exists).
    Conflict,
    /// The request is larger than allowed.
    TooLarge,
    /// The request body is not of a type the endpoint takes.
    UnsupportedType,
    /// A plugin failed at run time (trap, timeout, memory limit, error, bad output).
    PluginFailed,
    /// Temporarily unable; retry later (shutting down, storage failed).
    Unavailable,
    /// Another node must answer this (it leads the partition).
    Misdirected,
    /// Waiting for other nodes took too long; the outcome is unknown to them.
    Timeout,
    /// The disk holding the data dir is full (or over quota).
    StorageFull,
    /// Stored data is damaged.
    Data,
    /// A bug or an unexpected environment failure.
    Internal,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    code: &'static str,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Error {
            kind,
            code,
            message: message.into(),
            source: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Invalid, "invalid_request", message)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// A stable, machine-readable code such as `stream_not_found`.
    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Adds where the error happened to its message.
    pub fn with_context(mut self, context: impl std::fmt::Display) -> Self {
        self.message = format!("{} ({context})", self.message);
        self
    }

    fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}

/// No space left on the device, or over a disk quota: the operator frees
/// space (and restarts the node, whose WAL fail-stops on any write error).
fn is_storage_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

impl From<WalError> for Error {
    fn from(e: WalError) -> Self {
        let (kind, code) = match &e {
            WalError::Closed => (ErrorKind::Unavailable, "shutting_down"),
            WalError::Poisoned(_) | WalError::Remote(_) => (ErrorKind::Unavailable, "storage_failed"),
            WalError::Fenced { .. } => (ErrorKind::Unavailable, "wal_fenced"),
            WalError::EntryTooLarge { .. } => (ErrorKind::TooLarge, "payload_too_large"),
            WalError::Corrupt { .. } => (ErrorKind::Data, "data_corrupt"),
            WalError::Trimmed { .. } => (ErrorKind::NotFound, "trimmed"),
            WalError::Io { source, .. } if is_storage_full(source) => (ErrorKind::StorageFull, "disk_full"),
            WalError::Io { .. } => (ErrorKind::Internal, "io_error"),
        };
        Error::new(kind, code, e.to_string()).with_source(e)
    }
}

impl From<ObjStoreError> for Error {
    fn from(e: ObjStoreError) -> Self {
        let (kind, code) = match &e {
            ObjStoreError::Config(_) => (ErrorKind::Invalid, "invalid_config"),
            ObjStoreError::Store { .. } | ObjStoreError::Timeout { .. } => {
                (ErrorKind::Unavailable, "object_store_unavailable")
            }
            ObjStoreError::Corrupt { .. } => (ErrorKind::Data, "data_corrupt"),
        };
        Error::new(kind, code, e.to_string()).with_source(e)
    }
}

impl From<TierError> for Error {
    fn from(e: TierError) -> Self {
        let (kind, code) = match &e {
            TierError::Wal(_) => {
                if let TierError::Wal(w) = e {
                    return w.into();
                }
                (ErrorKind::Internal, "io_error")
            }
            TierError::Remote(_) => {
                if let TierError::Remote(r) = e {
                    return r.into();
                }
                (ErrorKind::Internal, "io_error")
            }
            TierError::Config(_) => (ErrorKind::Invalid, "invalid_config"),
            TierError::Fenced { .. } => (ErrorKind::Conflict, "fenced"),
            TierError::Corrupt { .. } => (ErrorKind::Data, "data_corrupt"),
        };
        Error::new(kind, code, e.to_string()).with_source(e)
    }
}

impl From<LogError> for Error {
    fn from(e: LogError) -> Self {
        let e = match e {
            LogError::Wal(w) => return w.into(),
            other => other,
        };
        let (kind, code) = match &e {
            LogError::StreamNotFound { .. } => (ErrorKind::NotFound, "stream_not_found"),
            LogError::PartitionNotFound { .. } => (ErrorKind::NotFound, "partition_not_found"),
            LogError::StreamExists { .. } => (ErrorKind::Conflict, "stream_exists"),
            LogError::PipelineNotFound { .. } => (ErrorKind::NotFound, "pipeline_not_found"),
            LogError::PipelineExists { .. } => (ErrorKind::Conflict, "pipeline_exists"),
            LogError::ViewNotFound { .. } => (ErrorKind::NotFound, "view_not_found"),
            LogError::NodeFull { .. } => (ErrorKind::Conflict, "node_full"),
            LogError::ViewExists { .. } => (ErrorKind::Conflict, "view_exists"),
            LogError::IsView { .. } => (ErrorKind::Conflict, "view_read_only"),
            LogError::StreamHasViews { .. } => (ErrorKind::Conflict, "stream_in_use"),
            LogError::InvalidName { .. } | LogError::InvalidPartitions { .. } | LogError::InvalidBatch(_) => {
                (ErrorKind::Invalid, "invalid_request")
            }
            LogError::InvalidConfig(_) => (ErrorKind::Invalid, "invalid_config"),
            LogError::KeyRequired { .. } => (ErrorKind::Invalid, "key_required"),
            LogError::BatchTooLarge { .. } => (ErrorKind::TooLarge, "payload_too_large"),
            LogError::OffsetOutOfRange { .. } => (ErrorKind::Invalid, "offset_out_of_range"),
            LogError::Corrupt { .. } => (ErrorKind::Data, "data_corrupt"),
            LogError::MetaIo { source, .. } if is_storage_full(source) => (ErrorKind::StorageFull, "disk_full"),
            LogError::MetaIo { .. } => (ErrorKind::Internal, "io_error"),
            LogError::ColdRead { .. } => (ErrorKind::Unavailable, "object_store_unavailable"),
            LogError::NotLeader { .. } => (ErrorKind::Misdirected, "not_leader"),
            LogError::NotReplicated { .. } => (ErrorKind::Invalid, "not_replicated"),
            LogError::ProducerSequence { .. } => (ErrorKind::Conflict, "out_of_order_sequence"),
            LogError::ProducerFenced { .. } => (ErrorKind::Conflict, "invalid_producer_epoch"),
            LogError::ReplicaMismatch { .. } => (ErrorKind::Conflict, "replica_mismatch"),
            LogError::Wal(_) => (ErrorKind::Internal, "io_error"),
        };
        Error::new(kind, code, e.to_string()).with_source(e)
    }
}

impl From<GroupError> for Error {
    fn from(e: GroupError) -> Self {
        let (kind, code) = match &e {
            GroupError::MemberIdRequired { .. } => (ErrorKind::Invalid, "member_id_required"),
            GroupError::UnknownMemberId => (ErrorKind::NotFound, "unknown_member_id"),
            GroupError::IllegalGeneration => (ErrorKind::Conflict, "illegal_generation"),
            GroupError::RebalanceInProgress => (ErrorKind::Conflict, "rebalance_in_progress"),
            GroupError::InconsistentGroupProtocol => (ErrorKind::Invalid, "inconsistent_group_protocol"),
            GroupError::InvalidSessionTimeout => (ErrorKind::Invalid, "invalid_session_timeout"),
            GroupError::GroupMaxSizeReached => (ErrorKind::Conflict, "group_max_size_reached"),
            GroupError::GroupIdNotFound => (ErrorKind::NotFound, "group_not_found"),
            GroupError::NonEmptyGroup => (ErrorKind::Conflict, "group_not_empty"),
            GroupError::GroupSubscribedToTopic => (ErrorKind::Conflict, "group_subscribed_to_topic"),
            GroupError::FencedInstanceId => (ErrorKind::Conflict, "fenced_instance_id"),
            GroupError::InvalidGroupId => (ErrorKind::Invalid, "invalid_group_id"),
            GroupError::TooManyGroups => (ErrorKind::Conflict, "too_many_groups"),
            GroupError::TooLarge => (ErrorKind::TooLarge, "payload_too_large"),
            GroupError::CoordinatorNotAvailable => (ErrorKind::Unavailable, "shutting_down"),
            GroupError::NotCoordinator { .. } => (ErrorKind::Misdirected, "not_coordinator"),
            GroupError::FencedMemberEpoch => (ErrorKind::Conflict, "fenced_member_epoch"),
            GroupError::StaleMemberEpoch => (ErrorKind::Conflict, "stale_member_epoch"),
            GroupError::UnreleasedInstanceId => (ErrorKind::Conflict, "unreleased_instance_id"),
            GroupError::UnsupportedAssignor => (ErrorKind::Invalid, "unsupported_assignor"),
            GroupError::InvalidRegularExpression(_) => (ErrorKind::Invalid, "invalid_regular_expression"),
            GroupError::InvalidRequest(_) => (ErrorKind::Invalid, "invalid_request"),
            GroupError::UnsupportedVersion => (ErrorKind::Invalid, "unsupported_version"),
        };
        Error::new(kind, code, e.to_string()).with_source(e)
    }
}

impl From<ClusterError> for Error {
    fn from(e: ClusterError) -> Self {
        let e = match e {
            ClusterError::Log(l) => return l.into(),
            other => other,
        };
        let (kind, code) = match &e {
            ClusterError::BadResponse(_) | ClusterError::Unreachable { .. } | ClusterError::Peer { .. } => {
                (ErrorKind::Unavailable, "replica_unavailable")
            }
            ClusterError::NotConfigured(_) | ClusterError::Invalid(_) => (ErrorKind::Invalid, "invalid_request"),
            ClusterError::Mismatch { .. } => (ErrorKind::Conflict, "stream_mismatch"),
            ClusterError::AcksTimeout { .. } | ClusterError::StartTimeout { .. } => {
                (ErrorKind::Timeout, "replication_timeout")
            }
            ClusterError::StaleEpoch { .. } => (ErrorKind::Conflict, "stale_epoch"),
            ClusterError::NotEnoughReplicas { .. } => (ErrorKind::Unavailable, "not_enough_replicas"),
            ClusterError::NotInSync { .. } => (ErrorKind::Invalid, "not_in_sync"),
            ClusterError::NoEligibleLeader { .. } => (ErrorKind::Unavailable, "no_eligible_leader"),
            ClusterError::Log(_) => (ErrorKind::Internal, "internal"),
        };
        Error::new(kind, code, e.to_string()).with_source(e)
    }
}

impl From<PluginError> for Error {
    fn from(e: PluginError) -> Self {
        let (kind, code) = match &e {
            PluginError::Invalid { .. } => (ErrorKind::Invalid, "invalid_plugin"),
            PluginError::WrongWorld { .. } => (ErrorKind::Invalid, "wrong_plugin_world"),
            PluginError::IncompatibleVersion { .. } => (ErrorKind::Invalid, "incompatible_plugin"),
            PluginError::InitFailed { .. } => (ErrorKind::Invalid, "plugin_config_rejected"),
            PluginError::Failed { .. } => (ErrorKind::PluginFailed, "plugin_failed"),
            PluginError::Trapped { .. } => (ErrorKind::PluginFailed, "plugin_trapped"),
            PluginError::Timeout { .. } => (ErrorKind::PluginFailed, "plugin_timeout"),
            PluginError::MemoryLimit { .. } => (ErrorKind::PluginFailed, "plugin_memory_limit"),
            PluginError::BadOutput { .. } => (ErrorKind::PluginFailed, "plugin_bad_output"),
            PluginError::Runtime(_) => (ErrorKind::Internal, "internal"),
        };
        Error::new(kind, code, e.to_string()).with_source(e)
    }
}

impl From<PipelineError> for Error {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Log(e) => e.into(),
            PipelineError::Plugin(e) => e.into(),
            PipelineError::Registry(e) => e.into(),
            PipelineError::Invalid(m) => Error::invalid(m),
            PipelineError::Batch { source, context } => Error::from(source).with_context(context),
            PipelineError::Task(m) => Error::new(ErrorKind::Internal, "internal", format!("blocking task failed: {m}")),
        }
    }
}

impl From<RegistryError> for Error {
    fn from(e: RegistryError) -> Self {
        let e = match e {
            RegistryError::Plugin(p) => return p.into(),
            other => other,
        };
        let (kind, code) = match &e {
            RegistryError::NotFound { .. } => (ErrorKind::NotFound, "plugin_not_found"),
            RegistryError::VersionNotFound { .. } => (ErrorKind::NotFound, "plugin_version_not_found"),
            RegistryError::InvalidName { .. } => (ErrorKind::Invalid, "invalid_request"),
            RegistryError::WrongKind { .. } => (ErrorKind::Invalid, "wrong_plugin_world"),
            RegistryError::TooManyVersions { .. } => (ErrorKind::Conflict, "too_many_versions"),
            RegistryError::Io { .. } | RegistryError::Plugin(_) => (ErrorKind::Internal, "io_error"),
        };
        Error::new(kind, code, e.to_string()).with_source(e)
    }
}
