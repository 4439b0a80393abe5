#!/usr/bin/env bash
# Two (or more) kvd builds side by side on write latency: for each round and each build, a fresh
# 3-node cluster on free loopback ports, then redis-benchmark SET (-d 100 -r 100000 --csv) with
# one client through the leader and through a follower, and with 50 clients through each.
# Prints one line per run (round, build, test, req/s, p50/p99/max in ms), then the medians.
#
#   KVD_BINS="/tmp/kvd-old target/release/kvd" scripts/ab-latency.sh
#
# Environment (all optional):
#   KVD_BINS  the binaries to compare, in the order run    (default: target/release/kvd only)
#   ROUNDS    rounds; each runs every build once            (default 4)
#   C1_N      requests of a single-client run               (default 4000)
#   C50_N     requests of a 50-client run                   (default 100000)
set -euo pipefail

SCRIPT=ab-latency
# shellcheck source=lib/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"

[[ -n ${KVD_BINS:-} ]] || build_if_missing
read -r -a BINS <<<"${KVD_BINS:-$KVD}"
ROUNDS=${ROUNDS:-4}
C1_N=${C1_N:-4000}
C50_N=${C50_N:-100000}
OUT="$TMP/runs.txt"

# stop_cluster: every node started so far stopped (TERM, then waited for), its data removed.
stop_cluster() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
    rm -rf "$TMP"/node*
}

# bench LABEL PORT ARGS...: one redis-benchmark SET run; one line of output.
bench() {
    local label=$1 port=$2
    shift 2
    redis-benchmark -p "$port" -t set -d 100 -r 100000 --csv "$@" 2>/dev/null | tail -1 |
        tr -d '"' | awk -F, -v l="$label" '{printf "%s rps=%s p50=%s p99=%s max=%s\n", l, $2, $5, $7, $8}' |
        tee -a "$OUT"
}

for r in $(seq 1 "$ROUNDS"); do
    for b in "${BINS[@]}"; do
        [[ -x $b ]] || { log "not an executable: $b"; exit 1; }
        KVD=$b
        start_three
        until_ok 30 "a leader on node0" is_leader "${P[0]}"
        bench "$r $b c1-leader" "${P[0]}" -c 1 -n "$C1_N"
        bench "$r $b c1-follower" "${P[2]}" -c 1 -n "$C1_N"
        bench "$r $b c50-leader" "${P[0]}" -c 50 -n "$C50_N"
        bench "$r $b c50-follower" "${P[2]}" -c 50 -n "$C50_N"
        stop_cluster
    done
done

echo "medians over $ROUNDS rounds [min-max]:"
python3 - "$OUT" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    _, build, test, *fields = line.split()
    for k, v in (f.split("=") for f in fields):
        if v:
            runs[(test, k)][build].append(float(v))
for (test, k), builds in sorted(runs.items()):
    cells = [f"{b}: {statistics.median(v):.3f} [{min(v):.3f}-{max(v):.3f}]" for b, v in builds.items()]
    print(f"{test:13} {k:4} " + "  ".join(cells))
PY
