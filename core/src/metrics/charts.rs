//! Charts of a store's recent traffic ([`StoreHistory`], what
//! `GET /api/v1/stores/{id}/metrics` answers), as an HTML fragment of inline SVG: no
//! script, no external resource; a pure function of the history.
//!
//! Three charts over the window (the last hour): requests per second, p50/p99 latency,
//! and refused requests per interval stacked by XKS error name. Each is an
//! `<svg role="img">` with a `<title>` and a `<desc>` saying what it shows, labelled
//! axes, and a `viewBox` so it scales to its container's width. A summary of the
//! latest interval and of the window, and a data table (in a `<details>`), give the
//! same numbers as text. Colors are dark on a white plot (each at least 4.5:1 against
//! it) and the lines differ by dash pattern too, not by color alone. Every text from
//! the history is XML-escaped.

use std::fmt::Write as _;

use crate::api::metrics::{HistoryPoint, StoreHistory};

/// The drawing's size in SVG units (it scales to the container's width).
const W: f64 = 720.0;
const H: f64 = 220.0;
/// The plot area's margins: left (y labels), right, top, bottom (x labels).
const LEFT: f64 = 70.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 44.0;

/// Text and axes.
const INK: &str = "#1a1a1a";
/// Grid lines (decoration only).
const GRID: &str = "#d0d0d0";
/// Requests per second, and p50.
const BLUE: &str = "#1f5fa8";
/// p99.
const RED: &str = "#b3261e";

/// Colors of the XKS error names, in a fixed order so a name keeps its color; each at
/// least 4.5:1 against white.
const ERROR_COLORS: [(&str, &str); 12] = [
    ("ValidationException", "#8a4b00"),
    ("InvalidStateException", "#6a3d9a"),
    ("InvalidCiphertextException", "#00695c"),
    ("InvalidKeyUsageException", "#ad1457"),
    ("AuthenticationFailedException", "#b3261e"),
    ("AccessDeniedException", "#283593"),
    ("KeyNotFoundException", "#37474f"),
    ("InvalidUriPathException", "#2e7d32"),
    ("UnsupportedOperationException", "#5d4037"),
    ("DependencyTimeoutException", "#7a5c00"),
    ("InternalException", "#9e3d00"),
    ("ThrottlingException", "#1f5fa8"),
];
/// The color of a name not in [`ERROR_COLORS`].
const OTHER_ERROR: &str = "#4a4a4a";

/// `text` escaped for XML/HTML text and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn error_color(name: &str) -> &'static str {
    ERROR_COLORS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(OTHER_ERROR, |(_, c)| c)
}

/// The smallest 1, 2 or 5 × 10^k at least `v` (1 for nothing).
pub fn nice_max(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let mut step = 10f64.powf(v.log10().floor());
    loop {
        for m in [1.0, 2.0, 5.0] {
            if m * step >= v * (1.0 - 1e-9) {
                return m * step;
            }
        }
        step *= 10.0;
    }
}

/// How many grid steps divide `max` (a [`nice_max`]) into round values: fifths of
/// 1 and 5 × 10^k, quarters of 2 × 10^k.
pub fn grid_steps(max: f64) -> u32 {
    let mantissa = max / 10f64.powf(max.log10().floor());
    if (mantissa - 2.0).abs() < 1e-6 { 4 } else { 5 }
}

/// A number without trailing zeros (at most 3 decimals).
pub fn num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// A latency in microseconds, readably (`780 µs`, `1.75 ms`, `1.2 s`).
pub fn latency(us: u64) -> String {
    match us {
        0..=999 => format!("{us} µs"),
        1_000..=999_999 => format!("{} ms", num(us as f64 / 1e3)),
        _ => format!("{} s", num(us as f64 / 1e6)),
    }
}

/// A Unix time as `HH:MM:SS UTC` (the date left out: the window is an hour).
fn clock(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at).map_or_else(
        |_| at.to_string(),
        |t| format!("{:02}:{:02}:{:02} UTC", t.hour(), t.minute(), t.second()),
    )
}

