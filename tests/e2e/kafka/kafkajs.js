// Drives KafkaJS (a Kafka client written in JavaScript, no librdkafka) for
// the e2e tests: `node kafkajs.js <command> '<json args>'` prints one JSON
// object. Byte fields are hex; null stays null. Found through NODE_PATH.
'use strict';

const { Kafka, logLevel, CompressionTypes, ConfigResourceTypes } = require('kafkajs');

const hx = (b) => (b === null || b === undefined ? null : Buffer.from(b).toString('hex'));
const unhex = (s) => (s === null || s === undefined ? null : Buffer.from(s, 'hex'));

function sasl(s) {
  if (s.mechanism !== 'oauthbearer') return s;
  return { mechanism: 'oauthbearer', oauthBearerProvider: async () => ({ value: s.token }) };
}

function client(a) {
  return new Kafka({
    clientId: 'sluice-e2e',
    brokers: [a.bootstrap],
    logLevel: logLevel.NOTHING,
    retry: { retries: 8 },
    // e.g. { mechanism: 'scram-sha-256', username, password }, or
    // { mechanism: 'oauthbearer', token } (the token the provider gives)
    ...(a.sasl ? { sasl: sasl(a.sasl) } : {}),
  });
}

// Records in order; one send per call. Offsets come back per partition as
// a base offset, so each record's offset is base + its index there.
async function produce(a) {
  const producer = client(a).producer({ idempotent: a.idempotent !== false, maxInFlightRequests: 1 });
  await producer.connect();
  const messages = a.records.map((r) => {
    const m = { key: unhex(r.key), value: unhex(r.value), partition: r.partition };
    if (r.headers) m.headers = Object.fromEntries(r.headers.map(([k, v]) => [k, unhex(v)]));
    if (r.timestamp !== undefined) m.timestamp = String(r.timestamp);
    return m;
  });
  const compression = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP }[a.compression || 'none'];
  const acks = a.acks === undefined ? -1 : a.acks;
  const answer = await producer.send({ topic: a.topic, acks, compression, messages });
  await producer.disconnect();
  const base = Object.fromEntries(answer.map((p) => [p.partition, BigInt(p.baseOffset)]));
  const seen = {};
  const results = a.records.map((r) => {
    const i = seen[r.partition] || 0n;
    seen[r.partition] = i + 1n;
    return { partition: r.partition, offset: Number(base[r.partition] + i) };
  });
  return { results };
}

function record(partition, m) {
  return {
    partition,
    offset: Number(m.offset),
    key: hx(m.key),
    value: hx(m.value),
    headers: Object.entries(m.headers || {}).map(([k, v]) => [k, hx(v)]),
    timestamp: Number(m.timestamp),
  };
}

// Reads `count` records of one partition from `offset`: KafkaJS has no
// assign(), so a consumer of a group of its own seeks there once it runs.
async function consume(a) {
  const consumer = client(a).consumer({ groupId: `sluice-e2e-read-${process.pid}-${Date.now()}` });
  await consumer.connect();
  await consumer.subscribe({ topic: a.topic, fromBeginning: true });
  const out = [];
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      if (partition !== a.partition || Number(message.offset) < a.offset || out.length >= a.count) return;
      out.push(record(partition, message));
      if (out.length >= a.count) done();
    },
  });
  consumer.seek({ topic: a.topic, partition: a.partition, offset: String(a.offset) });
  const timer = setTimeout(done, (a.timeout || 30) * 1000);
  await finished;
  clearTimeout(timer);
  await consumer.disconnect();
  return { records: out };
}

