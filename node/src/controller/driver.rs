//! The owner task of a controller: it alone holds the [`Quorum`] and the [`Controller`], so no
//! lock is ever held across an await.
//!
//! Each turn of the loop takes one input (a Raft message, a request, a timer), then
//! [`Driver::process`]es until quiet: drain the quorum's Ready (persisting off the reactor),
//! send its messages, install/apply what committed, follow leadership, and decide the next
//! request or periodic tick.
//!
//! Invariants:
//! - **One decision in flight** (the controller's contract): `handle`/`tick` run only when the
//!   previous proposal is committed and replayed, or leadership was lost. A request whose
//!   records are committed is answered with the response decided for it; if its entry is
//!   overwritten or leadership is lost first, with `NotController` (an indefinite outcome).
//! - The controller decides only while *active*: leader, and the first entry of its term
//!   applied ([`Quorum::is_leader_ready`]); `on_activated` runs once per activation.
//! - The image replays committed entries in index order, with the Raft index as the metadata
//!   offset; empty Raft entries replay as empty batches (so offsets stay the Raft indexes).
//! - Any quorum IO error (an fsync error above all) stops the controller: the state on disk is
//!   unknown, so it must not vote or decide again.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata_core::ErrorCode;
use strata_core::metadata::{MetadataImage, MetadataRecord};
use strata_core::quorum::{Committed, Proposal, Quorum, QuorumError, Ready, Snapshot};
use strata_core::rpc::{Envelope, MetadataDelta, Request, Response};
use strata_core::storage::Storage;
use strata_core::types::{Instant, NodeId};
use tokio::sync::{mpsc, oneshot};

use crate::sync::watch;
use tokio::time::Instant as TokioInstant;

use super::wire::frame;
use strata_core::controller::Controller;

/// What the driver publishes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The quorum leader as this node knows it.
    pub leader: Option<NodeId>,
    /// This node is the active controller (leader, its term's first entry applied).
    pub active: bool,
    /// The driver stopped (shutdown, or a fatal storage error).
    pub stopped: bool,
}

/// Committed batches kept for FetchMetadata; older offsets get the whole image.
pub const WINDOW_BATCHES: usize = 4096;
/// Long-polling FetchMetadata requests held at once; beyond, they are answered at once.
pub const MAX_FETCH_WAITERS: usize = 4096;
/// Longest long poll honoured.
pub const MAX_FETCH_WAIT: Duration = Duration::from_secs(30);
/// Requests queued behind the one in flight; beyond, they are refused.
pub const MAX_QUEUED_REQUESTS: usize = 4096;
/// Inputs taken in one turn before processing (batches fsyncs under load).
const INPUT_BATCH: usize = 256;

/// What the transport hands the driver.
#[derive(Debug)]
pub enum Input {
    Raft {
        from: NodeId,
        message: Vec<u8>,
    },
    Request {
        request: Request,
        reply: oneshot::Sender<Response>,
    },
}

/// A request waiting for its turn.
#[derive(Debug)]
struct Queued {
    request: Request,
    reply: oneshot::Sender<Response>,
    received: TokioInstant,
}

/// The proposal of the one decision in flight.
#[derive(Debug)]
struct InFlight {
    proposal: Proposal,
    /// The decided response and where it goes (`None` for a tick's records, or after the
    /// requester was answered with a timeout).
    reply: Option<(Response, oneshot::Sender<Response>)>,
    started: TokioInstant,
}

#[derive(Debug)]
struct FetchWaiter {
    from_offset: u64,
    deadline: TokioInstant,
    reply: oneshot::Sender<Response>,
}

/// Settings the driver needs.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub node_id: NodeId,
    pub seed: u64,
    pub tick_ms: u64,
    pub request_timeout: Duration,
}

