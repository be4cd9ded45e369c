"""Bookkeeping shared by the consumer-group scripts: what each member consumed, what its
commits did, and the checks on top.

Delivery is at least once: a message may be consumed again only if the commit that covered it
failed (a rebalance fenced it) before its partition moved. Nothing may be skipped, and while the
group is stable each partition has exactly one owner.
"""
import threading
import time

from checks import check, fail


class Ledger:
    """Thread-safe record of consumption: (partition, offset) -> list of members that saw it,
    and the offsets whose commit failed."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seen = {}
        self.failed_commits = set()

    def consumed(self, member, partition, offset):
        with self.lock:
            self.seen.setdefault((partition, offset), []).append(member)

    def commit_failed(self, partition, offset):
        with self.lock:
            self.failed_commits.add((partition, offset))

    def count(self):
        with self.lock:
            return len(self.seen)

    def check_complete(self, ends, what):
        """Every offset below ends[p] consumed; repeats only where a commit failed."""
        with self.lock:
            for p, end in ends.items():
                for o in range(end):
                    check((p, o) in self.seen, f"{what}: partition {p} offset {o} never consumed")
            repeats = {k: v for k, v in self.seen.items() if len(v) > 1}
            unexplained = [k for k in repeats if k not in self.failed_commits]
            check(not unexplained,
                  f"{what}: consumed more than once with no failed commit before it: "
                  f"{sorted(unexplained)[:10]} (by {[repeats[k] for k in sorted(unexplained)[:3]]})")
            return len(repeats)

    def check_exactly_once(self, ends, what):
        self.check_complete(ends, what)
        with self.lock:
            repeats = sorted(k for k, v in self.seen.items() if len(v) > 1)
        check(not repeats, f"{what}: consumed more than once: {repeats[:10]}")


class MemberThread(threading.Thread):
    """A group member in its own thread. Subclasses set `consumer` (closed at the end) and
    implement `subscribe()` and `poll_once()`, which records into `ledger` and keeps
    `assigned` (the partitions it owns now)."""

    def __init__(self, name, topic, ledger):
        super().__init__(daemon=True)
        self.name, self.topic, self.ledger = name, topic, ledger
        self.assigned = set()
        self.stopping = threading.Event()
        self.error = None

    def run(self):
        try:
            self.subscribe()
            while not self.stopping.is_set():
                self.poll_once()
        except Exception as e:  # surfaced by stop()
            self.error = e
        finally:
            self.consumer.close()

    def stop(self):
        self.stopping.set()
        self.join(30)
        check(not self.is_alive(), f"{self.name} did not stop")
        check(self.error is None, f"{self.name} failed: {self.error!r}")


def check_owners(assignments, partitions, what):
    """assignments: member -> set of partitions. Every partition owned by exactly one member."""
    owners = {}
    for member, parts in assignments.items():
        for p in parts:
            check(p not in owners, f"{what}: partition {p} owned by {owners.get(p)} and {member}")
            owners[p] = member
    check(set(owners) == set(range(partitions)),
          f"{what}: owned partitions {sorted(owners)}, want all of 0..{partitions - 1} "
          f"(assignments {assignments})")


def wait_for(cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.2)
    fail(f"timed out after {timeout}s waiting for {what}")


def stable(members, partitions):
    """Every member owns something and the members own each partition exactly once."""
    parts = [m.assigned for m in members]
    return (all(parts) and set().union(*parts) == set(range(partitions))
            and sum(len(p) for p in parts) == partitions)


def owners(members):
    return {m.name: m.assigned for m in members}


class Client:
    """What the shared scenarios need from a client library: `member(group, topic, name,
    ledger)` makes a started-later group member thread (with `assigned`, `name`, `start()` and
    `stop()`); `create(topic, partitions)`; `produce(topic, partitions, per_partition, ends)`
    fills `ends` with each partition's log end; `committed(group, topic, partitions)`."""

    def __init__(self, label, member, create, produce, committed):
        self.label, self.member, self.create = label, member, create
        self.produce, self.committed = produce, committed


def rebalance_scenario(client, topic, group, timeout=90):
    """Three members on six partitions: each partition owned once, every message consumed
    once. A fourth joins, the first leaves: the group rebalances, consumption resumes from the
    committed offsets and nothing is skipped; the final commits are the log ends."""
    n, what = 6, client.label
    client.create(topic, n)
    ends = {}
    client.produce(topic, n, 100, ends)
    ledger = Ledger()
    members = [client.member(group, topic, f"m{i}", ledger) for i in range(1, 4)]
    for m in members:
        m.start()
    wait_for(lambda: ledger.count() == 600 and stable(members, n), timeout,
             "three members to consume 600 messages")
    check_owners(owners(members), n, f"{what}, three members")
    ledger.check_exactly_once(ends, f"{what}, three members")
    print(f"{what}: three members own {owners(members)}; 600 messages consumed once")
    fourth = client.member(group, topic, "m4", ledger)
    fourth.start()
    members.append(fourth)
    wait_for(lambda: stable(members, n), timeout, "the fourth member to get partitions")
    check_owners(owners(members), n, f"{what}, four members")
    print(f"{what}: four members own {owners(members)}")
    client.produce(topic, n, 100, ends)
    leaving = members.pop(0)
    leaving.stop()
    wait_for(lambda: ledger.count() == 1200 and stable(members, n), timeout,
             "three members to consume 1200 messages after m1 left")
    final = owners(members)
    check_owners(final, n, f"{what}, after m1 left")
    repeats = ledger.check_complete(ends, f"{what}, after the rebalances")
    for m in members:
        m.stop()
    got = client.committed(group, topic, n)
    check(got == ends, f"{what}: committed offsets {got}, want the log ends {ends}")
    print(f"{what}: after m4 joined and m1 left, {final} own the partitions; "
          f"1200 messages consumed, none skipped, {repeats} again after a fenced commit; "
          f"committed offsets are the log ends")


def two_groups_scenario(client, topic, timeout=90):
    """Two groups (two members and one) on one topic: each consumes every message."""
    n = 3
    client.create(topic, n)
    ends = {}
    client.produce(topic, n, 100, ends)
    a, b = Ledger(), Ledger()
    members = [client.member(f"{topic}-a", topic, "a1", a),
               client.member(f"{topic}-a", topic, "a2", a),
               client.member(f"{topic}-b", topic, "b1", b)]
    for m in members:
        m.start()
    wait_for(lambda: a.count() == 300 and b.count() == 300, timeout, "both groups to read 300")
    a.check_complete(ends, "group a")
    b.check_exactly_once(ends, "group b")
    for m in members:
        m.stop()
    print(f"{client.label}: each of two groups consumed all 300 messages")
