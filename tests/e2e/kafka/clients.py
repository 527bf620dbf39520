"""Drives a third-party Kafka client against a Sluice node for the e2e tests.

Usage: clients.py <library> <command> <json-args>
  library: confluent (confluent-kafka, librdkafka inside) or kafkapython (kafka-python)
  command: produce | consume | offsets_for_times | create_topic | delete_topic | metadata | committed

Prints one JSON document on stdout; binary fields are hex. Exits non-zero
with the client's error on stderr when the client fails.
"""

import json
import sys
import time


def hx(b):
    return None if b is None else bytes(b).hex()


def unhex(s):
    return None if s is None else bytes.fromhex(s)


# --- confluent-kafka -------------------------------------------------------

def confluent_produce(a):
    from confluent_kafka import Producer

    conf = {"bootstrap.servers": a["bootstrap"], "linger.ms": a.get("linger_ms", 5)}
    conf.update(a.get("config", {}))
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


def kp_describe_cluster(a):
    """kafka-python's describe_cluster (DescribeCluster when offered)."""

    def call(admin):
        d = admin.describe_cluster()
        return {"cluster_id": d.get("cluster_id"), "controller_id": d.get("controller_id"),
                "brokers": sorted([b.get("broker_id"), b.get("host"), b.get("port")] for b in d.get("brokers", []))}

    return _kp_admin(a, call)


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


# --- kafka-python ----------------------------------------------------------

def kp_produce(a):
    from kafka import KafkaProducer

    conf = dict(bootstrap_servers=a["bootstrap"], linger_ms=a.get("linger_ms", 5))
    conf.update(a.get("config", {}))
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
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=a["bootstrap"], **a.get("client", {}))
    try:
        admin.create_topics([NewTopic(a["topic"], a["partitions"], a.get("replication", 1),
                                      topic_configs=a.get("config", {}))])
        return {"ok": True}
    except Exception as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    finally:
        admin.close()


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
    def call(admin):
        admin.delete_topics([a["topic"]])
        return {"ok": True}

    return _kp_admin(a, call, ok_flag=True)


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
    ("kafkapython", "committed"): kp_committed,
    ("kafkapython", "produce"): kp_produce,
    ("kafkapython", "consume"): kp_consume,
    ("kafkapython", "session_consume"): kp_session_consume,
    ("kafkapython", "offsets_for_times"): kp_offsets_for_times,
    ("kafkapython", "create_topic"): kp_create_topic,
    ("kafkapython", "delete_topic"): kp_delete_topic,
    ("kafkapython", "alter_configs"): kp_alter_configs,
    ("confluent", "alter_configs"): confluent_alter_configs,
    ("confluent", "create_partitions"): confluent_create_partitions,
    ("confluent", "delete_records"): confluent_delete_records,
    ("kafkapython", "delete_records"): kp_delete_records,
    ("kafkapython", "describe_log_dirs"): kp_describe_log_dirs,
    ("kafkapython", "delete_group_offsets"): kp_delete_group_offsets,
    ("kafkapython", "create_partitions"): kp_create_partitions,
    ("confluent", "describe_configs"): confluent_describe_configs,
    ("confluent", "topic_ids"): confluent_topic_ids,
    ("kafkapython", "describe_topics"): kp_describe_topics,
    ("kafkapython", "describe_cluster"): kp_describe_cluster,
    ("kafkapython", "describe_configs"): kp_describe_configs,
    ("confluent", "list_offsets"): confluent_list_offsets,
    ("kafkapython", "list_offsets"): kp_list_offsets,
    ("confluent", "elect_leaders"): confluent_elect_leaders,
    ("kafkapython", "elect_leaders"): kp_elect_leaders,
    ("kafkapython", "describe_producers"): kp_describe_producers,
    ("aiokafka", "roundtrip"): aio_roundtrip,
}

from group_admin import COMMANDS as GROUP_COMMANDS  # noqa: E402 (beside this file)

COMMANDS.update(GROUP_COMMANDS)

if __name__ == "__main__":
    lib, cmd, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    print(json.dumps(COMMANDS[(lib, cmd)](args)))
