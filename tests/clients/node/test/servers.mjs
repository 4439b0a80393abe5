// Starts the servers the node-redis tests talk to: one kvd node and a 3-node kvd cluster (the
// tests use a follower), from $KVD_BIN (default target/release/kvd, from the repo root), on
// free loopback ports with temp data dirs; with KVD_CLIENTS_AGAINST_REDIS=1 the single node is
// redis-server and the follower cases are skipped. Every process is killed by its PID by stop().
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const kvdBin = resolve(repo, process.env.KVD_BIN ?? 'target/release/kvd');
export const againstRedis = process.env.KVD_CLIENTS_AGAINST_REDIS === '1';

const tmp = mkdtempSync(join(tmpdir(), 'kvd-clients-node-'));
const procs = [];

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

function run(name, argv) {
  const log = openSync(join(tmp, `${name}.log`), 'w');
  const p = spawn(argv[0], argv.slice(1), { stdio: ['ignore', log, log] });
  procs.push(p);
  return p;
}

export async function kvd(name, extra = []) {
  const port = await freePort();
  const raft = await freePort();
  run(name, [kvdBin, '--addr', `127.0.0.1:${port}`, '--raft-addr', `127.0.0.1:${raft}`,
    '--id', name, ...extra, join(tmp, name)]);
  return port;
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

export async function waitUntil(what, f, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await f()) return;
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Runs `f` with a fresh connection to `port`. */
async function withClient(port, f) {
  const c = createClient({ url: `redis://127.0.0.1:${port}` });
  c.on('error', () => {});
  await c.connect();
  try {
    return await f(c);
  } finally {
    c.destroy();
  }
}

export const role = (port) => withClient(port, async (c) => /raft_role:(\w+)/.exec(await c.info('raft'))?.[1]);

export async function single() {
  if (againstRedis) {
    const port = await freePort();
    run('redis', ['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '',
      '--appendonly', 'no', '--dir', tmp]);
    await waitUntil('redis-server', () => withClient(port, (c) => c.ping()));
    return port;
  }
  const port = await kvd('single');
  await waitUntil('the single node to lead', async () => (await role(port)) === 'leader');
  return port;
}

export async function follower() {
  const seed = await kvd('node0');
  await waitUntil('node0 to lead', async () => (await role(seed)) === 'leader');
  const others = [];
  for (const n of ['node1', 'node2']) others.push(await kvd(n, ['--join', `127.0.0.1:${seed}`]));
  for (const p of others) await waitUntil('a follower', async () => (await role(p)) === 'follower');
  const port = others[1];
  await waitUntil('a write through the follower', () => withClient(port, (c) => c.set('__formed', '1')));
  return port;
}

/** The client ports of a new 3-node cluster, its first node the leader (ids prefixed `prefix`). */
export async function cluster(prefix) {
  const seed = await kvd(`${prefix}0`);
  await waitUntil('the seed to lead', async () => (await role(seed)) === 'leader');
  const ports = [seed];
  for (const n of [1, 2]) ports.push(await kvd(`${prefix}${n}`, ['--join', `127.0.0.1:${seed}`]));
  for (const p of ports.slice(1)) await waitUntil('a follower', async () => (await role(p)) === 'follower');
  for (const p of ports) await waitUntil('a write through every node', () => withClient(p, (c) => c.set('__formed', '1')));
  return ports;
}

export function stop() {
  for (const p of procs) {
    try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  rmSync(tmp, { recursive: true, force: true });
}
