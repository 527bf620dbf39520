"""Drives a third-party Kafka client against a Sluice node for the e2e tests.

Usage: clients.py <library> <command> <json-args>
  library: confluent (confluent-kafka, librdkafka inside) or kafkapython (kafka-python)
  command: produce | consume | offsets_for_times | create_topic | delete_topic | metadata | committed

The kafka-python commands live in kp_clients.py, the group admin calls in
group_admin.py (both beside this file). Prints one JSON document on
stdout; binary fields are hex. Exits non-zero
with the client's error on stderr when the client fails.
"""

import json
import sys
import time


from hexcodec import hx, unhex  # noqa: E402 (beside this file)


# --- confluent-kafka -------------------------------------------------------

def confluent_produce(a):
    from confluent_kafka import Producer

    conf = {"bootstrap.servers": a["bootstrap"], "linger.ms": a.get("linger_ms", 5)}
    conf.update(a.get("config", {}))
    if a.get("oauth_token") is not None:
        # OAUTHBEARER: librdkafka takes the bearer token from this callback.
        token = a["oauth_token"]
        conf["oauth_cb"] = lambda _config: (token, time.time() + 3600)
    p = Producer(conf)
    results = []

    def done(err, msg):
        if err is not None:
            results.append({"error": str(err)})
        else:
            results.append({"partition": msg.partition(), "offset": msg.offset()})

    for r in a["records"]:
        kwargs = {"topic": a["topic"], "value": unhex(r["value"]), "on_delivery": done}
        if r.get("key") is not None:
            kwargs["key"] = unhex(r["key"])
        if r.get("partition") is not None:
            kwargs["partition"] = r["partition"]
        if r.get("headers"):
            kwargs["headers"] = [(k, unhex(v)) for k, v in r["headers"]]
        if r.get("timestamp") is not None:
            kwargs["timestamp"] = r["timestamp"]
        while True:
            try:
                p.produce(**kwargs)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(60)
    if left:
        raise SystemExit(f"{left} records not delivered")
    return {"results": results}


