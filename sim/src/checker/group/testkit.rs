//! Terse construction of hand-made group histories for the checkers' unit tests.
//!
//! Every event advances the logical clock by one nanosecond. An op is invoked when it is
//! completed (so ops run one after another) unless its process was [`Builder::start`]ed first:
//! starting two processes before completing either makes their ops concurrent.

use std::collections::BTreeMap;

use strata_core::types::Instant;

use crate::group_history::{
    CommittedRead, DescribedMember, GroupCall, GroupHistory, GroupOp, GroupOpIndex, GroupOutcome,
};
use crate::history::{ProcessId, TopicPartition};

pub(crate) struct Builder {
    pub history: GroupHistory,
    time: u64,
    /// Invocation times of started, not yet completed, ops by process.
    started: BTreeMap<u32, Instant>,
}

pub(crate) fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

pub(crate) fn tps(ps: &[(&str, i32)]) -> Vec<TopicPartition> {
    ps.iter().map(|(t, p)| tp(t, *p)).collect()
}

/// A read of a commit: its offset and its tag.
pub(crate) fn read(offset: i64, tag: u64) -> Option<CommittedRead> {
    Some(CommittedRead {
        offset,
        tag: Some(tag),
    })
}

impl Builder {
    pub fn new() -> Builder {
        Builder {
            history: GroupHistory::new(),
            time: 0,
            started: BTreeMap::new(),
        }
    }

    fn tick(&mut self) -> Instant {
        self.time += 1;
        Instant(self.time)
    }

    /// Every partition of `ps` is subscribed by `group`.
    pub fn subscribe(&mut self, group: &str, ps: &[(&str, i32)]) {
        self.history.subscribed.insert(group.to_string(), tps(ps));
    }

    /// Invokes process `p`'s next op now; the next op recorded for `p` completes it.
    pub fn start(&mut self, p: u32) {
        let t = self.tick();
        assert!(self.started.insert(p, t).is_none(), "p{p} already started");
    }

    /// Records an op of `p` completing now (invoked now too unless `p` was started).
    pub fn op(
        &mut self,
        p: u32,
        group: &str,
        call: GroupCall,
        outcome: GroupOutcome,
    ) -> GroupOpIndex {
        let invoked = match self.started.remove(&p) {
            Some(t) => t,
            None => self.tick(),
        };
        let completed = Some(self.tick());
        self.history.record(GroupOp {
            process: ProcessId(p),
            group: group.to_string(),
            invoked,
            completed,
            call,
            outcome,
        })
    }

    /// A started op of `p` that never completed (the run ended first).
    pub fn never_completed(&mut self, p: u32, group: &str, call: GroupCall) -> GroupOpIndex {
        let invoked = self.started.remove(&p).expect("start the op first");
        self.history.record(GroupOp {
            process: ProcessId(p),
            group: group.to_string(),
            invoked,
            completed: None,
            call,
            outcome: GroupOutcome::Info("never completed".to_string()),
        })
    }

    /// `member` joined `group` in `generation` with assignment `ps`.
    pub fn joined(
        &mut self,
        p: u32,
        group: &str,
        member: &str,
        generation: i32,
        ps: &[(&str, i32)],
    ) -> GroupOpIndex {
        let call = GroupCall::Join {
            member_id: member.to_string(),
        };
        let outcome = GroupOutcome::Joined {
            member_id: member.to_string(),
            generation,
            assignment: tps(ps),
        };
        self.op(p, group, call, outcome)
    }

    /// A commit by (`member`, `generation`) of `(topic, partition, offset)`s, tagged `tag`.
    #[allow(clippy::too_many_arguments)]
    pub fn commit(
        &mut self,
        p: u32,
        group: &str,
        member: &str,
        generation: i32,
        offsets: &[(&str, i32, i64)],
        tag: u64,
        outcome: GroupOutcome,
    ) -> GroupOpIndex {
        let call = commit_call(member, generation, offsets, tag);
        self.op(p, group, call, outcome)
    }

    pub fn commit_ok(
        &mut self,
        p: u32,
        group: &str,
        member: &str,
        generation: i32,
        offsets: &[(&str, i32, i64)],
        tag: u64,
    ) -> GroupOpIndex {
        self.commit(
            p,
            group,
            member,
            generation,
            offsets,
            tag,
            GroupOutcome::Committed,
        )
    }

    /// A commit refused with `ILLEGAL_GENERATION` (22).
    pub fn commit_refused(
        &mut self,
        p: u32,
        group: &str,
        member: &str,
        generation: i32,
        offsets: &[(&str, i32, i64)],
        tag: u64,
    ) -> GroupOpIndex {
        self.commit(
            p,
            group,
            member,
            generation,
            offsets,
            tag,
            GroupOutcome::Fail(22),
        )
    }

    /// A commit that timed out.
    pub fn commit_info(
        &mut self,
        p: u32,
        group: &str,
        member: &str,
        generation: i32,
        offsets: &[(&str, i32, i64)],
        tag: u64,
    ) -> GroupOpIndex {
        self.commit(
            p,
            group,
            member,
            generation,
            offsets,
            tag,
            GroupOutcome::Info("timeout".to_string()),
        )
    }

    /// An OffsetFetch of `group` that returned `reads`.
    pub fn fetched(
        &mut self,
        p: u32,
        group: &str,
        reads: &[((&str, i32), Option<CommittedRead>)],
    ) -> GroupOpIndex {
        let call = GroupCall::FetchCommitted {
            partitions: reads.iter().map(|((t, p), _)| tp(t, *p)).collect(),
        };
        let outcome = GroupOutcome::Fetched(
            reads
                .iter()
                .map(|((t, p), read)| (tp(t, *p), *read))
                .collect(),
        );
        self.op(p, group, call, outcome)
    }

    /// The final describe of `group` after the heal, answered with `state` and `members`.
    pub fn described(
        &mut self,
        p: u32,
        group: &str,
        state: &str,
        generation: i32,
        members: &[(&str, &[(&str, i32)])],
    ) -> GroupOpIndex {
        let outcome = GroupOutcome::Described {
            state: state.to_string(),
            generation,
            members: members
                .iter()
                .map(|(member, ps)| DescribedMember {
                    member_id: member.to_string(),
                    assignment: tps(ps),
                })
                .collect(),
        };
        self.final_describe(p, group, outcome)
    }

    /// The final describe of `group` after the heal, ending with `outcome`.
    pub fn final_describe(&mut self, p: u32, group: &str, outcome: GroupOutcome) -> GroupOpIndex {
        self.op(p, group, GroupCall::Describe { final_check: true }, outcome)
    }
}

pub(crate) fn commit_call(
    member: &str,
    generation: i32,
    offsets: &[(&str, i32, i64)],
    tag: u64,
) -> GroupCall {
    GroupCall::Commit {
        member_id: member.to_string(),
        generation,
        offsets: offsets
            .iter()
            .map(|(t, p, offset)| (tp(t, *p), *offset))
            .collect(),
        tag,
    }
}
