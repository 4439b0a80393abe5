#!/usr/bin/env bash
# How long a new node takes to catch up with a cluster holding ~100 MB: starts a 3-node cluster
# on free loopback ports, loads CATCHUP_KEYS keys of CATCHUP_VALUE bytes (default 100,000 x 1000 B
# = 100 MB, more than the default compaction threshold, so the log is compacted and the new node
# needs a snapshot), then starts a 4th node with --join and reports the time until its DIGEST
# equals the leader's, and until it is a voter. Cleans up everything it started.
#
#   scripts/catchup.sh
#   CATCHUP_KEYS=20000 CATCHUP_VALUE=1000 scripts/catchup.sh   # quicker
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KVD="$ROOT/target/release/kvd"
KEYS=${CATCHUP_KEYS:-100000}
VALUE=${CATCHUP_VALUE:-1000}
TMP=$(mktemp -d)
declare -a PIDS=()

cleanup() {
    for p in "${PIDS[@]:-}"; do [[ -n $p ]] && kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]:-}"; do [[ -n $p ]] && kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

log() { printf '[catchup %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
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
is_leader() { [[ $(rcli "$1" info raft | tr -d '\r' | grep -c 'raft_role:leader') == 1 ]]; }
voters_are() { [[ $(rcli "$1" cluster members | grep -c ' voter ') == "$2" ]]; }
digest_is() { [[ $(rcli "$1" digest) == "$2" ]]; }
node3_voter() { rcli "$1" cluster members | grep -q '^node3 .* voter '; }

[[ -x $KVD ]] || (cd "$ROOT" && cargo build --release)
read -r -a P <<<"$(free_ports 8)"

start() { # start NAME CLIENT RAFT [ARGS...]
    local name=$1 client=$2 raft=$3
    shift 3
    "$KVD" --id "$name" --addr "127.0.0.1:$client" --raft-addr "127.0.0.1:$raft" "$@" \
        "$TMP/$name" 2>"$TMP/$name.log" &
    PIDS+=($!)
}

start node0 "${P[0]}" "${P[1]}"
until_ok 30 "node0 leads" is_leader "${P[0]}"
start node1 "${P[2]}" "${P[3]}" --join "127.0.0.1:${P[0]}"
start node2 "${P[4]}" "${P[5]}" --join "127.0.0.1:${P[0]}"
until_ok 60 "three voters" voters_are "${P[0]}" 3

log "loading $KEYS keys of $VALUE bytes"
python3 - "$KEYS" "$VALUE" <<'EOF' | redis-cli -p "${P[0]}" --pipe >/dev/null
import sys
n, size = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
value = b"v" * size
for i in range(n):
    key = b"key:%d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, size, value))
EOF
target=$(rcli "${P[0]}" digest)
first=$(rcli "${P[0]}" info raft | tr -d '\r' | awk -F: '/^raft_first_index/ {print $2}')
log "leader digest: $target, log starts at index $first (compacted if > 1)"

t0=$(now_ms)
start node3 "${P[6]}" "${P[7]}" --join "127.0.0.1:${P[2]}"
until_ok 600 "node3 has the leader's data" digest_is "${P[6]}" "$target"
t1=$(now_ms)
until_ok 120 "node3 is a voter" node3_voter "${P[0]}"
t2=$(now_ms)
bytes=$((KEYS * (VALUE + 10)))
snap=$(grep -c 'installed snapshot' "$TMP/node3.log" || true)
rss=$(awk '/^VmRSS:/ {print $2}' "/proc/${PIDS[3]}/status")
echo "data: $KEYS keys, ~$((bytes / 1000000)) MB; new node caught up (same DIGEST) in $((t1 - t0)) ms, voter after $((t2 - t0)) ms; snapshots installed: $snap; its RSS: $((rss / 1024)) MiB"
