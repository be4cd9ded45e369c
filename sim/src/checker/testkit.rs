//! Terse construction of hand-made histories for the checkers' unit tests. Every event advances
//! the logical clock by one nanosecond, so history order is time order.

use strata_core::types::{Instant, Offset};

use crate::history::{
    Acks, BatchStamp, Call, History, OpIndex, PollResult, ProcessId, Reply, SendAck,
    TopicPartition, Value,
};

pub(crate) struct Builder {
    pub history: History,
    time: u64,
}

pub(crate) fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn values(vs: &[u64]) -> Vec<Value> {
    vs.iter().map(|v| Value(*v)).collect()
}

fn records(rs: &[(i64, u64)]) -> Vec<(Offset, Value)> {
    rs.iter().map(|(o, v)| (Offset(*o), Value(*v))).collect()
}

impl Builder {
    pub fn new() -> Builder {
        Builder {
            history: History::new(),
            time: 0,
        }
    }

    pub fn tick(&mut self) -> Instant {
        self.time += 1;
        Instant(self.time)
    }

    pub fn invoke_send(
        &mut self,
        p: u32,
        topic: &str,
        partition: i32,
        vs: &[u64],
        acks: Acks,
    ) -> OpIndex {
        self.invoke_send_with(p, topic, partition, vs, acks, false)
    }

    fn invoke_send_with(
        &mut self,
        p: u32,
        topic: &str,
        partition: i32,
        vs: &[u64],
        acks: Acks,
        resends: bool,
    ) -> OpIndex {
        let t = self.tick();
        self.history.invoke(
            ProcessId(p),
            t,
            Call::Send {
                tp: tp(topic, partition),
                values: values(vs),
                acks,
                resends,
            },
        )
    }

    pub fn ok_send(&mut self, p: u32, base: i64) -> OpIndex {
        let t = self.tick();
        self.history
            .ok(ProcessId(p), t, Reply::Send(SendAck::new(Offset(base))))
    }

    /// An `acks=-1` send acknowledged at `base`.
    pub fn send_ok(
        &mut self,
        p: u32,
        topic: &str,
        partition: i32,
        vs: &[u64],
        base: i64,
    ) -> OpIndex {
        self.invoke_send(p, topic, partition, vs, Acks::All);
        self.ok_send(p, base)
    }

    pub fn send_ok_acks(
        &mut self,
        p: u32,
        topic: &str,
        partition: i32,
        vs: &[u64],
        base: i64,
        acks: Acks,
    ) -> OpIndex {
        self.invoke_send(p, topic, partition, vs, acks);
        self.ok_send(p, base)
    }

    pub fn send_info(&mut self, p: u32, topic: &str, partition: i32, vs: &[u64]) -> OpIndex {
        self.invoke_send(p, topic, partition, vs, Acks::All);
        let t = self.tick();
        self.history.info(ProcessId(p), t, "timeout")
    }

    pub fn send_fail(&mut self, p: u32, topic: &str, partition: i32, vs: &[u64]) -> OpIndex {
        self.invoke_send(p, topic, partition, vs, Acks::All);
        let t = self.tick();
        self.history.fail(ProcessId(p), t, "NOT_ENOUGH_REPLICAS")
    }

    pub fn invoke_poll(
        &mut self,
        p: u32,
        topic: &str,
        partition: i32,
        from: i64,
        final_read: bool,
    ) -> OpIndex {
        let t = self.tick();
        self.history.invoke(
            ProcessId(p),
            t,
            Call::Poll {
                tp: tp(topic, partition),
                from_offset: Offset(from),
                final_read,
            },
        )
    }

    pub fn ok_poll(&mut self, p: u32, rs: &[(i64, u64)], hw: i64, lso: i64) -> OpIndex {
        self.ok_poll_stamped(p, rs, hw, lso, Vec::new())
    }

    fn ok_poll_stamped(
        &mut self,
        p: u32,
        rs: &[(i64, u64)],
        hw: i64,
        lso: i64,
        batches: Vec<BatchStamp>,
    ) -> OpIndex {
        let t = self.tick();
        let result = PollResult {
            records: records(rs),
            high_watermark: Offset(hw),
            log_start_offset: Offset(lso),
            batches,
        };
        self.history.ok(ProcessId(p), t, Reply::Poll(result))
    }

