#!/usr/bin/env bash
# Runs the real-client suites against kvd: redis-py (pytest; redis-py's default protocol, RESP3,
# and protocol=2) and node-redis (node --test; RESP2 and RESP3), each against a single node and
# a follower of a 3-node cluster that the tests start themselves.
#
# usage: tests/clients/run.sh            (from anywhere; builds nothing: cargo build --release first)
#   KVD_BIN=path/to/kvd                  binary under test (default target/release/kvd)
#   KVD_CLIENTS_AGAINST_REDIS=1          single-node cases against redis-server instead (checks the tests)
# Installs redis + pytest with pip and node-redis with npm. Last line: N passed, M failed;
# exit status 0 only if nothing failed.
set -u
here=$(dirname "$(readlink -f "$0")")
repo=$(readlink -f "$here/../..")
export KVD_BIN=${KVD_BIN:-target/release/kvd}
case $KVD_BIN in /*) bin=$KVD_BIN;; *) bin=$repo/$KVD_BIN;; esac
if [ "${KVD_CLIENTS_AGAINST_REDIS:-}" != 1 ] && [ ! -x "$bin" ]; then
  echo "no kvd binary at $bin (cargo build --release)" >&2; exit 2
fi

passed=0 failed=0
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -U redis pytest >/dev/null 2>&1 \
  || python3 -m pip install -q -U redis pytest
out=$(mktemp)
( cd "$here/python" && python3 -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning ) 2>&1 | tee "$out"
p=$(grep -Eo '[0-9]+ passed' "$out" | tail -1 | grep -Eo '[0-9]+'); f=$(grep -Eo '[0-9]+ (failed|error)' "$out" | awk '{s+=$1} END {print s+0}')
[ -n "$p$f" ] || f=1
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))

( cd "$here/node" && npm install --no-audit --no-fund --loglevel=error >/dev/null ) || { echo "npm install failed"; failed=$((failed+1)); }
( cd "$here/node" && node --test --test-concurrency=1 test/*.test.mjs ) 2>&1 | tee "$out" | grep -E '^# (pass|fail)|^ *not ok'
p=$(sed -n 's/^# pass //p' "$out"); f=$(sed -n 's/^# fail //p' "$out")
[ -n "$p$f" ] || f=1
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
rm -f "$out"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
