//! diverged and missing-below-hw: replicas byte-identical below the high watermark.
//!
//! Judges the replicas' logs read at the end of a run ([`ReplicaCopy`]), after healing and
//! convergence, against the leader's final high watermark `HW` and final ISR. Not in Jepsen; one
//! of Strata's own claims (design §4). A client read can only show a divergence that some
//! consumer happened to fetch from the wrong replica; this shows all of them.
//!
//! For each partition with a final high watermark, over the copies of its ISR members:
//!
//! - *missing-below-hw*: every ISR member serves every offset of `[L, HW)`, where `L` is the
//!   highest log start offset among them (retention and DeleteRecords move log starts on each
//!   replica at its own pace, so below `L` some may legitimately have deleted what others keep).
//!   The high watermark is the minimum log end over the ISR (KIP-497), so an ISR member that
//!   ends below it, has a hole in it, or whose copy the harness could not read at all, breaks
//!   the definition. Reported once per member, at the first offset it lacks.
//! - *diverged*: every offset below `HW` that two ISR members serve (at or above each one's own
//!   log start) lies in byte-identical batches on both: same base offset, same last offset, same
//!   bytes, header included (so the `partitionLeaderEpoch` stamped by the leader that appended it
//!   must agree too: it is what OffsetForLeaderEpoch truncation relies on, KIP-101/279). Offsets
//!   below every replica's log start are not compared: nobody serves them.
//!   Reported once per maximal run of diverging offsets, with each member's batch at the first.
//!
//! Batches straddling the high watermark: a batch is appended and replicated whole (followers
//! fetch whole batches), so two replicas holding a batch that contains an offset below `HW` must
//! hold the same whole batch, including the part at or above `HW`. Offsets at or above `HW` that
//! lie only in batches starting at or above `HW` are not compared: they are uncommitted and may
//! still be truncated.
//!
//! Replicas outside the final ISR are not judged: an out-of-sync follower may hold a divergent
//! suffix (written by a deposed leader) until its next fetch truncates it (KIP-279). Compacted
//! partitions must not be fed to this checker (each replica compacts on its own schedule).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use strata_core::types::{LeaderEpoch, NodeId, Offset};

use crate::history::TopicPartition;
use crate::observation::{BatchCopy, Observations, ReplicaCopy};

/// What a debugger wants to know about one replica's batch without its bytes: where it lies, how
/// long it is, and the v2 header fields that tell who wrote it (parsed from the replica's bytes,
/// not validated: a torn or foreign batch shows as `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchShape {
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub len: usize,
    /// `partitionLeaderEpoch`, header bytes 12..16.
    pub leader_epoch: Option<LeaderEpoch>,
    /// `crc` (CRC-32C from `attributes` on), header bytes 17..21.
    pub crc: Option<u32>,
}

impl BatchShape {
    pub fn of(batch: &BatchCopy) -> BatchShape {
        let field = |at: usize| -> Option<[u8; 4]> { batch.bytes.get(at..at + 4)?.try_into().ok() };
        BatchShape {
            base_offset: batch.base_offset,
            last_offset: batch.last_offset,
            len: batch.bytes.len(),
            leader_epoch: field(12).map(|b| LeaderEpoch(i32::from_be_bytes(b))),
            crc: field(17).map(u32::from_be_bytes),
        }
    }
}