    /// A send by a resending producer (`resends`) that ended indefinite.
    pub fn resend_info(&mut self, p: u32, topic: &str, partition: i32, vs: &[u64]) -> OpIndex {
        self.invoke_resend(p, topic, partition, vs);
        let t = self.tick();
        self.history.info(ProcessId(p), t, "timeout")
    }

    /// A send by a resending producer, acknowledged at `base`, `possible_duplicate` as given.
    pub fn resend_ok(
        &mut self,
        p: u32,
        topic: &str,
        partition: i32,
        vs: &[u64],
        base: i64,
        possible_duplicate: bool,
    ) -> OpIndex {
        self.invoke_resend(p, topic, partition, vs);
        let t = self.tick();
        let ack = SendAck {
            possible_duplicate,
            ..SendAck::new(Offset(base))
        };
        self.history.ok(ProcessId(p), t, Reply::Send(ack))
    }

    fn invoke_resend(&mut self, p: u32, topic: &str, partition: i32, vs: &[u64]) -> OpIndex {
        self.invoke_send_with(p, topic, partition, vs, Acks::All, true)
    }

    /// One final-read poll of a whole partition from offset 0 returning `rs` in `batches`, each
    /// `(base offset, last offset, producer id, epoch, base sequence)`.
    pub fn final_read_stamped(
        &mut self,
        p: u32,
        topic: &str,
        partition: i32,
        rs: &[(i64, u64)],
        batches: &[(i64, i64, i64, i16, i32)],
        hw: i64,
    ) -> OpIndex {
        self.invoke_poll(p, topic, partition, 0, true);
        let batches = batches
            .iter()
            .map(|&(base, last, pid, epoch, seq)| BatchStamp {
                base_offset: Offset(base),
                last_offset: Offset(last),
                producer_id: pid,
                producer_epoch: epoch,
                base_sequence: seq,
            })
            .collect();
        self.ok_poll_stamped(p, rs, hw, 0, batches)
    }

    /// A poll from `from` returning `rs` with high watermark `hw` and log start 0.
    pub fn poll_ok(
        &mut self,
        p: u32,
        topic: &str,
        partition: i32,
        from: i64,
        rs: &[(i64, u64)],
        hw: i64,
    ) -> OpIndex {
        self.invoke_poll(p, topic, partition, from, false);
        self.ok_poll(p, rs, hw, 0)
    }

    pub fn poll_info(&mut self, p: u32, topic: &str, partition: i32, from: i64) -> OpIndex {
        self.invoke_poll(p, topic, partition, from, false);
        let t = self.tick();
        self.history.info(ProcessId(p), t, "timeout")
    }

    /// One final-read poll of a whole partition from offset 0.
    pub fn final_read(
        &mut self,
        p: u32,
        topic: &str,
        partition: i32,
        rs: &[(i64, u64)],
        hw: i64,
    ) -> OpIndex {
        self.invoke_poll(p, topic, partition, 0, true);
        self.ok_poll(p, rs, hw, 0)
    }

    pub fn assign(
        &mut self,
        p: u32,
        partitions: &[(&str, i32)],
        seek_to_beginning: bool,
    ) -> OpIndex {
        let t = self.tick();
        let partitions = partitions.iter().map(|(t, p)| tp(t, *p)).collect();
        self.history.invoke(
            ProcessId(p),
            t,
            Call::Assign {
                partitions,
                seek_to_beginning,
            },
        );
        let t = self.tick();
        self.history.ok(ProcessId(p), t, Reply::Assign)
    }

    pub fn seek(&mut self, p: u32, topic: &str, partition: i32, offset: i64) -> OpIndex {
        let t = self.tick();
        self.history.invoke(
            ProcessId(p),
            t,
            Call::Seek {
                tp: tp(topic, partition),
                offset: Offset(offset),
            },
        );
        let t = self.tick();
        self.history.ok(ProcessId(p), t, Reply::Seek)
    }
}
