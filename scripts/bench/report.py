#!/usr/bin/env python3
"""Summarise a scripts/bench.sh run: medians, kvd/redis ratios against the targets, extras, plot.

    report.py OUT_DIR

Reads OUT_DIR/results.csv (system,test,pipeline,round,rps,p50,p99) and OUT_DIR/metrics.txt
(key=value lines written by bench.sh), writes OUT_DIR/summary.txt and, if matplotlib can be
imported, OUT_DIR/plot.png. Prints the summary. Standard library only (matplotlib optional).
"""
import csv
import os
import statistics
import sys

SYSTEMS = [
    "kvd-leader",
    "kvd-follower",
    "redis-nopersist",
    "redis-aof-always",
    "redisraft-leader",
    "redisraft-follower",
]
TESTS = ["SET", "GET"]
PIPELINES = [1, 16]

# (test, pipeline, kvd system, redis system, target ratio)
TARGETS = [
    ("GET", 1, "kvd-follower", "redis-nopersist", 1.0),
    ("GET", 16, "kvd-follower", "redis-nopersist", 0.8),
    ("SET", 1, "kvd-leader", "redis-aof-always", 1.0),
    ("SET", 1, "kvd-follower", "redis-aof-always", 1.0),
    ("SET", 16, "kvd-leader", "redis-aof-always", 0.5),
    ("SET", 16, "kvd-follower", "redis-aof-always", 0.5),
    # Only when the run included RedisRaft (REDISRAFT_MODULE): see issue 14's targets.
    ("SET", 1, "kvd-leader", "redisraft-leader", 1.5),
    ("SET", 1, "kvd-follower", "kvd-leader", 0.85),
]


def load_rows(path):
    rows = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            key = (r["system"], r["test"], int(r["pipeline"]))
            rows.setdefault(key, []).append(
                (float(r["rps"]), float(r["p50"]), float(r["p99"]))
            )
    return rows


def load_metrics(path):
    m = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if "=" in line:
                    k, v = line.split("=", 1)
                    m[k] = v
    return m


def med(values):
    return statistics.median(values) if values else float("nan")


def fmt_rps(x):
    return f"{x:,.0f}"


def fnum(m, key):
    try:
        return float(m[key])
    except (KeyError, ValueError):
        return None


def met(ok):
    return "MET" if ok else "NOT MET"


