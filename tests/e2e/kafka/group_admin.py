"""Consumer-group admin calls for the e2e tests, through third-party
clients; clients.py dispatches to COMMANDS here. Each takes the test's JSON
arguments and returns JSON."""


def confluent_describe_groups(a):
    """librdkafka's DescribeConsumerGroups of a["groups"]: per group its
    type, state, assignor and members (client id, assignment, target)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": a["bootstrap"]})
    out = {}
    for gid, fut in admin.describe_consumer_groups(a["groups"]).items():
        try:
            d = fut.result(20)
        except Exception as e:  # the Kafka error, reported to the test
            out[gid] = {"error": str(e)}
            continue

        def parts(assignment):
            if assignment is None:
                return None
            return sorted([tp.topic, tp.partition] for tp in assignment.topic_partitions)

        out[gid] = {
            "type": d.type.name, "state": d.state.name, "assignor": d.partition_assignor,
            "members": [{"member_id": m.member_id, "client_id": m.client_id,
                         "assignment": parts(m.assignment), "target": parts(m.target_assignment)}
                        for m in d.members],
        }
    return out


def confluent_list_groups(a):
    """librdkafka's ListConsumerGroups, of a["types"] (CONSUMER, CLASSIC) if
    given: {group id: [type, state]}."""
    from confluent_kafka import ConsumerGroupType
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": a["bootstrap"]})
    kw = {}
    if "types" in a:
        kw["types"] = {ConsumerGroupType[t] for t in a["types"]}
    r = admin.list_consumer_groups(**kw).result(20)
    return {g.group_id: [g.type.name, g.state.name] for g in r.valid}


def kp_join_classic(a):
    """A kafka-python (classic protocol) member joining a["group"] on
    a["topic"]: the error it meets, if any, within a few seconds."""
    from kafka import KafkaConsumer

    c = KafkaConsumer(a["topic"], bootstrap_servers=a["bootstrap"], group_id=a["group"],
                      enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        c.poll(timeout_ms=6000)
        return {"error": None, "assignment": sorted(tp.partition for tp in c.assignment())}
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        c.close()


COMMANDS = {
    ("confluent", "describe_groups"): confluent_describe_groups,
    ("confluent", "list_groups"): confluent_list_groups,
    ("kafkapython", "join_classic"): kp_join_classic,
}
