#!/usr/bin/env python3
"""The benchmark's arithmetic: latency percentiles and the one results table.

    python3 tests/bench/report.py latency FILE
        FILE holds one latency in microseconds per line (rdkafka_performance -l -A FILE);
        prints "p50 p99 p99.9 count", the percentiles in milliseconds.

    python3 tests/bench/report.py table RESULTS.tsv [--meta "text"]... [--out last.md]
        RESULTS.tsv has one measurement per line: id, client, run, value (tab-separated;
        value is a number or ERR). Prints the markdown table (every figure's median and its
        runs, the broker's CPU seconds and peak RSS, the goal ratios) and writes it to --out.

tests/bench/suite.sh records the measurements; the ids are the FIGURES below. An id ending in
.cpu or .rss is the broker's CPU seconds or peak RSS (MB) during that figure's run (for the
start-up figures: CPU seconds until every partition answered, and RSS then).
"""

import argparse
import math
import statistics
import sys
from collections import OrderedDict

# id, what it measures, unit. The numbers are those of issue #14's "The benchmark".
FIGURES = [
    ("disk.write", "disk: dd bs=1M count=256 oflag=dsync (8)", "MB/s"),
    ("disk.fsync", "disk: dd bs=4k count=2000 oflag=dsync (8)", "ops/s"),
    ("disk.lat.p50", "disk: 100 B append + fdatasync at 1,000/s, p50 (floor of (5))", "ms"),
    ("disk.lat.p99", "disk: 100 B append + fdatasync, p99", "ms"),
    ("disk.lat.p999", "disk: 100 B append + fdatasync, p99.9", "ms"),
    ("p1k.on", "produce 1 KiB, 1 node, acks=all, fsync on (1)", "MB/s"),
    ("p1k.off", "produce 1 KiB, 1 node, acks=all, fsync off (2)", "MB/s"),
    ("consume", "consume 1 KiB from offset 0, 1 node (3)", "MB/s"),
    ("p100", "produce 100 B, 1 node, acks=all (4)", "msg/s"),
    ("lat.p50", "end-to-end latency p50, 1,000 msg/s x 100 B (5)", "ms"),
    ("lat.p99", "end-to-end latency p99 (5)", "ms"),
    ("lat.p999", "end-to-end latency p99.9 (5)", "ms"),
    ("ack.p50", "produce-to-ack latency p50 (5)", "ms"),
    ("ack.p99", "produce-to-ack latency p99 (5)", "ms"),
    ("rf3", "produce 1 KiB, 3 nodes, RF 3, min ISR 2, acks=all (6)", "MB/s"),
    ("rf1", "produce 1 KiB, 3 nodes, RF 1, acks=all (6)", "MB/s"),
    ("rf3.off", "produce 1 KiB, 3 nodes, RF 3, min ISR 2, acks=all, fsync off (6b)", "MB/s"),
    ("rf1.off", "produce 1 KiB, 3 nodes, RF 1, acks=all, fsync off (6b)", "MB/s"),
    ("p16", "16 concurrent producers, 1 KiB, acks=all, 1 node (7)", "MB/s"),
    # Goal 5 (tests/bench/startup.sh): 1,000 partitions.
    ("startup.fill", "start-up: fill 1,000 partitions, 1 KiB, fsync off (not a goal)", "s"),
    ("startup.stop", "start-up: clean stop (SIGTERM) after the fill", "s"),
    ("startup.clean", "start-up after a clean stop, until every partition answers", "s"),
    ("startup.unclean", "start-up after kill -9 (+10% unflushed at the stop's checkpoint)", "s"),
    ("rf3.many", "produce 1 KiB, 3 nodes, RF 3, min ISR 2, 1,000 partitions, 64 KiB batches", "MB/s"),
    ("tansu.p1k", "Tansu memory: produce 1 KiB, acks=all", "MB/s"),
    ("tansu.consume", "Tansu memory: consume 1 KiB from offset 0", "MB/s"),
    ("tansu.p100", "Tansu memory: produce 100 B, acks=all", "msg/s"),
    ("tansu.lat.p50", "Tansu memory: end-to-end latency p50", "ms"),
    ("tansu.lat.p99", "Tansu memory: end-to-end latency p99", "ms"),
    ("tansu.lat.p999", "Tansu memory: end-to-end latency p99.9", "ms"),
]

# (label, numerator id, denominator id, goal as (comparison, bound) or None).
RATIOS = [
    ("ratio fsync on / off (1)/(2)", "p1k.on", "p1k.off", (">=", 0.9)),
    ("ratio RF 3 / RF 1 (6)", "rf3", "rf1", (">=", 0.6)),
    ("ratio RF 3 / RF 1, fsync off (6b)", "rf3.off", "rf1.off", None),
    ("ratio fsync on / the disk's dsync rate (1)/(8)", "p1k.on", "disk.write", None),
    ("ratio RF 3: 1,000 partitions / 8", "rf3.many", "rf3", (">=", 0.5)),
    ("Strata / Tansu: produce 1 KiB (fsync on vs memory)", "p1k.on", "tansu.p1k", None),
    ("Strata / Tansu: consume", "consume", "tansu.consume", None),
    ("Strata / Tansu: produce 100 B", "p100", "tansu.p100", None),
    ("Strata / Tansu: end-to-end p99 (lower is better)", "lat.p99", "tansu.lat.p99", None),
]

