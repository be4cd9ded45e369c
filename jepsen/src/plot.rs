//! Throughput and latency over time as an SVG, fault windows shaded (Jepsen's `latency-raw` and
//! `rate` plots in one picture).
//!
//! Two panels share the x axis (seconds since the run started, the history's clock):
//!
//! - **latency**: one mark per completed operation at its invocation time, y = how long it took
//!   in milliseconds on a log scale; the colour is the outcome (ok blue, info orange, fail red),
//!   the shape the call (send circle, poll square, assign/seek triangle);
//! - **throughput**: `ok` operations per second of each call kind (send, poll) as lines, counted
//!   by completion time in one-second buckets.
//!
//! Every fault window is a translucent rectangle across both panels, labelled with its nemesis;
//! a window still open when the run ended reaches the right edge. Operations never completed
//! have no latency and are not drawn.
//!
//! Invariants: the document is well-formed XML with every user string escaped; it draws one
//! `class="fault"` rectangle per window and one `class="op ..."` mark per completed operation,
//! except beyond [`MAX_POINTS`] marks, where every k-th operation is drawn and the SVG says so
//! (the file stays a few MB at most). No plotting crate: `std` formatting only.

use std::fmt::Write as _;

use strata_sim::history::{Call, History, OpKind};

use crate::FaultWindow;

/// The most latency marks drawn; beyond, operations are sampled evenly.
pub const MAX_POINTS: usize = 20_000;

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const PANEL: f64 = 300.0;
const GAP: f64 = 70.0;
const BOTTOM: f64 = 50.0;
const HEIGHT: f64 = TOP + PANEL + GAP + PANEL + BOTTOM;
const NS_PER_S: f64 = 1e9;

const OK: &str = "#1f77b4";
const INFO: &str = "#ff7f0e";
const FAIL: &str = "#d62728";
const SEND_LINE: &str = "#2ca02c";
const POLL_LINE: &str = "#9467bd";
const FAULT_COLOURS: [&str; 6] = [
    "#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628",
];

/// The kind of call a mark stands for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Send,
    Poll,
    Other,
}

/// One completed operation: invoked at `start` (ns), `latency` ns, its outcome.
struct Point {
    start: u64,
    end: u64,
    latency: u64,
    kind: Kind,
    outcome: OpKind,
}

/// An SVG document plotting `history`'s operations over time with `faults` shaded.
pub fn svg(history: &History, faults: &[FaultWindow]) -> String {
    let points = points(history);
    let end_ns = points
        .iter()
        .map(|p| p.end)
        .chain(history.ops().last().map(|op| op.time.0))
        .chain(faults.iter().map(|f| f.end_ns.unwrap_or(f.start_ns)))
        .max()
        .unwrap_or(0);
    let seconds = (end_ns as f64 / NS_PER_S).max(1.0);
    let x = |ns: u64| LEFT + (ns as f64 / NS_PER_S) / seconds * (WIDTH - LEFT - RIGHT);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    out.push_str("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"20\" font-size=\"14\">{} operations, {} faults, {:.1} s</text>",
        points.len(),
        faults.len(),
        seconds
    );
    // Fault windows first, so marks and lines draw over them.
    fault_windows(&mut out, faults, &x, end_ns);
    latency_panel(&mut out, &points, &x, seconds);
    throughput_panel(&mut out, &points, &x, seconds, end_ns);
    legend(&mut out);
    out.push_str("</svg>\n");
    out
}

/// The completed operations of `history`, in its order.
fn points(history: &History) -> Vec<Point> {
    history
        .operations()
        .filter_map(|op| {
            let completion = op.completion?;
            let kind = match op.call() {
                Call::Send { .. } => Kind::Send,
                Call::Poll { .. } => Kind::Poll,
                Call::Assign { .. } | Call::Seek { .. } => Kind::Other,
            };
            Some(Point {
                start: op.invoke.time.0,
                end: completion.time.0,
                latency: completion.time.0.saturating_sub(op.invoke.time.0),
                kind,
                outcome: completion.kind,
            })
        })
        .collect()
}

