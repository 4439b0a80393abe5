// What applications do with node-redis against kvd, in RESP2 (node-redis's default) and RESP3,
// on a single node and on a follower of a 3-node cluster: connect (ping, auth, client name,
// info, config get, a database from the URL), strings, expiry, keys, scanIterator, pipelines.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'redis';
import { againstRedis, follower, single, stop } from './servers.mjs';

const ports = {};
before(async () => {
  ports.single = await single();
  if (!againstRedis) ports.follower = await follower();
});
after(stop);

for (const target of ['single', 'follower']) {
  for (const RESP of [2, 3]) {
    describe(`${target} RESP${RESP}`, { skip: target === 'follower' && againstRedis }, () => {
      const open = [];
      async function connect(opts = {}, db = 0) {
        const c = createClient({
          url: `redis://127.0.0.1:${ports[target]}/${db}`, RESP, socket: { reconnectStrategy: false }, ...opts,
        });
        c.on('error', () => {});
        open.push(c);
        await c.connect();
        return c;
      }
      after(() => open.forEach((c) => { try { c.destroy(); } catch { /* closed */ } }));

      test('ping, echo', async () => {
        const c = await connect();
        assert.equal(await c.ping(), 'PONG');
        assert.equal(await c.echo('hi'), 'hi');
      });

      test('auth with and without a password', async () => {
        const admin = await connect();
        assert.equal(await admin.configSet('requirepass', 'pw-secret'), 'OK');
        try {
          await assert.rejects(async () => {
            const c = await connect();
            await c.ping();
          }, /NOAUTH|WRONGPASS/);
          await assert.rejects(async () => {
            const c = await connect({ password: 'wrong' });
            await c.ping();
          }, /WRONGPASS/);
          const ok = await connect({ password: 'pw-secret' });
          assert.equal(await ok.ping(), 'PONG');
          const named = await connect({ username: 'default', password: 'pw-secret' });
          assert.equal(await named.ping(), 'PONG');
        } finally {
          await admin.configSet('requirepass', '');
        }
        assert.equal(await (await connect()).ping(), 'PONG');
      });

      test('client name and id', async () => {
        const c = await connect({ name: 'app-1' });
        assert.equal(await c.clientGetName(), 'app-1');
        assert.equal(await c.clientSetName('app-2'), 'OK');
        assert.equal(await c.clientGetName(), 'app-2');
        const id = await c.clientId();
        assert.ok(Number(id) > 0);
        const list = await c.clientList();
        assert.ok(list.some((e) => Number(e.id) === Number(id) && e.name === 'app-2'));
      });

      test('info and config get', async () => {
        const c = await connect();
        assert.match(await c.info(), /redis_version:/);
        assert.match(await c.info('clients'), /connected_clients:/);
        assert.deepEqual({ ...(await c.configGet('maxmemory')) }, { maxmemory: '0' });
        assert.equal(await c.configSet('hash-max-ziplist-entries', '256'), 'OK');
        assert.deepEqual({ ...(await c.configGet('hash-max-ziplist-entries')) },
          { 'hash-max-ziplist-entries': '256' });
        await c.configSet('hash-max-ziplist-entries', '512');
      });

      test('database from the URL', async () => {
        const db2 = await connect({}, 2);
        const db0 = await connect();
        await db2.flushDb();
        assert.equal(await db2.set('only-in-2', 'x'), 'OK');
        assert.equal(await db2.get('only-in-2'), 'x');
        assert.equal(await db0.get('only-in-2'), null);
        await db2.flushDb();
      });

      test('strings', async () => {
        const c = await connect();
        await c.flushDb();
        assert.equal(await c.set('s', 'hello'), 'OK');
        assert.equal(await c.get('s'), 'hello');
        assert.equal(await c.append('s', ' world'), 11);
        assert.equal(await c.strLen('s'), 11);
        assert.equal(await c.set('s', 'x', { condition: 'NX' }), null);
        assert.equal(await c.setNX('s', 'z'), 0);
        assert.equal(await c.mSet({ a: '1', b: '2' }), 'OK');
        assert.deepEqual(await c.mGet(['a', 'b', 'nope']), ['1', '2', null]);
        assert.equal(await c.incr('a'), 2);
        assert.equal(await c.incrBy('a', 10), 12);
        assert.equal(await c.decr('a'), 11);
        assert.equal(await c.getDel('b'), '2');
        await assert.rejects(() => c.incr('s'), /not an integer/);
      });

      test('expiry', async () => {
        const c = await connect();
        await c.set('e', 'v', { expiration: { type: 'EX', value: 100 } });
        const ttl = await c.ttl('e');
        assert.ok(ttl > 90 && ttl <= 100, `ttl ${ttl}`);
        assert.equal(await c.persist('e'), 1);
        assert.equal(await c.ttl('e'), -1);
        assert.equal(await c.expire('e', 50), 1);
        await c.set('short', 'v', { expiration: { type: 'PX', value: 100 } });
        await new Promise((ok) => setTimeout(ok, 300));
        assert.equal(await c.get('short'), null);
        assert.equal(await c.ttl('missing'), -2);
      });

      test('keys and scanIterator', async () => {
        const c = await connect();
        await c.flushDb();
        const names = new Set(Array.from({ length: 250 }, (_, i) => `p:${i}`));
        await c.mSet([...names].map((n) => [n, 'v']));
        await c.set('other', 'v');
        assert.equal(await c.exists(['p:1', 'p:2', 'nope']), 2);
        assert.equal(await c.type('p:1'), 'string');
        const seen = new Set();
        for await (const keys of c.scanIterator({ MATCH: 'p:*', COUNT: 37 })) {
          for (const k of [].concat(keys)) seen.add(k);
        }
        assert.deepEqual([...seen].sort(), [...names].sort());
        assert.equal(await c.dbSize(), 251);
        assert.equal(await c.del(['p:1', 'p:2', 'nope']), 2);
        assert.equal(await c.unlink('p:3'), 1);
        assert.equal(await c.rename('other', 'renamed'), 'OK');
        assert.deepEqual(await c.keys('renam*'), ['renamed']);
      });

      test('pipelines without transactions', async () => {
        const c = await connect();
        const out = await c.multi().set('x', '1').incr('x').get('x').exists('x').del('x')
          .execAsPipeline();
        assert.deepEqual(out, ['OK', 2, '2', 1, 1]);
        // Auto-pipelining: commands issued in the same tick go out together.
        const many = await Promise.all(Array.from({ length: 100 }, (_, i) => c.set(`pl:${i}`, String(i))));
        assert.ok(many.every((r) => r === 'OK'));
        assert.equal(await c.get('pl:42'), '42');
      });
    });
  }
}