/// Maps times and values to the plot area.
pub struct Scale {
    start: i64,
    span: f64,
    max: f64,
}

impl Scale {
    /// Times `start..start + span` seconds, values `0..=max`.
    pub fn new(start: i64, span: u64, max: f64) -> Scale {
        Scale {
            start,
            span: span.max(1) as f64,
            max: if max > 0.0 { max } else { 1.0 },
        }
    }

    /// The x of time `at` (clamped to the plot).
    pub fn x(&self, at: i64) -> f64 {
        let f = ((at - self.start) as f64 / self.span).clamp(0.0, 1.0);
        LEFT + f * (W - LEFT - RIGHT)
    }

    /// The y of value `v` (clamped to the plot).
    pub fn y(&self, v: f64) -> f64 {
        let f = (v / self.max).clamp(0.0, 1.0);
        H - BOTTOM - f * (H - TOP - BOTTOM)
    }
}

/// One chart's frame: the svg element with its title and description, the grid and
/// labelled axes; the caller draws into it, then closes it with `</svg>`.
struct Frame<'a> {
    id: &'a str,
    title: String,
    desc: String,
    y_label: &'a str,
    y_fmt: &'a dyn Fn(f64) -> String,
}

fn open(out: &mut String, f: &Frame<'_>, s: &Scale) {
    let id = f.id;
    let _ = write!(
        out,
        "<svg class=\"chart\" id=\"{id}\" role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" \
         viewBox=\"0 0 {W} {H}\" width=\"100%\" preserveAspectRatio=\"xMidYMid meet\" \
         xmlns=\"http://www.w3.org/2000/svg\" font-family=\"sans-serif\" font-size=\"13\">\
         <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>\
         <rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>",
        esc(&f.title),
        esc(&f.desc)
    );
    let (x0, x1) = (LEFT, W - RIGHT);
    let steps = grid_steps(s.max);
    for i in 0..=steps {
        let v = s.max * f64::from(i) / f64::from(steps);
        let y = s.y(v);
        let _ = write!(
            out,
            "<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{x1}\" y2=\"{y:.1}\" stroke=\"{GRID}\" stroke-width=\"1\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{INK}\">{}</text>",
            x0 - 6.0,
            y + 4.0,
            esc(&(f.y_fmt)(v))
        );
    }
    let base = H - BOTTOM;
    let _ = write!(
        out,
        "<line x1=\"{x0}\" y1=\"{TOP}\" x2=\"{x0}\" y2=\"{base}\" stroke=\"{INK}\" stroke-width=\"1\"/>\
         <line x1=\"{x0}\" y1=\"{base}\" x2=\"{x1}\" y2=\"{base}\" stroke=\"{INK}\" stroke-width=\"1\"/>"
    );
    let end = s.start + s.span as i64;
    for (at, anchor) in [
        (s.start, "start"),
        (s.start + s.span as i64 / 2, "middle"),
        (end, "end"),
    ] {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" fill=\"{INK}\">{}</text>",
            s.x(at),
            base + 16.0,
            esc(&clock(at))
        );
    }
    let _ = write!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{INK}\">time (UTC)</text>\
         <text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{INK}\" transform=\"rotate(-90 14 {:.1})\">{}</text>",
        (x0 + x1) / 2.0,
        H - 6.0,
        (TOP + base) / 2.0,
        (TOP + base) / 2.0,
        esc(f.y_label)
    );
}

/// Runs of consecutive points (no gap longer than 1.5 intervals) with a value.
fn runs<'a>(
    points: &'a [HistoryPoint],
    interval: i64,
    value: impl Fn(&HistoryPoint) -> Option<f64> + 'a,
) -> Vec<Vec<(i64, f64)>> {
    let mut out: Vec<Vec<(i64, f64)>> = Vec::new();
    let mut last_at: Option<i64> = None;
    for p in points {
        let Some(v) = value(p) else {
            last_at = None;
            continue;
        };
        let joined = last_at.is_some_and(|t| (p.at - t) * 2 <= interval * 3);
        match out.last_mut() {
            Some(run) if joined => run.push((p.at, v)),
            _ => out.push(vec![(p.at, v)]),
        }
        last_at = Some(p.at);
    }
    out
}

