//! DescribeAcls, CreateAcls and DeleteAcls: the node has no authorizer
//! (its one credential is the token), so each is answered as a Kafka
//! broker without one answers it: SECURITY_DISABLED, with a message, for
//! the request (DescribeAcls) or for each creation and filter. Admin tools
//! read that as "ACLs are not enabled" rather than failing on an API the
//! broker does not offer.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsResponse,
};

use super::str_bytes;

const NO_AUTHORIZER: &str = "No Authorizer is configured: the node has no ACLs (its one credential is its token)";

fn security_disabled() -> i16 {
    kafka_protocol::ResponseError::SecurityDisabled.code()
}

pub(super) fn describe() -> DescribeAclsResponse {
    let mut r = DescribeAclsResponse::default();
    r.error_code = security_disabled();
    r.error_message = Some(str_bytes(NO_AUTHORIZER));
    r
}

pub(super) fn create(r: &CreateAclsRequest) -> CreateAclsResponse {
    let mut out = CreateAclsResponse::default();
    out.results = r
        .creations
        .iter()
        .map(|_| {
            let mut res = AclCreationResult::default();
            res.error_code = security_disabled();
            res.error_message = Some(str_bytes(NO_AUTHORIZER));
            res
        })
        .collect();
    out
}

pub(super) fn delete(r: &DeleteAclsRequest) -> DeleteAclsResponse {
    let mut out = DeleteAclsResponse::default();
    out.filter_results = r
        .filters
        .iter()
        .map(|_| {
            let mut res = DeleteAclsFilterResult::default();
            res.error_code = security_disabled();
            res.error_message = Some(str_bytes(NO_AUTHORIZER));
            res
        })
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::create_acls_request::AclCreation;
    use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
    use kafka_protocol::protocol::Encodable;

    use super::*;

    #[test]
    fn every_answer_is_security_disabled_and_encodes_at_every_version() {
        let mut c = CreateAclsRequest::default();
        c.creations = vec![AclCreation::default(), AclCreation::default()];
        let mut d = DeleteAclsRequest::default();
        d.filters = vec![DeleteAclsFilter::default()];
        let (described, created, deleted) = (describe(), create(&c), delete(&d));
        assert_eq!(described.error_code, 54);
        assert_eq!(
            created.results.iter().map(|r| r.error_code).collect::<Vec<_>>(),
            [54, 54]
        );
        assert_eq!(
            deleted.filter_results.iter().map(|r| r.error_code).collect::<Vec<_>>(),
            [54]
        );
        for v in 1..=3 {
            let mut buf = bytes::BytesMut::new();
            described.encode(&mut buf, v).expect("describe");
            created.encode(&mut buf, v).expect("create");
            deleted.encode(&mut buf, v).expect("delete");
        }
    }
}
