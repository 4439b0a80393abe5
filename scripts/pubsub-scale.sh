#!/usr/bin/env bash
# Pub/Sub at scale and across a failover, on a 3-node cluster on free loopback ports:
#   (a) SCALE_SUBS subscribers (default 10,000) spread over the 3 nodes, held by 3 Python asyncio
#       processes (one per node, thousands of connections each), each subscribed to one of
#       SCALE_CHANNELS channels. redis-benchmark SETs (SCALE_SET_N requests, 50 clients) run
#       against a follower three times: without subscribers, with them idle, and with them
#       receiving SCALE_RATE messages/s published on another follower (after one unrecorded run
#       that fills the keyspace; without and idle: SCALE_ROUNDS runs each, default 3, and their
#       medians compared). Prints SET throughput and
#       p50/p99 of each run, and the delivery latency (publish sent -> message read, one clock)
#       p50/p99 of the last.
#   (b) A publisher on follower A publishing a sequence number every 1/FAILOVER_RATE s to a
#       subscriber on follower B; the leader is SIGKILLed after 3 s. Prints messages published,
#       received, lost, duplicated or out of order, and the longest gap between two deliveries
#       (with the usual gap for comparison).
# Numbers are printed, not checked. Cleans up everything it started.
#
#   nice -n 19 scripts/pubsub-scale.sh
#   SCALE_SUBS=3000 SCALE_SET_N=50000 nice -n 19 scripts/pubsub-scale.sh
#   SCALE_ONE_NODE=1 SCALE_SUBS=9900 scripts/pubsub-scale.sh
#                       all subscribers on node2, the node taking the SETs (maxclients is 10000)
set -euo pipefail

SCRIPT=pubsub-scale
# shellcheck source=lib/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"

SUBS=${SCALE_SUBS:-10000}
CHANNELS=${SCALE_CHANNELS:-1000}
RATE=${SCALE_RATE:-500}
SET_N=${SCALE_SET_N:-100000}
ROUNDS=${SCALE_ROUNDS:-3}
FAILOVER_RATE=${FAILOVER_RATE:-200}
FAILOVER_SECS=${FAILOVER_SECS:-10}

# On exit, what the subscriber processes wrote to stderr, then the usual cleanup.
trap '[[ -s $TMP/subs.err ]] && { echo "subscriber processes:" >&2; cat "$TMP/subs.err" >&2; }; cleanup' EXIT INT TERM

build_if_missing
cluster_up() { # PREFIX: nodes PREFIX0 (the first leader), PREFIX1, PREFIX2, fresh data dirs
    read -r -a P <<<"$(free_ports 6)"
    start "${1}0" "${P[0]}" "${P[1]}"
    until_ok 30 "${1}0 leads" is_leader "${P[0]}"
    start "${1}1" "${P[2]}" "${P[3]}" --join "127.0.0.1:${P[0]}"
    start "${1}2" "${P[4]}" "${P[5]}" --join "127.0.0.1:${P[0]}"
    until_ok 60 "three voters" voters_are "${P[0]}" 3
    until_ok 30 "a write through node2" [ "$(rcli "${P[4]}" set __formed 1)" = OK ]
}

bench_set() { # PORT: "rps p50 p99" of redis-benchmark SET
    timeout 300 redis-benchmark -p "$1" -t set -n "$SET_N" -c 50 -r 100000 --csv 2>/dev/null \
        | awk -F'"' '/^"SET"/ {print $4, $10, $14}'
}

