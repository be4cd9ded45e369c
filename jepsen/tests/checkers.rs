//! Each anomaly the jepsen harness judges, caught on a hand-made bad history, through
//! [`strata_jepsen::verdict::judge`] (the path a real run takes), plus the subscribe-mode rules:
//! poll-skip only within one member's generation, committed offsets never going back.
//!
//! Histories are built through the public `History` API the way the harness records them: one
//! nanosecond per event, so history order is time order.

use strata_core::types::{Instant, Offset};
use strata_jepsen::verdict::{Verdicts, judge};
use strata_sim::group_history::{
    CommittedRead, GroupCall, GroupHistory, GroupOp, GroupOpIndex, GroupOutcome,
};
use strata_sim::history::{
    Acks, Call, History, OpIndex, PollResult, ProcessId, Reply, SendAck, TopicPartition, Value,
};

fn tp(partition: i32) -> TopicPartition {
    TopicPartition::new("t", partition)
}

/// Terse history construction; every event one nanosecond after the previous.
#[derive(Default)]
struct Builder {
    history: History,
    groups: GroupHistory,
    time: u64,
}

impl Builder {
    fn tick(&mut self) -> Instant {
        self.time += 1;
        Instant(self.time)
    }

    fn invoke_send(&mut self, p: u32, partition: i32, vs: &[u64], acks: Acks) {
        let t = self.tick();
        self.history.invoke(
            ProcessId(p),
            t,
            Call::Send {
                tp: tp(partition),
                values: vs.iter().map(|v| Value(*v)).collect(),
                acks,
                resends: false,
            },
        );
    }

    /// An `acks=all` send of `vs` acknowledged at `base`.
    fn send_ok(&mut self, p: u32, partition: i32, vs: &[u64], base: i64) -> OpIndex {
        self.invoke_send(p, partition, vs, Acks::All);
        let t = self.tick();
        self.history
            .ok(ProcessId(p), t, Reply::Send(SendAck::new(Offset(base))))
    }

    fn send_fail(&mut self, p: u32, partition: i32, vs: &[u64]) -> OpIndex {
        self.invoke_send(p, partition, vs, Acks::All);
        let t = self.tick();
        self.history
            .fail(ProcessId(p), t, "message not sent: local queue full")
    }

    fn send_info(&mut self, p: u32, partition: i32, vs: &[u64]) -> OpIndex {
        self.invoke_send(p, partition, vs, Acks::All);
        let t = self.tick();
        self.history.info(ProcessId(p), t, "NOT_LEADER_OR_FOLLOWER")
    }

    fn poll(
        &mut self,
        p: u32,
        partition: i32,
        from: i64,
        records: &[(i64, u64)],
        hw: i64,
        final_read: bool,
    ) -> OpIndex {
        let t = self.tick();
        self.history.invoke(
            ProcessId(p),
            t,
            Call::Poll {
                tp: tp(partition),
                from_offset: Offset(from),
                final_read,
            },
        );
        let t = self.tick();
        let result = PollResult {
            records: records
                .iter()
                .map(|(o, v)| (Offset(*o), Value(*v)))
                .collect(),
            high_watermark: Offset(hw),
            log_start_offset: Offset(0),
            batches: Vec::new(),
        };
        self.history.ok(ProcessId(p), t, Reply::Poll(result))
    }

    fn poll_ok(
        &mut self,
        p: u32,
        partition: i32,
        from: i64,
        rs: &[(i64, u64)],
        hw: i64,
    ) -> OpIndex {
        self.poll(p, partition, from, rs, hw, false)
    }

    fn final_read(&mut self, partition: i32, rs: &[(i64, u64)], hw: i64) -> OpIndex {
        self.poll(99, partition, 0, rs, hw, true)
    }

    fn assign(&mut self, p: u32, partitions: &[i32]) {
        let t = self.tick();
        self.history.invoke(
            ProcessId(p),
            t,
            Call::Assign {
                partitions: partitions.iter().map(|p| tp(*p)).collect(),
                seek_to_beginning: false,
            },
        );
        let t = self.tick();
        self.history.ok(ProcessId(p), t, Reply::Assign);
    }