// Runs `members` consumers of group `group` in this process until they
// have consumed `count` records between them, committing as they go, then
// stops them. Reports what each member was assigned and consumed.
async function group(a) {
  const kafka = client(a);
  const members = [];
  let total = 0;
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  for (let n = 0; n < a.members; n++) {
    const consumer = kafka.consumer({ groupId: a.group, sessionTimeout: 10000, heartbeatInterval: 500 });
    const me = { consumed: [], assigned: [] };
    members.push({ consumer, me });
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      me.assigned = (e.payload.memberAssignment[a.topic] || []).slice().sort();
    });
    await consumer.connect();
    await consumer.subscribe({ topic: a.topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        me.consumed.push([partition, Number(message.offset)]);
        total += 1;
        if (total >= a.count) done();
      },
    });
  }
  const deadline = Date.now() + (a.timeout || 60) * 1000;
  const timer = setTimeout(done, (a.timeout || 60) * 1000);
  await finished;
  clearTimeout(timer);
  // Then wait for the group to settle: every member holding partitions,
  // none held twice, all `partitions` held.
  const settled = () => {
    const held = members.flatMap((m) => m.me.assigned);
    return members.every((m) => m.me.assigned.length > 0) && held.length === a.partitions && new Set(held).size === a.partitions;
  };
  while (!settled() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  // What each member holds now: the first member to leave below makes the
  // group rebalance, and the others may be handed its partitions before
  // they leave too.
  const assigned = members.map((m) => m.me.assigned.slice());
  // Let the last batches' commits go out before leaving the group.
  await new Promise((r) => setTimeout(r, 500));
  for (const m of members) await m.consumer.disconnect();
  const admin = kafka.admin();
  await admin.connect();
  const committed = await admin.fetchOffsets({ groupId: a.group, topics: [a.topic] });
  const described = await admin.describeGroups([a.group]);
  await admin.disconnect();
  return {
    members: members.map((m, i) => ({ consumed: m.me.consumed, assigned: assigned[i] })),
    committed: committed[0].partitions.map((p) => [p.partition, Number(p.offset)]),
    state: described.groups[0].state,
  };
}

async function admin(a) {
  const adm = client(a).admin();
  await adm.connect();
  const out = {};
  try {
    if (a.create) {
      out.created = await adm.createTopics({ topics: [{ topic: a.topic, numPartitions: a.create }] });
      out.again = await adm.createTopics({ topics: [{ topic: a.topic, numPartitions: a.create }] });
    }
    out.topics = (await adm.listTopics()).sort();
    out.offsets = (await adm.fetchTopicOffsets(a.topic))
      .map((p) => [p.partition, Number(p.low), Number(p.high)])
      .sort((x, y) => x[0] - y[0]);
    if (a.timestamp !== undefined) {
      out.by_time = (await adm.fetchTopicOffsetsByTimestamp(a.topic, a.timestamp))
        .map((p) => [p.partition, Number(p.offset)])
        .sort((x, y) => x[0] - y[0]);
    }
  } finally {
    await adm.disconnect();
  }
  return out;
}

// Changes a topic with the admin client: its retention (AlterConfigs), its
// partition count, and its records below an offset; reports what
// DescribeConfigs and the offsets say afterwards.
async function manage(a) {
  const adm = client(a).admin();
  await adm.connect();
  try {
    const topic = { type: ConfigResourceTypes.TOPIC, name: a.topic };
    await adm.alterConfigs({
      validateOnly: false,
      resources: [{ ...topic, configEntries: [{ name: 'retention.ms', value: String(a.retention_ms) }] }],
    });
    await adm.createPartitions({ topicPartitions: [{ topic: a.topic, count: a.partitions }] });
    await adm.deleteTopicRecords({ topic: a.topic, partitions: [{ partition: 0, offset: String(a.delete_before) }] });
    const described = await adm.describeConfigs({ includeSynonyms: false, resources: [topic] });
    const configs = Object.fromEntries(described.resources[0].configEntries.map((c) => [c.configName, c.configValue]));
    const offsets = (await adm.fetchTopicOffsets(a.topic))
      .map((p) => [p.partition, Number(p.low), Number(p.high)])
      .sort((x, y) => x[0] - y[0]);
    let shrink = null;
    try {
      await adm.createPartitions({ topicPartitions: [{ topic: a.topic, count: 1 }] });
    } catch (e) {
      shrink = `${e.name}: ${e.message}`;
    }
    return { configs, offsets, shrink };
  } finally {
    await adm.disconnect();
  }
}

// A transactional producer: the node refuses transactions, and KafkaJS must
// say so instead of hanging or half-writing.
async function transactional(a) {
  const producer = client(a).producer({ transactionalId: 'sluice-e2e-tx', idempotent: true, maxInFlightRequests: 1 });
  try {
    await producer.connect();
    const tx = await producer.transaction();
    await tx.send({ topic: a.topic, messages: [{ value: 'in a transaction', partition: 0 }] });
    await tx.commit();
    return { refused: false };
  } catch (e) {
    const cause = e.cause ? `${e.cause.name}: ${e.cause.message}` : null;
    return { refused: true, error: `${e.name}: ${e.message}`, type: e.type || null, cause };
  } finally {
    await producer.disconnect().catch(() => {});
  }
}

const commands = { produce, consume, group, admin, manage, transactional };

(async () => {
  const [cmd, json] = process.argv.slice(2);
  const run = commands[cmd];
  if (!run) throw new Error(`unknown command ${cmd}`);
  const out = await run(JSON.parse(json));
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
})().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
