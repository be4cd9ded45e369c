# The planted bugs: (patch name, target, what the bug is, file, exact old text, new text).
# Targets (tried in order, stopping at the first that catches it): `single` (the single-node
# sweep), `cluster` (the cluster sweep), `scenario:<test name>` (one test of sim/tests/scenarios.rs).
MUTANTS += [
    ("01-durable-end-on-append", "single cluster",
     "a produce publishes the log end as durable before the group commit fsynced it",
     "node/src/partition.rs",
     """        if self.fsync_before_ack() {
            self.flush_wanted.notify_one();
        } else {
            self.on_durable_end(log_end_offset);
        }""",
     """        if self.fsync_before_ack() {
            self.flush_wanted.notify_one();
        }
        self.on_durable_end(log_end_offset);"""),
    ("02-group-commit-skips-sealed-segments", "single scenario:group_commit_across_segment_rolls",
     "the group commit fsyncs only the active segment, not one rolled since the last flush",
     "core/src/log/partition_log.rs",
     """        for seg in self.segments.values() {
            if seg.size > seg.synced_size {""",
     """        for seg in self.segments.values() {
            if seg.size > seg.synced_size && seg.base_offset == self.active().base_offset {"""),
    ("03-recovery-trusts-torn-tail", "single cluster",
     "the recovery scan takes a batch whose header parses as whole, without checking its CRC",
     "core/src/log/segment.rs",
     """        let raw = read_vec(&*self.log, position, total as usize)?;
        Ok(validate_batch(&raw).ok())""",
     """        // The CRC is checked when the batch is served; here only its length matters.
        Ok(Some(header))"""),
    ("04-truncation-off-by-one", "cluster",
     "truncate_to keeps the batch whose last offset is the cut offset",
     "core/src/log/segment.rs",
     """                Step::Batch(h) if h.last_offset() >= offset => return Ok((pos, expected)),""",
     """                Step::Batch(h) if h.last_offset() > offset => return Ok((pos, expected)),"""),
    ("05-epoch-end-offset-wrong-comparison", "cluster",
     "OffsetForLeaderEpoch: the epoch after the requested one is looked up with >= instead of >",
     "core/src/log/leader_epoch_cache.rs",
     """    let Some(higher) = entries.iter().find(|e| e.epoch > requested) else {""",
     """    let Some(higher) = entries.iter().find(|e| e.epoch >= requested) else {"""),
    ("06-kip279-trusts-leader-offset", "scenario:kip279_divergent_epoch cluster",
     "KIP-279: the follower truncates to the leader's end offset for the epoch, not the smaller of both",
     "core/src/replica/truncation.rs",
     """                offset: follower.end_offset.min(leader.end_offset).min(leo),""",
     """                offset: leader.end_offset.min(leo),"""),
    ("07-high-watermark-max-over-isr", "cluster",
     "the high watermark is the maximum over the ISR's log ends instead of the minimum",
     "core/src/replica/isr.rs",
     """            .fold(leader_end_offset, Offset::min)""",
     """            .fold(leader_end_offset, Offset::max)"""),
    ("08-high-watermark-goes-back", "cluster single",
     "the published high watermark follows every recomputation, also downwards",
     "core/src/replica/partition.rs",
     """        if hw > self.high_watermark {
            self.high_watermark = hw;""",
     """        if hw != self.high_watermark {
            self.high_watermark = hw;"""),
    ("09-isr-expands-below-high-watermark", "cluster",
     "a follower joins the ISR once it reached the epoch start, without having reached the high watermark",
     "core/src/replica/isr.rs",
     """                f.log_end_offset >= high_watermark && f.log_end_offset >= leader_epoch_start_offset""",
     """                f.log_end_offset >= leader_epoch_start_offset"""),
    ("10-follower-fetches-from-unsynced-end", "scenario:unsynced_follower_copy_is_not_counted cluster",
     "a follower reports its log end as its durable end, so the leader counts unsynced copies",
     "node/src/replication/fetcher.rs",
     """        let durable_end = p.state().durable_end.min(leo);""",
     """        let durable_end = leo;"""),
    ("11-acks-all-waits-for-leader-only", "cluster",
     "acks=-1 is answered once the leader's copy is durable, not at the high watermark",
     "node/src/handlers/produce.rs",
     """            .wait_for_ack(w.last_offset, acks == -1, w.leader_epoch, left)""",
     """            .wait_for_ack(w.last_offset, false, w.leader_epoch, left)"""),
    ("12-ack-wait-skips-epoch-fence", "scenario:deposed_leader_wait",
     "a waiting produce is acknowledged by the high watermark of a later leader epoch",
     "node/src/partition.rs",
     """                if s.leader_epoch != leader_epoch {
                    return WaitOutcome::NotLeader;
                }""",
     """                if s.leader_epoch < leader_epoch {
                    return WaitOutcome::NotLeader;
                }"""),
    ("13-election-outside-isr", "cluster",
     "the controller elects the first unfenced replica, in the ISR or not",
     "core/src/controller/election.rs",
     """        .find(|r| isr.contains(r) && changes.is_eligible(*r, topic, index))""",
     """        .find(|r| changes.is_eligible(*r, topic, index))"""),
    ("14-reregistration-keeps-old-incarnation", "cluster",
     "a broker that registers again (a new broker epoch) keeps the old incarnation's leaderships and ISR places",
     "core/src/controller/brokers.rs",
     """        if previous.is_some() {
            // The old incarnation""",
     """        if previous.is_some_and(|p| p.fenced) {
            // The old incarnation"""),
    ("15-min-insync-not-checked", "scenario:min_insync_replicas",
     "acks=-1 ignores min.insync.replicas, before and after the append",
     "core/src/replica/partition.rs",
     ("""                if acks == -1 && l.isr.isr().len() < l.min_insync_replicas {""",
      """            Role::Leader(l) => l.isr.isr().len() >= l.min_insync_replicas,"""),
     ("""                if acks == -1 && l.isr.isr().is_empty() {""",
      """            Role::Leader(l) => !l.isr.isr().is_empty(),""")),
    ("16-dedup-window-of-one", "single cluster scenario:redpanda_3039",
     "the producer state remembers only the last batch per producer instead of five",
     "core/src/log/producer_state.rs",
     """pub const NUM_BATCHES_TO_RETAIN: usize = 5;""",
     """pub const NUM_BATCHES_TO_RETAIN: usize = 1;"""),
    ("17-sequence-gap-accepted", "single cluster",
     "a sequence above the next one is accepted (a gap) instead of OUT_OF_ORDER_SEQUENCE_NUMBER",
     "core/src/log/producer_state.rs",
     """                || updated_last_seq.is_followed_by(first_seq))""",
     """                || first_seq.0 > updated_last_seq.0)"""),
    ("18-older-producer-epoch-accepted", "scenario:zombie_producer_epoch",
     "a batch of an older producer epoch is not fenced with INVALID_PRODUCER_EPOCH",
     "core/src/log/producer_state.rs",
     """            if epoch < updated_epoch {
                return Err(ProducerStateError::InvalidProducerEpoch {
                    producer_id,
                    epoch,
                    current: updated_epoch,
                });
            }
""",
     """"""),
    ("19-duplicate-answered-with-log-end", "scenario:redpanda_3039 single cluster",
     "a deduplicated retry is answered with the log end offset instead of the original batch's offsets",
     "core/src/log/partition_log.rs",
     """                return Ok(AppendInfo {
                    first_offset: original.first_offset,
                    last_offset: original.last_offset,""",
     """                return Ok(AppendInfo {
                    first_offset: self.log_end_offset(),
                    last_offset: Offset(self.log_end_offset().0 + original.last_offset.0 - original.first_offset.0),"""),
    ("20-cleaner-drops-the-newest-record", "scenario:compaction_under_power_loss single cluster",
     "the cleaner drops each key's newest record along with the older ones it supersedes",
     "core/src/log/cleaner/retain.rs",
     """        if self.map.latest(key).is_some_and(|newest| r.offset < newest) {""",
     """        if self.map.latest(key).is_some_and(|newest| r.offset <= newest) {"""),
]
