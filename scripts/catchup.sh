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

SCRIPT=catchup
# shellcheck source=lib/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"
KEYS=${CATCHUP_KEYS:-100000}
VALUE=${CATCHUP_VALUE:-1000}
digest_is() { [[ $(rcli "$1" digest) == "$2" ]]; }
node3_voter() { rcli "$1" cluster members | grep -q '^node3 .* voter '; }

build_if_missing
read -r -a P <<<"$(free_ports 8)"

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
