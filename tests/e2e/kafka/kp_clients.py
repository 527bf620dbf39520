"""kafka-python (its own protocol code) for the e2e tests; clients.py
dispatches to COMMANDS here. Each takes the test's JSON arguments and
returns JSON; binary fields are hex."""

import time

from hexcodec import hx, unhex


def _kp_admin(a, call, ok_flag=False):
    """Runs call(admin) with a kafka-python admin client for a["bootstrap"]
    and closes it; an error raised is reported to the test as {"error": ...}
    (with "ok": False when ok_flag)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=a["bootstrap"])
    try:
        return call(admin)
    except Exception as e:
        out = {"error": f"{type(e).__name__}: {e}"}
        if ok_flag:
            out["ok"] = False
        return out
    finally:
        admin.close()


def kp_describe_topics(a):
    """kafka-python's describe_topics of a["ids"] (32 hex digits each, asked
    by topic id): per id its name, id, error code and partition count."""
    import uuid

    def call(admin):
        topics = admin.describe_topics([uuid.UUID(hex=i) for i in a["ids"]])
        def hexed(i):
            return None if i is None else (i if isinstance(i, uuid.UUID) else uuid.UUID(str(i))).hex
        return {"topics": [{"name": t.get("name"), "topic_id": hexed(t.get("topic_id")),
                            "error_code": t.get("error_code"), "partitions": len(t.get("partitions") or [])}
                           for t in topics]}

    return _kp_admin(a, call)


def kp_describe_acls(a):
    """kafka-python's describe_acls matching every ACL: the ACLs, or the
    error it raises."""
    from kafka.admin import (ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             ResourcePatternFilter, ResourceType)

    def call(admin):
        every = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                          permission_type=ACLPermissionType.ANY,
                          resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
        return {"acls": [str(acl) for acl in admin.describe_acls(every)[0]]}

    return _kp_admin(a, call)


def kp_list_transactions(a):
    """kafka-python's list_transactions (every broker): per broker id, the
    transactional ids listed."""

    def call(admin):
        listed = admin.list_transactions(state_filters=a.get("states"))
        return {"brokers": {str(b): [t.transactional_id for t in txns] for b, txns in listed.items()}}

    return _kp_admin(a, call)


def kp_describe_cluster(a):
    """kafka-python's describe_cluster (DescribeCluster when offered)."""

    def call(admin):
        d = admin.describe_cluster()
        return {"cluster_id": d.get("cluster_id"), "controller_id": d.get("controller_id"),
                "brokers": sorted([b.get("broker_id"), b.get("host"), b.get("port")] for b in d.get("brokers", []))}

    return _kp_admin(a, call)


def _token_provider(token):
    """A kafka-python OAUTHBEARER token provider that gives `token`."""
    from kafka.net.sasl.oauth import AbstractTokenProvider

    class Fixed(AbstractTokenProvider):
        def token(self):
            return token

    return Fixed()


def kp_produce(a):
    from kafka import KafkaProducer

    conf = dict(bootstrap_servers=a["bootstrap"], linger_ms=a.get("linger_ms", 5))
    conf.update(a.get("config", {}))
    if a.get("oauth_token") is not None:
        conf["sasl_oauth_token_provider"] = _token_provider(a["oauth_token"])
    p = KafkaProducer(**conf)
    futures = []
    for r in a["records"]:
        futures.append(p.send(
            a["topic"],
            value=unhex(r["value"]),
            key=unhex(r.get("key")),
            partition=r.get("partition"),
            headers=[(k, unhex(v)) for k, v in r.get("headers", [])],
            timestamp_ms=r.get("timestamp"),
        ))
    p.flush(60)
    results = []
    for f in futures:
        md = f.get(timeout=60)
        results.append({"partition": md.partition, "offset": md.offset})
    p.close()
    return {"results": results}


def kp_consume(a):
    from kafka import KafkaConsumer, TopicPartition

    conf = dict(bootstrap_servers=a["bootstrap"], enable_auto_commit=False, group_id=None)
    conf.update(a.get("config", {}))
    c = KafkaConsumer(**conf)
    tp = TopicPartition(a["topic"], a["partition"])
    c.assign([tp])
    c.seek(tp, a["offset"])
    out = []
    deadline = time.time() + a.get("timeout", 30)
    while len(out) < a["count"] and time.time() < deadline:
        for _, msgs in c.poll(timeout_ms=500).items():
            for m in msgs:
                out.append({
                    "offset": m.offset,
                    "key": hx(m.key),
                    "value": hx(m.value),
                    "headers": [[k, hx(v)] for k, v in (m.headers or [])],
                    "timestamp": m.timestamp,
                })
    c.close()
    return {"records": out}


