#!/usr/bin/env bash
# Memory per member of one big sorted set: loads N members (default 1,000,000; member names
# "member:0000001".., scores random doubles) into a fresh single kvd node and into a fresh
# redis-server, then prints kvd's redb file size / N (after a graceful stop, which flushes the
# memtable; the raft log is compacted every 10 entries so it holds almost nothing) beside
# redis-server's INFO used_memory growth / N.
#
#   scripts/zset-memory.sh [KVD_BIN] [N]       (default target/release/kvd, 1000000)
#   ZMEM_PORT=7210 scripts/zset-memory.sh      (ports ZMEM_PORT..+2 are used)
set -euo pipefail
BIN=${1:-target/release/kvd}
N=${2:-1000000}
PORT=${ZMEM_PORT:-7210}
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

load() { # PORT: pipelines ZADDs of 1000 members, then prints INFO memory's used_memory.
python3 - "$1" "$N" <<'PY'
import random, socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb")
def enc(words):
    out = [b"*%d\r\n" % len(words)]
    for w in words:
        out.append(b"$%d\r\n%s\r\n" % (len(w), w))
    return b"".join(out)
def read():
    line = f.readline()
    if line[:1] == b"$":
        k = int(line[1:-2])
        return f.read(k + 2)[:-2] if k >= 0 else None
    return line
rnd = random.Random(1)
batch, pending = 1000, 0
for start in range(0, n, batch):
    words = [b"ZADD", b"z"]
    for i in range(start, min(n, start + batch)):
        words += [repr(rnd.uniform(-1e6, 1e6)).encode(), b"member:%07d" % i]
    s.sendall(enc(words)); pending += 1
    if pending == 32:
        for _ in range(pending): read()
        pending = 0
for _ in range(pending): read()
s.sendall(enc([b"ZCARD", b"z"])); card = read()
s.sendall(enc([b"INFO", b"memory"])); info = read().decode()
used = [l.split(":")[1] for l in info.split("\r\n") if l.startswith("used_memory:")]
print(card.decode().strip(), used[0] if used else "0")
PY
}

redis-server --port "$((PORT + 2))" --save '' --appendonly no --dir "$dir" >/dev/null 2>&1 &
pids+=($!)
"$BIN" --addr "127.0.0.1:$PORT" --raft-addr "127.0.0.1:$((PORT + 1))" \
    --compact-entries 10 --compact-keep 1 "$dir/kvd" >"$dir/kvd.log" 2>&1 &
kvd=$!
pids+=($kvd)
for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT)).close(); socket.create_connection(('127.0.0.1', $((PORT + 2)))).close()" 2>/dev/null && break
    sleep 0.1
done
read -r _ before <<<"$(python3 -c "
import socket; s = socket.create_connection(('127.0.0.1', $((PORT + 2)))); s.sendall(b'INFO memory\r\n')
import time; time.sleep(0.2); print('x', [l.split(':')[1] for l in s.recv(65536).decode().split('\r\n') if l.startswith('used_memory:')][0])")"
read -r rcard rused <<<"$(load $((PORT + 2)))"
t0=$(date +%s)
read -r kcard _ <<<"$(load "$PORT")"
t1=$(date +%s)
kill -TERM "$kvd"
wait "$kvd" || true
bytes=$(stat -c %s "$dir/kvd/kvd.redb")
echo "members: kvd ${kcard#:} (loaded in $((t1 - t0)) s), redis ${rcard#:}"
awk -v b="$bytes" -v n="$N" -v u="$rused" -v u0="$before" 'BEGIN {
    printf "kvd redb file: %d bytes, %.1f bytes/member\n", b, b / n
    printf "redis-server used_memory growth: %d bytes, %.1f bytes/member\n", u - u0, (u - u0) / n }'