def confluent_produce_sequence(a):
    """Produces values "0".."count-1" to partition 0; reports delivery errors."""
    from confluent_kafka import Producer

    conf = {"bootstrap.servers": a["bootstrap"], "linger.ms": 5}
    conf.update(a.get("config", {}))
    p = Producer(conf)
    errors = []
    delivered = [0]

    def done(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            delivered[0] += 1

    for i in range(a["count"]):
        while True:
            try:
                p.produce(a["topic"], value=str(i).encode(), partition=0, on_delivery=done)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
        if a.get("pace_every") and i % a["pace_every"] == 0:
            time.sleep(0.01)
    left = p.flush(120)
    return {"delivered": delivered[0], "errors": errors[:10], "undelivered": left}


def confluent_consume(a):
    from confluent_kafka import Consumer, TopicPartition

    conf = {
        "bootstrap.servers": a["bootstrap"],
        "group.id": "sluice-e2e-unused",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    }
    conf.update(a.get("config", {}))
    c = Consumer(conf)
    c.assign([TopicPartition(a["topic"], a["partition"], a["offset"])])
    out = []
    deadline = time.time() + a.get("timeout", 30)
    while len(out) < a["count"] and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                continue
            raise SystemExit(f"consume error: {m.error()}")
        ts_type, ts = m.timestamp()
        out.append({
            "offset": m.offset(),
            "key": hx(m.key()),
            "value": hx(m.value()),
            "headers": [[k, hx(v)] for k, v in (m.headers() or [])],
            "timestamp": ts,
            "leader_epoch": m.leader_epoch(),
        })
    c.close()
    return {"records": out}


def confluent_offsets_for_times(a):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": a["bootstrap"], "group.id": "sluice-e2e-unused"})
    tps = [TopicPartition(a["topic"], a["partition"], t) for t in a["timestamps"]]
    res = []
    for tp in tps:
        r = c.offsets_for_times([tp], timeout=20)
        res.append(r[0].offset)
    low, high = c.get_watermark_offsets(TopicPartition(a["topic"], a["partition"]), timeout=20)
    c.close()
    return {"offsets": res, "low": low, "high": high}


def confluent_list_offsets(a):
    """Admin ListOffsets of one partition per spec: earliest, latest,
    max_timestamp or a time; [offset, timestamp] each."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    admin = AdminClient({"bootstrap.servers": a["bootstrap"]})
    named = {"earliest": OffsetSpec.earliest(), "latest": OffsetSpec.latest(),
             "max_timestamp": OffsetSpec.max_timestamp()}
    out = []
    for spec in a["specs"]:
        tp = TopicPartition(a["topic"], a["partition"])
        s = named[spec] if isinstance(spec, str) else OffsetSpec.for_timestamp(spec)
        r = admin.list_offsets({tp: s}, request_timeout=20)[tp].result(20)
        out.append([r.offset, r.timestamp])
    return {"offsets": out}


def confluent_elect_leaders(a):
    """ElectLeaders of a["type"] (preferred or unclean) on a["partitions"]
    ([[topic, partition]], or None: all); per "topic:partition" None or the
    error's name."""
    from confluent_kafka import ElectionType, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": a["bootstrap"]})
    kind = ElectionType.PREFERRED if a["type"] == "preferred" else ElectionType.UNCLEAN
    parts = None if a["partitions"] is None else [TopicPartition(t, p) for t, p in a["partitions"]]
    try:
        res = admin.elect_leaders(kind, parts).result(60)
    except Exception as e:  # the Kafka error, reported to the test
        return {"error": str(e)}
    def name(err):  # a KafkaError, or an exception carrying one
        return err.name() if hasattr(err, "name") else err.args[0].name()

    return {"results": {f"{tp.topic}:{tp.partition}": (None if err is None else name(err))
                        for tp, err in res.items()}}


def confluent_metadata(a):
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": a["bootstrap"]}).list_topics(timeout=20)
    return {
        "brokers": sorted([b.id, b.host, b.port] for b in md.brokers.values()),
        "topics": {
            name: {str(p): {"leader": pm.leader, "replicas": pm.replicas} for p, pm in t.partitions.items()}
            for name, t in md.topics.items()
        },
    }


def confluent_topic_ids(a):
    """Topic ids of a["topics"] as DescribeTopics (librdkafka) reports them,
    as 32 hex digits."""
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": a["bootstrap"]})
    out = {}
    for name, fut in admin.describe_topics(TopicCollection(a["topics"])).items():
        u = fut.result(20).topic_id
        bits = ((u.get_most_significant_bits() & (2**64 - 1)) << 64) | (u.get_least_significant_bits() & (2**64 - 1))
        out[name] = f"{bits:032x}"
    return {"ids": out}


def confluent_authorized(a):
    """The authorized operations librdkafka's admin client gets for the
    cluster, a["topics"] and group a["group"] when it asks (names, sorted),
    and for the cluster when it does not ask (None)."""
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": a["bootstrap"]})

    def names(ops):
        return None if ops is None else sorted(o.name for o in ops)

    topics = admin.describe_topics(TopicCollection(a["topics"]), include_authorized_operations=True)
    group = admin.describe_consumer_groups([a["group"]], include_authorized_operations=True)[a["group"]]
    return {
        "cluster": names(admin.describe_cluster(include_authorized_operations=True).result(20).authorized_operations),
        "cluster_unasked": names(admin.describe_cluster().result(20).authorized_operations),
        "topics": {t: names(f.result(20).authorized_operations) for t, f in topics.items()},
        "group": names(group.result(20).authorized_operations),
    }


def confluent_acls(a):
    """librdkafka's admin client describing, creating and deleting ACLs on
    topic a["topic"]: each call's Kafka error code and message (or "ok")."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                       AdminClient, ResourcePatternType, ResourceType)

    admin = AdminClient({"bootstrap.servers": a["bootstrap"]})
    binding = AclBinding(ResourceType.TOPIC, a["topic"], ResourcePatternType.LITERAL, "User:alice", "*",
                         AclOperation.READ, AclPermissionType.ALLOW)
    matching = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                AclOperation.ANY, AclPermissionType.ANY)

    def outcome(call):
        try:
            call()
            return "ok"
        except KafkaException as e:
            err = e.args[0]
            return {"code": err.code(), "message": err.str()}

    return {
        "describe": outcome(lambda: admin.describe_acls(matching).result(20)),
        "create": outcome(lambda: [f.result(20) for f in admin.create_acls([binding]).values()]),
        "delete": outcome(lambda: [f.result(20) for f in admin.delete_acls([matching]).values()]),
    }


def _outcome(fut):
    """An admin future's result: ok, or the Kafka error for the test."""
    try:
        fut.result(20)
        return {"ok": True}
    except Exception as e:  # the Kafka error, reported to the test
        return {"ok": False, "error": str(e)}


def confluent_create_topic(a):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": a["bootstrap"]})
    topic = NewTopic(a["topic"], num_partitions=a["partitions"], replication_factor=a.get("replication", 1),
                     config=a.get("config", {}))
    fut = admin.create_topics([topic])[a["topic"]]
    return _outcome(fut)


def confluent_alter_configs(a):
    """IncrementalAlterConfigs: SET a["set"] {name: value}, DELETE a["delete"]."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    admin = AdminClient({"bootstrap.servers": a["bootstrap"]})
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in a.get("set", {}).items()]
    entries += [ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE) for k in a.get("delete", [])]
    res = ConfigResource(ResourceType.TOPIC, a["topic"], incremental_configs=entries)
    fut = admin.incremental_alter_configs([res], validate_only=a.get("validate_only", False))[res]
    return _outcome(fut)


def confluent_describe_configs(a):
    """A topic's configs (a["topic"]), or a broker's (a["broker"], its id):
    values, and with a["detail"] also source and read-only flag."""
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    admin = AdminClient({"bootstrap.servers": a["bootstrap"]})
    if "broker" in a:
        res = ConfigResource(ResourceType.BROKER, a["broker"])
    else:
        res = ConfigResource(ResourceType.TOPIC, a["topic"])
    try:
        configs = admin.describe_configs([res])[res].result(20)
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}
    if a.get("detail"):
        return {"configs": {k: {"value": v.value, "source": v.source, "read_only": v.is_read_only}
                            for k, v in configs.items()}}
    return {"configs": {k: v.value for k, v in configs.items()}}


def confluent_create_partitions(a):
    from confluent_kafka.admin import AdminClient, NewPartitions

    admin = AdminClient({"bootstrap.servers": a["bootstrap"]})
    fut = admin.create_partitions([NewPartitions(a["topic"], a["count"])],
                                  validate_only=a.get("validate_only", False))[a["topic"]]
    return _outcome(fut)


def confluent_delete_records(a):
    """Deletes records below a["before"] (-1: the high watermark) of one partition."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": a["bootstrap"]})
    tp = TopicPartition(a["topic"], a["partition"], a["before"])
    try:
        res = admin.delete_records([tp])[tp].result(20)
        return {"ok": True, "low_watermark": res.low_watermark}
    except Exception as e:  # the Kafka error, reported to the test
        return {"ok": False, "error": str(e)}


