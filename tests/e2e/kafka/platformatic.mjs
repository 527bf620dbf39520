// Drives @platformatic/kafka (a Kafka client written in JavaScript from the
// protocol up, speaking the newest versions: Fetch by topic id, CreateTopics
// v7, DeleteTopics v6) for the e2e tests:
// `node platformatic.mjs <command> '<json args>'` prints one JSON object.
// Byte fields are hex. The package is ESM only, so it is imported by path
// from NODE_PATH (bare imports do not look there).

import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const pk = await import(pathToFileURL(join(process.env.NODE_PATH, '@platformatic/kafka/dist/index.js')).href);
const { Admin, Consumer, Producer, ProduceAcks } = pk;

const hx = (b) => (b === null || b === undefined ? null : Buffer.from(b).toString('hex'));
const unhex = (s) => (s === null || s === undefined ? undefined : Buffer.from(s, 'hex'));
const idHex = (id) => String(id).replaceAll('-', '');
const base = (a, clientId) => ({ clientId, bootstrapBrokers: [a.bootstrap], retries: 8, retryDelay: 250 });

// Creates a topic (CreateTopics v7) and answers its id as 32 hex digits.
async function create(a) {
  const admin = new Admin(base(a, 'sluice-e2e-admin'));
  try {
    const created = await admin.createTopics({ topics: [a.topic], partitions: a.partitions, replicas: 1 });
    return { id: idHex(created[0].id), partitions: created[0].partitions };
  } finally {
    await admin.close();
  }
}

// Deletes a topic (DeleteTopics v6).
async function remove(a) {
  const admin = new Admin(base(a, 'sluice-e2e-admin'));
  try {
    await admin.deleteTopics({ topics: [a.topic] });
    return { ok: true };
  } finally {
    await admin.close();
  }
}

// An idempotent producer with acks=all sends the records in one call. The
// answer gives each partition's base offset, so a record's offset is that
// plus its index among the records sent to its partition.
async function produce(a) {
  const producer = new Producer({ ...base(a, 'sluice-e2e-producer'), idempotent: true, acks: ProduceAcks.ALL });
  try {
    const messages = a.records.map((r) => ({
      topic: a.topic,
      partition: r.partition,
      key: unhex(r.key),
      value: unhex(r.value),
      headers: new Map((r.headers || []).map(([k, v]) => [Buffer.from(k), unhex(v)])),
      ...(r.timestamp === undefined ? {} : { timestamp: BigInt(r.timestamp) }),
    }));
    const answer = await producer.send({ messages });
    const start = Object.fromEntries(answer.offsets.map((o) => [o.partition, BigInt(o.offset)]));
    const seen = {};
    const results = a.records.map((r) => {
      const i = seen[r.partition] || 0n;
      seen[r.partition] = i + 1n;
      return { partition: r.partition, offset: Number(start[r.partition] + i) };
    });
    return { results };
  } finally {
    await producer.close();
  }
}

// A member of group a.group (a.protocol: "classic" or "consumer") reads
// a.topic from the earliest offset until a.expect records came (or 30 s
// passed), commits, and answers the records, the committed offsets and how
// an admin client describes the group while the member is still in it.
async function consume(a) {
  const consumer = new Consumer({
    ...base(a, 'sluice-e2e-consumer'),
    groupId: a.group,
    groupProtocol: a.protocol || 'classic',
    sessionTimeout: 10000,
    heartbeatInterval: 500,
    maxWaitTime: 200,
  });
  const records = [];
  let stream;
  try {
    stream = await consumer.consume({ topics: [a.topic], mode: 'earliest', autocommit: false });
    await new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, 30000);
      stream.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      stream.on('data', (m) => {
        records.push({
          partition: m.partition,
          offset: Number(m.offset),
          key: m.key && m.key.length ? hx(m.key) : null,
          value: hx(m.value),
          headers: [...m.headers].map(([k, v]) => [Buffer.from(k).toString(), hx(v)]),
          timestamp: Number(m.timestamp),
        });
        if (records.length >= a.expect) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const last = {};
    for (const r of records) last[r.partition] = Math.max(last[r.partition] ?? -1, r.offset);
    await consumer.commit({
      offsets: Object.entries(last).map(([p, o]) => ({
        topic: a.topic,
        partition: Number(p),
        offset: BigInt(o + 1),
        leaderEpoch: 0,
      })),
    });
    const committed = await consumer.listCommittedOffsets({
      topics: [{ topic: a.topic, partitions: Object.keys(last).map(Number) }],
    });
    const admin = new Admin(base(a, 'sluice-e2e-admin'));
    let described;
    try {
      const groups = await admin.describeGroups({ groups: [a.group] });
      const g = groups.get(a.group);
      described = { state: g.state, members: g.members.size, protocol: g.protocol };
    } finally {
      await admin.close();
    }
    return {
      records,
      committed: (committed.get(a.topic) || []).map(Number),
      described,
    };
  } finally {
    if (stream) await stream.close();
    await consumer.close(true);
  }
}

const commands = { create, remove, produce, consume };
const [cmd, json] = process.argv.slice(2);
try {
  const out = await commands[cmd](JSON.parse(json));
  process.stdout.write(JSON.stringify(out) + '\n');
} catch (e) {
  const causes = [];
  for (let c = e; c && causes.length < 6; c = c.cause ?? (c.errors && c.errors[0])) causes.push(`${c.name}: ${c.message}`);
  process.stdout.write(JSON.stringify({ error: causes.join(' <- ') }) + '\n');
}