/// One labelled rectangle per fault window across both panels; an open window reaches
/// `end_ns`.
fn fault_windows(out: &mut String, faults: &[FaultWindow], x: &dyn Fn(u64) -> f64, end_ns: u64) {
    let plot_bottom = TOP + PANEL + GAP + PANEL;
    for (i, fault) in faults.iter().enumerate() {
        let colour = FAULT_COLOURS[i % FAULT_COLOURS.len()];
        let x0 = x(fault.start_ns);
        let x1 = x(fault.end_ns.unwrap_or(end_ns)).max(x0 + 1.0);
        let _ = writeln!(
            out,
            "<rect class=\"fault\" x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" \
             fill=\"{colour}\" fill-opacity=\"0.12\"><title>{}: {}</title></rect>",
            x1 - x0,
            plot_bottom - TOP,
            escape(&fault.nemesis),
            escape(&fault.detail)
        );
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\" font-size=\"10\">{}</text>",
            x0 + 2.0,
            TOP + 10.0 + 11.0 * (i % 4) as f64,
            escape(&fault.nemesis)
        );
    }
}

/// The latency panel: axes, decade ticks, one mark per (sampled) operation.
fn latency_panel(out: &mut String, points: &[Point], x: &dyn Fn(u64) -> f64, seconds: f64) {
    let top = TOP;
    let bottom = TOP + PANEL;
    let (low, high) = latency_decades(points);
    let y = |latency_ms: f64| {
        let t = (latency_ms.log10() - f64::from(low)) / f64::from(high - low);
        bottom - t.clamp(0.0, 1.0) * PANEL
    };
    axes(out, top, bottom, x, seconds, "latency (ms, log)");
    for decade in low..=high {
        let value = 10f64.powi(decade);
        let ty = y(value);
        let _ = writeln!(
            out,
            "<line x1=\"{:.1}\" y1=\"{ty:.1}\" x2=\"{:.1}\" y2=\"{ty:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT,
            WIDTH - RIGHT,
            LEFT - 4.0,
            ty + 4.0,
            trim(value)
        );
    }
    let stride = points.len().div_ceil(MAX_POINTS).max(1);
    if stride > 1 {
        let _ = writeln!(
            out,
            "<text class=\"downsampled\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">\
             downsampled: every {stride}th of {} operations drawn</text>",
            WIDTH - RIGHT,
            top - 4.0,
            points.len()
        );
    }
    for p in points.iter().step_by(stride) {
        mark(out, p, x(p.start), y(ms(p)));
    }
}

/// A point's latency in milliseconds, at least a microsecond (the log scale's floor).
fn ms(p: &Point) -> f64 {
    (p.latency as f64 / 1e6).max(1e-3)
}

/// The latency scale's lowest and highest decade (powers of ten, at least one apart).
fn latency_decades(points: &[Point]) -> (i32, i32) {
    // The scale fits sends and polls; instantaneous assigns and seeks sit on its floor.
    let scaled: Vec<&Point> = if points.iter().any(|p| p.kind != Kind::Other) {
        points.iter().filter(|p| p.kind != Kind::Other).collect()
    } else {
        points.iter().collect()
    };
    let low = scaled.iter().map(|p| ms(p)).fold(f64::INFINITY, f64::min);
    let high = scaled.iter().map(|p| ms(p)).fold(0.0, f64::max);
    if scaled.is_empty() {
        (-1, 3)
    } else {
        let low = low.log10().floor() as i32;
        (low, (high.log10().ceil() as i32).max(low + 1))
    }
}

