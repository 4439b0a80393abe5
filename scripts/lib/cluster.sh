# Helpers shared by scripts that start kvd nodes on loopback (sourced, not run).
# The caller sets SCRIPT (a name for log lines) before sourcing; this sets ROOT, KVD, TMP and
# PIDS, and stops every process started with `start` on exit.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KVD="$ROOT/target/release/kvd"
TMP=$(mktemp -d)
declare -a PIDS=()

cleanup() {
    for p in "${PIDS[@]:-}"; do [[ -n $p ]] && kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]:-}"; do [[ -n $p ]] && kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

log() { printf '[%s %s] %s\n' "$SCRIPT" "$(date +%H:%M:%S)" "$*" >&2; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# free_ports COUNT: space-separated ports on 127.0.0.1 that were free just now.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# rcli PORT ARGS...: redis-cli with a timeout; never hangs, never fails (check the output).
rcli() { timeout 10 redis-cli -p "$@" 2>/dev/null || true; }

# until_ok SECONDS WHAT COMMAND...: polls COMMAND until it succeeds; gives up after SECONDS.
until_ok() {
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@"; do
        ((SECONDS < deadline)) || { log "gave up waiting for: $what"; exit 1; }
        sleep 0.05
    done
}

# field PORT NAME: a field of INFO raft.
field() { rcli "$1" info raft | tr -d '\r' | sed -n "s/^$2://p"; }
is_leader() { [[ $(field "$1" raft_role) == leader ]]; }
voters_are() { [[ $(rcli "$1" cluster members | grep -c ' voter ') == "$2" ]]; }

# start NAME CLIENT_PORT RAFT_PORT [ARGS...]: a kvd node with its data in $TMP/NAME.
start() {
    local name=$1 client=$2 raft=$3
    shift 3
    "$KVD" --id "$name" --addr "127.0.0.1:$client" --raft-addr "127.0.0.1:$raft" "$@" \
        "$TMP/$name" 2>"$TMP/$name.log" &
    PIDS+=($!)
}

# start_three [ARGS...]: a 3-node cluster on free ports (node0 bootstraps, node1 and node2 join
# it), every node with ARGS; returns once all three are voters. Sets P (client and raft port
# of node i at P[2i] and P[2i+1]); node i's PID is PIDS[i].
start_three() {
    read -r -a P <<<"$(free_ports 6)"
    start node0 "${P[0]}" "${P[1]}" "$@"
    until_ok 30 "node0 leads" is_leader "${P[0]}"
    start node1 "${P[2]}" "${P[3]}" --join "127.0.0.1:${P[0]}" "$@"
    start node2 "${P[4]}" "${P[5]}" --join "127.0.0.1:${P[0]}" "$@"
    until_ok 60 "three voters" voters_are "${P[0]}" 3
}

# build_if_missing: the release binary, built once.
build_if_missing() { [[ -x $KVD ]] || (cd "$ROOT" && cargo build --release); }