/// A line through `runs` (isolated values as dots), in `color` with `dash`.
fn line(out: &mut String, s: &Scale, runs: &[Vec<(i64, f64)>], color: &str, dash: &str) {
    let mut d = String::new();
    for run in runs {
        if let [(at, v)] = run.as_slice() {
            let _ = write!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{color}\"/>",
                s.x(*at),
                s.y(*v)
            );
            continue;
        }
        for (i, (at, v)) in run.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1} {:.1} ",
                if i == 0 { "M" } else { "L" },
                s.x(*at),
                s.y(*v)
            );
        }
    }
    if !d.is_empty() {
        let _ = write!(
            out,
            "<path d=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/>",
            d.trim_end()
        );
    }
}

/// Requests per second with zeros where intervals had none (points are only kept for
/// intervals with requests).
fn with_zeros(points: &[HistoryPoint], interval: i64) -> Vec<(i64, f64)> {
    let mut out: Vec<(i64, f64)> = Vec::new();
    for p in points {
        match out.last() {
            Some(&(t, _)) if (p.at - t) * 2 > interval * 3 => {
                out.push((t + interval, 0.0));
                out.push((p.at - interval, 0.0));
            }
            None => out.push((p.at - interval, 0.0)),
            _ => {}
        }
        out.push((p.at, p.requests_per_second));
    }
    out
}

/// A legend entry at `x` of the top line: a swatch and the label.
fn legend(out: &mut String, x: f64, color: &str, dash: &str, label: &str) -> f64 {
    let _ = write!(
        out,
        "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-width=\"3\" stroke-dasharray=\"{dash}\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{INK}\">{}</text>",
        TOP + 8.0,
        x + 18.0,
        TOP + 8.0,
        x + 22.0,
        TOP + 12.0,
        esc(label)
    );
    x + 30.0 + 8.0 * label.chars().count() as f64
}

fn requests_chart(out: &mut String, h: &StoreHistory, start: i64, id: &str) {
    let interval = h.interval_seconds as i64;
    let series = with_zeros(&h.points, interval);
    let peak = series.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    let s = Scale::new(start, h.window_seconds, nice_max(peak));
    let frame = Frame {
        id: &format!("{id}-rps"),
        title: format!("Requests per second, {}", h.name),
        desc: format!(
            "XKS requests per second answered by node {} for key store {} over the last {} minutes, \
             per {} s interval; peak {} per second.",
            h.node,
            h.name,
            h.window_seconds / 60,
            h.interval_seconds,
            num(peak)
        ),
        y_label: "requests/s",
        y_fmt: &|v| num(v),
    };
    open(out, &frame, &s);
    line(out, &s, &[series], BLUE, "none");
    out.push_str("</svg>");
}

fn latency_chart(out: &mut String, h: &StoreHistory, start: i64, id: &str) {
    let interval = h.interval_seconds as i64;
    let p50 = runs(&h.points, interval, |p| p.p50_us.map(|v| v as f64 / 1e3));
    let p99 = runs(&h.points, interval, |p| p.p99_us.map(|v| v as f64 / 1e3));
    let peak = p99
        .iter()
        .chain(&p50)
        .flatten()
        .map(|(_, v)| *v)
        .fold(0.0, f64::max);
    let s = Scale::new(start, h.window_seconds, nice_max(peak));
    let frame = Frame {
        id: &format!("{id}-latency"),
        title: format!("Latency p50 and p99, {}", h.name),
        desc: format!(
            "Median (p50, solid blue) and 99th percentile (p99, dashed red) latency in \
             milliseconds of key store {}'s XKS requests on node {}, per {} s interval with \
             requests; highest {} ms.",
            h.name,
            h.node,
            h.interval_seconds,
            num(peak)
        ),
        y_label: "latency (ms)",
        y_fmt: &|v| num(v),
    };
    open(out, &frame, &s);
    line(out, &s, &p50, BLUE, "none");
    line(out, &s, &p99, RED, "6 4");
    let x = legend(out, LEFT + 10.0, BLUE, "none", "p50");
    legend(out, x, RED, "6 4", "p99");
    out.push_str("</svg>");
}