# Goals on a figure itself: (figure id, column: "value" or "rss", comparison, bound, text).
GOALS = [
    ("lat.p99", "value", "<=", 1.0, "p99 <= 1 ms"),
    ("lat.p999", "value", "<=", 2.0, "p99.9 <= 2 ms"),
    ("p16", "rss", "<=", 300.0, "peak RSS <= 300 MB"),
    ("startup.clean", "value", "<=", 10.0, "start-up < 10 s"),
    ("startup.clean", "rss", "<=", 300.0, "RSS <= 300 MB"),
]


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("file")
    tab = sub.add_parser("table")
    tab.add_argument("results")
    tab.add_argument("--meta", action="append", default=[])
    tab.add_argument("--out")
    args = ap.parse_args()
    if args.cmd == "latency":
        latency(args.file)
    else:
        table(args.results, args.meta, args.out)


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency(path):
    with open(path) as f:
        values = sorted(int(line) for line in f if line.strip())
    if not values:
        print("latency file is empty", file=sys.stderr)
        sys.exit(1)
    ms = [percentile(values, p) / 1000.0 for p in (50, 99, 99.9)]
    print(f"{ms[0]:.3f} {ms[1]:.3f} {ms[2]:.3f} {len(values)}")


def load(path):
    """{id: {client: {run: value or None}}} in the order first seen."""
    data = OrderedDict()
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            fid, client, run, value = line.rstrip("\n").split("\t")
            try:
                v = float(value)
            except ValueError:
                v = None
            data.setdefault(fid, OrderedDict()).setdefault(client, {})[int(run)] = v
    return data


def fmt(v, unit):
    if v is None:
        return "ERR"
    if unit in ("msg/s", "ops/s"):
        return f"{v:,.0f}"
    if unit == "ms":
        return f"{v:.2f}"
    if unit == "x" and 0 < abs(v) < 0.1:
        # e.g. a latency 1,000 times lower than the peer's: keep three significant digits.
        return f"{v:.3g}"
    if unit in ("x", "s"):
        return f"{v:.2f}"
    return f"{v:,.1f}"


def median(values):
    ok = [v for v in values if v is not None]
    return statistics.median(ok) if ok else None


def check(v, cmp, bound):
    if v is None:
        return "no data"
    ok = v >= bound if cmp == ">=" else v <= bound
    return "met" if ok else "**missed**"


def with_runs(runs, nruns, unit):
    """'median (r1 / r2 / r3)' for the CPU and RSS columns."""
    values = [runs.get(r) for r in range(1, nruns + 1)]
    if all(v is None for v in values):
        return ""
    text = fmt(median(values), unit)
    if nruns > 1:
        text += " (" + " / ".join(fmt(v, unit) for v in values) + ")"
    return text


def table(path, meta, out):
    data = load(path)
    nruns = max((r for f in data.values() for c in f.values() for r in c), default=1)
    runs_hdr = " | ".join(f"run {r}" for r in range(1, nruns + 1))
    lines = [
        f"| figure | client | median | {runs_hdr} | unit | broker CPU s | broker peak RSS MB | goal |",
        "|" + "---|" * (7 + nruns),
    ]
    goals = {(g[0], g[1]): g[2:] for g in GOALS}
    for fid, label, unit in FIGURES:
        for client, runs in data.get(fid, {}).items():
            values = [runs.get(r) for r in range(1, nruns + 1)]
            med = median(values)
            cpu = with_runs(data.get(fid + ".cpu", {}).get(client, {}), nruns, "s")
            rss_runs = data.get(fid + ".rss", {}).get(client, {})
            rss = with_runs(rss_runs, nruns, "MB")
            goal = ""
            if (fid, "value") in goals:
                cmp, bound, text = goals[(fid, "value")]
                goal = f"{text}: {check(med, cmp, bound)}"
            if (fid, "rss") in goals and rss_runs:
                cmp, bound, text = goals[(fid, "rss")]
                worst = max((v for v in rss_runs.values() if v is not None), default=None)
                goal = "; ".join(g for g in (goal, f"{text}: {check(worst, cmp, bound)}") if g)
            cells = " | ".join(fmt(v, unit) for v in values)
            lines.append(
                f"| {label} | {client} | **{fmt(med, unit)}** | {cells} | {unit} | {cpu} | {rss} | {goal} |"
            )
    for label, num, den, goal in RATIOS:
        for client, nums in data.get(num, {}).items():
            dens = data.get(den, {}).get(client)
            if dens is None and den.startswith("disk."):
                # The disk's own figures (dd, fdatasync) are the bound of every client.
                dens = next(iter(data[den].values()), None) if den in data else None
            if dens is None:
                # Tansu runs use rdkafka_performance only; compare like with like.
                continue
            per_run = [
                nums.get(r) / dens.get(r)
                if nums.get(r) is not None and dens.get(r)
                else None
                for r in range(1, nruns + 1)
            ]
            mn, md = median(nums.values()), median(dens.values())
            ratio = mn / md if mn is not None and md else None
            text = f"{goal[0]} {goal[1]}: {check(ratio, *goal)}" if goal else ""
            cells = " | ".join(fmt(v, "x") for v in per_run)
            lines.append(
                f"| {label} | {client} | **{fmt(ratio, 'x')}** | {cells} | x | | | {text} |"
            )
    text = "\n".join(meta + [""] + lines) + "\n" if meta else "\n".join(lines) + "\n"
    print(text, end="")
    if out:
        with open(out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