    fn seek(&mut self, p: u32, partition: i32, offset: i64) {
        let t = self.tick();
        self.history.invoke(
            ProcessId(p),
            t,
            Call::Seek {
                tp: tp(partition),
                offset: Offset(offset),
            },
        );
        let t = self.tick();
        self.history.ok(ProcessId(p), t, Reply::Seek);
    }

    /// A rebalance as the harness records it under subscribe: the member's new assignment, then
    /// a seek to the committed offset of each newly assigned partition.
    fn rebalance(&mut self, p: u32, assigned: &[(i32, i64)]) {
        let partitions: Vec<i32> = assigned.iter().map(|(p, _)| *p).collect();
        self.assign(p, &partitions);
        for &(partition, committed) in assigned {
            self.seek(p, partition, committed);
        }
    }

    fn group_op(&mut self, p: u32, call: GroupCall, outcome: GroupOutcome) -> GroupOpIndex {
        let invoked = self.tick();
        let completed = self.tick();
        self.groups.record(GroupOp {
            process: ProcessId(p),
            group: "g".into(),
            invoked,
            completed: Some(completed),
            call,
            outcome,
        })
    }

    fn commit(&mut self, p: u32, generation: i32, partition: i32, offset: i64, tag: u64) {
        self.group_op(
            p,
            GroupCall::Commit {
                member_id: format!("m-{p}"),
                generation,
                offsets: vec![(tp(partition), offset)],
                tag,
            },
            GroupOutcome::Committed,
        );
    }

    fn fetch_committed(&mut self, p: u32, partition: i32, found: Option<(i64, u64)>) {
        self.group_op(
            p,
            GroupCall::FetchCommitted {
                partitions: vec![tp(partition)],
            },
            GroupOutcome::Fetched(vec![(
                tp(partition),
                found.map(|(offset, tag)| CommittedRead {
                    offset,
                    tag: Some(tag),
                }),
            )]),
        );
    }

    fn judge(&self) -> Verdicts {
        judge(&self.history, Some(&self.groups))
    }
}

/// Asserts the verdict found `name` (and says what it found otherwise).
fn assert_found(verdicts: &Verdicts, name: &str) {
    assert!(!verdicts.valid, "{}", verdicts.rendered);
    assert!(
        verdicts.count(name).is_some_and(|n| n > 0),
        "expected {name}:\n{}",
        verdicts.rendered
    );
}

/// Two sends, one indefinite, one failed, a consumer that reads everything in order, a final
/// read: the clean history every anomaly below breaks in one way.
fn clean() -> Builder {
    let mut b = Builder::default();
    b.send_ok(1, 0, &[1, 2], 0);
    b.send_info(1, 0, &[3]);
    b.send_ok(1, 0, &[4], 3);
    b.send_fail(1, 0, &[5]);
    b.assign(2, &[0]);
    b.seek(2, 0, 0);
    b.poll_ok(2, 0, 0, &[(0, 1), (1, 2)], 2);
    b.poll_ok(2, 0, 2, &[(2, 3), (3, 4)], 4);
    b.final_read(0, &[(0, 1), (1, 2), (2, 3), (3, 4)], 4);
    b
}

#[test]
fn a_clean_history_is_valid_and_every_verdict_is_listed() {
    let mut b = clean();
    b.commit(2, 1, 0, 4, 1);
    b.fetch_committed(3, 0, Some((4, 1)));
    let verdicts = b.judge();
    assert!(verdicts.valid, "{}", verdicts.rendered);
    for name in [
        "lost-write",
        "unseen",
        "duplicate",
        "inconsistent-offsets",
        "nonmonotonic-send",
        "nonmonotonic-poll",
        "poll-skip",
        "G1a",
        "precommitted-read",
        "group-stale-commit",
        "group-lost-commit",
    ] {
        assert_eq!(verdicts.count(name), Some(0), "{name} not listed");
    }
    assert!(verdicts.not_judged.iter().any(|n| n == "split-brain"));
    let json = verdicts.to_json();
    assert!(json.contains("\"valid\": true"), "{json}");
    assert!(json.contains("\"poll-skip\""), "{json}");
}

#[test]
fn without_a_group_history_the_group_checks_are_not_judged() {
    let b = clean();
    let verdicts = judge(&b.history, None);
    assert!(verdicts.valid, "{}", verdicts.rendered);
    assert_eq!(verdicts.count("group-stale-commit"), None);
    assert!(
        verdicts
            .not_judged
            .iter()
            .any(|n| n == "group-stale-commit")
    );
}

