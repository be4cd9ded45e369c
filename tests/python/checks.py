"""Assertions for the client scripts: a failed check prints one line and exits non-zero, which
the Rust test that ran the script reports together with the broker's log."""
import sys


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
