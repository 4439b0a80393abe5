#!/usr/bin/env bash
# A/B comparison of two kvd binaries on the same machine in one run: for each round and each
# binary (interleaved, so background load hits both alike), starts a fresh 3-node cluster on
# free loopback ports and runs `redis-benchmark -c 50 -d 100 -r 100000` SET and GET at -P 1 and
# -P 16 against the leader and a follower, plus single-client SET latency. Prints the median of
# the rounds per binary and the ratio new/old. Cleans up everything it started.
#
#   scripts/compare.sh OLD_KVD NEW_KVD
#   COMPARE_ROUNDS=5 COMPARE_N=50000 scripts/compare.sh /tmp/kvd-before target/release/kvd
#
# To get the old binary: git worktree add /tmp/old <commit> && (cd /tmp/old && cargo build --release)
set -euo pipefail

SCRIPT=compare
# shellcheck source=lib/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"
[[ $# -eq 2 ]] || { echo "usage: $0 OLD_KVD NEW_KVD" >&2; exit 2; }
BINS=("$1" "$2")
for b in "${BINS[@]}"; do [[ -x $b ]] || { log "not an executable: $b"; exit 2; }; done
command -v redis-benchmark >/dev/null || { log "redis-benchmark not found (apt-get install redis-tools)"; exit 1; }
ROUNDS=${COMPARE_ROUNDS:-3}
N=${COMPARE_N:-50000}
all_follow() { [[ $(field "$1" raft_role) == follower && $(field "$2" raft_role) == follower ]]; }

# bench PORT TEST PIPELINE N: ops/s.
bench() {
    redis-benchmark -p "$1" -t "$2" -n "$4" -c 50 -P "$3" -d 100 -r 100000 --csv 2>/dev/null |
        tr -d '"' | awk -F, -v t="${2^^}" '$1 == t { printf "%.0f", $2 }'
}
# p50 PORT: single-client SET p50 latency in ms.
p50() {
    redis-benchmark -p "$1" -t set -n 5000 -c 1 -d 100 -r 100000 --csv 2>/dev/null |
        tr -d '"' | awk -F, '$1 == "SET" { print $5 }'
}

RESULTS="$TMP/results"
: >"$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
    for which in 0 1; do
        KVD=${BINS[$which]}
        PIDS=()
        read -r -a P <<<"$(free_ports 6)"
        start "r$round-$which-n0" "${P[0]}" "${P[1]}"
        until_ok 30 "node0 leads" is_leader "${P[0]}"
        start "r$round-$which-n1" "${P[2]}" "${P[3]}" --join "127.0.0.1:${P[0]}"
        start "r$round-$which-n2" "${P[4]}" "${P[5]}" --join "127.0.0.1:${P[0]}"
        until_ok 60 "three voters" voters_are "${P[0]}" 3
        until_ok 30 "followers" all_follow "${P[2]}" "${P[4]}"
        L=${P[0]} F=${P[2]}
        {
            echo "$which set_p1_leader $(bench "$L" set 1 "$N")"
            echo "$which set_p1_follower $(bench "$F" set 1 "$N")"
            echo "$which set_p16_leader $(bench "$L" set 16 $((N * 4)))"
            echo "$which get_p1_follower $(bench "$F" get 1 "$N")"
            echo "$which get_p16_follower $(bench "$F" get 16 $((N * 4)))"
            echo "$which set_c1_p50_ms $(p50 "$L")"
        } >>"$RESULTS"
        for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
        for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
        PIDS=()
        log "round $round, binary $which done"
    done
done

printf '%-18s %12s %12s %8s\n' test old new new/old
for t in set_p1_leader set_p1_follower set_p16_leader get_p1_follower get_p16_follower set_c1_p50_ms; do
    med() { awk -v w="$1" -v t="$t" '$1 == w && $2 == t { print $3 }' "$RESULTS" | sort -g |
        awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print 0 }'; }
    o=$(med 0) n=$(med 1)
    awk -v t="$t" -v o="$o" -v n="$n" 'BEGIN { printf "%-18s %12s %12s %8.2f\n", t, o, n, (o > 0 ? n / o : 0) }'
done
