// Pub/Sub, keyspace notifications and client-side caching through node-redis, across the nodes
// of a 3-node kvd cluster (subscriber on one follower, publisher or writer on another node), in
// RESP2 and RESP3. With KVD_CLIENTS_AGAINST_REDIS=1 every "node" is one redis-server.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'redis';
import { againstRedis, kvd, role, single, stop, waitUntil } from './servers.mjs';

const DEADLINE = 10000;
let leader, pubNode, subNode;

before(async () => {
  if (againstRedis) {
    leader = pubNode = subNode = await single();
    return;
  }
  leader = await kvd('ps0');
  await waitUntil('ps0 to lead', async () => (await role(leader)) === 'leader');
  pubNode = await kvd('ps1', ['--join', `127.0.0.1:${leader}`]);
  subNode = await kvd('ps2', ['--join', `127.0.0.1:${leader}`]);
  for (const p of [pubNode, subNode]) {
    await waitUntil('a follower', async () => (await role(p)) === 'follower');
  }
});
after(stop);

const open = [];
after(() => open.forEach((c) => { try { c.destroy(); } catch { /* closed */ } }));

async function connect(port, RESP, opts = {}) {
  const c = createClient({ url: `redis://127.0.0.1:${port}`, RESP, socket: { reconnectStrategy: false }, ...opts });
  c.on('error', () => {});
  open.push(c);
  await c.connect();
  return c;
}

/** PUBLISH counts the receivers of every node; peer links come up after a node joined, so
 * probes are published until one is counted. */
async function publishUntilCounted(publish) {
  await waitUntil('a subscriber counted by PUBLISH', async () => (await publish('probe')) >= 1, DEADLINE);
}

/** Resolves once `messages` holds `n` non-probe messages, or rejects at the deadline. */
async function collect(messages, n) {
  await waitUntil(`${n} messages`, () => messages.filter((m) => m !== 'probe').length >= n, DEADLINE);
  return messages.filter((m) => m !== 'probe');
}

for (const RESP of [2, 3]) {
  describe(`cluster RESP${RESP}`, () => {
    for (const kind of ['subscribe', 'pSubscribe', 'sSubscribe']) {
      test(`${kind} on one follower, publish on another`, async () => {
        const sub = await connect(subNode, RESP);
        const pub = await connect(pubNode, RESP);
        const channel = `news.${kind}.${RESP}.c`;
        const got = [];
        let publish;
        if (kind === 'subscribe') {
          await sub.subscribe(channel, (m, ch) => { assert.equal(ch, channel); got.push(m); });
          publish = (m) => pub.publish(channel, m);
        } else if (kind === 'pSubscribe') {
          await sub.pSubscribe(`news.${kind}.${RESP}.*`, (m, ch) => { assert.equal(ch, channel); got.push(m); });
          publish = (m) => pub.publish(channel, m);
        } else {
          await sub.sSubscribe(channel, (m, ch) => { assert.equal(ch, channel); got.push(m); });
          publish = (m) => pub.sPublish(channel, m);
        }
        await publishUntilCounted(publish);
        const sent = [];
        for (let i = 0; i < 20; i++) {
          sent.push(`m${i}`);
          assert.equal(await publish(`m${i}`), 1);
        }
        assert.deepEqual(await collect(got, 20), sent, 'in the order published');
      });
    }

    test('keyspace notifications on a follower for a write on another node', async () => {
      const sub = await connect(subNode, RESP);
      const admin = await connect(subNode, RESP);
      const old = (await admin.configGet('notify-keyspace-events'))['notify-keyspace-events'];
      await admin.configSet('notify-keyspace-events', 'KEA');
      try {
        const key = `ks.${RESP}`;
        const events = [];
        await sub.subscribe(`__keyspace@0__:${key}`, (m) => events.push(m));
        const writer = await connect(pubNode, RESP);
        await writer.set(key, '1');
        await (await connect(leader, RESP)).del(key);
        await waitUntil('set and del', () => events.length >= 2, DEADLINE);
        assert.deepEqual(events, ['set', 'del']);
      } finally {
        await admin.configSet('notify-keyspace-events', old);
      }
    });
  });
}

test('client-side caching (RESP3) on a follower sees a write through another node', async () => {
  const writer = await connect(pubNode, 3);
  await writer.set('csc.node', 'v1');
  const cached = await connect(subNode, 3, { clientSideCache: { ttl: 0, maxEntries: 0 } });
  await waitUntil('the follower to apply', async () => (await cached.get('csc.node')) === 'v1', DEADLINE);
  assert.ok(cached.clientSideCache.size() >= 1, 'the GET was cached');
  const hits = cached.clientSideCache.stats().hitCount;
  assert.equal(await cached.get('csc.node'), 'v1');
  assert.equal(cached.clientSideCache.stats().hitCount, hits + 1, 'served from the cache');
  await writer.set('csc.node', 'v2');
  await waitUntil('the invalidation', async () => (await cached.get('csc.node')) === 'v2', DEADLINE);
});
