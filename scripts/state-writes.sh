#!/usr/bin/env bash
# What the state database's durable commits do to the log's fsyncs under load: starts a 3-node
# cluster on free loopback ports, runs redis-benchmark SET -c 50 -P 1 through the leader, and
# meanwhile traces the leader's writes with strace (pwrite64 and fdatasync of every thread).
# Prints, per thread, the count and latency (p50 / p99 / max) of its fdatasyncs and its bytes
# written, then the leader's state-file write bursts (100 ms buckets of the flusher's pwrites)
# beside the log fdatasyncs slower than 5 ms. strace slows the traced node (about 2x), so read
# the shape, not the absolute figures. Cleans up everything it started.
#
#   scripts/state-writes.sh                    # 16 s trace, 200k requests
#   TRACE_S=30 SW_N=400000 scripts/state-writes.sh
#   KVD_ARGS="--compact-entries 400000" scripts/state-writes.sh
set -euo pipefail

SCRIPT=state-writes
# shellcheck source=lib/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"

TRACE_S=${TRACE_S:-16}
N=${SW_N:-200000}
read -r -a EXTRA <<<"${KVD_ARGS:-}"
command -v strace >/dev/null || {
    log "needs strace (apt-get install strace)"
    exit 2
}

build_if_missing
start_three "${EXTRA[@]}"
LEADER=${PIDS[0]}

redis-benchmark -h 127.0.0.1 -p "${P[0]}" -t set -n 20000 -c 50 -d 100 -r 100000 -q \
    >/dev/null 2>&1
for t in /proc/"$LEADER"/task/*; do
    echo "$(basename "$t") $(cat "$t/comm")"
done >"$TMP/threads"
timeout "$TRACE_S" strace -f -tt -T --seccomp-bpf -e trace=fdatasync,pwrite64 \
    -o "$TMP/strace" -p "$LEADER" 2>/dev/null &
TRACER=$!
sleep 0.5
redis-benchmark -h 127.0.0.1 -p "${P[0]}" -t set -n "$N" -c 50 -d 100 -r 100000 --csv \
    2>/dev/null | tail -1 | sed 's/^/redis-benchmark (traced leader): /'
wait "$TRACER" || true

python3 - "$TMP/threads" "$TMP/strace" <<'EOF'
import collections, re, sys
names = dict(l.split() for l in open(sys.argv[1]))
call = re.compile(r'(\d+)\s+(\S+)\s+(fdatasync|pwrite64)\((\d+)(?:, .*, (\d+), \d+)?\)\s+=.*<([\d.]+)>')
syncs, written, bursts, slow = collections.defaultdict(list), collections.Counter(), collections.Counter(), []
for line in open(sys.argv[2]):
    m = call.match(line)
    if not m:
        continue
    pid, ts, name, fd, size, secs = m.groups()
    thread, ms = names.get(pid, pid), float(secs) * 1000
    if name == "fdatasync":
        syncs[thread].append(ms)
        if thread == "persist" and ms > 5:
            slow.append((ts, ms))
    else:
        written[thread] += int(size or 0)
        if thread == "flusher":
            bursts[ts[:10]] += int(size or 0)
for thread in sorted(set(syncs) | set(written)):
    d = sorted(syncs.get(thread, []))
    lat = (f"fdatasync {len(d)}: p50 {d[len(d) // 2]:.2f} p99 {d[int(len(d) * .99)]:.2f} "
           f"max {d[-1]:.2f} ms") if d else "no fdatasync"
    print(f"{thread:<10} {lat}; wrote {written[thread] / 2**20:.1f} MiB")
print("state-file bursts (flusher pwrites per 100 ms, over 1 MiB):")
for b in sorted(bursts):
    if bursts[b] > 2**20:
        print(f"  {b}  {bursts[b] / 2**20:5.1f} MiB")
print("log fdatasyncs over 5 ms (persist thread):", ", ".join(f"{t} {ms:.1f}" for t, ms in slow) or "none")
EOF
