//! The checkers run over one run's history: one verdict per named anomaly.
//! (checks-and-output helper: to be written; the signatures below are the contract with `run`.)

use strata_sim::group_history::GroupHistory;
use strata_sim::history::History;

/// The verdict of one run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Verdicts {
    /// Every anomaly name the checkers know, with how many were found (0 = valid for it).
    pub per_anomaly: Vec<(String, usize)>,
    /// No anomaly of any name.
    pub valid: bool,
    /// Human-readable report: anomalies, then the parts of the history they cite.
    pub rendered: String,
}

/// Judges `history` (and the group history, for runs that subscribe).
pub fn judge(history: &History, groups: Option<&GroupHistory>) -> Verdicts {
    let _ = (history, groups);
    Verdicts::default()
}