def kp_session_consume(a):
    """Reads every partition of a["topic"] (a["partitions"]) from the start
    with small fetches, so kafka-python's incremental fetch session carries
    many fetches; after a["first"] records it produces a["more"] more (one
    per partition in turn) and reads on until it has them all. Reports the
    records and what kafka-python logged about its fetch sessions."""
    import logging
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    seen = {"incremental": 0, "full_created": 0, "problems": []}

    class Watch(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if "sent an incremental fetch response for session" in msg:
                seen["incremental"] += 1
            elif "created a new incremental fetch session" in msg:
                seen["full_created"] += 1
            elif "invalid" in msg or "unable to process" in msg:
                seen["problems"].append(msg)

    log = logging.getLogger("kafka.consumer.fetcher")
    log.setLevel(logging.DEBUG)
    log.addHandler(Watch())
    c = KafkaConsumer(bootstrap_servers=a["bootstrap"], enable_auto_commit=False, group_id=None,
                      max_partition_fetch_bytes=a.get("partition_bytes", 256), fetch_max_wait_ms=100)
    tps = [TopicPartition(a["topic"], p) for p in range(a["partitions"])]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    out = []
    produced = False
    deadline = time.time() + a.get("timeout", 60)
    want = a["first"] + a["more"]
    while len(out) < want and time.time() < deadline:
        for _, msgs in c.poll(timeout_ms=200).items():
            for m in msgs:
                out.append({"partition": m.partition, "offset": m.offset, "value": hx(m.value)})
        if not produced and len(out) >= a["first"]:
            p = KafkaProducer(bootstrap_servers=a["bootstrap"])
            for i in range(a["more"]):
                p.send(a["topic"], value=b"more-%d" % i, partition=i % a["partitions"])
            p.flush(30)
            p.close()
            produced = True
    c.close()
    return {"records": out, "sessions": seen}


def kp_offsets_for_times(a):
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=a["bootstrap"], group_id=None)
    tp = TopicPartition(a["topic"], a["partition"])
    res = []
    for t in a["timestamps"]:
        r = c.offsets_for_times({tp: t})[tp]
        res.append(-1 if r is None else r.offset)
    low = c.beginning_offsets([tp])[tp]
    high = c.end_offsets([tp])[tp]
    c.close()
    return {"offsets": res, "low": low, "high": high}


def kp_list_offsets(a):
    """Admin ListOffsets of one partition per spec: earliest, latest,
    max_timestamp, earliest_local, latest_tiered or a time."""
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient, OffsetSpec

    admin = KafkaAdminClient(bootstrap_servers=a["bootstrap"])
    out = []
    for spec in a["specs"]:
        tp = TopicPartition(a["topic"], a["partition"])
        s = OffsetSpec[spec.upper()] if isinstance(spec, str) else spec
        r = admin.list_partition_offsets({tp: s})[tp]
        out.append([r.offset, r.timestamp])
    admin.close()
    return {"offsets": out}


def kp_elect_leaders(a):
    """As confluent_elect_leaders; per "topic:partition" the error code."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=a["bootstrap"], request_timeout_ms=60000)
    kind = 0 if a["type"] == "preferred" else 1
    parts = None
    if a["partitions"] is not None:
        parts = {}
        for t, p in a["partitions"]:
            parts.setdefault(t, []).append(p)
    r = admin.elect_leaders(kind, parts, timeout_ms=60000, raise_errors=False)
    admin.close()
    out = {}
    for topic, results in r.replica_election_results:
        for part in results:
            out[f"{topic}:{part[0]}"] = part[1]
    return {"results": out}


def kp_describe_producers(a):
    """DescribeProducers of a["partitions"] ([[topic, partition]]): per
    "topic:partition" its producers [id, epoch, last sequence, last
    timestamp], or the error."""
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=a["bootstrap"])
    out = {}
    for t, p in a["partitions"]:
        tp = TopicPartition(t, p)
        try:
            state = admin.describe_producers([tp])[tp]
            out[f"{t}:{p}"] = [[s.producer_id, s.producer_epoch, s.last_sequence, s.last_timestamp]
                               for s in state.active_producers]
        except Exception as e:  # the Kafka error, reported to the test
            out[f"{t}:{p}"] = {"error": type(e).__name__}
    admin.close()
    return {"producers": out}


def kp_committed(a):
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=a["bootstrap"], group_id=a["group"], enable_auto_commit=False)
    out = {}
    for p in a["partitions"]:
        o = c.committed(TopicPartition(a["topic"], p))
        out[str(p)] = -1001 if o is None else o
    c.close()
    return {"offsets": out}


def kp_create_topic(a):
    """CreateTopics of a["topic"]; answers the topic's id (32 hex digits,
    CreateTopics v7) as "topic_id"."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=a["bootstrap"], **a.get("client", {}))
    try:
        out = admin.create_topics([NewTopic(a["topic"], a["partitions"], a.get("replication", 1),
                                            topic_configs=a.get("config", {}))])
        topic_id = (out.get("topics") or [{}])[0].get("topic_id")
        return {"ok": True, "topic_id": None if topic_id is None else _uuid_hex(topic_id)}
    except Exception as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    finally:
        admin.close()


