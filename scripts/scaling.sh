#!/usr/bin/env bash
# How write throughput scales with clients and pipelining, and what group commit does: starts a
# 3-node kvd cluster on free loopback ports (fresh temp dirs), runs
# `redis-benchmark -t set -c C -P P -d 100 -r 100000` against the leader for each C x P, and prints
# ops/s, p50 latency, and the entries per durable commit (one fsync round) on the leader and on a
# follower, from the INFO raft counters. Cleans up everything it started.
#
#   scripts/scaling.sh
#   SCALING_CLIENTS="1 50" SCALING_PIPELINES="1 16" SCALING_N=20000 scripts/scaling.sh
set -euo pipefail

SCRIPT=scaling
# shellcheck source=lib/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"
CLIENTS=${SCALING_CLIENTS:-1 10 50 200}
PIPELINES=${SCALING_PIPELINES:-1 16}
N=${SCALING_N:-50000}
all_follow() { [[ $(field "$1" raft_role) == follower && $(field "$2" raft_role) == follower ]]; }

command -v redis-benchmark >/dev/null || { log "redis-benchmark not found (apt-get install redis-tools)"; exit 1; }
build_if_missing
read -r -a P <<<"$(free_ports 6)"
start node0 "${P[0]}" "${P[1]}"
until_ok 30 "node0 leads" is_leader "${P[0]}"
start node1 "${P[2]}" "${P[3]}" --join "127.0.0.1:${P[0]}"
start node2 "${P[4]}" "${P[5]}" --join "127.0.0.1:${P[0]}"
until_ok 60 "three voters" voters_are "${P[0]}" 3
until_ok 30 "node1 and node2 follow" all_follow "${P[2]}" "${P[4]}"
LEADER=${P[0]} FOLLOWER=${P[2]}

# per_commit PORT ENTRIES0 COMMITS0: entries per durable commit since the given counter values.
per_commit() {
    local e c
    e=$(field "$1" raft_entries_appended)
    c=$(field "$1" raft_durable_commits)
    awk -v e="$((e - $2))" -v c="$((c - $3))" 'BEGIN { if (c > 0) printf "%.1f", e / c; else print "-" }'
}

printf '%-8s %-4s %12s %9s %16s %18s\n' clients P 'SET ops/s' 'p50 ms' 'entries/fsync L' 'entries/fsync F'
for c in $CLIENTS; do
    for p in $PIPELINES; do
        n=$((c == 1 && p == 1 ? N / 10 : N * p / (p > 1 ? 4 : 1)))
        le=$(field "$LEADER" raft_entries_appended) lc=$(field "$LEADER" raft_durable_commits)
        fe=$(field "$FOLLOWER" raft_entries_appended) fc=$(field "$FOLLOWER" raft_durable_commits)
        out=$(redis-benchmark -p "$LEADER" -t set -n "$n" -c "$c" -P "$p" -d 100 -r 100000 --csv 2>&1 |
            tr -d '"' | awk -F, '$1 == "SET" { print $2, $5 }')
        [[ -n $out ]] || { log "redis-benchmark gave no SET result for -c $c -P $p"; exit 1; }
        read -r rps p50 <<<"$out"
        printf '%-8s %-4s %12.0f %9s %16s %18s\n' "$c" "$p" "$rps" "$p50" \
            "$(per_commit "$LEADER" "$le" "$lc")" "$(per_commit "$FOLLOWER" "$fe" "$fc")"
    done
done
