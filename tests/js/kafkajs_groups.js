#!/usr/bin/env node
// KafkaJS consumer groups against strata (issue 12). KafkaJS 2.2.4 takes min(its version, the
// broker's) of each API: FindCoordinator v2, JoinGroup v5, SyncGroup v3, OffsetCommit v5.
//
// Usage: node kafkajs_groups.js BOOTSTRAP SCENARIO, SCENARIO one of:
//   rebalance   three members on a 6-partition topic own each partition once and consume every
//               message once; a fourth joins and one leaves: consumption resumes from the
//               committed offsets, nothing skipped (a message is consumed again only where its
//               own commit failed)
//   restart     commit, close, a new consumer of the group resumes at the committed offset
//   two-groups  two groups on one topic each get every message
// Exits non-zero with a message on the first failed check; prints OK at the end.
'use strict';
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, scenario] = process.argv.slice(2);
const kafka = new Kafka({ clientId: 'kafkajs-groups', brokers: bootstrap.split(','), logLevel: logLevel.NOTHING });
const TIMEOUT_MS = 90000;

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}

function check(cond, msg) {
  if (!cond) fail(msg);
}

async function waitFor(cond, what) {
  const deadline = Date.now() + TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  fail(`timed out waiting for ${what}`);
}

// (partition:offset) -> members that consumed it; offsets whose commit failed.
class Ledger {
  constructor() { this.seen = new Map(); this.failed = new Set(); }
  consumed(member, p, o) {
    const k = `${p}:${o}`;
    this.seen.set(k, [...(this.seen.get(k) || []), member]);
  }
  count() { return this.seen.size; }
  checkComplete(ends, what, exactlyOnce) {
    for (const [p, end] of Object.entries(ends)) {
      for (let o = 0; o < end; o++) check(this.seen.has(`${p}:${o}`), `${what}: ${p}:${o} never consumed`);
    }
    const repeats = [...this.seen.entries()].filter(([, v]) => v.length > 1).map(([k]) => k);
    const unexplained = repeats.filter((k) => exactlyOnce || !this.failed.has(k));
    check(unexplained.length === 0, `${what}: consumed more than once: ${unexplained.slice(0, 10)}`);
    return repeats.length;
  }
}

class Member {
  constructor(group, topic, name, ledger) {
    this.name = name;
    this.topic = topic;
    this.ledger = ledger;
    this.assigned = new Set();
    this.consumer = kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 500 });
    this.consumer.on(this.consumer.events.GROUP_JOIN, (e) => {
      this.assigned = new Set(e.payload.memberAssignment[topic] || []);
    });
  }
  async start() {
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.topic, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        this.ledger.consumed(this.name, partition, Number(message.offset));
        try {
          await this.consumer.commitOffsets([{ topic: this.topic, partition, offset: String(Number(message.offset) + 1) }]);
        } catch (e) {
          this.ledger.failed.add(`${partition}:${message.offset}`);
        }
      },
    });
  }
  async stop() {
    await this.consumer.disconnect();
    this.assigned = new Set();
  }
}

function owners(members) {
  return Object.fromEntries(members.map((m) => [m.name, [...m.assigned].sort()]));
}

function stable(members, n) {
  const all = members.flatMap((m) => [...m.assigned]);
  return members.every((m) => m.assigned.size > 0) && all.length === n && new Set(all).size === n;
}

async function create(topic, n) {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: n, replicationFactor: 1 }], waitForLeaders: true });
  await admin.disconnect();
}

async function produce(topic, n, perPartition, ends) {
  const producer = kafka.producer();
  await producer.connect();
  for (let i = 0; i < perPartition; i++) {
    const messages = [];
    for (let p = 0; p < n; p++) messages.push({ partition: p, value: `${p}-${i}` });
    const acks = await producer.send({ topic, acks: -1, messages });
    for (const a of acks) {
      // baseOffset of a one-message batch per partition.
      ends[a.partition] = Math.max(ends[a.partition] || 0, Number(a.baseOffset) + 1);
    }
  }
  await producer.disconnect();
}