def _uuid_hex(i):
    import uuid

    return None if i is None else (i if isinstance(i, uuid.UUID) else uuid.UUID(str(i))).hex


def kp_alter_configs(a):
    """AlterConfigs (a["incremental"] false) or IncrementalAlterConfigs."""
    from kafka.admin import ConfigResource, ConfigResourceType

    def call(admin):
        out = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, a["topic"], configs=a["configs"])],
                                  incremental=a.get("incremental"))
        return {"result": {str(k): {n: repr(v) for n, v in r.items()} for k, r in out.items()}}

    return _kp_admin(a, call)


def kp_describe_configs(a):
    """Every config of broker a["broker"] (its id), kafka-python's way."""
    from kafka.admin import ConfigResource, ConfigResourceType

    def call(admin):
        out = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, a["broker"])], config_filter="all")
        flat = {}
        for _, by_name in out.items():
            for _, configs in by_name.items():
                for k, v in configs.items():
                    flat[k] = v.get("value") if isinstance(v, dict) else repr(v)
        return {"configs": flat}

    return _kp_admin(a, call)


def kp_create_partitions(a):
    from kafka.admin import NewPartitions

    def call(admin):
        admin.create_partitions({a["topic"]: NewPartitions(a["count"])})
        return {"ok": True}

    return _kp_admin(a, call, ok_flag=True)


def kp_delete_records(a):
    from kafka import TopicPartition

    def call(admin):
        out = admin.delete_records({TopicPartition(a["topic"], a["partition"]): a["before"]})
        return {"ok": True, "result": {str(k): str(v) for k, v in out.items()}}

    return _kp_admin(a, call, ok_flag=True)


def kp_describe_log_dirs(a):
    """Each broker's log dirs; `topics` as kafka-python takes it (None: all)."""

    def call(admin):
        return {"ok": True, "brokers": admin.describe_log_dirs(topic_partitions=a.get("topics"))}

    return _kp_admin(a, call, ok_flag=True)


def kp_delete_group_offsets(a):
    """OffsetDelete: `partitions` as [[topic, partition], ...]; each one's
    error class name ("NoError" when deleted)."""
    from kafka import TopicPartition

    def call(admin):
        tps = [TopicPartition(t, p) for t, p in a["partitions"]]
        out = admin.delete_group_offsets(a["group"], tps)
        return {"ok": True, "result": {f"{tp.topic}-{tp.partition}": e.__name__ for tp, e in out.items()}}

    return _kp_admin(a, call, ok_flag=True)


def kp_delete_topic(a):
    """DeleteTopics of a["topic"] (a name) or of a["id"] (32 hex digits:
    by topic id, DeleteTopics v6). "topics" gives each answer's name, id
    and error code; "ok" is whether every one is 0, "error" names the
    first error."""
    import uuid

    from kafka.errors import for_code

    def call(admin):
        asked = uuid.UUID(hex=a["id"]) if "id" in a else a["topic"]
        out = admin.delete_topics([asked], raise_errors=False)
        topics = [{"name": t.get("name"), "topic_id": _uuid_hex(t.get("topic_id")),
                   "error_code": t.get("error_code")} for t in out.get("topics", [])]
        answer = {"ok": all(t["error_code"] == 0 for t in topics), "topics": topics}
        failed = [t["error_code"] for t in topics if t["error_code"] != 0]
        if failed:
            answer["error"] = for_code(failed[0]).__name__
        return answer

    return _kp_admin(a, call, ok_flag=True)


COMMANDS = {
    ("kafkapython", "committed"): kp_committed,
    ("kafkapython", "produce"): kp_produce,
    ("kafkapython", "consume"): kp_consume,
    ("kafkapython", "session_consume"): kp_session_consume,
    ("kafkapython", "offsets_for_times"): kp_offsets_for_times,
    ("kafkapython", "create_topic"): kp_create_topic,
    ("kafkapython", "delete_topic"): kp_delete_topic,
    ("kafkapython", "alter_configs"): kp_alter_configs,
    ("kafkapython", "delete_records"): kp_delete_records,
    ("kafkapython", "describe_log_dirs"): kp_describe_log_dirs,
    ("kafkapython", "delete_group_offsets"): kp_delete_group_offsets,
    ("kafkapython", "create_partitions"): kp_create_partitions,
    ("kafkapython", "describe_topics"): kp_describe_topics,
    ("kafkapython", "describe_cluster"): kp_describe_cluster,
    ("kafkapython", "describe_acls"): kp_describe_acls,
    ("kafkapython", "list_transactions"): kp_list_transactions,
    ("kafkapython", "describe_configs"): kp_describe_configs,
    ("kafkapython", "list_offsets"): kp_list_offsets,
    ("kafkapython", "elect_leaders"): kp_elect_leaders,
    ("kafkapython", "describe_producers"): kp_describe_producers,
}