/// One operation's latency mark at (`px`, `py`): its shape the call, its colour the outcome.
fn mark(out: &mut String, p: &Point, px: f64, py: f64) {
    let (colour, outcome) = match p.outcome {
        OpKind::Ok => (OK, "ok"),
        OpKind::Fail => (FAIL, "fail"),
        OpKind::Info | OpKind::Invoke => (INFO, "info"),
    };
    match p.kind {
        Kind::Send => {
            let _ = writeln!(
                out,
                "<circle class=\"op send {outcome}\" cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"2\" \
                 fill=\"{colour}\" fill-opacity=\"0.6\"/>"
            );
        }
        Kind::Poll => {
            let _ = writeln!(
                out,
                "<rect class=\"op poll {outcome}\" x=\"{:.1}\" y=\"{:.1}\" width=\"3.5\" \
                 height=\"3.5\" fill=\"{colour}\" fill-opacity=\"0.6\"/>",
                px - 1.75,
                py - 1.75
            );
        }
        Kind::Other => {
            let _ = writeln!(
                out,
                "<path class=\"op other {outcome}\" d=\"M{px:.1} {:.1}L{:.1} {:.1}L{:.1} \
                 {:.1}Z\" fill=\"{colour}\" fill-opacity=\"0.6\"/>",
                py - 2.5,
                px + 2.5,
                py + 2.0,
                px - 2.5,
                py + 2.0
            );
        }
    }
}

/// The throughput panel: ok operations per second of sends and polls, by completion time.
fn throughput_panel(
    out: &mut String,
    points: &[Point],
    x: &dyn Fn(u64) -> f64,
    seconds: f64,
    end_ns: u64,
) {
    let top = TOP + PANEL + GAP;
    let bottom = top + PANEL;
    let buckets = (end_ns / 1_000_000_000 + 1) as usize;
    let mut sends = vec![0u64; buckets];
    let mut polls = vec![0u64; buckets];
    for p in points.iter().filter(|p| p.outcome == OpKind::Ok) {
        let bucket = ((p.end / 1_000_000_000) as usize).min(buckets - 1);
        match p.kind {
            Kind::Send => sends[bucket] += 1,
            Kind::Poll => polls[bucket] += 1,
            Kind::Other => {}
        }
    }
    let max = sends
        .iter()
        .chain(&polls)
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let step = nice_step(max as f64, 5);
    let high = (max as f64 / step).ceil() * step;
    let y = |rate: f64| bottom - rate / high * PANEL;
    axes(out, top, bottom, x, seconds, "throughput (ok ops/s)");
    let mut tick = 0.0;
    while tick <= high + step / 2.0 {
        let ty = y(tick);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{ty:.1}\" x2=\"{:.1}\" y2=\"{ty:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 4.0,
            ty + 4.0,
            trim(tick)
        );
        tick += step;
    }
    for (counts, colour, class) in [(&sends, SEND_LINE, "send"), (&polls, POLL_LINE, "poll")] {
        let mut path = String::new();
        for (i, n) in counts.iter().enumerate() {
            // Each bucket's rate drawn at the bucket's middle.
            let px = x(i as u64 * 1_000_000_000 + 500_000_000).min(WIDTH - RIGHT);
            let _ = write!(
                path,
                "{}{px:.1},{:.1}",
                if i == 0 { "" } else { " " },
                y(*n as f64)
            );
        }
        let _ = writeln!(
            out,
            "<polyline class=\"rate {class}\" points=\"{path}\" fill=\"none\" \
             stroke=\"{colour}\" stroke-width=\"1.5\"/>"
        );
    }
}

/// A panel's frame, x ticks and title.
fn axes(
    out: &mut String,
    top: f64,
    bottom: f64,
    x: &dyn Fn(u64) -> f64,
    seconds: f64,
    title: &str,
) {
    let _ = writeln!(
        out,
        "<rect x=\"{LEFT}\" y=\"{top}\" width=\"{:.1}\" height=\"{PANEL}\" fill=\"none\" \
         stroke=\"#444\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" transform=\"rotate(-90 {:.1} {:.1})\" \
         text-anchor=\"middle\">{}</text>",
        WIDTH - LEFT - RIGHT,
        LEFT - 55.0,
        (top + bottom) / 2.0,
        LEFT - 55.0,
        (top + bottom) / 2.0,
        escape(title)
    );
    let step = nice_step(seconds, 10);
    let mut tick = 0.0;
    while tick <= seconds + 1e-9 {
        let tx = x((tick * NS_PER_S) as u64);
        let _ = writeln!(
            out,
            "<line x1=\"{tx:.1}\" y1=\"{bottom}\" x2=\"{tx:.1}\" y2=\"{:.1}\" stroke=\"#444\"/>\
             <text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            bottom + 4.0,
            bottom + 16.0,
            trim(tick)
        );
        tick += step;
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">time (s)</text>",
        (LEFT + WIDTH - RIGHT) / 2.0,
        bottom + 32.0
    );
}

