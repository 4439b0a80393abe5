#!/usr/bin/env bash
# Collection commands beside redis-server: redis-benchmark's LPUSH, RPOP, HSET, SADD, ZADD, XADD
# and LRANGE_100 tests through the leader and a follower of a 3-node kvd cluster and through
# redis-server without persistence and with AOF appendfsync always (each redis-server started
# on its own, one after the other, on one port); then the memory of one 1M-member hash, set and
# sorted set: the RSS growth of a fresh single kvd node and of a fresh redis-server per member
# (and kvd's redb file per member after a graceful stop, which flushes the memtable).
# scripts/bench.sh runs it after its own part; it also runs alone.
#
#   scripts/bench-types.sh                          # full run
#   TYPES_QUICK=1 scripts/bench-types.sh            # smoke run (small N, 100k members)
#
# Environment (all optional):
#   TYPES_N          requests per redis-benchmark test     (default 100000; quick 10000)
#   TYPES_PIPELINE   redis-benchmark -P                    (default 16)
#   TYPES_MEMBERS    members of each collection for memory (default 1000000; quick 100000)
#   TYPES_PORTS      "K R": kvd uses ports K..K+5, redis-server R (default: free ports)
#   TYPES_OUT        a file the result table is also written to
set -euo pipefail

SCRIPT=bench-types
# shellcheck source=lib/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"

QUICK=${TYPES_QUICK:-0}
N=${TYPES_N:-$([[ $QUICK == 1 ]] && echo 10000 || echo 100000)}
PIPE=${TYPES_PIPELINE:-16}
MEMBERS=${TYPES_MEMBERS:-$([[ $QUICK == 1 ]] && echo 100000 || echo 1000000)}
# redis-benchmark 7.0 has no XADD test: XADD runs as its own command line, and so does EVAL (a
# script making one SET, for the cost of a script write beside a plain SET). SET is in the run so
# that each member write can be compared with it on the same system in the same run.
TESTS=set,lpush,rpop,hset,sadd,zadd,lrange_100
EVAL_SET="return redis.call('SET', KEYS[1], ARGV[1])"
CLIENTS=50
if [[ -n ${TYPES_PORTS:-} ]]; then
    read -r KBASE RPORT <<<"$TYPES_PORTS"
    P=($KBASE $((KBASE + 1)) $((KBASE + 2)) $((KBASE + 3)) $((KBASE + 4)) $((KBASE + 5)))
else
    read -r -a P <<<"$(free_ports 7)"
    RPORT=${P[6]}
fi
declare -a TABLE=()
row() { TABLE+=("$(printf '%-18s %s' "$1" "$2")"); log "$1: $2"; }
declare -A RPS=()

