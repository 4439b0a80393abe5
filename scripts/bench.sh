#!/usr/bin/env bash
# One-command benchmark: a 3-node kvd cluster against redis-server (no persistence and
# AOF appendfsync always) with redis-benchmark, plus single-client latency, failover time and
# memory per key. See docs/benchmark.md.
#
#   scripts/bench.sh                 # full run (several minutes)
#   BENCH_QUICK=1 scripts/bench.sh   # smoke run (small N, 1 round, 100k keys for memory)
#
# Environment (all optional):
#   BENCH_N          requests per redis-benchmark run at -P 1   (default 100000; quick 10000)
#   BENCH_N_P16      requests per run at -P 16                  (default 10 x BENCH_N)
#   BENCH_ROUNDS     rounds; systems interleaved in each        (default 3; quick 1)
#   BENCH_C1_N       requests for the single-client latency run (default 10000; quick 2000)
#   BENCH_MEM_KEYS   distinct keys loaded for the memory check  (default 1000000; quick 100000)
#   BENCH_OUT        base dir for results                        (default target/bench-results)
#   BENCH_TIMEOUT    seconds one redis-benchmark run may take    (default 900)
#   BENCH_NO_BUILD=1 skip `cargo build --release`
#   BENCH_NO_INSTALL=1 never call apt-get
#   BENCH_KEEP_DATA=1 keep the temporary data dirs
#   KVD_ONE_PHASE_COMMIT=1 run kvd with --one-phase-commit (the state database too commits with one fsync; the log always does)
#   REDISRAFT_MODULE, REDIS_SERVER  also benchmark RedisRaft: a 3-node cluster of REDIS_SERVER
#                    (Redis 7.2 or newer built from source; Debian's 7.0 refuses the module) with
#                    REDISRAFT_MODULE (redisraft.so), raft log fsynced, followers proxying writes
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPERS="$ROOT/scripts/bench"
KVD="$ROOT/target/release/kvd"

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
    N_P1=${BENCH_N:-10000}
    ROUNDS=${BENCH_ROUNDS:-1}
    C1_N=${BENCH_C1_N:-2000}
    MEM_KEYS=${BENCH_MEM_KEYS:-100000}
    N_P16=${BENCH_N_P16:-$((N_P1 * 5))}
else
    N_P1=${BENCH_N:-100000}
    ROUNDS=${BENCH_ROUNDS:-3}
    C1_N=${BENCH_C1_N:-10000}
    MEM_KEYS=${BENCH_MEM_KEYS:-1000000}
    N_P16=${BENCH_N_P16:-$((N_P1 * 10))}
fi
RB_TIMEOUT=${BENCH_TIMEOUT:-900}
CLIENTS=50
VALUE_SIZE=100
KEYSPACE=100000

SYSTEMS=(kvd-leader kvd-follower redis-nopersist redis-aof-always)

for v in N_P1 N_P16 ROUNDS C1_N MEM_KEYS RB_TIMEOUT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "bench: $v must be a positive integer, got '${!v}'" >&2; exit 2; }
done

STAMP=$(date +%Y%m%d-%H%M%S)
OUT_BASE=${BENCH_OUT:-$ROOT/target/bench-results}
OUT="$OUT_BASE/$STAMP"
LOGS="$OUT/logs"
RAW="$OUT/raw"
RESULTS="$OUT/results.csv"
METRICS="$OUT/metrics.txt"
TMP=""