def confluent_committed(a):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": a["bootstrap"], "group.id": a["group"], "enable.auto.commit": False})
    parts = [TopicPartition(a["topic"], p) for p in a["partitions"]]
    got = c.committed(parts, timeout=20)
    c.close()
    return {"offsets": {str(tp.partition): tp.offset for tp in got}}


# --- aiokafka --------------------------------------------------------------

def aio_roundtrip(a):
    """aiokafka end to end: creates a["topic"] (a["partitions"]) with its
    admin client, produces a["records"] with an idempotent producer per
    compression codec (one codec per record: a record's "codec"), then two
    consumers of group a["group"] read everything there is and commit; and a
    transactional producer is started. Reports what each step saw."""
    import asyncio
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    b, topic = a["bootstrap"], a["topic"]

    async def run():
        admin = AIOKafkaAdminClient(bootstrap_servers=b)
        await admin.start()
        await admin.create_topics([NewTopic(topic, a["partitions"], 1)])
        await admin.close()
        produced = []
        for codec in sorted({r.get("codec") or "none" for r in a["records"]}):
            p = AIOKafkaProducer(bootstrap_servers=b, enable_idempotence=True, acks="all",
                                 compression_type=None if codec == "none" else codec)
            await p.start()
            for r in a["records"]:
                if (r.get("codec") or "none") != codec:
                    continue
                md = await p.send_and_wait(topic, value=unhex(r["value"]), key=unhex(r.get("key")),
                                           partition=r["partition"], timestamp_ms=r["timestamp"],
                                           headers=[(k, unhex(v)) for k, v in r.get("headers", [])])
                produced.append([r["value"], md.partition, md.offset])
            await p.stop()
        tps = [TopicPartition(topic, i) for i in range(a["partitions"])]
        consumers = [AIOKafkaConsumer(topic, bootstrap_servers=b, group_id=a["group"],
                                      auto_offset_reset="earliest", enable_auto_commit=False)
                     for _ in range(2)]
        for c in consumers:
            await c.start()
        ends = await consumers[0].end_offsets(tps)
        want = sum(ends.values())
        seen, per_member = [], [0, 0]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while len(seen) < want and loop.time() < deadline:
            for i, c in enumerate(consumers):
                got = await c.getmany(timeout_ms=200)
                for msgs in got.values():
                    per_member[i] += len(msgs)
                    seen += [{"partition": m.partition, "offset": m.offset, "key": hx(m.key),
                              "value": hx(m.value), "timestamp": m.timestamp,
                              "headers": [[k, hx(v)] for k, v in (m.headers or [])]} for m in msgs]
                if got:
                    await c.commit()
        committed = {}
        for tp in tps:
            committed[str(tp.partition)] = await consumers[0].committed(tp)
        for c in consumers:
            await c.stop()
        txn = AIOKafkaProducer(bootstrap_servers=b, transactional_id="sluice-e2e-txn")
        try:
            await txn.start()
            txn_error = None
        except Exception as e:  # the Kafka error, reported to the test
            txn_error = type(e).__name__
        finally:
            try:
                await txn.stop()
            except Exception:
                pass
        return {"produced": produced, "records": seen, "per_member": per_member,
                "ends": {str(tp.partition): o for tp, o in ends.items()},
                "committed": committed, "transactional_error": txn_error}

    return asyncio.run(run())