#[test]
fn a_history_judges_the_same_after_a_json_lines_round_trip() {
    let mut b = clean();
    b.poll_ok(2, 0, 4, &[(2, 3)], 4); // nonmonotonic-poll
    let text = b.history.to_jsonl();
    let back = History::from_jsonl(&text).expect("reads back");
    let groups = GroupHistory::from_jsonl(&b.groups.to_jsonl()).expect("reads back");
    let (before, after) = (b.judge(), judge(&back, Some(&groups)));
    assert_eq!(before.per_anomaly, after.per_anomaly);
    assert!(!after.valid);
}

#[test]
fn lost_write() {
    let mut b = Builder::default();
    b.send_ok(1, 0, &[1], 0);
    b.send_ok(1, 0, &[2], 1);
    b.poll_ok(2, 0, 0, &[(0, 1), (1, 2)], 2);
    b.final_read(0, &[(0, 1)], 1); // 2 was acknowledged at 1, and is gone
    assert_found(&b.judge(), "lost-write");
}

#[test]
fn unseen() {
    let mut b = Builder::default();
    b.send_ok(1, 0, &[1], 0);
    b.send_ok(1, 0, &[2], 1);
    b.final_read(0, &[(0, 1)], 2);
    let verdicts = b.judge();
    assert_found(&verdicts, "unseen");
}

#[test]
fn duplicate() {
    let mut b = Builder::default();
    b.send_ok(1, 0, &[1], 0);
    b.final_read(0, &[(0, 1), (1, 1)], 2);
    assert_found(&b.judge(), "duplicate");
}

#[test]
fn inconsistent_offsets() {
    let mut b = Builder::default();
    b.send_ok(1, 0, &[1], 0);
    b.send_info(3, 0, &[2]);
    b.poll_ok(2, 0, 0, &[(0, 2)], 1); // another value where 1 was acknowledged
    b.final_read(0, &[(0, 1)], 1);
    assert_found(&b.judge(), "inconsistent-offsets");
}

#[test]
fn nonmonotonic_send() {
    let mut b = Builder::default();
    b.send_ok(1, 0, &[1], 5);
    b.send_ok(1, 0, &[2], 3); // the same producer's later send at a lower offset
    b.final_read(0, &[(3, 2), (5, 1)], 6);
    assert_found(&b.judge(), "nonmonotonic-send");
}

#[test]
fn nonmonotonic_poll() {
    let mut b = clean();
    b.poll_ok(2, 0, 4, &[(2, 3)], 4); // back to 2 with no seek
    assert_found(&b.judge(), "nonmonotonic-poll");
}

#[test]
fn poll_skip_under_assign() {
    let mut b = Builder::default();
    b.send_ok(1, 0, &[1, 2, 3], 0);
    b.assign(2, &[0]);
    b.seek(2, 0, 0);
    b.poll_ok(2, 0, 0, &[(0, 1)], 3);
    b.poll_ok(2, 0, 1, &[(2, 3)], 3); // offset 1 holds 2
    b.poll_ok(3, 0, 0, &[(0, 1), (1, 2), (2, 3)], 3);
    b.final_read(0, &[(0, 1), (1, 2), (2, 3)], 3);
    assert_found(&b.judge(), "poll-skip");
}

#[test]
fn g1a() {
    let mut b = Builder::default();
    b.send_fail(1, 0, &[1]);
    b.poll_ok(2, 0, 0, &[(0, 1)], 1); // read a value whose only send failed
    b.final_read(0, &[(0, 1)], 1);
    assert_found(&b.judge(), "G1a");
}

#[test]
fn precommitted_read() {
    let mut b = Builder::default();
    b.send_ok(1, 0, &[1], 0);
    b.send_ok(1, 0, &[2], 1);
    b.poll_ok(2, 0, 0, &[(0, 1), (1, 2)], 1); // offset 1 at the high watermark 1
    b.final_read(0, &[(0, 1), (1, 2)], 2);
    assert_found(&b.judge(), "precommitted-read");
}

