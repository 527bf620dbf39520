//! ListTransactions: the node refuses transactions (InitProducerId with a
//! transactional id), so it has none to list. Answered as a Kafka broker
//! with no transactions answers: no error, an empty list, and the state
//! filters that name no transaction state given back as unknown, so admin
//! tools (`kafka-transactions.sh --list`, UIs) show none rather than
//! failing on an API the node does not offer.

use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse};

/// Kafka's transaction states, as ListTransactions filters name them.
const STATES: [&str; 8] = [
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

pub(super) fn list(r: &ListTransactionsRequest) -> ListTransactionsResponse {
    let mut out = ListTransactionsResponse::default();
    out.unknown_state_filters = r
        .state_filters
        .iter()
        .filter(|f| !STATES.contains(&f.as_str()))
        .cloned()
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::*;

    #[test]
    fn nothing_is_listed_and_unknown_state_filters_come_back() {
        let mut r = ListTransactionsRequest::default();
        r.state_filters = ["Ongoing", "Bogus", "CompleteAbort", "ongoing"]
            .map(StrBytes::from_static_str)
            .to_vec();
        let out = list(&r);
        assert_eq!(out.error_code, 0);
        assert!(out.transaction_states.is_empty());
        let unknown: Vec<&str> = out.unknown_state_filters.iter().map(|s| s.as_str()).collect();
        assert_eq!(unknown, ["Bogus", "ongoing"]);
        for v in 0..=1 {
            out.encode(&mut bytes::BytesMut::new(), v).expect("encodes");
        }
    }
}