/// The legend right of the panels: outcomes and call kinds beside the latency panel, rates and
/// fault windows beside the throughput panel.
fn legend(out: &mut String) {
    let lx = WIDTH - RIGHT + 15.0;
    let mut marks = latency_legend(lx);
    marks.extend(throughput_legend(lx));
    for (mark, label, y) in marks {
        let _ = writeln!(
            out,
            "<g class=\"legend\">{mark}<text x=\"{:.1}\" y=\"{:.1}\">{label}</text></g>",
            lx + 14.0,
            y + 4.0
        );
    }
}

/// The latency panel's legend entries at x `lx`: (mark, label, y).
fn latency_legend(lx: f64) -> Vec<(String, &'static str, f64)> {
    let mut marks = Vec::new();
    let mut ly = TOP + 10.0;
    for (colour, label) in [(OK, "ok"), (INFO, "info (indefinite)"), (FAIL, "fail")] {
        marks.push((
            format!("<circle cx=\"{lx:.1}\" cy=\"{ly:.1}\" r=\"4\" fill=\"{colour}\"/>"),
            label,
            ly,
        ));
        ly += 16.0;
    }
    marks.push((
        format!("<circle cx=\"{lx:.1}\" cy=\"{ly:.1}\" r=\"3\" fill=\"#666\"/>"),
        "send",
        ly,
    ));
    ly += 16.0;
    marks.push((
        format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"6\" height=\"6\" fill=\"#666\"/>",
            lx - 3.0,
            ly - 3.0
        ),
        "poll",
        ly,
    ));
    ly += 16.0;
    marks.push((
        format!(
            "<path d=\"M{lx:.1} {:.1}L{:.1} {:.1}L{:.1} {:.1}Z\" fill=\"#666\"/>",
            ly - 4.0,
            lx + 4.0,
            ly + 3.0,
            lx - 4.0,
            ly + 3.0
        ),
        "assign / seek",
        ly,
    ));
    marks
}

/// The throughput panel's legend entries at x `lx`: (mark, label, y).
fn throughput_legend(lx: f64) -> Vec<(String, &'static str, f64)> {
    let mut marks = Vec::new();
    let mut ly = TOP + PANEL + GAP + 10.0;
    for (colour, label) in [(SEND_LINE, "ok sends/s"), (POLL_LINE, "ok polls/s")] {
        marks.push((
            format!(
                "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" \
                 stroke=\"{colour}\" stroke-width=\"2\"/>",
                lx - 6.0,
                lx + 6.0
            ),
            label,
            ly,
        ));
        ly += 16.0;
    }
    marks.push((
        format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"8\" fill=\"{}\" \
             fill-opacity=\"0.3\"/>",
            lx - 6.0,
            ly - 4.0,
            FAULT_COLOURS[0]
        ),
        "fault window",
        ly,
    ));
    marks
}