def build_summary(rows, m):
    out = []
    rounds = max((len(v) for v in rows.values()), default=0)
    out.append(f"kvd benchmark  {m.get('timestamp', '')}")
    out.append(
        f"host: {m.get('host', '?')}  cpus: {m.get('cpus', '?')}  kvd: {m.get('kvd_commit', '?')}  "
        f"redis: {m.get('redis_version', '?')}"
    )
    out.append(
        f"redis-benchmark -c 50 -d 100 -r 100000; N: P1={m.get('n_p1', '?')} "
        f"P16={m.get('n_p16', '?')}; rounds: {rounds} (systems interleaved each round)"
    )
    out.append("")
    out.append("Throughput and latency (median over rounds; latency in ms)")
    hdr = f"{'test':<5} {'pipe':<4} {'system':<17} {'ops/s':>12} {'p50':>8} {'p99':>8}  {'runs':>4}  spread(min..max ops/s)"
    out.append(hdr)
    out.append("-" * len(hdr))
    medians = {}
    for test in TESTS:
        for p in PIPELINES:
            for s in SYSTEMS:
                runs = rows.get((s, test, p), [])
                if not runs:
                    continue
                rps = med([r[0] for r in runs])
                p50 = med([r[1] for r in runs])
                p99 = med([r[2] for r in runs])
                medians[(s, test, p)] = rps
                lo = min(r[0] for r in runs)
                hi = max(r[0] for r in runs)
                out.append(
                    f"{test:<5} P{p:<3} {s:<17} {fmt_rps(rps):>12} {p50:>8.3f} {p99:>8.3f}  {len(runs):>4}  "
                    f"{fmt_rps(lo)}..{fmt_rps(hi)}"
                )
            out.append("")

    out.append("Targets (ratio of median ops/s)")
    hdr = f"{'test':<5} {'pipe':<4} {'kvd':<13} {'vs redis':<17} {'kvd ops/s':>11} {'redis ops/s':>12} {'ratio':>7} {'target':>7}  result"
    out.append(hdr)
    out.append("-" * len(hdr))
    for test, p, kvd, redis, target in TARGETS:
        a = medians.get((kvd, test, p))
        b = medians.get((redis, test, p))
        if redis.startswith("redisraft") and b is None:
            continue  # no RedisRaft in this run
        if a is None or b is None or b == 0:
            out.append(f"{test:<5} P{p:<3} {kvd:<13} {redis:<17} {'n/a':>11}")
            continue
        ratio = a / b
        out.append(
            f"{test:<5} P{p:<3} {kvd:<13} {redis:<17} {fmt_rps(a):>11} {fmt_rps(b):>12} "
            f"{ratio:>6.2f}x {'>=' + format(target, 'g') + 'x':>7}  {met(ratio >= target)}"
        )
    out.append("")

    out.append("Single-client SET latency (redis-benchmark -t set -c 1 -P 1)")
    for label, key in [
        ("kvd leader", "c1_kvd_leader"),
        ("redis AOF-always", "c1_redis_aof"),
        ("RedisRaft leader", "c1_redisraft_leader"),
    ]:
        if key == "c1_redisraft_leader" and fnum(m, key + "_p50") is None:
            continue
        p50 = fnum(m, key + "_p50")
        if p50 is None:
            out.append(f"  {label:<17} n/a")
            continue
        line = (
            f"  {label:<17} p50 {p50:.3f} ms  p99 {fnum(m, key + '_p99') or 0:.3f} ms  "
            f"{fmt_rps(fnum(m, key + '_rps') or 0)} ops/s"
        )
        if key == "c1_kvd_leader":
            line += f"   target p50 <= 0.5 ms: {met(p50 <= 0.5)}"
        out.append(line)
    out.append("")

    out.append("Failover (kill -9 the leader, SET in a loop on a survivor)")
    fo = fnum(m, "failover_ms")
    if fo is None:
        out.append(f"  n/a ({m.get('failover_note', 'not measured')})")
    else:
        out.append(
            f"  kill -9 {m.get('failover_old_leader', '?')} -> first OK from "
            f"{m.get('failover_probe_node', '?')}: {fo:.0f} ms "
            f"({m.get('failover_attempts', '?')} attempts; new leader {m.get('failover_new_leader', '?')})"
        )
    out.append("")

    out.append("Memory (fresh 3-node cluster holding distinct keys key:<i> -> 100-byte values)")
    keys = m.get("mem_keys")
    if keys is None:
        out.append("  n/a")
    else:
        raw = fnum(m, "mem_raw_bytes") or 0
        out.append(
            f"  keys loaded: {keys}   DBSIZE leader/follower: {m.get('mem_dbsize_leader', '?')}/"
            f"{m.get('mem_dbsize_follower', '?')}   raw data (key+value bytes): {raw / 1e6:.1f} MB"
        )
        for label, key in [("leader", "mem_rss_leader_kb"), ("follower", "mem_rss_follower_kb")]:
            kb = fnum(m, key)
            if kb is None:
                continue
            ratio = kb * 1024 / raw if raw else float("nan")
            out.append(
                f"  kvd {label:<9} RSS {kb / 1024:8.1f} MiB   RSS/raw {ratio:5.2f}x   target <= 2x: {met(ratio <= 2.0)}"
            )
        kb = fnum(m, "mem_rss_redis_kb")
        if kb is not None and raw:
            out.append(f"  redis (ref)   RSS {kb / 1024:8.1f} MiB   RSS/raw {kb * 1024 / raw:5.2f}x   (no persistence, same keys)")
        du = fnum(m, "mem_du_leader_bytes")
        if du is not None:
            out.append(
                f"  kvd data dir (leader) {du / 1e6:.1f} MB on disk ({du / raw:.2f}x raw)"
                + (
                    f", apparent size {fnum(m, 'mem_apparent_leader_bytes') / 1e6:.1f} MB"
                    if fnum(m, "mem_apparent_leader_bytes") is not None
                    else ""
                )
                + (f", load took {m['mem_load_s']} s" if "mem_load_s" in m else "")
            )
    if "kvd_log_warn" in m:
        out.append("")
        out.append(
            f"kvd logs: {m['kvd_log_warn']} WARN, {m.get('kvd_log_error', '?')} ERROR/panic lines "
            "(a few 'peer unreachable' WARNs after the failover kill are expected)"
        )
    return "\n".join(out) + "\n", medians


def plot(medians, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # noqa: BLE001 - any import problem means "no plot"
        return f"no plot: matplotlib not available ({e})"
    groups = [(t, p) for t in TESTS for p in PIPELINES]
    colors = dict(zip(SYSTEMS, ["#1f77b4", "#6baed6", "#d62728", "#ff9896", "#2ca02c", "#98df8a"]))
    # Only the systems this run measured (RedisRaft is optional).
    systems = [s for s in SYSTEMS if any(medians.get((s, t, p)) for t, p in groups)]
    width = 0.8 / max(len(systems), 1)
    fig, ax = plt.subplots(figsize=(10, 5.5))
    for i, s in enumerate(systems):
        xs = [g + (i - (len(systems) - 1) / 2) * width for g in range(len(groups))]
        ys = [medians.get((s, t, p), 0) for t, p in groups]
        bars = ax.bar(xs, ys, width, label=s, color=colors[s])
        for b, y in zip(bars, ys):
            if y > 0:
                ax.annotate(
                    f"{y / 1000:.0f}k" if y >= 1000 else f"{y:.0f}",
                    (b.get_x() + b.get_width() / 2, y),
                    ha="center", va="bottom", fontsize=7,
                )
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{t} P{p}" for t, p in groups])
    ax.set_yscale("log")
    ax.set_ylabel("median ops/s (log scale)")
    ax.set_title("kvd vs redis-server: redis-benchmark -c 50 -d 100")
    ax.legend()
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return None


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = sys.argv[1]
    rows = load_rows(os.path.join(out_dir, "results.csv"))
    m = load_metrics(os.path.join(out_dir, "metrics.txt"))
    text, medians = build_summary(rows, m)
    with open(os.path.join(out_dir, "summary.txt"), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    err = plot(medians, os.path.join(out_dir, "plot.png"))
    if err:
        print(f"WARNING: {err}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
