#!/usr/bin/env bash
# Active expiry under load, measured (issue 11): on a fresh 3-node cluster,
#   1. SET latency with nothing expiring: `redis-benchmark -t set -c 50 -P 1` against the
#      leader (database 1, random keys);
#   2. loads N keys without a TTL (database 2) and N keys that all expire at the same moment
#      T (database 0, `SET ttl:<i> <16 bytes> PXAT T`), pipelined with `redis-cli --pipe`,
#      noting the leader's RSS (and redb file) growth for each: bytes per key without and with
#      a TTL; the same loads into a fresh redis-server for comparison (INFO used_memory, RSS);
#   3. from just before T, the same benchmark again while the leader reaps the N keys, and a
#      poller that notes when DBSIZE of database 0 reaches 0 on each node;
#   4. prints SET p50/p99 without and during the expiry, the time to DBSIZE 0 per node, and the
#      bytes per key.
#
#   scripts/expiry-bench.sh                 N=1000000, REQUESTS=200000 (the benchmark's -n)
#   N=100000 REQUESTS=50000 scripts/expiry-bench.sh
#   BASE_PORT=21100 REDIS_PORT=16381 ...    ports: BASE_PORT..+5 for kvd, REDIS_PORT for redis
#   KVD_BIN=/path/to/kvd ...                another binary than target/release/kvd
#
# Every process runs under `nice -n 19` (the machine is shared). Needs the release binary
# (built if missing), redis-cli, redis-benchmark and redis-server on PATH.
set -euo pipefail
SCRIPT=expiry-bench
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"

N=${N:-1000000}
REQUESTS=${REQUESTS:-200000}
BASE_PORT=${BASE_PORT:-21100}
REDIS_PORT=${REDIS_PORT:-16381}
# How long after the load starts the keys expire: enough for both loads to finish first.
LEAD_S=${LEAD_S:-0}

# KVD_BIN: another kvd binary (default: the release build, built if missing).
if [[ -n ${KVD_BIN:-} ]]; then KVD=$KVD_BIN; else build_if_missing; fi
KVD_NICE=(nice -n 19)

P=($(seq "$BASE_PORT" $((BASE_PORT + 5))))
node_start() { # NAME CLIENT RAFT [ARGS...]
    local name=$1 client=$2 raft=$3
    shift 3
    "${KVD_NICE[@]}" "$KVD" --id "$name" --addr "127.0.0.1:$client" \
        --raft-addr "127.0.0.1:$raft" "$@" "$TMP/$name" 2>"$TMP/$name.log" &
    PIDS+=($!)
}
node_start node0 "${P[0]}" "${P[1]}"
until_ok 30 "node0 leader" is_leader "${P[0]}"
node_start node1 "${P[2]}" "${P[3]}" --join "127.0.0.1:${P[0]}"
node_start node2 "${P[4]}" "${P[5]}" --join "127.0.0.1:${P[0]}"
until_ok 60 "3 voters" voters_are "${P[0]}" 3
CLIENTS=("${P[0]}" "${P[2]}" "${P[4]}")
leader=""
for c in "${CLIENTS[@]}"; do is_leader "$c" && leader=$c; done
[[ -n $leader ]] || { log "no leader"; exit 1; }
leader_pid=${PIDS[0]}
log "cluster up, leader on port $leader"

nice -n 19 redis-server --port "$REDIS_PORT" --save '' --appendonly no --dir "$TMP" \
    >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
redis_pid=$!
until_ok 10 "redis-server" bash -c "redis-cli -p $REDIS_PORT ping 2>/dev/null | grep -q PONG"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
redb_bytes() { stat -c %s "$TMP/node0/kvd.redb" 2>/dev/null || echo 0; }
used_memory() { rcli "$REDIS_PORT" info memory | tr -d '\r' | sed -n 's/^used_memory://p'; }

# bench PORT: "p50 p99 rps" of SET with 50 clients, no pipelining, database 1.
bench() {
    nice -n 19 redis-benchmark -p "$1" -t set -c 50 -P 1 -n "$REQUESTS" -r 100000 -d 16 \
        --dbnum 1 --csv 2>/dev/null | tr -d '"' | awk -F, '$1 == "SET" {print $5, $7, $2}'
}

# gen DB PREFIX [PXAT]: the commands of one load, in RESP, for redis-cli --pipe.
gen() {
    python3 - "$N" "$1" "$2" "${3:-}" <<'EOF'
import sys
n, db, prefix, at = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
out = sys.stdout.buffer
def cmd(*w):
    parts = [b"*%d\r\n" % len(w)]
    for x in w:
        x = x.encode() if isinstance(x, str) else x
        parts.append(b"$%d\r\n%s\r\n" % (len(x), x))
    return b"".join(parts)
out.write(cmd("SELECT", db))
value = b"v" * 16
chunk = []
for i in range(n):
    key = b"%s:%07d" % (prefix.encode(), i)
    chunk.append(cmd(b"SET", key, value, b"PXAT", at.encode()) if at else cmd(b"SET", key, value))
    if len(chunk) == 10000:
        out.write(b"".join(chunk)); chunk = []
out.write(b"".join(chunk))
EOF
}
load_into() { # PORT FILE
    nice -n 19 redis-cli -p "$1" --pipe <"$2" 2>&1 | tail -1
}
gen 2 plain >"$TMP/plain.resp"