/// The owner task's state.
pub struct Driver {
    config: DriverConfig,
    /// `None` only while a blocking call has it off the reactor.
    quorum: Option<Quorum>,
    controller: Controller,
    storage: Arc<dyn Storage>,
    /// Jitters the tick period: the source of election-timeout randomness (see
    /// `strata_core::quorum`).
    rng: StdRng,
    /// The origin of the controller's monotonic [`Instant`]s.
    epoch: TokioInstant,
    /// The last Raft index applied to the controller.
    applied: u64,
    /// The term in which this node is the active controller.
    active_term: Option<u64>,
    inflight: Option<InFlight>,
    queue: VecDeque<Queued>,
    /// Recent committed non-empty batches, by offset.
    window: VecDeque<(u64, Vec<MetadataRecord>)>,
    /// Every non-empty batch after this offset is in `window`.
    window_start: u64,
    waiters: Vec<FetchWaiter>,
    peers: BTreeMap<NodeId, mpsc::Sender<Vec<u8>>>,
    status: watch::Sender<Status>,
    image_tx: watch::Sender<Arc<MetadataImage>>,
    image_dirty: bool,
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: DriverConfig,
        quorum: Quorum,
        snapshot: Option<Snapshot>,
        controller: Controller,
        storage: Arc<dyn Storage>,
        peers: BTreeMap<NodeId, mpsc::Sender<Vec<u8>>>,
        status: watch::Sender<Status>,
        image_tx: watch::Sender<Arc<MetadataImage>>,
    ) -> anyhow::Result<Driver> {
        // Mix the node id in, so voters given the same seed still jitter differently.
        let seed = config.seed ^ (config.node_id.0 as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut driver = Driver {
            rng: StdRng::seed_from_u64(seed),
            config,
            quorum: Some(quorum),
            controller,
            storage,
            epoch: TokioInstant::now(),
            applied: 0,
            active_term: None,
            inflight: None,
            queue: VecDeque::new(),
            window: VecDeque::new(),
            window_start: 0,
            waiters: Vec::new(),
            peers,
            status,
            image_tx,
            image_dirty: false,
        };
        if let Some(snapshot) = snapshot {
            driver.install(snapshot)?;
        }
        driver.publish();
        Ok(driver)
    }

    fn quorum(&self) -> &Quorum {
        self.quorum
            .as_ref()
            .expect("the quorum is only away during a blocking call")
    }

    fn quorum_mut(&mut self) -> &mut Quorum {
        self.quorum
            .as_mut()
            .expect("the quorum is only away during a blocking call")
    }

    fn now(&self) -> Instant {
        Instant(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// A tick period drawn uniformly from `[tick/2, 3·tick/2]`.
    fn jittered_tick(&mut self) -> Duration {
        let ms = self.config.tick_ms.max(2);
        Duration::from_millis(self.rng.random_range(ms / 2..=ms + ms / 2))
    }

    /// Runs until `stop` or a fatal error (returned).
    pub async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Input>,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut next_tick = TokioInstant::now() + self.jittered_tick();
        let result = loop {
            let wake = self.next_wake(next_tick);
            tokio::select! {
                biased;
                _ = stop.changed() => break Ok(()),
                input = inbox.recv() => {
                    let Some(input) = input else { break Ok(()) };
                    self.on_input(input);
                    for _ in 0..INPUT_BATCH {
                        match inbox.try_recv() {
                            Ok(input) => self.on_input(input),
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
            let now = TokioInstant::now();
            if now >= next_tick {
                self.quorum_mut().tick();
                next_tick = now + self.jittered_tick();
            }
            self.expire(now);
            if let Err(e) = self.process().await {
                tracing::error!(node = %self.config.node_id, error = %e,
                    "controller stopped: quorum state can no longer be trusted");
                break Err(e);
            }
        };
        self.status.send_modify(|s| {
            s.leader = None;
            s.active = false;
            s.stopped = true;
        });
        self.lose_everything(None);
        result
    }

    fn next_wake(&self, next_tick: TokioInstant) -> TokioInstant {
        let mut wake = next_tick;
        for w in &self.waiters {
            wake = wake.min(w.deadline);
        }
        if let Some(q) = self.queue.front() {
            wake = wake.min(q.received + self.config.request_timeout);
        }
        if let Some(f) = &self.inflight
            && f.reply.is_some()
        {
            wake = wake.min(f.started + self.config.request_timeout);
        }
        wake
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Raft { from, message } => {
                if let Err(e) = self.quorum_mut().step(from, &message) {
                    tracing::debug!(error = %e, "raft message dropped");
                }
            }
            Input::Request {
                request:
                    Request::FetchMetadata {
                        from_offset,
                        max_wait_ms,
                    },
                reply,
            } => self.on_fetch(from_offset, max_wait_ms, reply),
            Input::Request { request, reply } => {
                if !self.quorum().is_leader() {
                    let leader = self.quorum().leader_id();
                    let _ = reply.send(Response::NotController { leader });
                } else if self.queue.len() >= MAX_QUEUED_REQUESTS {
                    let _ = reply.send(timed_out("controller request queue full"));
                } else {
                    self.queue.push_back(Queued {
                        request,
                        reply,
                        received: TokioInstant::now(),
                    });
                }
            }
        }
    }

    fn on_fetch(&mut self, from_offset: u64, max_wait_ms: u32, reply: oneshot::Sender<Response>) {
        if !self.is_active() {
            let leader = self.quorum().leader_id();
            let _ = reply.send(Response::NotController { leader });
            return;
        }
        if let Some(delta) = self.delta_since(from_offset) {
            let _ = reply.send(Response::Metadata(delta));
        } else if self.waiters.len() >= MAX_FETCH_WAITERS || max_wait_ms == 0 {
            let _ = reply.send(Response::Metadata(MetadataDelta::Records(Vec::new())));
        } else {
            let wait = Duration::from_millis(u64::from(max_wait_ms)).min(MAX_FETCH_WAIT);
            self.waiters.push(FetchWaiter {
                from_offset,
                deadline: TokioInstant::now() + wait,
                reply,
            });
        }
    }

    /// What a broker at `from_offset` is missing; `None` if nothing. Records end with an empty
    /// batch at the image's offset when the last entries were Raft's own, so the broker's
    /// offset always reaches the image's (and its next long poll waits).
    fn delta_since(&self, from_offset: u64) -> Option<MetadataDelta> {
        let image = self.controller.image();
        if from_offset >= image.offset {
            return None;
        }
        if from_offset == 0 || from_offset < self.window_start {
            return Some(MetadataDelta::Image(Box::new(image.clone())));
        }
        let mut batches: Vec<(u64, Vec<MetadataRecord>)> = self
            .window
            .iter()
            .filter(|(offset, _)| *offset > from_offset)
            .cloned()
            .collect();
        if batches
            .last()
            .is_none_or(|(offset, _)| *offset < image.offset)
        {
            batches.push((image.offset, Vec::new()));
        }
        Some(MetadataDelta::Records(batches))
    }

    fn is_active(&self) -> bool {
        let q = self.quorum();
        q.is_leader() && self.active_term == Some(q.term())
    }

    /// Answers what has waited too long.
    fn expire(&mut self, now: TokioInstant) {
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| w.deadline <= now);
        self.waiters = keep;
        for w in due {
            let _ = w
                .reply
                .send(Response::Metadata(MetadataDelta::Records(Vec::new())));
        }
        let timeout = self.config.request_timeout;
        while self
            .queue
            .front()
            .is_some_and(|q| q.received + timeout <= now)
        {
            if let Some(q) = self.queue.pop_front() {
                let _ = q
                    .reply
                    .send(timed_out("controller request timed out in the queue"));
            }
        }
        if let Some(f) = &mut self.inflight
            && f.started + timeout <= now
            && let Some((_, reply)) = f.reply.take()
        {
            // The slot stays taken until the entry commits or leadership is lost.
            let _ = reply.send(timed_out("controller request not committed in time"));
        }
    }

    /// Drains the quorum and acts on it until nothing is left to do.
    async fn process(&mut self) -> anyhow::Result<()> {
        loop {
            if self.quorum().has_ready() {
                let ready = self.poll_ready().await?;
                self.send(ready.messages);
                if let Some(snapshot) = ready.snapshot {
                    self.install(snapshot)?;
                }
                for c in ready.committed {
                    self.apply(c);
                }
            }
            self.follow_leadership();
            let proposed = self.maybe_decide();
            if !proposed && !self.quorum().has_ready() {
                break;
            }
        }
        self.serve_waiters();
        self.publish();
        if self.quorum().needs_compaction(self.applied) {
            self.compact().await?;
        }
        Ok(())
    }

    async fn poll_ready(&mut self) -> anyhow::Result<Ready> {
        let mut quorum = self.quorum.take().expect("quorum present");
        let (quorum, ready) = off_reactor(self.storage.latency_hint(), move || {
            let ready = quorum.poll_ready();
            (quorum, ready)
        })
        .await?;
        self.quorum = Some(quorum);
        Ok(ready?)
    }

    async fn compact(&mut self) -> anyhow::Result<()> {
        let applied = self.applied;
        let data = strata_core::metadata::encode_image(self.controller.image());
        let mut quorum = self.quorum.take().expect("quorum present");
        let (quorum, result) = off_reactor(self.storage.latency_hint(), move || {
            let result = quorum.compact(applied, data);
            (quorum, result)
        })
        .await?;
        self.quorum = Some(quorum);
        result?;
        // Entries up to `applied` are gone from the log, but the window still holds the recent
        // batches: brokers behind it get the image.
        Ok(())
    }

    fn send(&mut self, messages: Vec<(NodeId, Vec<u8>)>) {
        let from = self.config.node_id;
        for (to, message) in messages {
            let Some(peer) = self.peers.get(&to) else {
                tracing::warn!(%to, "raft message for an unknown peer dropped");
                continue;
            };
            if peer
                .try_send(frame(&Envelope::Raft { from, message }))
                .is_err()
            {
                tracing::debug!(%to, "peer queue full or closed: raft message dropped");
            }
        }
    }

    fn install(&mut self, snapshot: Snapshot) -> anyhow::Result<()> {
        let image: MetadataImage = strata_core::metadata::decode_image(&snapshot.data)
            .map_err(|e| anyhow::anyhow!("snapshot at {} does not decode: {e}", snapshot.index))?;
        anyhow::ensure!(
            image.offset == snapshot.index,
            "snapshot at {} holds an image at {}",
            snapshot.index,
            image.offset
        );
        self.controller.install_image(image);
        self.applied = snapshot.index;
        self.window.clear();
        self.window_start = snapshot.index;
        self.image_dirty = true;
        Ok(())
    }

    fn apply(&mut self, c: Committed) {
        assert_eq!(
            c.index,
            self.applied + 1,
            "committed entries apply in order"
        );
        let records: Vec<MetadataRecord> = match &c.data {
            None => Vec::new(),
            Some(data) => postcard::from_bytes(data).unwrap_or_else(|e| {
                // Every node fails the same way on the same bytes, so images stay identical.
                tracing::error!(index = c.index, error = %e, "committed metadata batch does not decode: skipped");
                Vec::new()
            }),
        };
        self.controller.replay(c.index, &records);
        self.applied = c.index;
        self.image_dirty = true;
        if !records.is_empty() {
            self.window.push_back((c.index, records));
            while self.window.len() > WINDOW_BATCHES {
                if let Some((offset, _)) = self.window.pop_front() {
                    self.window_start = offset;
                }
            }
        }
        if self
            .inflight
            .as_ref()
            .is_some_and(|f| c.index >= f.proposal.index)
        {
            let f = self.inflight.take().expect("checked");
            if let Some((response, reply)) = f.reply {
                let committed = c.index == f.proposal.index && c.term == f.proposal.term;
                let response = if committed {
                    response
                } else {
                    Response::NotController {
                        leader: self.quorum().leader_id(),
                    }
                };
                let _ = reply.send(response);
            }
        }
    }

    fn follow_leadership(&mut self) {
        let (is_leader, leader, term) = {
            let q = self.quorum();
            (q.is_leader(), q.leader_id(), q.term())
        };
        if self.active_term.is_some() && !(is_leader && self.active_term == Some(term)) {
            tracing::info!(node = %self.config.node_id, ?leader, term, "no longer the active controller");
            self.active_term = None;
        }
        if !is_leader {
            self.lose_everything(leader);
        }
        if is_leader && self.active_term.is_none() && self.quorum().is_leader_ready(self.applied) {
            // Everything earlier leaders committed is applied: decide from this image now.
            let now = self.now();
            self.controller.on_activated(now);
            self.active_term = Some(term);
            tracing::info!(node = %self.config.node_id, term, offset = self.applied, "active controller");
        }
        let active = self.active_term.is_some();
        self.status.send_if_modified(|s| {
            let changed = s.leader != leader || s.active != active;
            s.leader = leader;
            s.active = active;
            changed
        });
    }

    /// Leadership is gone: every waiting requester is told to go to `leader`.
    fn lose_everything(&mut self, leader: Option<NodeId>) {
        if let Some(f) = self.inflight.take()
            && let Some((_, reply)) = f.reply
        {
            let _ = reply.send(Response::NotController { leader });
        }
        for q in self.queue.drain(..) {
            let _ = q.reply.send(Response::NotController { leader });
        }
        for w in self.waiters.drain(..) {
            let _ = w.reply.send(Response::NotController { leader });
        }
    }

    /// The next decision, if active and none is in flight. `true` if something was proposed.
    fn maybe_decide(&mut self) -> bool {
        if !self.is_active() || self.inflight.is_some() {
            return false;
        }
        let now = self.now();
        while let Some(q) = self.queue.pop_front() {
            let (response, records) = self.controller.handle(now, &q.request);
            if records.is_empty() {
                let _ = q.reply.send(response);
                continue;
            }
            return self.propose(records, Some((response, q.reply)));
        }
        if self.controller.next_deadline().is_some_and(|d| d <= now) {
            let records = self.controller.tick(now);
            if !records.is_empty() {
                return self.propose(records, None);
            }
        }
        false
    }

    fn propose(
        &mut self,
        records: Vec<MetadataRecord>,
        reply: Option<(Response, oneshot::Sender<Response>)>,
    ) -> bool {
        let data =
            postcard::to_allocvec(&records).expect("serialising records into a Vec cannot fail");
        match self.quorum_mut().propose(data) {
            Ok(proposal) => {
                self.inflight = Some(InFlight {
                    proposal,
                    reply,
                    started: TokioInstant::now(),
                });
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "controller proposal refused");
                let leader = match e {
                    QuorumError::NotLeader { leader } => leader,
                    _ => self.quorum().leader_id(),
                };
                if let Some((_, reply)) = reply {
                    let _ = reply.send(Response::NotController { leader });
                }
                false
            }
        }
    }

    fn serve_waiters(&mut self) {
        if self.waiters.is_empty() {
            return;
        }
        let waiters = std::mem::take(&mut self.waiters);
        for w in waiters {
            match self.delta_since(w.from_offset) {
                Some(delta) => {
                    let _ = w.reply.send(Response::Metadata(delta));
                }
                None => self.waiters.push(w),
            }
        }
    }

    fn publish(&mut self) {
        if std::mem::take(&mut self.image_dirty) {
            self.image_tx
                .send_replace(Arc::new(self.controller.image().clone()));
        }
    }
}

fn timed_out(message: &str) -> Response {
    Response::Error {
        error_code: ErrorCode::REQUEST_TIMED_OUT.0,
        message: message.to_string(),
    }
}

/// Runs blocking storage work (syncs) off the reactor: `spawn_blocking` normally, inline under
/// madsim after waiting out the simulated disk's latency (as `partition.rs` does).
pub async fn off_reactor<T: Send + 'static>(
    latency: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    #[cfg(not(madsim))]
    {
        let _ = latency;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| anyhow::anyhow!("controller storage task failed: {e}"))
    }
    #[cfg(madsim)]
    {
        tokio::time::sleep(latency).await;
        Ok(work())
    }
}
