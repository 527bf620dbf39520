//! ApiVersions: the APIs and version ranges of `dispatch::SUPPORTED`.

use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::messages::ResponseKind;
use kafka_protocol::messages::api_versions_response::ApiVersion;

use super::super::dispatch::SUPPORTED;
use super::super::error::codes;

pub(in super::super) fn handle() -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.api_keys = SUPPORTED
        .iter()
        .map(|(key, min, max)| {
            let mut v = ApiVersion::default();
            v.api_key = *key as i16;
            v.min_version = *min;
            v.max_version = *max;
            v
        })
        .collect();
    r
}

/// The v0 answer to an ApiVersions request of a version this node does not know.
pub(in super::super) fn unsupported() -> ResponseKind {
    let mut r = handle();
    r.error_code = codes::unsupported_version();
    ResponseKind::ApiVersions(r)
}