/// A step of 1, 2 or 5 times a power of ten giving about `ticks` ticks over `range`.
fn nice_step(range: f64, ticks: u32) -> f64 {
    let raw = (range / f64::from(ticks)).max(1e-9);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// A tick label without needless decimals.
fn trim(value: f64) -> String {
    let s = format!("{value:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `text` safe inside XML text and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use strata_core::types::{Instant, Offset};
    use strata_sim::history::{Acks, PollResult, ProcessId, Reply, SendAck, TopicPartition, Value};

    use super::*;

    /// Checks that every tag is closed in order (a tiny XML well-formedness check: no
    /// attribute parsing beyond quotes), returning the number of elements.
    fn balanced(svg: &str) -> usize {
        let mut stack: Vec<&str> = Vec::new();
        let mut elements = 0;
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            let tail = &rest[open + 1..];
            let mut in_quote = false;
            let close = tail
                .char_indices()
                .find(|&(_, c)| {
                    if c == '"' {
                        in_quote = !in_quote;
                    }
                    c == '>' && !in_quote
                })
                .map(|(i, _)| i)
                .expect("every tag ends");
            let tag = &tail[..close];
            assert!(!tag.contains('<'), "a '<' inside tag {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name.trim()), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().expect("tag name");
                stack.push(name);
                elements += 1;
            } else {
                elements += 1;
            }
            rest = &tail[close + 1..];
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        elements
    }

    fn history(sends: usize) -> History {
        let tp = TopicPartition::new("t", 0);
        let mut h = History::new();
        let mut t = 0;
        for i in 0..sends {
            t += 7_000_000;
            h.invoke(
                ProcessId(1),
                Instant(t),
                Call::Send {
                    tp: tp.clone(),
                    values: vec![Value(i as u64)],
                    acks: Acks::All,
                    resends: false,
                },
            );
            t += 1_000_000 * (1 + i as u64 % 50);
            match i % 10 {
                0 => h.info(ProcessId(1), Instant(t), "timeout"),
                1 => h.fail(ProcessId(1), Instant(t), "NOT_ENOUGH_REPLICAS"),
                _ => h.ok(
                    ProcessId(1),
                    Instant(t),
                    Reply::Send(SendAck::new(Offset(i as i64))),
                ),
            };
            h.invoke(
                ProcessId(2),
                Instant(t),
                Call::Poll {
                    tp: tp.clone(),
                    from_offset: Offset(0),
                    final_read: false,
                },
            );
            t += 500_000;
            h.ok(
                ProcessId(2),
                Instant(t),
                Reply::Poll(PollResult {
                    records: Vec::new(),
                    high_watermark: Offset(0),
                    log_start_offset: Offset(0),
                    batches: Vec::new(),
                }),
            );
        }
        // Never completed: not drawn.
        h.invoke(
            ProcessId(3),
            Instant(t),
            Call::Seek {
                tp,
                offset: Offset(0),
            },
        );
        h
    }

    fn faults() -> Vec<FaultWindow> {
        vec![
            FaultWindow {
                nemesis: "partition-halves".into(),
                detail: "{n1 n2} <-> {n3 n4 n5} & \"quoted\"".into(),
                start_ns: 1_000_000_000,
                end_ns: Some(3_000_000_000),
            },
            FaultWindow {
                nemesis: "kill".into(),
                detail: "n3".into(),
                start_ns: 4_000_000_000,
                end_ns: None,
            },
        ]
    }

    #[test]
    fn draws_one_mark_per_completed_op_and_one_rect_per_fault() {
        let svg = svg(&history(300), &faults());
        assert!(balanced(&svg) > 600);
        assert_eq!(svg.matches("class=\"fault\"").count(), 2);
        assert_eq!(svg.matches("class=\"op ").count(), 600);
        assert_eq!(svg.matches("class=\"op send ok\"").count(), 240);
        assert_eq!(svg.matches("class=\"op send info\"").count(), 30);
        assert_eq!(svg.matches("class=\"op send fail\"").count(), 30);
        assert!(svg.contains("&lt;-&gt;") && svg.contains("&amp; &quot;quoted&quot;"));
        assert!(svg.contains("class=\"rate send\"") && svg.contains("class=\"rate poll\""));
        assert!(!svg.contains("downsampled"));
    }

    #[test]
    fn downsamples_beyond_the_cap_and_says_so() {
        let svg = svg(&history(15_000), &[]);
        balanced(&svg);
        let marks = svg.matches("class=\"op ").count();
        assert!(
            (MAX_POINTS / 2..=MAX_POINTS).contains(&marks),
            "{marks} marks"
        );
        assert!(svg.contains("downsampled: every 2th of 30000 operations drawn"));
    }

    #[test]
    fn an_empty_history_is_still_a_plot() {
        let svg = svg(&History::new(), &[]);
        balanced(&svg);
        assert_eq!(svg.matches("class=\"op ").count(), 0);
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(10.0, 10), 1.0);
        assert_eq!(nice_step(95.0, 10), 10.0);
        assert_eq!(nice_step(300.0, 10), 50.0);
        assert_eq!(nice_step(3.0, 5), 1.0);
        assert_eq!(trim(0.5), "0.5");
        assert_eq!(trim(20.0), "20");
    }
}
