"""Pub/Sub, keyspace notifications and client-side caching through redis-py, across the nodes of
a 3-node kvd cluster: the subscriber on one follower, the publisher (or the writer) on another
node. With KVD_CLIENTS_AGAINST_REDIS=1 every "node" is one redis-server (checks the tests)."""

import time

import pytest
import redis
from redis.cache import CacheConfig

from conftest import AGAINST_REDIS, Servers, raft_role, wait_until

DEADLINE = 10


@pytest.fixture(scope="module")
def nodes():
    """(leader, follower a, follower b) client ports."""
    s = Servers()
    try:
        if AGAINST_REDIS:
            port = s.redis_server()
            wait_until("redis-server", lambda: redis.Redis(port=port).ping())
            yield port, port, port
            return
        seed = s.kvd("ps0")
        wait_until("ps0 to lead", lambda: raft_role(seed) == "leader")
        others = [s.kvd(n, ["--join", f"127.0.0.1:{seed}"]) for n in ("ps1", "ps2")]
        for p in others:
            wait_until("a joined follower", lambda: raft_role(p) == "follower")
        for p in others:
            wait_until("a write through a follower", lambda: redis.Redis(port=p).set("__formed", "1"))
        yield seed, others[0], others[1]
    finally:
        s.stop()


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def proto(request):
    return request.param


def client(port, proto, **kw):
    return redis.Redis(host="127.0.0.1", port=port, protocol=proto, decode_responses=True, **kw)


def next_message(ps, want_type, timeout=DEADLINE):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = ps.get_message(timeout=0.2)
        if m is not None and m["type"] == want_type:
            return m
    raise TimeoutError(f"no {want_type} within {timeout} s")


def publish_until_counted(publish, timeout=DEADLINE):
    """PUBLISH counts the receivers of every node; a node's peer links come up after it joined,
    so the first messages may reach only local subscribers. Publishes probes until one is
    counted, then returns."""
    deadline = time.time() + timeout
    while publish("probe") < 1:
        if time.time() > deadline:
            raise TimeoutError("no subscriber counted by PUBLISH")
        time.sleep(0.05)


def drain_probes(ps, kind):
    while True:
        m = ps.get_message(timeout=0.3)
        if m is None:
            return
        assert m["type"] == kind and m["data"] == "probe", m


@pytest.mark.parametrize("kind", ["message", "pmessage", "smessage"])
def test_a_message_published_on_one_node_reaches_a_subscriber_on_another(nodes, proto, kind):
    _, pub_port, sub_port = nodes
    sub = client(sub_port, proto)
    pub = client(pub_port, proto)
    ps = sub.pubsub()
    channel = f"news.{kind}.{proto}"
    if kind == "message":
        ps.subscribe(channel)
        publish = lambda m: pub.publish(channel, m)
        assert next_message(ps, "subscribe")["channel"] == channel
    elif kind == "pmessage":
        ps.psubscribe("news.pmessage.*")
        publish = lambda m: pub.publish(channel, m)
        assert next_message(ps, "psubscribe")["channel"] == "news.pmessage.*"
    else:
        ps.ssubscribe(channel)
        publish = lambda m: pub.spublish(channel, m)
        assert next_message(ps, "ssubscribe")["channel"] == channel
    publish_until_counted(publish)
    drain_probes(ps, kind)
    for i in range(20):
        assert publish(f"m{i}") == 1
    got = [next_message(ps, kind) for _ in range(20)]
    assert [m["data"] for m in got] == [f"m{i}" for i in range(20)], "in the order published"
    assert all(m["channel"] == channel for m in got)
    if kind == "pmessage":
        assert all(m["pattern"] == "news.pmessage.*" for m in got)
    # Introspection on the subscriber's node sees the subscription.
    if kind == "message":
        assert sub.pubsub_numsub(channel) == [(channel, 1)]
        assert channel in sub.pubsub_channels("news.*")
    elif kind == "pmessage":
        assert sub.pubsub_numpat() >= 1
    else:
        assert channel in sub.pubsub_shardchannels()
    ps.close()
    sub.close()
    pub.close()


def test_a_subscriber_with_a_callback_thread(nodes, proto):
    """redis-py's run_in_thread: the way applications usually consume messages."""
    _, pub_port, sub_port = nodes
    got = []
    ps = client(sub_port, proto).pubsub()
    ps.subscribe(**{"jobs.done": lambda m: got.append(m["data"])})
    worker = ps.run_in_thread(sleep_time=0.05, daemon=True)
    try:
        pub = client(pub_port, proto)
        publish_until_counted(lambda m: pub.publish("jobs.done", m))
        pub.publish("jobs.done", "job-42")
        wait_until("the callback", lambda: "job-42" in got, DEADLINE)
    finally:
        worker.stop()
        worker.join(DEADLINE)
        ps.close()


def test_keyspace_notifications_on_a_follower_for_a_write_on_another_node(nodes, proto):
    leader, writer_port, sub_port = nodes
    sub = client(sub_port, proto)
    # notify-keyspace-events is a per-node setting (as on every Redis): the subscriber's node.
    old = sub.config_get("notify-keyspace-events")["notify-keyspace-events"]
    sub.config_set("notify-keyspace-events", "KEA")
    try:
        ps = sub.pubsub()
        key = f"ks.{proto}"
        ps.subscribe(f"__keyspace@0__:{key}")
        ps.subscribe("__keyevent@0__:del")
        next_message(ps, "subscribe")
        next_message(ps, "subscribe")
        w = client(writer_port, proto)
        w.set(key, "1")
        m = next_message(ps, "message")
        assert (m["channel"], m["data"]) == (f"__keyspace@0__:{key}", "set")
        client(leader, proto).delete(key)
        seen = {(m["channel"], m["data"]) for m in (next_message(ps, "message") for _ in range(2))}
        assert seen == {(f"__keyspace@0__:{key}", "del"), ("__keyevent@0__:del", key)}
        ps.close()
    finally:
        sub.config_set("notify-keyspace-events", old)


def test_client_side_caching_on_a_follower_sees_a_write_through_another_node(nodes, monkeypatch):
    # redis-py 8 turns its cache on only for servers whose HELLO says 7.4 or later (a version
    # gate, not a protocol need: it uses CLIENT TRACKING and RESP3 invalidation pushes, both
    # Redis 7.0). kvd answers HELLO as redis-server 7.0.15 does, so the gate is lowered here
    # (users start kvd with `--redis-version 7.4.0` instead: tests/resp3.rs checks that flag);
    # the same test passes against redis-server 7.0.15 with it.
    monkeypatch.setattr(redis.connection.CacheProxyConnection, "MIN_ALLOWED_VERSION", "7.0.0")
    _, writer_port, cached_port = nodes
    writer = client(writer_port, 3)
    writer.set("csc.k", "v1")
    cached = client(cached_port, 3, cache_config=CacheConfig())
    # The follower may not have applied the write yet: read until it has.
    wait_until("the follower to apply", lambda: cached.get("csc.k") == "v1", DEADLINE)
    cache = cached.get_cache()
    assert cache.size >= 1, "the GET was cached"
    assert cached.get("csc.k") == "v1"
    writer.set("csc.k", "v2")
    # Served from the cache until the invalidation arrives; then read again from the server.
    wait_until("the invalidation", lambda: cached.get("csc.k") == "v2", DEADLINE)
    writer.delete("csc.k")
    wait_until("the invalidation of a delete", lambda: cached.get("csc.k") is None, DEADLINE)
    cached.close()
    writer.close()