# set_rounds LABEL: SCALE_ROUNDS runs of bench_set on node2, each logged; prints the median req/s.
set_rounds() {
    local i rps p50 p99 all=()
    for ((i = 1; i <= ROUNDS; i++)); do
        read -r rps p50 p99 <<<"$(bench_set "${P[4]}")"
        log "SET on node2 $1 (run $i of $ROUNDS): $rps req/s, p50 $p50 ms, p99 $p99 ms"
        all+=("$rps")
    done
    printf '%s\n' "${all[@]}" | sort -g | awk '{ v[NR] = $1 } END { printf "%.0f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ---------------------------------------------------------------- (a) many subscribers
cluster_up node
log "(a) $SUBS subscribers on ${SCALE_ONE_NODE:+node2 only, of }3 nodes (:${P[0]} leader, :${P[2]}, :${P[4]}), $CHANNELS channels"
# A first, unrecorded run fills the keyspace: every later run overwrites the same keys.
bench_set "${P[4]}" >/dev/null
base=$(set_rounds "without subscribers")

fifo=$TMP/ctl
mkfifo "$fifo"
# The program goes to a file: its stdin is the control fifo ("publish", then "stop").
cat >"$TMP/subs.py" <<'PY'
import asyncio, multiprocessing as mp, random, resource, socket, sys, threading, time

ports = [int(p) for p in sys.argv[1:4]]
subs, channels, rate = map(int, sys.argv[4:7])
pub_port = int(sys.argv[7])  # the publisher's node (node1)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out

def worker(port, first, count, ready, stop, results):
    async def one(i, lat):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(cmd("SUBSCRIBE", "ch:%d" % (i % channels)))
        await w.drain()
        for _ in range(6):  # *3 $9 subscribe $n name :1
            await r.readline()
        counter[0] += 1
        try:
            while True:
                line = await r.readline()
                if not line:
                    return
                if line.startswith(b"$") and line[1:2] != b"-":
                    data = await r.readexactly(int(line[1:]) + 2)
                    if data.startswith(b"t="):
                        lat.append(time.time() - float(data[2:-2]))
        finally:
            w.close()

    async def main():
        lat = []
        tasks = []
        for i in range(first, first + count):
            tasks.append(asyncio.create_task(one(i, lat)))
            if len(tasks) % 200 == 0:
                await asyncio.sleep(0)
        while counter[0] < count:
            await asyncio.sleep(0.05)
        ready.release()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        results.put(lat)
        for t in tasks:
            t.cancel()

    counter = [0]
    asyncio.run(main())

ready = mp.Semaphore(0)
stop = mp.Event()
results = mp.Queue()
per = [subs // 3 + (1 if k < subs % 3 else 0) for k in range(3)]
first = [0, per[0], per[0] + per[1]]
procs = [mp.Process(target=worker, args=(ports[k], first[k], per[k], ready, stop, results))
         for k in range(3)]
for p in procs:
    p.start()
for _ in procs:
    ready.acquire()
print("ready", flush=True)

publishing = threading.Event()
def publisher():
    # On node1, to random channels, at a steady rate; replies read by a second thread.
    s = socket.create_connection(("127.0.0.1", pub_port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sent = [0]
    def drain():
        while True:
            if not s.recv(1 << 16):
                return
    threading.Thread(target=drain, daemon=True).start()
    period = 1.0 / rate
    next_t = time.time()
    while publishing.is_set():
        s.sendall(cmd("PUBLISH", "ch:%d" % random.randrange(channels), "t=%.6f" % time.time()))
        sent[0] += 1
        next_t += period
        d = next_t - time.time()
        if d > 0:
            time.sleep(d)
    print("published", sent[0], flush=True)

for line in sys.stdin:
    line = line.strip()
    if line == "publish":
        publishing.set()
        threading.Thread(target=publisher, daemon=True).start()
        print("publishing", flush=True)
    elif line == "stop":
        publishing.clear()
        time.sleep(1.0)
        stop.set()
        lat = []
        for _ in procs:
            lat += results.get()
        lat.sort()
        q = lambda x: lat[min(len(lat) - 1, int(x * len(lat)))] * 1e3 if lat else float("nan")
        print(f"delivered {len(lat)} messages: p50 {q(0.5):.2f} ms, p99 {q(0.99):.2f} ms, "
              f"max {q(1.0):.2f} ms", flush=True)
        break
for p in procs:
    p.join(10)
PY
if [[ -n ${SCALE_ONE_NODE:-} ]]; then SUB_PORTS=("${P[4]}" "${P[4]}" "${P[4]}"); else SUB_PORTS=("${P[0]}" "${P[2]}" "${P[4]}"); fi
python3 "$TMP/subs.py" "${SUB_PORTS[@]}" "$SUBS" "$CHANNELS" "$RATE" "${P[2]}" \
    <"$fifo" >"$TMP/subs.out" 2>"$TMP/subs.err" &
SUBS_PID=$!
PIDS+=("$SUBS_PID")
exec 7>"$fifo"
until_ok 300 "$SUBS subscribers" grep -q '^ready' "$TMP/subs.out"
log "subscribed: $(rcli "${P[0]}" info clients | tr -d '\r' | grep connected_clients), \
$(rcli "${P[2]}" info clients | tr -d '\r' | grep connected_clients), \
$(rcli "${P[4]}" info clients | tr -d '\r' | grep connected_clients)"
idle=$(set_rounds "with $SUBS idle subscribers")
log "idle subscribers: median SET $idle req/s against $base without: $(awk -v a="$idle" -v b="$base" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }')"
echo publish >&7
until_ok 30 "the publisher" grep -q '^publishing' "$TMP/subs.out"
read -r rps p50 p99 <<<"$(bench_set "${P[4]}")"
log "SET on node2 with $SUBS subscribers receiving $RATE msg/s (published on node1): $rps req/s, p50 $p50 ms, p99 $p99 ms"
echo stop >&7
exec 7>&-
until_ok 120 "the delivery report" grep -q '^delivered' "$TMP/subs.out"
log "delivery while SETs ran: $(grep '^delivered' "$TMP/subs.out"), of $(sed -n 's/^published //p' "$TMP/subs.out") published x $((SUBS / CHANNELS)) subscribers each"
wait "$SUBS_PID" 2>/dev/null || true
for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
PIDS=()

# ---------------------------------------------------------------- (b) leader failover
cluster_up failover
LEADER_PID=${PIDS[0]}
log "(b) publisher on node1 (:${P[2]}) -> subscriber on node2 (:${P[4]}), $FAILOVER_RATE msg/s; SIGKILL the leader node0 after 3 s"
python3 - "${P[2]}" "${P[4]}" "$FAILOVER_RATE" "$FAILOVER_SECS" "$LEADER_PID" <<'PY'
import os, signal, socket, sys, threading, time

pub_port, sub_port, rate, secs, leader_pid = map(int, sys.argv[1:])

def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out

sub = socket.create_connection(("127.0.0.1", sub_port))
sub.sendall(cmd("SUBSCRIBE", "fo"))
f = sub.makefile("rb")
for _ in range(6):
    f.readline()
pub = socket.create_connection(("127.0.0.1", pub_port))
pub.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
pf = pub.makefile("rb")
# The peer link from node1 to node2 is up once a probe is counted.
deadline = time.time() + 20
while True:
    pub.sendall(cmd("PUBLISH", "fo", "probe"))
    if int(pf.readline()[1:]) >= 1:
        break
    if time.time() > deadline:
        sys.exit("the peer link never came up")
    time.sleep(0.05)

got = []  # (seq, time read)
def reader():
    while True:
        line = f.readline()
        if not line:
            return
        if line.startswith(b"$"):
            data = f.read(int(line[1:]) + 2)[:-2]
            if data.isdigit():
                got.append((int(data), time.time()))
threading.Thread(target=reader, daemon=True).start()
replies = {"ok": 0, "err": 0, "counts": []}
def pub_replies():
    while True:
        line = pf.readline()
        if not line:
            return
        if line.startswith(b":"):
            replies["ok"] += 1
            replies["counts"].append(int(line[1:]))
        else:
            replies["err"] += 1
threading.Thread(target=pub_replies, daemon=True).start()

n = rate * secs
period = 1.0 / rate
t0 = time.time()
kill_at = t0 + 3
killed = None
for i in range(n):
    if killed is None and time.time() >= kill_at:
        os.kill(leader_pid, signal.SIGKILL)
        killed = time.time()
    pub.sendall(cmd("PUBLISH", "fo", str(i)))
    d = t0 + (i + 1) * period - time.time()
    if d > 0:
        time.sleep(d)
time.sleep(2)
seqs = [s for s, _ in got]
received = set(seqs)
lost = [i for i in range(n) if i not in received]
dups = len(seqs) - len(received)
disorder = sum(1 for a, b in zip(seqs, seqs[1:]) if b < a)
times = [t for _, t in got]
gaps = sorted(((b - a, a) for a, b in zip(times, times[1:])), reverse=True)
usual = sorted(b - a for a, b in zip(times, times[1:]))[len(times) // 2] if len(times) > 2 else 0
gap, at = gaps[0] if gaps else (0, 0)
print(f"published {n} at {rate}/s over {secs} s; leader killed {killed - t0:.2f} s in")
print(f"received {len(received)}, lost {len(lost)}, duplicated {dups}, out of order {disorder}")
if lost:
    print(f"lost sequence numbers: {lost[:10]}{' ...' if len(lost) > 10 else ''}")
print(f"longest gap between deliveries {gap*1e3:.1f} ms, starting {at - killed:+.2f} s from the kill "
      f"(usual gap {usual*1e3:.1f} ms)")
print(f"PUBLISH replies: {replies['ok']} counts, {replies['err']} errors; "
      f"counts seen: {sorted(set(replies['counts']))}")
PY
