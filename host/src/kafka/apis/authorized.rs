//! Authorized operations, for the clients that ask for them (Metadata,
//! DescribeCluster, DescribeGroups, ConsumerGroupDescribe): a bit set of
//! Kafka's ACL operation codes (bit `1 << code`). The node has no ACLs, so
//! a connection that may send a request may do everything Kafka supports on
//! a resource, which is what a Kafka broker without an authorizer answers;
//! less only where the node itself refuses an operation (a view takes no
//! writes, configs or deletes over Kafka; the node's own internal topics
//! take no writes or deletes). A client that does not ask gets Kafka's
//! "not given".

/// Kafka's "authorized operations not given".
pub(super) const NOT_GIVEN: i32 = i32::MIN;

// Kafka's AclOperation codes.
const READ: u8 = 3;
const WRITE: u8 = 4;
const CREATE: u8 = 5;
const DELETE: u8 = 6;
const ALTER: u8 = 7;
const DESCRIBE: u8 = 8;
const CLUSTER_ACTION: u8 = 9;
const DESCRIBE_CONFIGS: u8 = 10;
const ALTER_CONFIGS: u8 = 11;
const IDEMPOTENT_WRITE: u8 = 12;

const fn bits(ops: &[u8]) -> i32 {
    let mut out = 0i32;
    let mut i = 0;
    while i < ops.len() {
        out |= 1 << ops[i];
        i += 1;
    }
    out
}

/// What Kafka supports on the cluster resource.
pub(super) const CLUSTER: i32 = bits(&[
    CREATE,
    CLUSTER_ACTION,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
    IDEMPOTENT_WRITE,
    ALTER,
    DESCRIBE,
]);
/// What Kafka supports on a topic.
pub(super) const TOPIC: i32 = bits(&[
    READ,
    WRITE,
    CREATE,
    DESCRIBE,
    DELETE,
    ALTER,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
]);
/// A view: read and described only.
pub(super) const VIEW: i32 = bits(&[READ, DESCRIBE]);
/// The node's own topics (`__consumer_offsets`): read and described.
pub(super) const INTERNAL: i32 = bits(&[READ, DESCRIBE, DESCRIBE_CONFIGS]);
/// What Kafka supports on a group.
pub(super) const GROUP: i32 = bits(&[READ, DESCRIBE, DELETE]);

/// `ops` if the client asked for them, else [`NOT_GIVEN`].
pub(super) fn given(asked: bool, ops: i32) -> i32 {
    if asked { ops } else { NOT_GIVEN }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bit_sets_are_kafkas() {
        // As a Kafka broker without an authorizer answers them.
        assert_eq!(CLUSTER, 0b1_1111_1010_0000);
        assert_eq!(TOPIC, 0b1101_1111_1000);
        assert_eq!(GROUP, 0b1_0100_1000);
        assert_eq!(given(false, TOPIC), i32::MIN);
        assert_eq!(given(true, VIEW), (1 << 3) | (1 << 8));
    }
}