/// The error names present in `points`, in [`ERROR_COLORS`] order (others last, by
/// name).
fn error_names(points: &[HistoryPoint]) -> Vec<&str> {
    let mut names: Vec<&str> = points
        .iter()
        .flat_map(|p| p.errors.keys().map(String::as_str))
        .collect();
    names.sort_by_key(|n| {
        (
            ERROR_COLORS
                .iter()
                .position(|(c, _)| c == n)
                .unwrap_or(usize::MAX),
            *n,
        )
    });
    names.dedup();
    names
}

fn errors_chart(out: &mut String, h: &StoreHistory, start: i64, id: &str) {
    let names = error_names(&h.points);
    let total = |p: &HistoryPoint| p.errors.values().sum::<u64>();
    let peak = h.points.iter().map(total).max().unwrap_or(0);
    let refused: u64 = h.points.iter().map(total).sum();
    // Whole counts: at least 0..5, so that every grid line is a whole number.
    let s = Scale::new(start, h.window_seconds, nice_max(peak as f64).max(5.0));
    let frame = Frame {
        id: &format!("{id}-errors"),
        title: format!("Refused requests by XKS error, {}", h.name),
        desc: if names.is_empty() {
            format!(
                "No refused XKS requests for key store {} on node {} in the window.",
                h.name, h.node
            )
        } else {
            format!(
                "Refused XKS requests of key store {} on node {} per {} s interval, stacked by \
                 error name: {}; {refused} in all.",
                h.name,
                h.node,
                h.interval_seconds,
                names.join(", ")
            )
        },
        y_label: "refused/interval",
        y_fmt: &|v| num(v),
    };
    open(out, &frame, &s);
    let width =
        ((W - LEFT - RIGHT) * h.interval_seconds as f64 / h.window_seconds.max(1) as f64).max(1.0);
    for p in &h.points {
        let x = s.x(p.at) - width;
        let mut below = 0u64;
        for name in &names {
            let Some(&n) = p.errors.get(*name) else {
                continue;
            };
            let (y0, y1) = (s.y(below as f64), s.y((below + n) as f64));
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{y1:.1}\" width=\"{width:.1}\" height=\"{:.1}\" fill=\"{}\">\
                 <title>{} at {}: {n}</title></rect>",
                x.max(LEFT),
                (y0 - y1).max(0.5),
                error_color(name),
                esc(name),
                esc(&clock(p.at))
            );
            below += n;
        }
    }
    if names.is_empty() {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{INK}\">No refused requests</text>",
            (LEFT + W - RIGHT) / 2.0,
            (TOP + H - BOTTOM) / 2.0
        );
    }
    out.push_str("</svg>");
    if !names.is_empty() {
        out.push_str("<ul class=\"chart-legend\">");
        for name in &names {
            let _ = write!(
                out,
                "<li><svg width=\"12\" height=\"12\" aria-hidden=\"true\" focusable=\"false\">\
                 <rect width=\"12\" height=\"12\" fill=\"{}\"/></svg> {}</li>",
                error_color(name),
                esc(name)
            );
        }
        out.push_str("</ul>");
    }
}

