#!/usr/bin/env bash
# Pub/Sub across nodes: starts a 3-node cluster on free loopback ports, subscribes on one node
# and publishes on another, and reports
#   - delivery latency (publish sent -> message read by the subscriber) p50/p99 over
#     PUBSUB_LAT messages sent one at a time (each PUBLISH answered before the next);
#   - throughput: PUBSUB_N messages of PUBSUB_SIZE bytes pipelined from one publisher
#     connection, messages/s until the subscriber has read the last one, checked in order.
# Cleans up everything it started.
#
#   scripts/pubsub.sh
#   PUBSUB_N=50000 PUBSUB_SIZE=100 scripts/pubsub.sh
set -euo pipefail

SCRIPT=pubsub
# shellcheck source=lib/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"

build_if_missing
read -r -a P <<<"$(free_ports 6)"
start node0 "${P[0]}" "${P[1]}"
until_ok 30 "node0 leads" is_leader "${P[0]}"
start node1 "${P[2]}" "${P[3]}" --join "127.0.0.1:${P[0]}"
start node2 "${P[4]}" "${P[5]}" --join "127.0.0.1:${P[0]}"
until_ok 60 "three voters" voters_are "${P[0]}" 3

log "publisher on node1 (:${P[2]}), subscriber on node2 (:${P[4]})"
python3 - "${P[2]}" "${P[4]}" "${PUBSUB_LAT:-2000}" "${PUBSUB_N:-100000}" "${PUBSUB_SIZE:-64}" <<'PY'
import socket, sys, time

pub_port, sub_port, lat_n, n, size = map(int, sys.argv[1:])

def conn(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out

class Reader:
    # A buffer and a read position (no copy of the rest per reply).
    def __init__(self, s):
        self.s, self.buf, self.pos = s, b"", 0
    def more(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise SystemExit("connection closed")
        self.buf = self.buf[self.pos:] + d
        self.pos = 0
    def line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                l, self.pos = self.buf[self.pos:i], i + 2
                return l
            self.more()
    def exact(self, k):
        while len(self.buf) - self.pos < k + 2:
            self.more()
        v = self.buf[self.pos:self.pos + k]
        self.pos += k + 2
        return v
    def reply(self):
        l = self.line()
        if l[:1] in b"*>":
            return [self.reply() for _ in range(int(l[1:]))]
        if l[:1] == b"$":
            return self.exact(int(l[1:]))
        return l

sub, pub = conn(sub_port), conn(pub_port)
rs, rp = Reader(sub), Reader(pub)
sub.sendall(cmd(b"SUBSCRIBE", b"bench"))
rs.reply()
# Wait until the publisher's node has its link to the subscriber's node.
deadline = time.time() + 20
while True:
    pub.sendall(cmd(b"PUBLISH", b"bench", b"probe"))
    if rp.reply() == b":1":
        break
    if time.time() > deadline:
        raise SystemExit("the peer link never came up")
    time.sleep(0.05)
while rs.reply() != [b"message", b"bench", b"probe"]:
    pass
# Probes that were counted 0 may still be in flight: drain briefly.
sub.settimeout(0.3)
try:
    while True:
        rs.reply()
except (socket.timeout, TimeoutError):
    pass
sub.settimeout(None)

lat = []
for i in range(lat_n):
    t0 = time.perf_counter()
    pub.sendall(cmd(b"PUBLISH", b"bench", b"%d" % i))
    m = rs.reply()
    lat.append(time.perf_counter() - t0)
    assert m == [b"message", b"bench", b"%d" % i], m
    rp.reply()
lat.sort()
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3
print(f"latency over {lat_n} messages (publisher node1 -> subscriber node2): "
      f"p50 {p(0.50):.3f} ms, p99 {p(0.99):.3f} ms, max {lat[-1]*1e3:.3f} ms")

payload = b"x" * size
batch = 1000
t0 = time.perf_counter()
sent = 0
import threading
def send():
    global sent
    for start in range(0, n, batch):
        buf = b"".join(cmd(b"PUBLISH", b"bench", b"%d:" % i + payload)
                       for i in range(start, min(n, start + batch)))
        pub.sendall(buf)
def drain_replies():
    for _ in range(n):
        rp.reply()
tp = threading.Thread(target=send); tr = threading.Thread(target=drain_replies)
tp.start(); tr.start()
for i in range(n):
    m = rs.reply()
    assert m[2].split(b":", 1)[0] == b"%d" % i, (i, m)
dt = time.perf_counter() - t0
tp.join(); tr.join()
print(f"throughput: {n} messages of {size} B, one pipelined publisher, in order: "
      f"{n/dt:,.0f} messages/s ({dt:.2f} s)")
PY

# Publisher side alone: redis-benchmark's PUBLISH on node1 (every message still goes to both
# peers and waits for their counts).
log "redis-benchmark PUBLISH on node1 (fan-out to 2 peers, no subscriber)"
timeout 120 redis-benchmark -p "${P[2]}" -n "${PUBSUB_N:-100000}" -P 50 -c 4 -q publish bench x \
    2>/dev/null | tr '\r' '\n' | grep -v '^$' | tail -1
