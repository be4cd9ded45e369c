//! The checkers run over one run's history: one verdict per named anomaly.
//!
//! One implementation of each anomaly, shared with the simulator: [`judge`] runs
//! [`strata_sim::checker::check_all`] over the history (lost-write, unseen, duplicate,
//! inconsistent-offsets, nonmonotonic-send, nonmonotonic-poll, poll-skip, G1a,
//! precommitted-read, and Strata's own high-watermark and producer-state checks) and, for runs
//! whose consumers subscribe, [`strata_sim::checker::group::check_all`] over the group history
//! (split ownership, lost, stale and unknown commits, fenced commits, not-stable).
//!
//! Not judged here, and listed as such in [`Verdicts::not_judged`]:
//!
//! - the checkers of the simulator's *observations* of the nodes
//!   ([`strata_sim::checker::OBSERVATION_ANOMALIES`]: one leader per (partition, leader epoch),
//!   replicas byte-identical below the high watermark, a replica's high watermark never going
//!   back): they read each replica's log and leader claims from inside the node, which a Jepsen
//!   harness that sees only what clients see does not have;
//! - `sequence-refused`, which the clients count rather than the history shows;
//! - the group checkers, when the run recorded no group history.
//!
//! # Subscribe mode
//!
//! Under `subscribe`, a rebalance moves a member's position to the group's committed offset.
//! The harness records that as an `Assign` (the member's new partitions, no
//! `seek_to_beginning`) followed by one `Seek` to the committed offset per newly assigned
//! partition, so poll-skip and nonmonotonic-poll follow one member's position only within one
//! generation, and a jump at a rebalance (forward or back to the committed offset) is none of
//! theirs. That committed offsets never go back, for a member that commits increasing offsets,
//! is group-stale-commit (and group-lost-commit, when the offset vanished): every committed
//! offset read after an acknowledged commit must be that commit or a later one
//! (`jepsen/tests/checkers.rs` proves each of these rules on hand-made histories).
//!
//! Invariant: `per_anomaly` names every judged anomaly exactly once, zero when none was found,
//! and `valid` is true exactly when every count is zero.

use std::fmt::Write as _;

use strata_sim::checker::{self, group};
use strata_sim::group_history::GroupHistory;
use strata_sim::history::History;

/// How many anomalies of each name the rendered report prints in full.
const RENDER_PER_NAME: usize = 10;

/// The verdict of one run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Verdicts {
    /// Every anomaly name the checkers know, with how many were found (0 = valid for it).
    pub per_anomaly: Vec<(String, usize)>,
    /// No anomaly of any name.
    pub valid: bool,
    /// Human-readable report: anomalies, then the parts of the history they cite.
    pub rendered: String,
    /// Anomaly names the checkers know but this run could not judge (see the module docs).
    pub not_judged: Vec<String>,
}

impl Verdicts {
    /// The verdicts as a JSON document: `{"per_anomaly":[["lost-write",0],...],"valid":true,
    /// "rendered":"...","not_judged":[...]}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain data always serializes")
    }

    /// How many anomalies of `name` were found (`None`: not a judged name).
    pub fn count(&self, name: &str) -> Option<usize> {
        self.per_anomaly
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| *c)
    }
}

/// Judges `history` (and the group history, for runs that subscribe).
pub fn judge(history: &History, groups: Option<&GroupHistory>) -> Verdicts {
    let report = checker::check_all(history);
    let mut per_anomaly = counts(checker::HISTORY_ANOMALIES, &report.counts());
    let mut not_judged: Vec<String> = checker::OBSERVATION_ANOMALIES
        .iter()
        .chain(checker::CLIENT_ANOMALIES)
        .map(|n| n.to_string())
        .collect();
    let mut rendered = String::new();
    let group_report = groups.map(|g| (g, group::check_all(g)));
    match &group_report {
        Some((_, group_report)) => {
            per_anomaly.extend(counts(group::GROUP_ANOMALIES, &group_report.counts()));
        }
        None => not_judged.extend(group::GROUP_ANOMALIES.iter().map(|n| n.to_string())),
    }
    let valid = per_anomaly.iter().all(|(_, n)| *n == 0);
    let _ = writeln!(
        rendered,
        "{} ({} operations, {} group operations)",
        if valid { "VALID" } else { "INVALID" },
        history.operations().count(),
        groups.map_or(0, |g| g.ops.len())
    );
    for (name, n) in &per_anomaly {
        let _ = writeln!(
            rendered,
            "  {name:<32} {}",
            if *n == 0 {
                "ok".to_string()
            } else {
                n.to_string()
            }
        );
    }
    let _ = writeln!(rendered, "  not judged: {}", not_judged.join(" "));
    if !report.is_valid() {
        let _ = writeln!(rendered);
        rendered.push_str(&report.render(history, RENDER_PER_NAME));
    }
    if let Some((groups, group_report)) = &group_report
        && !group_report.is_valid()
    {
        let _ = writeln!(rendered);
        rendered.push_str(&group_report.render(groups));
    }
    Verdicts {
        per_anomaly,
        valid,
        rendered,
        not_judged,
    }
}

/// One entry per known name, in `known`'s order, then any name the checkers reported that the
/// list lacks (a checker added without updating the list still shows, and fails the run).
fn counts(
    known: &[&str],
    found: &std::collections::BTreeMap<&'static str, usize>,
) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = known
        .iter()
        .map(|name| (name.to_string(), found.get(name).copied().unwrap_or(0)))
        .collect();
    for (name, n) in found {
        if !known.contains(name) {
            out.push((name.to_string(), *n));
        }
    }
    out
}