#[test]
fn precommitted_read_before_the_send() {
    let mut b = Builder::default();
    b.poll_ok(2, 0, 0, &[(0, 1)], 1); // completes before value 1 is ever sent
    b.send_ok(1, 0, &[1], 0);
    b.final_read(0, &[(0, 1)], 1);
    assert_found(&b.judge(), "precommitted-read");
}

// Subscribe mode.

/// Member 2 owns partition 0 in generation 1 and reads 0..2; member 3 owns it in generation 2.
fn subscribed() -> Builder {
    let mut b = Builder::default();
    b.send_ok(1, 0, &[1, 2, 3, 4, 5, 6], 0);
    b.rebalance(2, &[(0, 0)]);
    b.poll_ok(2, 0, 0, &[(0, 1), (1, 2)], 6);
    b.commit(2, 1, 0, 2, 1);
    b
}

#[test]
fn subscribe_a_skip_within_one_generation_of_one_member_is_poll_skip() {
    let mut b = subscribed();
    b.poll_ok(2, 0, 2, &[(4, 5), (5, 6)], 6); // 2 and 3 skipped with no rebalance
    b.final_read(0, &[(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)], 6);
    let verdicts = b.judge();
    assert_found(&verdicts, "poll-skip");
    assert_eq!(
        verdicts.count("poll-skip"),
        Some(1),
        "{}",
        verdicts.rendered
    );
}

#[test]
fn subscribe_a_jump_across_a_rebalance_is_no_anomaly() {
    let mut b = subscribed();
    // Generation 2: member 3 resumes at the commit (2), reads 2..=4 and commits only 3.
    b.rebalance(3, &[(0, 2)]);
    b.poll_ok(3, 0, 2, &[(2, 3), (3, 4), (4, 5)], 6);
    b.commit(3, 2, 0, 3, 2);
    // Generation 3: member 2 resumes at 3, jumping forward over offset 2 it never read.
    b.rebalance(2, &[(0, 3)]);
    b.poll_ok(2, 0, 3, &[(3, 4)], 6);
    // Generation 4: member 3 resumes at 3 again, back below offset 4 it had read.
    b.rebalance(3, &[(0, 3)]);
    b.poll_ok(3, 0, 3, &[(3, 4), (4, 5), (5, 6)], 6);
    b.fetch_committed(4, 0, Some((3, 2)));
    b.final_read(0, &[(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)], 6);
    let verdicts = b.judge();
    assert!(verdicts.valid, "{}", verdicts.rendered);
    // The same moves without the rebalances are anomalies: the rule is per generation.
    let mut without = subscribed();
    without.poll_ok(2, 0, 2, &[(3, 4)], 6);
    without.poll_ok(2, 0, 4, &[(3, 4)], 6);
    without.final_read(0, &[(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)], 6);
    let verdicts = without.judge();
    assert_found(&verdicts, "poll-skip");
    assert_found(&verdicts, "nonmonotonic-poll");
}

#[test]
fn subscribe_a_rebalance_that_resumes_past_the_commit_is_poll_skip() {
    // The first poll of a new generation is judged from the committed offset it resumed at.
    let mut b = subscribed();
    b.rebalance(3, &[(0, 2)]);
    b.poll_ok(3, 0, 2, &[(4, 5)], 6); // 2 and 3 are in the log
    b.final_read(0, &[(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)], 6);
    assert_found(&b.judge(), "poll-skip");
}

#[test]
fn subscribe_committed_offsets_going_back_is_group_stale_commit() {
    let mut b = subscribed();
    b.poll_ok(2, 0, 2, &[(2, 3), (3, 4)], 6);
    b.commit(2, 1, 0, 4, 2);
    // The group's committed offset reads 2 (tag 1) after 4 (tag 2) was acknowledged: a member
    // resuming there would read 2..4 again.
    b.fetch_committed(3, 0, Some((2, 1)));
    b.final_read(0, &[(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)], 6);
    let verdicts = b.judge();
    assert_found(&verdicts, "group-stale-commit");
}

#[test]
fn subscribe_a_committed_offset_vanishing_is_group_lost_commit() {
    let mut b = subscribed();
    b.fetch_committed(3, 0, None);
    b.final_read(0, &[(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)], 6);
    assert_found(&b.judge(), "group-lost-commit");
}