impl fmt::Display for BatchShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}..={}] {} bytes",
            self.base_offset, self.last_offset, self.len
        )?;
        match self.leader_epoch {
            Some(epoch) => write!(f, " epoch {}", epoch.0)?,
            None => write!(f, " epoch ?")?,
        }
        match self.crc {
            Some(crc) => write!(f, " crc {crc:#010x}"),
            None => write!(f, " crc ?"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diverged {
    pub tp: TopicPartition,
    /// The first diverging offset.
    pub offset: Offset,
    /// The end (exclusive, at most the high watermark) of the run of diverging offsets.
    pub end: Offset,
    pub high_watermark: Offset,
    /// Every ISR member serving `offset`, by node id, with its batch there.
    pub nodes: Vec<(NodeId, BatchShape)>,
}

impl fmt::Display for Diverged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|(node, shape)| format!("node {node} holds {shape}"))
            .collect();
        write!(
            f,
            "replicas of {} differ at offsets {}..{} below high watermark {}: {}",
            self.tp,
            self.offset,
            self.end,
            self.high_watermark,
            nodes.join("; ")
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingBelowHighWatermark {
    pub tp: TopicPartition,
    pub node: NodeId,
    /// The member's log start and end; `None` when the harness observed no copy at all.
    pub log_start_offset: Option<Offset>,
    pub log_end_offset: Option<Offset>,
    pub high_watermark: Offset,
    /// The first offset of `[L, HW)` the member does not serve.
    pub first_missing: Offset,
}

impl fmt::Display for MissingBelowHighWatermark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ISR member node {} of {} lacks offset {} below high watermark {}",
            self.node, self.tp, self.first_missing, self.high_watermark
        )?;
        match (self.log_start_offset, self.log_end_offset) {
            (Some(start), Some(end)) => write!(f, " (its log: {start}..{end})"),
            _ => write!(f, " (no copy observed)"),
        }
    }
}

/// Both anomalies, by partition, then by offset (diverged) or node (missing-below-hw).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    pub diverged: Vec<Diverged>,
    pub missing: Vec<MissingBelowHighWatermark>,
}

/// # Panics
///
/// On a broken recording contract (see [`crate::observation`]): a partition with a final high
/// watermark but no final ISR, two copies of one replica, or a copy whose batches are out of
/// order or overlap (a log bug, or a harness that read the log wrong).
pub fn check(observations: &Observations) -> Findings {
    let mut copies: BTreeMap<(&TopicPartition, NodeId), &ReplicaCopy> = BTreeMap::new();
    for copy in &observations.replicas {
        assert_batches_in_order(copy);
        let previous = copies.insert((&copy.tp, copy.node), copy);
        assert!(
            previous.is_none(),
            "observation contract: two copies of {} on node {}",
            copy.tp,
            copy.node
        );
    }
    let mut findings = Findings::default();
    for (tp, &high_watermark) in &observations.final_high_watermarks {
        let isr = observations.final_isr.get(tp).unwrap_or_else(|| {
            panic!("observation contract: {tp} has a final high watermark but no final ISR")
        });
        let members: BTreeSet<NodeId> = isr.iter().copied().collect();
        let present: Vec<&ReplicaCopy> = members
            .iter()
            .filter_map(|&node| copies.get(&(tp, node)).copied())
            .collect();
        // L: below it some member may have deleted what others keep. With no copy at all, every
        // member lacks everything.
        let low = present
            .iter()
            .map(|c| c.log_start_offset)
            .max()
            .unwrap_or(Offset::ZERO);
        let first_missing = findings.missing.len();
        if low < high_watermark {
            for &node in &members {
                if !copies.contains_key(&(tp, node)) {
                    findings.missing.push(MissingBelowHighWatermark {
                        tp: tp.clone(),
                        node,
                        log_start_offset: None,
                        log_end_offset: None,
                        high_watermark,
                        first_missing: low,
                    });
                }
            }
        }
        findings
            .missing
            .extend(check_coverage(tp, &present, low, high_watermark));
        findings.missing[first_missing..].sort_by_key(|m| m.node);
        findings
            .diverged
            .extend(check_identical(tp, &present, high_watermark));
    }
    findings
}

fn assert_batches_in_order(copy: &ReplicaCopy) {
    for batch in &copy.batches {
        assert!(
            batch.base_offset <= batch.last_offset,
            "node {} {}: batch [{}..={}] ends before it starts",
            copy.node,
            copy.tp,
            batch.base_offset,
            batch.last_offset
        );
    }
    for pair in copy.batches.windows(2) {
        assert!(
            pair[0].last_offset < pair[1].base_offset,
            "node {} {}: batches [{}..={}] and [{}..={}] overlap or are out of order \
             (a log bug, or the harness read the log wrong)",
            copy.node,
            copy.tp,
            pair[0].base_offset,
            pair[0].last_offset,
            pair[1].base_offset,
            pair[1].last_offset
        );
    }
}

