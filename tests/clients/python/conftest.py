"""Starts the servers the client tests talk to: one kvd node, and a 3-node kvd cluster whose
follower the tests use. The binary is $KVD_BIN (default target/release/kvd, from the repo root);
with KVD_CLIENTS_AGAINST_REDIS=1 the single node is Debian's redis-server instead (the follower
cases are skipped), to check the tests themselves. Every process is started on free loopback
ports with a temp data dir and killed by its PID at the end."""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
import redis

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
KVD_BIN = os.path.join(REPO, os.environ.get("KVD_BIN", "target/release/kvd"))
AGAINST_REDIS = os.environ.get("KVD_CLIENTS_AGAINST_REDIS") == "1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Servers:
    def __init__(self):
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="kvd-clients-py-")

    def spawn(self, name, argv):
        log = open(os.path.join(self.tmp, name + ".log"), "wb")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def kvd(self, name, extra=()):
        port, raft = free_port(), free_port()
        self.spawn(name, [KVD_BIN, "--addr", f"127.0.0.1:{port}", "--raft-addr",
                          f"127.0.0.1:{raft}", "--id", name, *extra,
                          os.path.join(self.tmp, name)])
        return port

    def redis_server(self):
        port = free_port()
        self.spawn("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", self.tmp])
        return port

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def wait_until(what, f, timeout=30):
    deadline = time.time() + timeout
    while True:
        try:
            v = f()
            if v:
                return v
        except (redis.RedisError, OSError):
            pass
        if time.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def raft_role(port):
    return redis.Redis(port=port, decode_responses=True).info("raft").get("raft_role")


@pytest.fixture(scope="session")
def servers():
    s = Servers()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def single_port(servers):
    if AGAINST_REDIS:
        port = servers.redis_server()
        wait_until("redis-server", lambda: redis.Redis(port=port).ping())
        return port
    port = servers.kvd("single")
    wait_until("the single node to lead", lambda: raft_role(port) == "leader")
    return port


@pytest.fixture(scope="session")
def follower_port(servers):
    if AGAINST_REDIS:
        pytest.skip("no follower with redis-server")
    seed = servers.kvd("node0")
    wait_until("node0 to lead", lambda: raft_role(seed) == "leader")
    ports = [seed] + [servers.kvd(n, ["--join", f"127.0.0.1:{seed}"]) for n in ("node1", "node2")]
    for p in ports[1:]:
        wait_until("a joined follower", lambda: raft_role(p) == "follower")
    follower = ports[2]
    # Formed once a write through the follower is acknowledged.
    wait_until("a write through the follower",
               lambda: redis.Redis(port=follower).set("__formed", "1"))
    redis.Redis(port=follower).delete("__formed")
    return follower


@pytest.fixture(params=["single", "follower"])
def port(request):
    return request.getfixturevalue(request.param + "_port")


# protocol None: redis-py's default (RESP3 in redis-py 8); 2: RESP2.
@pytest.fixture(params=[None, 2], ids=["default", "resp2"])
def protocol(request):
    return request.param


@pytest.fixture
def connect(port, protocol):
    clients = []

    def make(**kw):
        if protocol is not None:
            kw.setdefault("protocol", protocol)
        c = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, **kw)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def r(connect):
    c = connect()
    c.flushdb()
    return c
