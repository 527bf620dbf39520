"""A Quix Streams word count, run by tests/e2e/kafka_quix.rs.

Reads JSON values {"w": word} from the input topic, regroups them by word
(Quix repartitions through a topic it creates), counts each word in a
state store (backed by a compacted changelog topic Quix creates), and
writes {"w": word, "n": count} to the output topic. Runs until SIGTERM,
as in production; Quix commits its state and offsets when it stops.

argv[1]: JSON {"bootstrap", "group", "input", "output", "state_dir",
"commit_every"}: Quix commits (and writes the changelog) at least every
second and after each commit_every messages. Quix creates the output topic
with its defaults (one partition, one replica) and its own topics with the
input topic's partitions and replicas.
"""

import json
import logging
import sys

from quixstreams import Application


def main():
    args = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    app = Application(
        broker_address=args["bootstrap"],
        consumer_group=args["group"],
        auto_offset_reset="earliest",
        state_dir=args["state_dir"],
        processing_guarantee="at-least-once",
        commit_interval=1.0,
        commit_every=args["commit_every"],
    )
    words = app.topic(args["input"], value_deserializer="json")
    counts = app.topic(args["output"], value_serializer="json")
    sdf = app.dataframe(words)
    sdf = sdf.group_by(lambda v: v["w"], name="byword")

    def count(value, state):
        n = state.get("n", 0) + 1
        state.set("n", n)
        return {"w": value["w"], "n": n}

    sdf = sdf.apply(count, stateful=True)
    sdf.to_topic(counts)
    app.run()


if __name__ == "__main__":
    main()