/// missing-below-hw over the copies that exist.
fn check_coverage(
    tp: &TopicPartition,
    copies: &[&ReplicaCopy],
    low: Offset,
    high_watermark: Offset,
) -> Vec<MissingBelowHighWatermark> {
    let mut missing = Vec::new();
    for copy in copies {
        // Walk batch by batch from `low`: each step jumps past the batch holding `need`.
        let mut need = low;
        while need < high_watermark {
            match copy.batch_at(need) {
                Some(batch) => need = batch.last_offset.next(),
                None => {
                    missing.push(MissingBelowHighWatermark {
                        tp: tp.clone(),
                        node: copy.node,
                        log_start_offset: Some(copy.log_start_offset),
                        log_end_offset: Some(copy.log_end_offset),
                        high_watermark,
                        first_missing: need,
                    });
                    break;
                }
            }
        }
    }
    missing
}

/// diverged over the copies that exist.
fn check_identical(
    tp: &TopicPartition,
    copies: &[&ReplicaCopy],
    high_watermark: Offset,
) -> Vec<Diverged> {
    // Cut the offsets at every edge any copy has (log start, log end, batch edges): between two
    // consecutive cuts, every copy serves one same batch or nothing, so one comparison per
    // segment judges all its offsets.
    let mut cuts: BTreeSet<Offset> = BTreeSet::new();
    cuts.insert(high_watermark);
    for copy in copies {
        cuts.insert(copy.log_start_offset);
        cuts.insert(copy.log_end_offset);
        for batch in &copy.batches {
            cuts.insert(batch.base_offset);
            cuts.insert(batch.last_offset.next());
        }
    }
    let cuts: Vec<Offset> = cuts.into_iter().filter(|&o| o <= high_watermark).collect();
    let mut diverged: Vec<Diverged> = Vec::new();
    for segment in cuts.windows(2) {
        let (start, end) = (segment[0], segment[1]);
        let held: Vec<(NodeId, &BatchCopy)> = copies
            .iter()
            .filter_map(|c| c.batch_at(start).map(|b| (c.node, b)))
            .collect();
        let Some(&(_, first)) = held.first() else {
            continue;
        };
        if held.iter().all(|&(_, batch)| batch == first) {
            continue;
        }
        match diverged.last_mut() {
            Some(run) if run.end == start => run.end = end,
            _ => diverged.push(Diverged {
                tp: tp.clone(),
                offset: start,
                end,
                high_watermark,
                nodes: held
                    .iter()
                    .map(|&(node, batch)| (node, BatchShape::of(batch)))
                    .collect(),
            }),
        }
    }
    diverged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::observation_testkit::{batch, partition, replica};
    use crate::checker::testkit::tp;

    /// `[0..=2] [3..=5] [6..=6]`, each written in epoch 1.
    fn log() -> Vec<BatchCopy> {
        vec![
            batch(0, 2, 1, 0xA),
            batch(3, 5, 1, 0xB),
            batch(6, 6, 1, 0xC),
        ]
    }

    fn shape(node: i32, b: &BatchCopy) -> (NodeId, BatchShape) {
        (NodeId(node), BatchShape::of(b))
    }

    #[test]
    fn quiet_when_the_isr_agrees_below_the_high_watermark() {
        let mut one = log();
        // Uncommitted batches at or above the high watermark may differ: they may be truncated.
        one.push(batch(7, 8, 2, 0xD));
        let mut two = log();
        two.push(batch(7, 9, 3, 0xE));
        // Node 4 is out of the ISR with a deposed leader's suffix it has not truncated yet.
        let four = vec![batch(0, 2, 1, 0xA), batch(3, 7, 1, 0xF)];
        let obs = partition(
            vec![
                replica(1, 0, one),
                replica(2, 0, two),
                replica(3, 0, log()),
                replica(4, 0, four),
            ],
            7,
            &[1, 2, 3],
        );
        assert_eq!(check(&obs), Findings::default());
    }

    #[test]
    fn reports_different_bytes_in_one_batch() {
        let mut two = log();
        two[1] = batch(3, 5, 1, 0xF);
        let obs = partition(
            vec![
                replica(1, 0, log()),
                replica(2, 0, two.clone()),
                replica(3, 0, log()),
            ],
            7,
            &[3, 2, 1],
        );
        let diverged = Diverged {
            tp: tp("t", 0),
            offset: Offset(3),
            end: Offset(6),
            high_watermark: Offset(7),
            nodes: vec![shape(1, &log()[1]), shape(2, &two[1]), shape(3, &log()[1])],
        };
        assert_eq!(
            check(&obs),
            Findings {
                diverged: vec![diverged.clone()],
                missing: vec![],
            }
        );
        assert_eq!(
            diverged.to_string(),
            "replicas of t-0 differ at offsets 3..6 below high watermark 7: \
             node 1 holds [3..=5] 24 bytes epoch 1 crc 0xc0c0000b; \
             node 2 holds [3..=5] 24 bytes epoch 1 crc 0xc0c0000f; \
             node 3 holds [3..=5] 24 bytes epoch 1 crc 0xc0c0000b"
        );
    }

    #[test]
    fn reports_the_same_records_stamped_with_another_leader_epoch() {
        // partitionLeaderEpoch is outside the crc, and it is what truncation relies on.
        let mut two = log();
        two[0] = batch(0, 2, 2, 0xA);
        let obs = partition(vec![replica(1, 0, log()), replica(2, 0, two)], 7, &[1, 2]);
        let found = check(&obs);
        assert_eq!(found.missing, vec![]);
        assert_eq!(found.diverged.len(), 1);
        let d = &found.diverged[0];
        assert_eq!((d.offset, d.end), (Offset(0), Offset(3)));
        assert_eq!(d.nodes[0].1.leader_epoch, Some(LeaderEpoch(1)));
        assert_eq!(d.nodes[1].1.leader_epoch, Some(LeaderEpoch(2)));
        assert_eq!(d.nodes[0].1.crc, d.nodes[1].1.crc);
    }

    #[test]
    fn reports_different_batch_boundaries_as_one_run() {
        // Node 2 holds offsets 3..=5 as two batches: same offsets, not the same batches.
        let two = vec![
            batch(0, 2, 1, 0xA),
            batch(3, 4, 1, 0xB),
            batch(5, 5, 1, 0xB),
            batch(6, 6, 1, 0xC),
        ];
        let obs = partition(
            vec![replica(1, 0, log()), replica(2, 0, two.clone())],
            7,
            &[1, 2],
        );
        assert_eq!(
            check(&obs).diverged,
            vec![Diverged {
                tp: tp("t", 0),
                offset: Offset(3),
                end: Offset(6),
                high_watermark: Offset(7),
                nodes: vec![shape(1, &log()[1]), shape(2, &two[1])],
            }]
        );
    }

    #[test]
    fn a_batch_straddling_the_high_watermark_is_compared_whole() {
        // The high watermark 5 falls inside [3..=6]: identical copies are fine.
        let straddling = || vec![batch(0, 2, 1, 0xA), batch(3, 6, 1, 0xB)];
        let good = partition(
            vec![replica(1, 0, straddling()), replica(2, 0, straddling())],
            5,
            &[1, 2],
        );
        assert_eq!(check(&good), Findings::default());

        // Node 2 holds only [3..=4] of it (its log ends at the high watermark): the batches
        // holding offsets 3 and 4 differ, though both replicas have those offsets.
        let short = vec![batch(0, 2, 1, 0xA), batch(3, 4, 1, 0xB)];
        let bad = partition(
            vec![replica(1, 0, straddling()), replica(2, 0, short.clone())],
            5,
            &[1, 2],
        );
        assert_eq!(
            check(&bad),
            Findings {
                diverged: vec![Diverged {
                    tp: tp("t", 0),
                    offset: Offset(3),
                    end: Offset(5),
                    high_watermark: Offset(5),
                    nodes: vec![shape(1, &straddling()[1]), shape(2, &short[1])],
                }],
                missing: vec![],
            }
        );

        // Differing bytes in the part above the high watermark count too: appended whole.
        let other_tail = vec![batch(0, 2, 1, 0xA), batch(3, 6, 1, 0xE)];
        let bad = partition(
            vec![replica(1, 0, straddling()), replica(2, 0, other_tail)],
            5,
            &[1, 2],
        );
        let found = check(&bad).diverged;
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].offset, found[0].end), (Offset(3), Offset(5)));
    }

    #[test]
    fn offsets_below_every_log_start_are_not_compared() {
        // Retention moved every log start to 2 or beyond. Node 1 and 2 still have their first
        // batch on disk, and they differ; nobody serves those offsets, so nobody compares them.
        // Node 1 also deleted 2..=3; nodes 2 and 3 still serve it, and agree.
        let tail = || vec![batch(2, 3, 1, 0xB), batch(4, 5, 1, 0xC)];
        let mut one = vec![batch(0, 1, 1, 0x1)];
        one.extend(tail());
        let mut two = vec![batch(0, 1, 1, 0x2)];
        two.extend(tail());
        let good = partition(
            vec![
                replica(1, 4, one.clone()),
                replica(2, 2, two.clone()),
                replica(3, 2, tail()),
            ],
            6,
            &[1, 2, 3],
        );
        assert_eq!(check(&good), Findings::default());

        // Where two replicas still serve an offset, they must agree, even if a third deleted it.
        let mut three = tail();
        three[0] = batch(2, 3, 1, 0xF);
        let bad = partition(
            vec![
                replica(1, 4, one),
                replica(2, 2, two.clone()),
                replica(3, 2, three.clone()),
            ],
            6,
            &[1, 2, 3],
        );
        assert_eq!(
            check(&bad).diverged,
            vec![Diverged {
                tp: tp("t", 0),
                offset: Offset(2),
                end: Offset(4),
                high_watermark: Offset(6),
                nodes: vec![shape(2, &two[1]), shape(3, &three[0])],
            }]
        );

        // Retention past the high watermark on every replica leaves nothing to judge.
        let deleted = partition(
            vec![replica(1, 6, vec![]), replica(2, 6, vec![])],
            6,
            &[1, 2],
        );
        assert_eq!(check(&deleted), Findings::default());
    }

    #[test]
    fn reports_isr_members_lacking_offsets_below_the_high_watermark() {
        let mut short = log();
        short.pop();
        let mut holed = log();
        holed.remove(1);
        let mut obs = partition(
            vec![
                replica(1, 0, log()),
                replica(2, 0, short),
                replica(3, 0, holed),
                // Node 5 is short too, but out of the ISR: expected to lag.
                replica(5, 0, vec![batch(0, 2, 1, 0xA)]),
            ],
            7,
            &[1, 2, 3, 4],
        );
        // The holed copy claims to serve up to 7 while a batch is missing.
        obs.replicas[2].log_end_offset = Offset(7);
        let missing = |node, log_end: Option<i64>, first| MissingBelowHighWatermark {
            tp: tp("t", 0),
            node: NodeId(node),
            log_start_offset: log_end.map(|_| Offset(0)),
            log_end_offset: log_end.map(Offset),
            high_watermark: Offset(7),
            first_missing: Offset(first),
        };
        let found = check(&obs);
        assert_eq!(found.diverged, vec![]);
        assert_eq!(
            found.missing,
            vec![
                missing(2, Some(6), 6),
                missing(3, Some(7), 3),
                missing(4, None, 0),
            ]
        );
        assert_eq!(
            found.missing[2].to_string(),
            "ISR member node 4 of t-0 lacks offset 0 below high watermark 7 (no copy observed)"
        );
        assert_eq!(
            found.missing[0].to_string(),
            "ISR member node 2 of t-0 lacks offset 6 below high watermark 7 (its log: 0..6)"
        );
    }

    #[test]
    #[should_panic(expected = "two copies of t-0 on node 1")]
    fn two_copies_of_one_replica_break_the_contract() {
        check(&partition(
            vec![replica(1, 0, log()), replica(1, 0, log())],
            7,
            &[1],
        ));
    }

    #[test]
    #[should_panic(expected = "t-0 has a final high watermark but no final ISR")]
    fn a_high_watermark_without_an_isr_breaks_the_contract() {
        let mut obs = partition(vec![replica(1, 0, log())], 7, &[1]);
        obs.final_isr.clear();
        check(&obs);
    }

    #[test]
    #[should_panic(expected = "overlap or are out of order")]
    fn overlapping_batches_are_refused() {
        check(&partition(
            vec![replica(
                1,
                0,
                vec![batch(0, 3, 1, 0xA), batch(2, 4, 1, 0xB)],
            )],
            5,
            &[1],
        ));
    }
}
