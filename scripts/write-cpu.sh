#!/usr/bin/env bash
# Where a write's CPU goes, per node and per thread: starts a 3-node cluster on free loopback
# ports, runs redis-benchmark tests through the leader one after the other, and reads the CPU
# time of every thread of the leader and of one follower (/proc/PID/task/*/stat) before and
# after each run. Prints, per test, its req/s, each node's CPU (% of one core over the run) by
# thread name, and the CPU summed over the three nodes per request (the other follower counted
# as the one read). Cleans up everything it started.
#
#   scripts/write-cpu.sh                           # SET then ZADD
#   CPU_TESTS="set hset zadd" CPU_N=300000 scripts/write-cpu.sh
#
# Environment (all optional):
#   CPU_TESTS    redis-benchmark -t tests, one run each   (default "set zadd")
#   CPU_N        requests per run                         (default 300000)
#   CPU_PIPELINE redis-benchmark -P                       (default 16)
#   KVD_BIN      the kvd binary to run      (default target/release/kvd, built if missing)
set -euo pipefail

SCRIPT=write-cpu
# shellcheck source=lib/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"

TESTS=${CPU_TESTS:-set zadd}
N=${CPU_N:-300000}
PIPE=${CPU_PIPELINE:-16}

KVD=${KVD_BIN:-$KVD}
[[ -n ${KVD_BIN:-} ]] || build_if_missing
start_three
LEADER=${PIDS[0]}
FOLLOWER=${PIDS[1]}

# snap PID: "thread-name ticks" lines, one per thread: the process's CPU time so far.
snap() {
    python3 -c 'import os, sys
pid = sys.argv[1]
for t in os.listdir(f"/proc/{pid}/task"):
    try:
        s = open(f"/proc/{pid}/task/{t}/stat").read()
    except OSError:
        continue
    f = s[s.rindex(")") + 2:].split()
    print(s[s.index("(") + 1:s.rindex(")")].replace(" ", "_"), int(f[11]) + int(f[12]))' "$1"
}

# used BEFORE AFTER SECONDS: "cpu-seconds pct thread=pct..." between two snaps of a run.
used() {
    python3 -c 'import os, sys
def load(p):
    d = {}
    for line in open(p):
        name, v = line.split()
        d[name] = d.get(name, 0) + int(v)
    return d
a, b, secs = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
tck = os.sysconf("SC_CLK_TCK")
by = {n: (b[n] - a.get(n, 0)) / tck for n in b}
total = sum(by.values())
top = sorted(by.items(), key=lambda x: -x[1])
print(f"{total:.3f} {total / secs * 100:.0f}",
      ",".join(f"{n}={v / secs * 100:.0f}%" for n, v in top if v / secs >= 0.01))' "$@"
}

for t in $TESTS; do
    out="$TMP/rb-$t.csv"
    snap "$LEADER" >"$TMP/l0"
    snap "$FOLLOWER" >"$TMP/f0"
    t0=$(now_ms)
    redis-benchmark -h 127.0.0.1 -p "${P[0]}" -t "$t" -n "$N" -c 50 -P "$PIPE" -r 100000 --csv \
        >"$out" 2>/dev/null
    secs=$(python3 -c "print(($(now_ms) - $t0) / 1000)")
    snap "$LEADER" >"$TMP/l1"
    snap "$FOLLOWER" >"$TMP/f1"
    rps=$(python3 -c 'import csv, sys
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 1 and r[0] != "test"]
print(rows[-1][1] if rows else "0")' "$out")
    read -r lcpu lpct lby < <(used "$TMP/l0" "$TMP/l1" "$secs")
    read -r fcpu fpct fby < <(used "$TMP/f0" "$TMP/f1" "$secs")
    per=$(python3 -c "print(f'{($lcpu + 2 * $fcpu) * 1e6 / $N:.1f}')")
    printf '%-6s %9.0f req/s  leader %3s%% (%s)  follower %3s%% (%s)  %s us CPU/request (3 nodes)\n' \
        "$t" "$rps" "$lpct" "$lby" "$fpct" "$fby" "$per"
done
