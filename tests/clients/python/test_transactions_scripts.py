"""Transactions, scripts and locks as applications use them through redis-py, against a single
node and a follower (the `port` fixture), and against the three nodes of a cluster at once:
redis-py's `Lock` (acquire, extend, release, blocking acquire with a timeout) held by clients of
different nodes never twice at a time, `pipeline(transaction=True)` with `watch()` retry loops
incrementing one counter from workers on different nodes (it ends at exactly workers * rounds),
and a script through `register_script` (EVALSHA, falling back to EVAL)."""

import os
import threading
import time

import pytest
import redis
from redis.exceptions import LockError, LockNotOwnedError, WatchError

from conftest import AGAINST_REDIS, raft_role, wait_until


@pytest.fixture(scope="module")
def cluster_ports(servers):
    """The client ports of a 3-node cluster (its own, so the counts below are its alone)."""
    if AGAINST_REDIS:
        pytest.skip("no cluster with redis-server")
    seed = servers.kvd("tx0")
    wait_until("tx0 to lead", lambda: raft_role(seed) == "leader")
    ports = [seed] + [servers.kvd(n, ["--join", f"127.0.0.1:{seed}"]) for n in ("tx1", "tx2")]
    for p in ports[1:]:
        wait_until("a joined follower", lambda: raft_role(p) == "follower")
    for p in ports:
        wait_until("a write through every node", lambda: redis.Redis(port=p).set("__formed", "1"))
    return ports


def test_register_script_runs_through_evalsha(r):
    incr_by = r.register_script(
        "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) redis.call('EXPIRE', KEYS[1], 100) return v")
    r.script_flush()
    assert incr_by(keys=["s:counter"], args=[5]) == 5  # NOSCRIPT, then EVAL
    assert incr_by(keys=["s:counter"], args=[2]) == 7  # EVALSHA
    assert r.script_exists(incr_by.sha) == [True]
    assert 0 < r.ttl("s:counter") <= 100
    read = r.register_script("#!lua flags=no-writes\nreturn redis.call('GET', KEYS[1])")
    assert read(keys=["s:counter"]) == "7"
    with pytest.raises(redis.ResponseError):
        r.register_script("return redis.call('NOSUCH')")()


def test_transaction_pipeline_and_watch(r, connect):
    with r.pipeline(transaction=True) as p:
        p.set("t:a", 1).incr("t:a").get("t:a")
        assert p.execute() == [True, 2, "2"]
    other = connect()
    with r.pipeline() as p:
        p.watch("t:a")
        assert p.get("t:a") == "2"
        other.set("t:a", 10)  # a change after WATCH: EXEC must abort
        p.multi()
        p.incr("t:a")
        with pytest.raises(WatchError):
            p.execute()
    assert r.get("t:a") == "10"

    def add_one(pipe):
        v = int(pipe.get("t:a"))
        pipe.multi()
        pipe.set("t:a", v + 1)

    assert r.transaction(add_one, "t:a") == [True]
    assert r.get("t:a") == "11"


def test_lock_acquire_extend_release(r, connect):
    lock = r.lock("l:one", timeout=5)
    assert lock.acquire(blocking=False) is True
    assert 4000 < r.pttl("l:one") <= 5000
    other = connect().lock("l:one", timeout=5)
    t0 = time.monotonic()
    assert other.acquire(blocking=True, blocking_timeout=0.3) is False
    assert time.monotonic() - t0 >= 0.2
    assert lock.extend(10) is True
    assert 10000 < r.pttl("l:one") <= 15000
    assert lock.owned() is True and other.owned() is False
    with pytest.raises(LockError):
        other.release()
    # A holder whose lock was taken over (its key overwritten) is told so by the script.
    stale = connect().lock("l:one", timeout=5)
    stale.local.token = b"not-the-owner"
    with pytest.raises(LockNotOwnedError):
        stale.release()
    lock.release()
    assert r.exists("l:one") == 0
    with pytest.raises(LockError):
        lock.release()
    assert other.acquire(blocking=False) is True
    other.release()


def test_lock_is_never_held_twice_across_nodes(cluster_ports):
    """Workers on different nodes take one lock in turn; inside it each checks that nobody else
    is inside (a shared in-process flag) and counts its turn on the server."""
    clients = [redis.Redis(port=p, decode_responses=True) for p in cluster_ports]
    clients[0].delete("lk:turns")
    inside = threading.Lock()
    errors, per_worker = [], 8

    def worker(c):
        try:
            for _ in range(per_worker):
                with c.lock("lk:mutex", timeout=10, blocking_timeout=30, sleep=0.01):
                    if not inside.acquire(blocking=False):
                        errors.append("two holders at once")
                        return
                    try:
                        c.incr("lk:turns")
                        time.sleep(0.005)
                    finally:
                        inside.release()
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(c,)) for c in clients for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert clients[0].get("lk:turns") == str(len(threads) * per_worker)


def test_watch_multi_counter_from_every_node(cluster_ports):
    """WATCH/GET/MULTI/SET/EXEC retry loops on three nodes at once: no increment is lost or
    counted twice."""
    clients = [redis.Redis(port=p, decode_responses=True) for p in cluster_ports]
    clients[0].set("wc:n", 0)
    rounds, retries, errors = 15, [0], []

    def worker(c):
        try:
            for _ in range(rounds):
                while True:
                    with c.pipeline() as p:
                        try:
                            p.watch("wc:n")
                            v = int(p.get("wc:n"))
                            p.multi()
                            p.set("wc:n", v + 1)
                            p.execute()
                            break
                        except WatchError:
                            retries[0] += 1
        except Exception as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(c,)) for c in clients for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    want = str(len(threads) * rounds)
    for c in clients:
        wait_until("every node to see the final count", lambda: c.get("wc:n") == want)