COMMANDS = {
    ("confluent", "produce"): confluent_produce,
    ("confluent", "consume"): confluent_consume,
    ("confluent", "produce_sequence"): confluent_produce_sequence,
    ("confluent", "offsets_for_times"): confluent_offsets_for_times,
    ("confluent", "metadata"): confluent_metadata,
    ("confluent", "create_topic"): confluent_create_topic,
    ("confluent", "committed"): confluent_committed,
    ("confluent", "alter_configs"): confluent_alter_configs,
    ("confluent", "create_partitions"): confluent_create_partitions,
    ("confluent", "delete_records"): confluent_delete_records,
    ("confluent", "describe_configs"): confluent_describe_configs,
    ("confluent", "topic_ids"): confluent_topic_ids,
    ("confluent", "authorized"): confluent_authorized,
    ("confluent", "acls"): confluent_acls,
    ("confluent", "list_offsets"): confluent_list_offsets,
    ("confluent", "elect_leaders"): confluent_elect_leaders,
    ("aiokafka", "roundtrip"): aio_roundtrip,
}

from group_admin import COMMANDS as GROUP_COMMANDS  # noqa: E402 (beside this file)
from kp_clients import COMMANDS as KP_COMMANDS  # noqa: E402

COMMANDS.update(GROUP_COMMANDS)
COMMANDS.update(KP_COMMANDS)

if __name__ == "__main__":
    lib, cmd, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    print(json.dumps(COMMANDS[(lib, cmd)](args)))