# rb_row SYSTEM PORT: one redis-benchmark run of TESTS; a row of ops/s per test.
rb_row() {
    local sys=$1 port=$2 out="$TMP/rb-$1.csv" line name rps cells=""
    # LRANGE_100 reads the list LPUSH built; RPOP pops it (redis-benchmark's own order).
    rcli "$port" del mylist myhash myset myzset mystream >/dev/null
    timeout 900 redis-benchmark -h 127.0.0.1 -p "$port" --csv -t "$TESTS" -n "$N" -c "$CLIENTS" \
        -P "$PIPE" -r 100000 >"$out" 2>"$out.err" || { log "redis-benchmark against $sys failed: $(tail -n 3 "$out.err")"; exit 1; }
    timeout 900 redis-benchmark -h 127.0.0.1 -p "$port" --csv -n "$N" -c "$CLIENTS" -P "$PIPE" \
        -r 100000 XADD mystream '*' field __rand_int__ >>"$out" 2>>"$out.err" || { log "redis-benchmark XADD against $sys failed: $(tail -n 3 "$out.err")"; exit 1; }
    timeout 900 redis-benchmark -h 127.0.0.1 -p "$port" --csv -n "$N" -c "$CLIENTS" -P "$PIPE" \
        -r 100000 EVAL "$EVAL_SET" 1 key:__rand_int__ xxx >>"$out" 2>>"$out.err" || { log "redis-benchmark EVAL against $sys failed: $(tail -n 3 "$out.err")"; exit 1; }
    # SET once more, now over the keys the first SET wrote and beside the collections: a write
    # into a filled keyspace (an overwrite looks up the old value) costs more than the first
    # SET's into an empty one, so member writes are compared with both.
    timeout 900 redis-benchmark -h 127.0.0.1 -p "$port" --csv -t set -n "$N" -c "$CLIENTS" \
        -P "$PIPE" -r 100000 2>>"$out.err" | sed 's/^"SET"/"SET-again"/' >>"$out" || { log "redis-benchmark SET-again against $sys failed: $(tail -n 3 "$out.err")"; exit 1; }
    if grep -qiE 'error|closed|refused' "$out" "$out.err"; then
        log "redis-benchmark against $sys reported errors: $(grep -hiE 'error|closed|refused' "$out" "$out.err" | head -n 3)"
        exit 1
    fi
    # The EVAL line's name holds commas: read the CSV with a CSV reader. The LPUSH that fills
    # the list for LRANGE is not a row of its own.
    while read -r name rps; do
        cells+=$(printf '%s %9.0f  ' "$name" "$rps")
        RPS[$sys/$name]=$rps
    done < <(python3 -c 'import csv, sys
for r in csv.reader(open(sys.argv[1])):
    if len(r) > 1 and r[0] != "test" and "needed" not in r[0]:
        print(r[0].split(" ")[0], r[1])' "$out")
    row "$sys" "$cells"
}

# ratio_row SYSTEM [SET-TEST]: how much slower than SET each write is on SYSTEM (SET's ops/s /
# its ops/s), against the first SET (into an empty keyspace) or SET-again (into the filled one).
ratio_row() {
    local sys=$1 set=${2:-SET} t cells=""
    for t in LPUSH RPOP HSET SADD ZADD XADD EVAL; do
        cells+=$(awk -v s="${RPS[$sys/$set]:-0}" -v x="${RPS[$sys/$t]:-0}" -v t="$t" \
            'BEGIN { if (x > 0) printf "%s %5.2fx  ", t, s / x; else printf "%s     -  ", t }')
    done
    row "$sys $set/cmd" "$cells"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# load PORT TYPE: MEMBERS members into one key of TYPE (hash, set, zset), 1000 a command,
# 32 commands a pipeline; checks the size.
load() {
    python3 - "$1" "$2" "$MEMBERS" <<'EOF'
import random, socket, sys
port, kind, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb")
def enc(words):
    return b"".join([b"*%d\r\n" % len(words)] + [b"$%d\r\n%s\r\n" % (len(w), w) for w in words])
def read():
    line = f.readline()
    if line[:1] == b"-":
        sys.exit("error: %r" % line)
    if line[:1] == b"$":
        k = int(line[1:-2])
        return f.read(k + 2)[:-2] if k >= 0 else None
    return line
rnd = random.Random(1)
cmd = {"hash": b"HSET", "set": b"SADD", "zset": b"ZADD"}[kind]
pending = 0
for start in range(0, n, 1000):
    words = [cmd, kind.encode()]
    for i in range(start, min(n, start + 1000)):
        m = b"member:%07d" % i
        if kind == "hash":
            words += [m, b"value:%07d" % i]
        elif kind == "zset":
            words += [repr(rnd.uniform(-1e6, 1e6)).encode(), m]
        else:
            words.append(m)
    s.sendall(enc(words)); pending += 1
    if pending == 32:
        for _ in range(pending): read()
        pending = 0
for _ in range(pending): read()
size = {"hash": b"HLEN", "set": b"SCARD", "zset": b"ZCARD"}[kind]
s.sendall(enc([size, kind.encode()])); got = int(read()[1:])
if got != n:
    sys.exit("%s holds %d members, not %d" % (kind, got, n))
EOF
}

# memory_of SYSTEM PID PORT TYPE: RSS growth per member of loading TYPE into a fresh server.
memory_of() {
    local sys=$1 pid=$2 port=$3 type=$4 before after t0
    sleep 1
    before=$(rss_kb "$pid")
    t0=$(now_ms)
    load "$port" "$type"
    sleep 1
    after=$(rss_kb "$pid")
    MEM_CELL=$(awk -v a="$after" -v b="$before" -v n="$MEMBERS" 'BEGIN { printf "%6.1f", (a - b) * 1024 / n }')
    log "$sys $type: RSS $before -> $after kB, loaded in $(($(now_ms) - t0)) ms"
}

start_redis() { # start_redis ARGS...: a fresh redis-server on RPORT
    mkdir -p "$TMP/redis"
    rm -rf "${TMP:?}/redis/"*
    redis-server --port "$RPORT" --bind 127.0.0.1 --daemonize no --dir "$TMP/redis" --logfile "" "$@" \
        >"$TMP/redis.log" 2>&1 &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    until_ok 30 "redis-server answers" pong "$RPORT"
}
stop_pid() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
pong() { [[ $(rcli "$1" ping) == PONG ]]; }

build_if_missing
log "N=$N -P $PIPE -c $CLIENTS; memory: $MEMBERS members"

# ---- throughput: kvd leader and follower, then each redis-server
start node0 "${P[0]}" "${P[1]}"
until_ok 30 "node0 leads" is_leader "${P[0]}"
start node1 "${P[2]}" "${P[3]}" --join "127.0.0.1:${P[0]}"
start node2 "${P[4]}" "${P[5]}" --join "127.0.0.1:${P[0]}"
until_ok 60 "three voters" voters_are "${P[0]}" 3
leader=""
for i in 0 2 4; do is_leader "${P[$i]}" && leader=${P[$i]}; done
follower=${P[2]}
[[ $follower == "$leader" ]] && follower=${P[4]}
rb_row kvd-leader "$leader"
rb_row kvd-follower "$follower"
for p in "${PIDS[@]}"; do stop_pid "$p"; done
PIDS=()
start_redis --save "" --appendonly no
rb_row redis-nopersist "$RPORT"
stop_pid "$REDIS_PID"
start_redis --save "" --appendonly yes --appendfsync always
rb_row redis-aof-always "$RPORT"
stop_pid "$REDIS_PID"

# ---- memory per member: a fresh server for each collection
for sys in kvd-leader kvd-follower redis-aof-always; do ratio_row "$sys"; ratio_row "$sys" SET-again; done

for type in hash set zset; do
    rm -rf "$TMP/mem"
    "$KVD" --id mem --addr "127.0.0.1:${P[0]}" --raft-addr "127.0.0.1:${P[1]}" \
        --compact-entries 10 --compact-keep 1 "$TMP/mem" 2>"$TMP/mem.log" &
    kpid=$!
    PIDS+=("$kpid")
    until_ok 30 "kvd answers" pong "${P[0]}"
    until_ok 30 "kvd leads" is_leader "${P[0]}"
    memory_of kvd "$kpid" "${P[0]}" "$type"
    kvd_cell=$MEM_CELL
    stop_pid "$kpid"
    file=$(awk -v b="$(stat -c %s "$TMP/mem/kvd.redb")" -v n="$MEMBERS" 'BEGIN { printf "%6.1f", b / n }')
    start_redis --save "" --appendonly no
    memory_of redis "$REDIS_PID" "$RPORT" "$type"
    stop_pid "$REDIS_PID"
    row "memory $type" "B/member: kvd RSS $kvd_cell (redb file $file)  redis-server RSS $MEM_CELL"
done

echo
echo "redis-benchmark -t $TESTS (+ XADD, EVAL of one SET) -n $N -c $CLIENTS -P $PIPE -r 100000 (requests/s); memory of $MEMBERS members"
printf '%s\n' "${TABLE[@]}"
if [[ -n ${TYPES_OUT:-} ]]; then printf '%s\n' "${TABLE[@]}" >"$TYPES_OUT"; fi
