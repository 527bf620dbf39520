"""A consumer-group member driven by the e2e tests, with a third-party client.

Usage: group_consumer.py <library> <json-args>
  library: confluent (confluent-kafka) or kafkapython (kafka-python)
  args: bootstrap, group, topic, out (a file), idle_exit (seconds without
        records before exiting; 0: run until killed), commit ("sync" after
        every record batch), session_timeout_ms, stop_file (optional: once
        it exists, the member leaves the group cleanly and exits),
        tolerate_commit_errors (optional: a failed commit is an event, not
        an exit, as while the coordinator moves), protocol (optional,
        confluent only: "consumer" joins with the consumer group protocol,
        where the coordinator assigns and times sessions and heartbeats)

Appends one JSON line per event to `out` (each with "t", the wall-clock
time), flushed at once (the test may kill this process at any time):
  {"ev": "assigned", "partitions": [..]}   (newly assigned, with "consumer"
                                           only those added)
  {"ev": "revoked", "partitions": [..]}    (confluent)
  {"ev": "record", "p": partition, "o": offset, "v": value}
  {"ev": "committed", "p": partition, "o": next offset}
  {"ev": "commit_failed", "error": text}   (with tolerate_commit_errors)
and, on a clean exit, {"ev": "positions", "positions": {partition: next
offset to fetch}} for the partitions it holds, then {"ev": "done"}.
"""

import json
import os
import sys
import time


def emit(f, **ev):
    ev["t"] = time.time()
    f.write(json.dumps(ev) + "\n")
    f.flush()


def run_confluent(a, f):
    from confluent_kafka import Consumer, TopicPartition

    conf = {
        "bootstrap.servers": a["bootstrap"],
        "group.id": a["group"],
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": a.get("session_timeout_ms", 6000),
        "heartbeat.interval.ms": 500,
        "partition.assignment.strategy": a.get("assignor", "range"),
        # A member that joined while its metadata had no partitions of the
        # topic (a cluster just started) sees them on the next refresh and
        # rebalances; librdkafka's default waits 5 minutes for that.
        "topic.metadata.refresh.interval.ms": 1000,
    }
    if a.get("protocol") == "consumer":
        # The coordinator owns these with this protocol; librdkafka refuses them.
        for k in ("session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy"):
            del conf[k]
        conf["group.protocol"] = "consumer"
    c = Consumer(conf)

    def on_assign(consumer, parts):
        emit(f, ev="assigned", partitions=sorted(p.partition for p in parts))

    def on_revoke(consumer, parts):
        emit(f, ev="revoked", partitions=sorted(p.partition for p in parts))

    c.subscribe([a["topic"]], on_assign=on_assign, on_revoke=on_revoke)
    last = time.time()
    idle = a.get("idle_exit", 0)
    stop = a.get("stop_file")
    while True:
        if stop and os.path.exists(stop):
            break
        msgs = c.consume(100, 0.2)
        if not msgs:
            if idle and time.time() - last > idle:
                break
            continue
        last = time.time()
        nexts = {}
        for m in msgs:
            if m.error():
                raise SystemExit(f"consume error: {m.error()}")
            emit(f, ev="record", p=m.partition(), o=m.offset(), v=m.value().decode())
            nexts[m.partition()] = m.offset() + 1
        offsets = [TopicPartition(a["topic"], p, o) for p, o in nexts.items()]
        try:
            done = c.commit(offsets=offsets, asynchronous=False)
        except Exception as e:  # KafkaException while the coordinator moves
            if not a.get("tolerate_commit_errors"):
                raise SystemExit(f"commit error: {e}")
            emit(f, ev="commit_failed", error=str(e))
            continue
        for tp in done:
            if tp.error:
                if not a.get("tolerate_commit_errors"):
                    raise SystemExit(f"commit error: {tp.error}")
                emit(f, ev="commit_failed", error=str(tp.error))
                continue
            emit(f, ev="committed", p=tp.partition, o=tp.offset)
    held = c.position(c.assignment())
    emit(f, ev="positions", positions={str(tp.partition): tp.offset for tp in held})
    c.close()
    emit(f, ev="done")


def run_kafkapython(a, f):
    from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    c = KafkaConsumer(
        bootstrap_servers=a["bootstrap"],
        group_id=a["group"],
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=a.get("session_timeout_ms", 6000),
        heartbeat_interval_ms=500,
    )

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            pass

        def on_partitions_assigned(self, assigned):
            emit(f, ev="assigned", partitions=sorted(p.partition for p in assigned))

    c.subscribe([a["topic"]], listener=Listener())
    last = time.time()
    idle = a.get("idle_exit", 0)
    while True:
        batches = c.poll(timeout_ms=500, max_records=100)
        if not batches:
            if idle and time.time() - last > idle:
                break
            continue
        last = time.time()
        offsets = {}
        for tp, msgs in batches.items():
            for m in msgs:
                emit(f, ev="record", p=m.partition, o=m.offset, v=m.value.decode())
            offsets[TopicPartition(a["topic"], tp.partition)] = OffsetAndMetadata(msgs[-1].offset + 1, "", -1)
        c.commit(offsets)
        for tp, om in offsets.items():
            emit(f, ev="committed", p=tp.partition, o=om.offset)
    held = {str(tp.partition): c.position(tp) for tp in c.assignment()}
    emit(f, ev="positions", positions=held)
    c.close()
    emit(f, ev="done")


if __name__ == "__main__":
    lib, args = sys.argv[1], json.loads(sys.argv[2])
    with open(args["out"], "a") as out:
        {"confluent": run_confluent, "kafkapython": run_kafkapython}[lib](args, out)
