#!/usr/bin/env python3
"""Asks a broker for the latest offset of every partition of a topic (ListOffsets v1,
timestamp -1, one request for all partitions), over a raw socket, until it answers.

    python3 tests/bench/offsets.py --bootstrap 127.0.0.1:19092 --topic t --partitions 1000 \
        [--wait-secs 300] [--expect FILE] [--save FILE]

Used by tests/bench/startup.sh to time a restart: the broker binds its listener before it
opens (recovers) its logs, so an open port says nothing; an answer naming every partition
without error does. A connection that is refused, reset or closed is retried every 10 ms;
one that stays open is waited on (the broker answers once it serves). Prints "SECONDS
PARTITIONS OFFSETS" (seconds since the script started, partitions answered, the sum of their
latest offsets) and exits 0 once every partition answered without error (and, with --expect,
with the offsets saved there before the restart); exits 1 after --wait-secs.
"""

import argparse
import socket
import struct
import sys
import time


def request(topic, partitions, correlation):
    """A ListOffsets v1 request (non-flexible): replica -1, latest offset of each partition."""
    name = topic.encode()
    body = struct.pack(">ii", -1, 1) + struct.pack(">h", len(name)) + name
    body += struct.pack(">i", partitions)
    for p in range(partitions):
        body += struct.pack(">iq", p, -1)
    client = b"startup-probe"
    header = struct.pack(">hhih", 2, 1, correlation, len(client)) + client
    msg = header + body
    return struct.pack(">i", len(msg)) + msg


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def parse(resp):
    """{partition: (error, offset)} of a ListOffsets v1 response (after the correlation id)."""
    out = {}
    pos = 0
    (ntopics,) = struct.unpack_from(">i", resp, pos)
    pos += 4
    for _ in range(ntopics):
        (nlen,) = struct.unpack_from(">h", resp, pos)
        pos += 2 + nlen
        (nparts,) = struct.unpack_from(">i", resp, pos)
        pos += 4
        for _ in range(nparts):
            p, err, _ts, off = struct.unpack_from(">ihqq", resp, pos)
            pos += 22
            out[p] = (err, off)
    return out


def ask(host, port, topic, partitions, deadline):
    """One attempt: the answer, or None if the connection failed before one came."""
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            s.sendall(request(topic, partitions, 1))
            (size,) = struct.unpack(">i", recv_exact(s, 4))
            resp = recv_exact(s, size)
            return parse(resp[4:])
    except (OSError, ConnectionError, struct.error):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, required=True)
    ap.add_argument("--wait-secs", type=float, default=300)
    ap.add_argument("--expect", help="file of 'partition offset' lines the answer must match")
    ap.add_argument("--save", help="write the answer here as 'partition offset' lines")
    args = ap.parse_args()
    host, port = args.bootstrap.rsplit(":", 1)
    start = time.monotonic()
    deadline = start + args.wait_secs
    expect = None
    if args.expect:
        with open(args.expect) as f:
            expect = {int(a): int(b) for a, b in (line.split() for line in f if line.strip())}
    answer = None
    while time.monotonic() < deadline:
        answer = ask(host, int(port), args.topic, args.partitions, deadline)
        served = answer is not None and len(answer) == args.partitions and all(
            err == 0 for err, _ in answer.values()
        )
        if served:
            break
        time.sleep(0.01)
    else:
        print(f"no full answer within {args.wait_secs} s: {answer and len(answer)}", file=sys.stderr)
        sys.exit(1)
    secs = time.monotonic() - start
    offsets = {p: off for p, (_, off) in answer.items()}
    if args.save:
        with open(args.save, "w") as f:
            f.writelines(f"{p} {o}\n" for p, o in sorted(offsets.items()))
    print(f"{secs:.3f} {len(offsets)} {sum(offsets.values())}")
    if expect is not None and expect != offsets:
        wrong = [p for p in expect if expect[p] != offsets.get(p)]
        print(f"offsets differ from before the restart at partitions {wrong[:10]}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
