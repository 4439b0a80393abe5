// Transactions and scripts through node-redis against kvd, in RESP2 and RESP3, on a single node
// and a follower of a 3-node cluster: `.multi()...exec()`, `.watch()` aborting EXEC with a
// WatchError after another client's write, a script through `defineScript` (EVALSHA, falling
// back to EVAL) and a WATCH/MULTI retry loop run by clients of three nodes at once, whose
// counter ends at exactly clients * rounds.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, defineScript } from 'redis';
import { WatchError } from '@redis/client/dist/lib/errors.js';
import { againstRedis, cluster, follower, single, stop } from './servers.mjs';

const ports = {};
before(async () => {
  ports.single = await single();
  if (!againstRedis) {
    ports.follower = await follower();
    ports.cluster = await cluster('tx');
  }
});
after(stop);

const incrBy = defineScript({
  SCRIPT: "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) redis.call('EXPIRE', KEYS[1], 100) return v",
  NUMBER_OF_KEYS: 1,
  parseCommand(parser, key, n) {
    parser.pushKey(key);
    parser.push(String(n));
  },
  transformReply: (reply) => reply,
});

async function open(port, RESP, list) {
  const c = createClient({
    url: `redis://127.0.0.1:${port}`, RESP, socket: { reconnectStrategy: false }, scripts: { incrBy },
  });
  c.on('error', () => {});
  list.push(c);
  await c.connect();
  return c;
}

for (const target of ['single', 'follower']) {
  for (const RESP of [2, 3]) {
    describe(`${target} RESP${RESP}`, { skip: target === 'follower' && againstRedis }, () => {
      const clients = [];
      const connect = () => open(ports[target], RESP, clients);
      after(() => clients.forEach((c) => { try { c.destroy(); } catch { /* closed */ } }));

      test('multi ... exec', async () => {
        const c = await connect();
        await c.del('t:a');
        const replies = await c.multi().set('t:a', '1').incr('t:a').get('t:a').exec();
        assert.deepEqual(replies, ['OK', 2, '2']);
      });

      test('watch aborts exec after another client writes', async () => {
        const c = await connect();
        const other = await connect();
        await c.set('t:w', '1');
        await c.watch('t:w');
        assert.equal(await c.get('t:w'), '1');
        await other.set('t:w', '10');
        await assert.rejects(c.multi().incr('t:w').exec(), WatchError);
        assert.equal(await c.get('t:w'), '10');
        await c.watch('t:w');
        const v = Number(await c.get('t:w'));
        assert.deepEqual(await c.multi().set('t:w', String(v + 1)).exec(), ['OK']);
        assert.equal(await c.get('t:w'), '11');
      });

      test('defineScript: EVALSHA, falling back to EVAL', async () => {
        const c = await connect();
        await c.del('s:n');
        await c.scriptFlush();
        assert.equal(await c.incrBy('s:n', 5), 5);
        assert.equal(await c.incrBy('s:n', 2), 7);
        assert.deepEqual(await c.scriptExists(incrBy.SHA1), [1]);
        const ttl = await c.ttl('s:n');
        assert.ok(ttl > 0 && ttl <= 100, `ttl ${ttl}`);
      });
    });
  }
}

describe('three nodes', { skip: againstRedis }, () => {
  const clients = [];
  after(() => clients.forEach((c) => { try { c.destroy(); } catch { /* closed */ } }));

  test('a WATCH/MULTI counter incremented from every node loses and repeats nothing', async () => {
    const rounds = 15;
    const workers = [];
    for (const port of ports.cluster) {
      for (let i = 0; i < 2; i++) workers.push(await open(port, 2, clients));
    }
    await workers[0].set('wc:n', '0');
    let retries = 0;
    await Promise.all(workers.map(async (c) => {
      for (let r = 0; r < rounds; r++) {
        for (;;) {
          await c.watch('wc:n');
          const v = Number(await c.get('wc:n'));
          try {
            await c.multi().set('wc:n', String(v + 1)).exec();
            break;
          } catch (e) {
            if (!(e instanceof WatchError)) throw e;
            retries++;
          }
        }
      }
    }));
    const want = String(workers.length * rounds);
    for (const c of workers.filter((_, i) => i % 2 === 0)) {
      const deadline = Date.now() + 10000;
      while ((await c.get('wc:n')) !== want && Date.now() < deadline) {
        await new Promise((ok) => setTimeout(ok, 50));
      }
      assert.equal(await c.get('wc:n'), want);
    }
  });
});