# redis-server first: the same two loads (its TTL keys expire in an hour: only their memory
# is compared).
gen 0 ttl $(($(now_ms) + 3600000)) >"$TMP/ttl-far.resp"
r0=$(used_memory); rr0=$(rss_kb "$redis_pid")
load_into "$REDIS_PORT" "$TMP/plain.resp" >/dev/null
r1=$(used_memory); rr1=$(rss_kb "$redis_pid")
load_into "$REDIS_PORT" "$TMP/ttl-far.resp" >/dev/null
r2=$(used_memory); rr2=$(rss_kb "$redis_pid")
log "redis-server loaded: $(rcli "$REDIS_PORT" info keyspace | tr -d '\r' | grep '^db' | tr '\n' ' ')"

log "baseline: SET benchmark ($REQUESTS requests), nothing loaded"
read -r base_p50 base_p99 base_rps <<<"$(bench "$leader")"

settle() { sleep 2; } # let the memtable flush (500 ms) and the allocator settle
settle
rss0=$(rss_kb "$leader_pid"); file0=$(redb_bytes)
t0=$(now_ms)
log "loading $N keys without a TTL into kvd: $(load_into "$leader" "$TMP/plain.resp")"
t1=$(now_ms)
settle
rss1=$(rss_kb "$leader_pid"); file1=$(redb_bytes)
load_ms=$((t1 - t0))
# The TTL load takes about as long; expire everything at its end plus a margin.
expire_at=$(($(now_ms) + load_ms * 3 / 2 + 5000 + LEAD_S * 1000))
gen 0 ttl "$expire_at" >"$TMP/ttl.resp"
log "loading $N keys expiring at $expire_at into kvd: $(load_into "$leader" "$TMP/ttl.resp")"
t2=$(now_ms)
if ((t2 >= expire_at - 1500)); then
    log "the TTL load ended too late ($((t2 - expire_at)) ms after T - 1.5 s): rerun with LEAD_S=30"
    exit 1
fi
settle
rss2=$(rss_kb "$leader_pid"); file2=$(redb_bytes)
dbsizes() { for c in "${CLIENTS[@]}"; do printf '%s ' "$(rcli "$c" -n 0 dbsize)"; done; }
log "loaded; DBSIZE db0 per node: $(dbsizes)"

now=$(now_ms)
wait_ms=$((expire_at - now - 1000))
((wait_ms > 0)) && sleep "$(awk -v m="$wait_ms" 'BEGIN {print m / 1000}')"
# Poll DBSIZE of database 0 on each node every 250 ms; note when each reaches 0 (DBSIZE walks
# the memtable's keys of the database: polled more often, it would weigh on the measurement).
(
    declare -A done_at=()
    while ((${#done_at[@]} < 3)); do
        for c in "${CLIENTS[@]}"; do
            [[ -n ${done_at[$c]:-} ]] && continue
            n=$(rcli "$c" -n 0 dbsize)
            if [[ $n == 0 ]]; then
                done_at[$c]=$(now_ms)
                echo "$c $((done_at[$c] - expire_at))"
            fi
        done
        sleep 0.25
    done
) >"$TMP/drained" &
poller=$!
log "expiry at T=$expire_at: SET benchmark during the expiry"
read -r exp_p50 exp_p99 exp_rps <<<"$(bench "$leader")"
bench_end=$(now_ms)
until_ok 600 "DBSIZE 0 on every node" bash -c "[[ \$(wc -l <'$TMP/drained') -ge 3 ]]"
wait "$poller" 2>/dev/null || true
# If the benchmark ended before the reaping did, it measured only part of the expiry.
last_drain=$(awk '{print $2}' "$TMP/drained" | sort -n | tail -1)

echo
echo "== active expiry: $N keys expiring at one moment, 3-node kvd cluster (leader :$leader) =="
printf 'SET (-c 50 -P 1, -n %s)   p50 ms   p99 ms   rps\n' "$REQUESTS"
printf '  nothing expiring        %6s   %6s   %s\n' "$base_p50" "$base_p99" "$base_rps"
printf '  during the expiry       %6s   %6s   %s   (benchmark ran T-1s .. T+%d ms)\n' \
    "$exp_p50" "$exp_p99" "$exp_rps" $((bench_end - expire_at))
echo "DBSIZE db0 reached 0, ms after T, per node (port ms):"
sed 's/^/  /' "$TMP/drained"
echo "  (last node: $last_drain ms)"
awk -v n="$N" -v a="$rss0" -v b="$rss1" -v c="$rss2" -v fa="$file0" -v fb="$file1" -v fc="$file2" \
    -v ra="$r0" -v rb="$r1" -v rc="$r2" -v xa="$rr0" -v xb="$rr1" -v xc="$rr2" 'BEGIN {
    printf "memory per key (16-byte values, 11-byte keys), growth / %d:\n", n
    printf "  kvd leader RSS     no TTL %6.1f B   with TTL %6.1f B\n", (b - a) * 1024 / n, (c - b) * 1024 / n
    printf "  kvd redb file      no TTL %6.1f B   with TTL %6.1f B\n", (fb - fa) / n, (fc - fb) / n
    printf "  redis used_memory  no TTL %6.1f B   with TTL %6.1f B\n", (rb - ra) / n, (rc - rb) / n
    printf "  redis RSS          no TTL %6.1f B   with TTL %6.1f B\n", (xb - xa) * 1024 / n, (xc - xb) * 1024 / n
}'