async function committed(group, topic) {
  const admin = kafka.admin();
  await admin.connect();
  const got = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  await admin.disconnect();
  return Object.fromEntries(got[0].partitions.map((p) => [p.partition, Number(p.offset)]));
}

async function rebalance() {
  const topic = 'js-rebalance', group = 'js-rebalance', n = 6;
  await create(topic, n);
  const ends = {};
  await produce(topic, n, 100, ends);
  const ledger = new Ledger();
  const members = [1, 2, 3].map((i) => new Member(group, topic, `m${i}`, ledger));
  await Promise.all(members.map((m) => m.start()));
  await waitFor(() => ledger.count() === 600 && stable(members, n), 'three members to consume 600');
  ledger.checkComplete(ends, 'three members', true);
  console.log(`three members own ${JSON.stringify(owners(members))}; 600 messages consumed once`);
  const fourth = new Member(group, topic, 'm4', ledger);
  members.push(fourth);
  await fourth.start();
  await waitFor(() => stable(members, n), 'the fourth member to get partitions');
  console.log(`four members own ${JSON.stringify(owners(members))}`);
  await produce(topic, n, 100, ends);
  const leaving = members.shift();
  await leaving.stop();
  await waitFor(() => ledger.count() === 1200 && stable(members, n), 'three members to consume 1200');
  const final = owners(members);
  const repeats = ledger.checkComplete(ends, 'after the rebalances', false);
  await Promise.all(members.map((m) => m.stop()));
  const got = await committed(group, topic);
  check(JSON.stringify(got) === JSON.stringify(ends), `committed ${JSON.stringify(got)}, want ${JSON.stringify(ends)}`);
  console.log(`after m4 joined and m1 left, ${JSON.stringify(final)} own the partitions; 1200 consumed, none skipped, ${repeats} again after a failed commit`);
}

async function restart() {
  const topic = 'js-restart', group = 'js-restart';
  await create(topic, 1);
  await produce(topic, 1, 100, {});
  const read = async (count) => {
    const offsets = [];
    const c = kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 500 });
    await c.connect();
    await c.subscribe({ topic, fromBeginning: true });
    await c.run({
      autoCommit: false,
      eachMessage: async ({ message }) => {
        if (offsets.length < count) offsets.push(Number(message.offset));
        if (offsets.length === count && count === 40) {
          await c.commitOffsets([{ topic, partition: 0, offset: '40' }]);
        }
      },
    });
    await waitFor(() => offsets.length >= count, `${count} messages`);
    await c.disconnect();
    return offsets;
  };
  const first = await read(40);
  check(JSON.stringify(first) === JSON.stringify([...Array(40).keys()]), `first consumer read ${first}`);
  const rest = await read(60);
  check(rest[0] === 40 && rest[59] === 99, `restarted consumer read ${rest.slice(0, 5)}..., want 40..99`);
  console.log('restart: the second consumer resumed at the committed offset 40');
}

async function twoGroups() {
  const topic = 'js-pubsub', n = 3;
  await create(topic, n);
  const ends = {};
  await produce(topic, n, 100, ends);
  const a = new Ledger(), b = new Ledger();
  const members = [new Member(`${topic}-a`, topic, 'a1', a), new Member(`${topic}-a`, topic, 'a2', a),
    new Member(`${topic}-b`, topic, 'b1', b)];
  await Promise.all(members.map((m) => m.start()));
  await waitFor(() => a.count() === 300 && b.count() === 300, 'both groups to read 300');
  a.checkComplete(ends, 'group a', false);
  b.checkComplete(ends, 'group b', true);
  await Promise.all(members.map((m) => m.stop()));
  console.log('two-groups: each group consumed all 300 messages');
}

const scenarios = { rebalance, restart, 'two-groups': twoGroups };
check(scenarios[scenario], `unknown scenario ${scenario}`);
scenarios[scenario]().then(() => { console.log('OK'); process.exit(0); }, (e) => fail(e.stack || e));