/// The latest interval and the window in words.
fn summary(h: &StoreHistory) -> String {
    let requests: u64 = h.points.iter().map(|p| p.requests).sum();
    let refused: u64 = h.points.iter().flat_map(|p| p.errors.values()).sum();
    let mut text = format!(
        "Last {} minutes on node {}: {requests} requests, {refused} refused.",
        h.window_seconds / 60,
        h.node
    );
    if let Some(p) = h.points.last() {
        let _ = write!(
            text,
            " Latest interval with requests (ending {}): {} requests/s",
            clock(p.at),
            num(p.requests_per_second)
        );
        if let (Some(p50), Some(p99)) = (p.p50_us, p.p99_us) {
            let _ = write!(text, ", p50 {}, p99 {}", latency(p50), latency(p99));
        }
        let errors: Vec<String> = p.errors.iter().map(|(n, c)| format!("{n} {c}")).collect();
        if errors.is_empty() {
            text.push_str(", none refused.");
        } else {
            let _ = write!(text, ", refused: {}.", errors.join(", "));
        }
    }
    text
}

fn table(out: &mut String, h: &StoreHistory, id: &str) {
    let _ = write!(
        out,
        "<details class=\"chart-data\"><summary>Data table ({} intervals)</summary>\
         <div class=\"table-wrap\"><table id=\"{id}-data\"><caption>Traffic of key store {} \
         on node {} per {} s interval</caption><thead><tr><th scope=\"col\">Interval ending (UTC)</th>\
         <th scope=\"col\">Requests</th><th scope=\"col\">Requests/s</th><th scope=\"col\">p50</th>\
         <th scope=\"col\">p99</th><th scope=\"col\">Refused</th></tr></thead><tbody>",
        h.points.len(),
        esc(&h.name),
        esc(&h.node),
        h.interval_seconds
    );
    for p in h.points.iter().rev() {
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), latency);
        let errors: Vec<String> = p
            .errors
            .iter()
            .map(|(n, c)| format!("{} {c}", esc(n)))
            .collect();
        let _ = write!(
            out,
            "<tr data-at=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.at,
            esc(&clock(p.at)),
            p.requests,
            num(p.requests_per_second),
            esc(&opt(p.p50_us)),
            esc(&opt(p.p99_us)),
            if errors.is_empty() {
                "-".to_string()
            } else {
                errors.join(", ")
            }
        );
    }
    out.push_str("</tbody></table></div></details>");
}

/// The charts of `h` as an HTML fragment (a `<section>`); a "no traffic" message when
/// the history has no point.
pub fn store_charts(h: &StoreHistory) -> String {
    let id = format!(
        "traffic-{}",
        h.store
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>()
    );
    let mut out = format!(
        "<section class=\"store-charts\" aria-labelledby=\"{id}-heading\">\
         <h2 id=\"{id}-heading\">Requests and latency, last hour</h2>\
         <p class=\"help\">XKS requests answered by node {} (each node keeps its own).</p>",
        esc(&h.node)
    );
    let end = h.sampled_at.or(h.points.last().map(|p| p.at));
    let Some(end) = end.filter(|_| !h.points.is_empty()) else {
        let when = if h.sampled_at.is_none() {
            " (the first sample is taken one interval after the server starts)"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<p class=\"charts-empty\" role=\"status\">No traffic in the last hour: key store {} \
             had no XKS requests on node {} in the last {} minutes{when}.</p></section>",
            esc(&h.name),
            esc(&h.node),
            h.window_seconds / 60
        );
        return out;
    };
    let start = end - h.window_seconds as i64;
    let _ = write!(
        out,
        "<p class=\"charts-summary\" id=\"{id}-summary\">{}</p>",
        esc(&summary(h))
    );
    type Draw = fn(&mut String, &StoreHistory, i64, &str);
    let charts: [(&str, Draw); 3] = [
        ("Requests per second", requests_chart),
        (
            "Latency: p50 (solid) and p99 (dashed), milliseconds",
            latency_chart,
        ),
        (
            "Refused requests per interval, by XKS error name",
            errors_chart,
        ),
    ];
    for (caption, draw) in charts {
        let _ = write!(
            out,
            "<figure class=\"chart-figure\"><figcaption>{}</figcaption>",
            esc(caption)
        );
        draw(&mut out, h, start, &id);
        out.push_str("</figure>");
    }
    table(&mut out, h, &id);
    out.push_str("</section>");
    out
}

#[cfg(test)]
mod tests;
