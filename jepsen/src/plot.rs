//! Throughput and latency over time as an SVG, fault windows shaded (Jepsen's `latency-raw`).
//! (checks-and-output helper: to be written; the signature below is the contract with `run`.)

use strata_sim::history::History;

use crate::FaultWindow;

/// An SVG document plotting `history`'s operations over time with `faults` shaded.
pub fn svg(history: &History, faults: &[FaultWindow]) -> String {
    let _ = (history, faults);
    String::from("<svg xmlns=\"http://www.w3.org/2000/svg\"/>")
}
