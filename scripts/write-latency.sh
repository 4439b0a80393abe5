#!/usr/bin/env bash
# Write latency and throughput of one node and of a 3-node cluster (leader and follower), with
# redis-benchmark: SET at one client (latency bound: fsyncs and thread hand-offs per write) and
# at 50 clients. Prints one line per run.
#
#   scripts/write-latency.sh            # N=5000 at -c 1, N50=50000 at -c 50
#   NODES=1 scripts/write-latency.sh    # only the single node
# Extra kvd flags for every node: KVD_ARGS="--one-phase-commit"; another binary: KVD_BIN=path
set -euo pipefail
SCRIPT=write-latency
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"
KVD=${KVD_BIN:-$KVD}
[[ -n ${KVD_BIN:-} ]] || build_if_missing
N=${N:-5000}
N50=${N50:-50000}
NODES=${NODES:-1 3}
read -r -a EXTRA <<<"${KVD_ARGS:-}"

run() { # LABEL PORT
    local c1 c50
    c1=$(redis-benchmark -p "$2" -t set -c 1 -n "$N" -r 100000 -q 2>/dev/null | tr '\r' '\n' | grep 'requests per second' | tail -1)
    c50=$(redis-benchmark -p "$2" -t set -c 50 -n "$N50" -r 100000 -q 2>/dev/null | tr '\r' '\n' | grep 'requests per second' | tail -1)
    printf '%-18s c1: %s\n%-18s c50: %s\n' "$1" "${c1#SET: }" "$1" "${c50#SET: }"
}

for n in $NODES; do
    read -r -a P <<<"$(free_ports 6)"
    if [[ $n == 1 ]]; then
        start solo "${P[0]}" "${P[1]}" "${EXTRA[@]}"
        until_ok 30 "solo leads" is_leader "${P[0]}"
        run "1 node" "${P[0]}"
    else
        start n0 "${P[0]}" "${P[1]}" "${EXTRA[@]}"
        until_ok 30 "n0 leads" is_leader "${P[0]}"
        start n1 "${P[2]}" "${P[3]}" --join "127.0.0.1:${P[0]}" "${EXTRA[@]}"
        start n2 "${P[4]}" "${P[5]}" --join "127.0.0.1:${P[0]}" "${EXTRA[@]}"
        until_ok 60 "three voters" voters_are "${P[0]}" 3
        run "3 nodes, leader" "${P[0]}"
        run "3 nodes, follower" "${P[2]}"
    fi
done
