#!/usr/bin/env python3
"""The disk's own fsync latency for the end-to-end latency workload, measured in the same run.

    python3 tests/bench/disk_latency.py DIR [--rate 1000] [--seconds 10] [--size 100]

Appends SIZE-byte records to a new file in DIR, one `fdatasync` after each, RATE a second for
SECONDS (the shape of the broker's work in the latency figure: every 100 B message is its own
produce request, appended and synced before it is acknowledged), and prints "p50 p99 p99.9
count": the latency of each write + fdatasync in milliseconds. No broker can acknowledge a
synced write faster than its disk syncs one, so this is the floor under the end-to-end figure
on this machine at this moment: the disk is shared, and its tail moves with other writers on
the same file system (an append that grows the file needs a journal commit, which on ext4
waits for other files' data).
"""

import argparse
import os
import sys
import time

from report import percentile  # tests/bench/report.py: one nearest-rank percentile


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", type=int, default=100)
    args = ap.parse_args()
    if args.rate <= 0 or args.seconds <= 0 or args.size <= 0:
        sys.exit("rate, seconds and size must be positive")
    path = os.path.join(args.dir, "disk-latency.bin")
    record = b"x" * args.size
    count = int(args.rate * args.seconds)
    interval = 1.0 / args.rate
    latencies = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    try:
        start = time.perf_counter()
        for i in range(count):
            due = start + i * interval
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            t0 = time.perf_counter()
            os.write(fd, record)
            os.fdatasync(fd)
            latencies.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    latencies.sort()
    ms = [percentile(latencies, p) * 1000.0 for p in (50, 99, 99.9)]
    print(f"{ms[0]:.3f} {ms[1]:.3f} {ms[2]:.3f} {len(latencies)}")


if __name__ == "__main__":
    main()
