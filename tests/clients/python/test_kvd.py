"""What applications do with redis-py against kvd: connect (ping, auth, client name, info,
config get, a database from the URL), strings, expiry, keys, SCAN iterators, pipelines."""

import time

import pytest
import redis


def test_ping_and_hello(r):
    assert r.ping() is True
    assert r.echo("hi") == "hi"


def test_auth_with_and_without_password(connect, port, protocol):
    admin = connect(single_connection_client=True)
    assert admin.config_set("requirepass", "pw-secret") is True
    try:
        with pytest.raises(redis.AuthenticationError):
            connect().ping()
        with pytest.raises(redis.AuthenticationError):
            connect(password="wrong").ping()
        assert connect(password="pw-secret").ping() is True
        assert connect(username="default", password="pw-secret").ping() is True
        url = f"redis://:pw-secret@127.0.0.1:{port}/0"
        kw = {} if protocol is None else {"protocol": protocol}
        assert redis.from_url(url, **kw).ping() is True
    finally:
        admin.config_set("requirepass", "")
    assert connect().ping() is True


def test_client_name_and_id(connect):
    c = connect(client_name="app-1", single_connection_client=True)
    assert c.client_getname() == "app-1"
    assert c.client_setname("app-2") is True
    assert c.client_getname() == "app-2"
    cid = c.client_id()
    assert isinstance(cid, int) and cid > 0
    info = c.client_info()
    assert info["name"] == "app-2" and int(info["id"]) == cid
    assert any(int(e["id"]) == cid for e in c.client_list())


def test_info(r):
    info = r.info()
    assert "redis_version" in info
    assert r.info("server")["redis_version"]
    assert "connected_clients" in r.info("clients")
    r.set("k1", "v")
    assert r.info("keyspace")["db0"]["keys"] >= 1


def test_config_get_and_set(r):
    assert r.config_get("maxmemory") == {"maxmemory": "0"}
    assert "appendonly" in r.config_get("append*")
    old = r.config_get("hash-max-ziplist-entries")["hash-max-ziplist-entries"]
    try:
        assert r.config_set("hash-max-ziplist-entries", 256) is True
        assert r.config_get("hash-max-ziplist-entries") == {"hash-max-ziplist-entries": "256"}
    finally:
        r.config_set("hash-max-ziplist-entries", old)
    with pytest.raises(redis.ResponseError, match="argument couldn't be parsed"):
        r.config_set("set-max-intset-entries", "many")


def test_database_from_url(r, port, protocol):
    kw = {"decode_responses": True}
    if protocol is not None:
        kw["protocol"] = protocol
    db2 = redis.from_url(f"redis://127.0.0.1:{port}/2", **kw)
    db2.flushdb()
    assert db2.set("only-in-2", "x")
    assert db2.get("only-in-2") == "x"
    assert r.get("only-in-2") is None
    assert int(db2.client_info()["db"]) == 2
    db2.flushdb()
    db2.close()


def test_strings(r):
    assert r.set("s", "hello") is True
    assert r.get("s") == "hello"
    assert r.append("s", " world") == 11
    assert r.strlen("s") == 11
    assert r.set("s", "x", nx=True) is None
    assert r.set("s", "x", xx=True, get=True) == "hello world"
    assert r.getset("s", "y") == "x"
    assert r.setnx("s", "z") is False
    assert r.mset({"a": "1", "b": "2"}) is True
    assert r.mget("a", "b", "nope") == ["1", "2", None]
    assert r.incr("a") == 2
    assert r.incrby("a", 10) == 12
    assert r.decr("a") == 11
    assert r.getdel("b") == "2"
    assert r.get("b") is None
    with pytest.raises(redis.ResponseError, match="not an integer"):
        r.incr("s")


def test_expiry(r):
    r.set("e", "v", ex=100)
    assert 90 <= r.ttl("e") <= 100
    assert 90_000 <= r.pttl("e") <= 100_000
    assert r.persist("e") is True
    assert r.ttl("e") == -1
    assert r.expire("e", 50) is True
    assert r.expiretime("e") > time.time()
    r.set("short", "v", px=100)
    time.sleep(0.3)
    assert r.get("short") is None
    assert r.exists("short") == 0
    assert r.ttl("missing") == -2
    r.setex("sx", 30, "v")
    assert 0 < r.ttl("sx") <= 30
    assert r.getex("sx", persist=True) == "v"
    assert r.ttl("sx") == -1


def test_keys_and_scan_iter(r):
    names = {f"p:{i}" for i in range(250)}
    r.mset({n: "v" for n in names})
    r.set("other", "v")
    assert r.exists("p:1", "p:2", "nope") == 2
    assert r.type("p:1") == "string"
    assert r.type("nope") == "none"
    assert set(r.scan_iter(match="p:*", count=37)) == names
    assert len(set(r.scan_iter())) == 251
    assert r.dbsize() == 251
    assert r.delete("p:1", "p:2", "nope") == 2
    assert r.unlink("p:3") == 1
    assert r.rename("other", "renamed") is True
    assert r.get("renamed") == "v"
    assert sorted(r.keys("renam*")) == ["renamed"]


def test_pipeline_without_transaction(r):
    pipe = r.pipeline(transaction=False)
    for i in range(100):
        pipe.set(f"pl:{i}", i)
    pipe.get("pl:7").incr("pl:7").exists("pl:0", "pl:99").delete("pl:0").ping()
    out = pipe.execute()
    assert out[:100] == [True] * 100
    assert out[100:] == ["7", 8, 2, 1, True]
    with r.pipeline(transaction=False) as p:
        p.set("x", "1").incr("x").get("x")
        assert p.execute() == [True, 2, "2"]