declare -a PIDS=()          # every process this script started (and may still have to stop)
declare -A PID_OF=()        # name -> pid
declare -A PORT_OF=()       # name -> client port
declare -A DIR_OF=()        # name -> data dir

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { log "WARNING: $*"; }
die() { log "ERROR: $*"; exit 1; }
metric() { printf '%s=%s\n' "$1" "$2" >>"$METRICS"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# A process is alive if it exists and is not a zombie (no procps needed).
alive() {
    local pid=$1 stat
    [[ -r /proc/$pid/stat ]] || return 1
    stat=$(<"/proc/$pid/stat") 2>/dev/null || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# Stop the given pids: SIGTERM, up to 10 s grace, then SIGKILL; reap them.
stop_pids() {
    local pid deadline any
    for pid in "$@"; do
        if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    deadline=$(($(now_ms) + 10000))
    while :; do
        any=0
        for pid in "$@"; do
            if alive "$pid"; then any=1; fi
        done
        [[ $any == 0 || $(now_ms) -gt $deadline ]] && break
        sleep 0.1
    done
    for pid in "$@"; do
        if alive "$pid"; then
            warn "pid $pid did not stop on SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if ((${#PIDS[@]})); then
        stop_pids "${PIDS[@]}"
    fi
    if [[ -n $TMP && -d $TMP ]]; then
        if [[ ${BENCH_KEEP_DATA:-0} == 1 ]]; then
            log "data kept in $TMP"
        else
            rm -rf "$TMP"
        fi
    fi
    if [[ $rc != 0 ]]; then
        log "FAILED (exit $rc); logs in $LOGS"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

rcli() { # rcli PORT ARGS... : redis-cli with a timeout; never hangs, never fails (check the output)
    local port=$1
    shift
    { timeout --foreground -k 2 5 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>&1 || true; } | tr -d '\r'
}

# --------------------------------------------------------------------------- 1. dependencies
PY=python3
PLOT_PY=""

find_plot_python() {
    local p
    PLOT_PY=""
    for p in python3 /usr/bin/python3; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import matplotlib' >/dev/null 2>&1; then
            PLOT_PY=$p
            return 0
        fi
    done
    return 1
}

apt_install() { # apt_install PKG... ; returns non-zero on failure
    if [[ ${BENCH_NO_INSTALL:-0} == 1 ]]; then
        warn "BENCH_NO_INSTALL=1: not installing $*"
        return 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        warn "no apt-get: cannot install $*"
        return 1
    fi
    local sudo=()
    if [[ $(id -u) != 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
            warn "not root and no sudo: cannot install $*"
            return 1
        fi
    fi
    if [[ -z ${APT_UPDATED:-} ]]; then
        log "apt-get update"
        "${sudo[@]}" apt-get update -qq >"$LOGS/apt.log" 2>&1 || { warn "apt-get update failed (see $LOGS/apt.log)"; return 1; }
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$LOGS/apt.log" 2>&1
}

ensure_deps() {
    local need=()
    command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
    { command -v redis-benchmark >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; } || need+=(redis-tools)
    command -v python3 >/dev/null 2>&1 || need+=(python3)
    command -v timeout >/dev/null 2>&1 || need+=(coreutils)
    if ((${#need[@]})); then
        apt_install "${need[@]}" || die "could not install ${need[*]} (see $LOGS/apt.log)"
    fi
    for c in redis-server redis-benchmark redis-cli python3 timeout; do
        command -v "$c" >/dev/null 2>&1 || die "$c not found"
    done
    if ! find_plot_python; then
        if apt_install python3-matplotlib && find_plot_python; then :; else
            warn "matplotlib unavailable: no plot will be drawn (apt-get install python3-matplotlib)"
        fi
    fi
    local v
    v=$(redis-benchmark --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1 || true)
    [[ ${v%%.*} -ge 7 ]] 2>/dev/null || die "redis-benchmark 7 or newer needed (for --csv latency percentiles); found '${v:-?}'"
}

build() {
    if [[ ${BENCH_NO_BUILD:-0} == 1 ]]; then
        log "BENCH_NO_BUILD=1: using existing $KVD"
    else
        command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain (rustup) first"
        log "cargo build --release"
        (cd "$ROOT" && cargo build --release 2>&1 | tail -n 3) >&2 || die "cargo build --release failed"
    fi
    [[ -x $KVD ]] || die "$KVD not found"
}

# --------------------------------------------------------------------------- ports, processes
free_ports() { # free_ports COUNT -> space-separated ports on 127.0.0.1 that were free just now
    "$PY" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

start_bg() { # start_bg NAME LOGFILE CMD... : start in background, track the pid
    local name=$1 logf=$2
    shift 2
    "$@" >"$logf" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    PID_OF[$name]=$pid
}

wait_ping() { # wait_ping NAME PORT TIMEOUT_S
    local name=$1 port=$2 deadline=$(($(now_ms) + $3 * 1000))
    while [[ $(rcli "$port" PING || true) != PONG ]]; do
        alive "${PID_OF[$name]}" || die "$name exited during startup: $(tail -n 5 "$LOGS/$name.log" 2>/dev/null)"
        (($(now_ms) < deadline)) || die "$name did not answer PING on port $port within $3 s"
        sleep 0.05
    done
}

raft_field() { # raft_field PORT FIELD
    rcli "$1" INFO raft | sed -n "s/^$2://p"
}

# start_cluster PREFIX : 3 nodes PREFIX0..2; node0 bootstraps, the others join it.
# Sets LEADER / FOLLOWER (names) once all 3 are voters and agree on a leader.
start_cluster() {
    local prefix=$1 ports i name join=()
    read -r -a ports <<<"$(free_ports 6)"
    for i in 0 1 2; do
        name="$prefix$i"
        PORT_OF[$name]=${ports[$i]}
        DIR_OF[$name]="$TMP/$name"
        if ((i > 0)); then join=(--join "127.0.0.1:${ports[0]}"); fi
        start_bg "$name" "$LOGS/$name.log" "$KVD" --id "$name" --addr "127.0.0.1:${ports[$i]}" \
            --raft-addr "127.0.0.1:${ports[$((i + 3))]}" "${join[@]}" "${DIR_OF[$name]}"
        wait_ping "$name" "${ports[$i]}" 30
    done
    local deadline=$(($(now_ms) + 60000)) voters role leaders ok l=()
    while :; do
        ok=1
        voters=$(rcli "${ports[0]}" CLUSTER MEMBERS | awk '$5 == "voter"' | wc -l)
        [[ $voters == 3 ]] || ok=0
        leaders=""
        for i in 0 1 2; do
            name="$prefix$i"
            alive "${PID_OF[$name]}" || die "$name exited: $(tail -n 5 "$LOGS/$name.log")"
            role=$(raft_field "${ports[$i]}" raft_role)
            [[ $role == leader || $role == follower ]] || ok=0
            leaders+="$(raft_field "${ports[$i]}" raft_leader) "
        done
        read -r -a l <<<"$leaders"
        if [[ ${#l[@]} != 3 || ${l[0]} != "${l[1]}" || ${l[0]} != "${l[2]}" || ${l[0]} == - ]]; then ok=0; fi
        [[ $ok == 1 ]] && break
        (($(now_ms) < deadline)) || die "cluster $prefix not ready within 60 s (voters=$voters, leaders='$leaders')"
        sleep 0.1
    done
    LEADER=${l[0]}
    [[ -n ${PORT_OF[$LEADER]:-} ]] || die "leader '$LEADER' is not one of ${prefix}0..2"
    FOLLOWER=""
    for i in 0 1 2; do
        [[ "$prefix$i" != "$LEADER" ]] && { FOLLOWER="$prefix$i"; break; }
    done
    log "cluster $prefix ready: leader $LEADER (:${PORT_OF[$LEADER]}), follower $FOLLOWER (:${PORT_OF[$FOLLOWER]})"
}

stop_names() { # stop_names NAME... : stop these processes (graceful, then SIGKILL)
    local n pids=()
    for n in "$@"; do pids+=("${PID_OF[$n]}"); done
    stop_pids "${pids[@]}"
}

# start_redisraft : 3 RedisRaft nodes rr0..2 (rr0 initialises the cluster, the others join it).
# Sets RR_LEADER / RR_FOLLOWER once all three report the same leader.
start_redisraft() {
    local ports i name deadline leader=""
    read -r -a ports <<<"$(free_ports 3)"
    for i in 0 1 2; do
        name="rr$i"
        PORT_OF[$name]=${ports[$i]}
        DIR_OF[$name]="$TMP/$name"
        mkdir -p "${DIR_OF[$name]}"
        start_bg "$name" "$LOGS/$name.log" "$REDIS_SERVER" --port "${ports[$i]}" --bind 127.0.0.1 \
            --daemonize no --dir "${DIR_OF[$name]}" --logfile "" --save "" --dbfilename "raft$i.rdb" \
            --loadmodule "$REDISRAFT_MODULE" --raft.log-filename "raftlog$i.db" \
            --raft.addr "127.0.0.1:${ports[$i]}" --raft.log-fsync yes --raft.follower-proxy yes
        wait_ping "$name" "${ports[$i]}" 30
    done
    [[ $(rcli "${ports[0]}" RAFT.CLUSTER INIT) == OK* ]] || die "RAFT.CLUSTER INIT failed: $(rcli "${ports[0]}" RAFT.CLUSTER INIT)"
    for i in 1 2; do
        deadline=$(($(now_ms) + 30000))
        until [[ $(rcli "${ports[$i]}" RAFT.CLUSTER JOIN "127.0.0.1:${ports[0]}") == OK* ]]; do
            (($(now_ms) < deadline)) || die "rr$i could not join the RedisRaft cluster"
            sleep 0.5
        done
    done
    deadline=$(($(now_ms) + 60000))
    while :; do
        local ok=1 nodes
        nodes=$(rcli "${ports[0]}" INFO raft | sed -n 's/^raft_num_nodes://p')
        [[ $nodes == 3 ]] || ok=0
        for i in 0 1 2; do
            [[ $(rcli "${ports[$i]}" INFO raft | sed -n 's/^raft_state://p') == up ]] || ok=0
            [[ $(rcli "${ports[$i]}" SET rr-probe x) == OK ]] || ok=0
        done
        [[ $ok == 1 ]] && break
        (($(now_ms) < deadline)) || die "RedisRaft cluster not ready within 60 s (nodes=$nodes)"
        sleep 0.2
    done
    for i in 0 1 2; do
        if [[ $(rcli "${ports[$i]}" INFO raft | sed -n 's/^raft_role://p') == leader ]]; then leader=rr$i; fi
    done
    [[ -n $leader ]] || die "no RedisRaft node says it is the leader"
    RR_LEADER=$leader
    for i in 0 1 2; do [[ rr$i != "$RR_LEADER" ]] && { RR_FOLLOWER=rr$i; break; }; done
    log "RedisRaft ready: leader $RR_LEADER (:${PORT_OF[$RR_LEADER]}), follower $RR_FOLLOWER (:${PORT_OF[$RR_FOLLOWER]})"
}

start_redis() { # start_redis NAME ARGS...
    local name=$1 port
    shift
    port=$(free_ports 1)
    PORT_OF[$name]=$port
    DIR_OF[$name]="$TMP/$name"
    mkdir -p "${DIR_OF[$name]}"
    start_bg "$name" "$LOGS/$name.log" redis-server --port "$port" --bind 127.0.0.1 --daemonize no \
        --dir "${DIR_OF[$name]}" --logfile "" "$@"
    wait_ping "$name" "$port" 30
    log "$name ready on :$port ($(printf '%q ' "$@"))"
}

# --------------------------------------------------------------------------- redis-benchmark
# rb NAME PORT OUTFILE ARGS... : one redis-benchmark run; fail loudly unless it produced numbers
rb() {
    local name=$1 port=$2 out=$3 rc=0
    shift 3
    alive "${PID_OF[$name]}" || die "$name is not running: $(tail -n 5 "$LOGS/$name.log")"
    # In the background and waited for, so that a signal to this script is acted on at once
    # (cleanup stops it like every other process started here).
    timeout --foreground -k 10 "$RB_TIMEOUT" redis-benchmark -h 127.0.0.1 -p "$port" --csv "$@" \
        >"$out" 2>"$out.err" &
    local pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    if [[ $rc != 0 ]]; then
        [[ $rc == 124 ]] && log "redis-benchmark timed out after $RB_TIMEOUT s"
        die "redis-benchmark $* against $name failed (exit $rc): $(grep -v '^"' "$out" "$out.err" | tail -n 3)"
    fi
    if grep -qiE 'error|closed|refused' "$out" "$out.err"; then
        die "redis-benchmark $* against $name reported errors: $(grep -hiE 'error|closed|refused' "$out" "$out.err" | head -n 3)"
    fi
    alive "${PID_OF[$name]}" || die "$name died during redis-benchmark: $(tail -n 5 "$LOGS/$name.log")"
}

# csv_row FILE TEST : sets ROW_RPS ROW_P50 ROW_P99 (validated numbers) from redis-benchmark --csv
csv_row() {
    local line t rps avg min p50 p95 p99 max
    line=$(grep "^\"$2\"," "$1" | tail -n 1 || true)
    [[ -n $line ]] || die "no $2 row in $1"
    IFS=, read -r t rps avg min p50 p95 p99 max <<<"${line//\"/}"
    : "$t" "$avg" "$min" "$p95" "$max"
    for v in "$rps" "$p50" "$p99"; do
        [[ $v =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "bad number '$v' in $2 row of $1"
    done
    awk -v r="$rps" 'BEGIN { exit !(r > 0) }' || die "zero throughput in $2 row of $1"
    ROW_RPS=$rps ROW_P50=$p50 ROW_P99=$p99
}

bench_matrix() {
    local round p n sys name test rps p50 p99 f summary
    echo "system,test,pipeline,round,rps,p50,p99" >"$RESULTS"
    for sys in "${SYSTEMS[@]}"; do # short warm-up, not recorded
        name=${SYS_NODE[$sys]}
        rb "$name" "${PORT_OF[$name]}" "$RAW/warmup-$sys.csv" -t set,get -n 5000 -c "$CLIENTS" -d "$VALUE_SIZE" -P 16 -r "$KEYSPACE"
    done
    for ((round = 1; round <= ROUNDS; round++)); do
        for p in 1 16; do
            n=$N_P1
            ((p == 16)) && n=$N_P16
            for sys in "${SYSTEMS[@]}"; do
                name=${SYS_NODE[$sys]}
                f="$RAW/$sys-P$p-r$round.csv"
                rb "$name" "${PORT_OF[$name]}" "$f" -t set,get -n "$n" -c "$CLIENTS" -d "$VALUE_SIZE" -P "$p" -r "$KEYSPACE"
                summary=""
                for test in SET GET; do
                    csv_row "$f" "$test"
                    rps=$ROW_RPS p50=$ROW_P50 p99=$ROW_P99
                    echo "$sys,$test,$p,$round,$rps,$p50,$p99" >>"$RESULTS"
                    summary+=$(printf '%s %10.0f ops/s p50 %6.3f p99 %7.3f ms   ' "$test" "$rps" "$p50" "$p99")
                done
                log "round $round/$ROUNDS P$p $(printf '%-16s' "$sys") $summary"
            done
        done
    done
}

single_client() { # single_client NAME METRIC_PREFIX
    local name=$1 key=$2 f rps p50 p99
    f="$RAW/c1-$name.csv"
    rb "$name" "${PORT_OF[$name]}" "$f" -t set -c 1 -n "$C1_N" -P 1
    csv_row "$f" SET
    rps=$ROW_RPS p50=$ROW_P50 p99=$ROW_P99
    metric "${key}_rps" "$rps"
    metric "${key}_p50" "$p50"
    metric "${key}_p99" "$p99"
    log "single-client SET on $name: p50 $p50 ms, p99 $p99 ms, $rps ops/s"
}

failover() {
    local old=$LEADER probe=$FOLLOWER t0 t1 r attempts=0 deadline new
    log "failover: kill -9 $old (pid ${PID_OF[$old]}), SET loop on $probe"
    t0=$(now_ms)
    kill -KILL "${PID_OF[$old]}"
    wait "${PID_OF[$old]}" 2>/dev/null || true
    deadline=$((t0 + 30000))
    t1=""
    while (($(now_ms) < deadline)); do
        attempts=$((attempts + 1))
        r=$(timeout --foreground -k 1 1 redis-cli -h 127.0.0.1 -p "${PORT_OF[$probe]}" SET failover-probe x 2>&1 | tr -d '\r' || true)
        if [[ $r == OK ]]; then
            t1=$(now_ms)
            break
        fi
    done
    metric failover_old_leader "$old"
    metric failover_probe_node "$probe"
    metric failover_attempts "$attempts"
    if [[ -z $t1 ]]; then
        metric failover_note "no OK within 30 s (last reply: $r)"
        warn "failover: no OK within 30 s (last reply: $r)"
        return
    fi
    new=$(raft_field "${PORT_OF[$probe]}" raft_leader)
    metric failover_ms "$((t1 - t0))"
    metric failover_new_leader "$new"
    log "failover: first OK after $((t1 - t0)) ms ($attempts attempts), new leader $new"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

load_keys() { # load_keys NAME : exactly MEM_KEYS distinct keys through redis-cli --pipe
    local name=$1 f="$RAW/load-$1.txt" rc=0
    "$PY" "$HELPERS/gen_keys.py" "$MEM_KEYS" "$VALUE_SIZE" |
        timeout --foreground -k 10 "$RB_TIMEOUT" redis-cli -h 127.0.0.1 -p "${PORT_OF[$name]}" --pipe >"$f" 2>&1 || rc=$?
    [[ $rc == 0 ]] || die "loading keys into $name failed (exit $rc): $(tail -n 3 "$f")"
    grep -q "errors: 0, replies: $MEM_KEYS" "$f" || die "loading keys into $name: $(tail -n 1 "$f")"
}

wait_dbsize() { # wait_dbsize NAME COUNT TIMEOUT_S
    local name=$1 deadline=$(($(now_ms) + $3 * 1000)) got
    while :; do
        got=$(rcli "${PORT_OF[$name]}" DBSIZE || true)
        [[ $got == "$2" ]] && return 0
        (($(now_ms) < deadline)) || die "$name: DBSIZE $got, expected $2 after $3 s"
        sleep 0.2
    done
}

memory() {
    local raw t0 n
    raw=$("$PY" "$HELPERS/gen_keys.py" --raw-bytes "$MEM_KEYS" "$VALUE_SIZE")
    metric mem_keys "$MEM_KEYS"
    metric mem_raw_bytes "$raw"
    start_cluster mem
    log "memory: loading $MEM_KEYS distinct keys ($VALUE_SIZE-byte values) into $LEADER"
    t0=$(now_ms)
    load_keys "$LEADER"
    metric mem_load_s "$(((($(now_ms) - t0) + 500) / 1000))"
    for n in mem0 mem1 mem2; do wait_dbsize "$n" "$MEM_KEYS" 300; done
    metric mem_dbsize_leader "$(rcli "${PORT_OF[$LEADER]}" DBSIZE)"
    metric mem_dbsize_follower "$(rcli "${PORT_OF[$FOLLOWER]}" DBSIZE)"
    metric mem_rss_leader_kb "$(rss_kb "${PID_OF[$LEADER]}")"
    metric mem_rss_follower_kb "$(rss_kb "${PID_OF[$FOLLOWER]}")"
    # On disk: the blocks the files use (redb grows its files sparsely, so their apparent size,
    # `du -b`, is larger).
    metric mem_du_leader_bytes "$(du -s --block-size=1 "${DIR_OF[$LEADER]}" | awk '{ print $1 }')"
    metric mem_apparent_leader_bytes "$(du -sb "${DIR_OF[$LEADER]}" | awk '{ print $1 }')"
    log "memory: leader RSS $(rss_kb "${PID_OF[$LEADER]}") kB, follower RSS $(rss_kb "${PID_OF[$FOLLOWER]}") kB, data dir $(du -sh "${DIR_OF[$LEADER]}" | awk '{ print $1 }')"
    stop_names mem0 mem1 mem2
    # Reference: the same keys in redis-server without persistence.
    rcli "${PORT_OF[redis-nopersist]}" FLUSHALL >/dev/null
    load_keys redis-nopersist
    wait_dbsize redis-nopersist "$MEM_KEYS" 10
    metric mem_rss_redis_kb "$(rss_kb "${PID_OF[redis-nopersist]}")"
}

# --------------------------------------------------------------------------- collections
# LPUSH, RPOP, HSET, SADD, ZADD, XADD, LRANGE_100 and 1M-member memory (scripts/bench-types.sh),
# on its own processes after the rest; its table goes to types.txt.
types_bench() {
    local n=$N_P1 members=$MEM_KEYS
    log "collections: scripts/bench-types.sh (N $n, $members members)"
    TYPES_N=$n TYPES_MEMBERS=$members TYPES_OUT="$OUT/types.txt" "$ROOT/scripts/bench-types.sh" \
        2>"$LOGS/bench-types.log" || die "scripts/bench-types.sh failed: $(tail -n 3 "$LOGS/bench-types.log")"
}

# --------------------------------------------------------------------------- main
mkdir -p "$LOGS" "$RAW"
: >"$METRICS"
log "results go to $OUT"
ensure_deps
build
TMP=$(mktemp -d "${TMPDIR:-/tmp}/kvd-bench.XXXXXX")

metric timestamp "$STAMP"
metric host "$(uname -n)"
metric cpus "$(nproc 2>/dev/null || echo '?')"
metric kvd_commit "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
metric redis_version "$(redis-server --version | grep -oE 'v=[0-9.]+' | cut -d= -f2)"
metric n_p1 "$N_P1"
metric n_p16 "$N_P16"
log "config: N P1=$N_P1 P16=$N_P16 rounds=$ROUNDS single-client N=$C1_N memory keys=$MEM_KEYS"

start_cluster node
start_redis redis-nopersist --save "" --appendonly no
start_redis redis-aof-always --save "" --appendonly yes --appendfsync always

declare -A SYS_NODE=(
    [kvd-leader]=$LEADER
    [kvd-follower]=$FOLLOWER
    [redis-nopersist]=redis-nopersist
    [redis-aof-always]=redis-aof-always
)
RR_NODES=()
if [[ -n ${REDISRAFT_MODULE:-} || -n ${REDIS_SERVER:-} ]]; then
    [[ -r ${REDISRAFT_MODULE:-} ]] || die "REDISRAFT_MODULE='${REDISRAFT_MODULE:-}' is not a readable file"
    [[ -x ${REDIS_SERVER:-} ]] || die "REDIS_SERVER='${REDIS_SERVER:-}' is not an executable"
    metric redisraft_server "$("$REDIS_SERVER" --version | grep -oE 'v=[0-9.]+' | cut -d= -f2)"
    start_redisraft
    SYSTEMS+=(redisraft-leader redisraft-follower)
    SYS_NODE[redisraft-leader]=$RR_LEADER
    SYS_NODE[redisraft-follower]=$RR_FOLLOWER
    RR_NODES=(rr0 rr1 rr2)
fi

bench_matrix
single_client "$LEADER" c1_kvd_leader
single_client redis-aof-always c1_redis_aof
if ((${#RR_NODES[@]})); then
    single_client "$RR_LEADER" c1_redisraft_leader
    stop_names "${RR_NODES[@]}"
fi
failover
stop_names node0 node1 node2 redis-aof-always
memory
stop_names redis-nopersist
types_bench

# kvd's own log lines worth a look (a few "peer unreachable" WARNs after the failover kill are expected)
kvd_warn=$(cat "$LOGS"/node?.log "$LOGS"/mem?.log | grep -c ' WARN ' || true)
kvd_err=$(cat "$LOGS"/node?.log "$LOGS"/mem?.log | grep -cE ' ERROR |panic' || true)
metric kvd_log_warn "$kvd_warn"
metric kvd_log_error "$kvd_err"

rc=0
"${PLOT_PY:-$PY}" "$HELPERS/report.py" "$OUT" || rc=$?
case $rc in
0) ;;
3) warn "no plot drawn" ;;
*) die "report.py failed (exit $rc)" ;;
esac
echo
if [[ $kvd_warn != 0 || $kvd_err != 0 ]]; then
    echo "kvd log lines: grep -E ' WARN | ERROR |panic' $LOGS/node?.log $LOGS/mem?.log"
fi
echo "results: $RESULTS"
echo "summary: $OUT/summary.txt"
[[ -f $OUT/plot.png ]] && echo "plot:    $OUT/plot.png"
echo "raw redis-benchmark output and logs: $RAW $LOGS"
