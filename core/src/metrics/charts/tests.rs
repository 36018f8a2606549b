//! The chart renderer: escaping, the empty history, scaling, the text alternative.

use std::collections::BTreeMap;

use super::*;

const END: i64 = 1_796_000_000;

fn point(
    at: i64,
    requests: u64,
    p50: Option<u64>,
    p99: Option<u64>,
    errors: &[(&str, u64)],
) -> HistoryPoint {
    HistoryPoint {
        at,
        requests,
        requests_per_second: requests as f64 / 10.0,
        p50_us: p50,
        p99_us: p99,
        errors: errors
            .iter()
            .map(|(n, c)| (n.to_string(), *c))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn history(name: &str, points: Vec<HistoryPoint>) -> StoreHistory {
    StoreHistory {
        store: "0123456789abcdef".into(),
        name: name.into(),
        node: "node-1".into(),
        interval_seconds: 10,
        window_seconds: 3600,
        sampled_at: Some(END),
        points,
    }
}

/// The text between `<tag` … `</tag>` for each occurrence.
fn elements<'a>(html: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(&open) {
        let Some(j) = rest[i..].find(&close) else {
            break;
        };
        out.push(&rest[i..i + j + close.len()]);
        rest = &rest[i + j + close.len()..];
    }
    out
}

#[test]
fn every_text_from_the_history_is_escaped() {
    let evil = "<script>alert('x')</script> & \"q\"";
    let mut h = history(
        evil,
        vec![point(END, 10, Some(100), Some(900), &[("Bad<Name>&", 2)])],
    );
    h.node = "<b>node</b>".into();
    h.store = "\"><svg onload=x>".into();
    let html = store_charts(&h);
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
    assert!(!html.contains("Bad<Name>"), "{html}");
    assert!(!html.contains("onload=x>"), "{html}");
    assert!(!html.contains("<svg onload"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"));
    assert!(html.contains("Bad&lt;Name&gt;&amp;"));
    assert!(html.contains("&lt;b&gt;node&lt;/b&gt;"));
    // The id keeps only safe characters.
    assert!(html.contains("id=\"traffic-svgonloadx-heading\""), "{html}");
    assert_eq!(esc("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
    assert!(!html.contains("<script") && !html.contains("javascript:"));
}

#[test]
fn an_empty_history_says_there_was_no_traffic() {
    let html = store_charts(&history("acme", vec![]));
    assert!(html.contains("No traffic in the last hour"), "{html}");
    assert!(html.contains("role=\"status\""));
    assert!(!html.contains("<svg"), "no empty chart is drawn");
    assert!(html.starts_with("<section") && html.ends_with("</section>"));
    let mut before_first = history("acme", vec![]);
    before_first.sampled_at = None;
    assert!(store_charts(&before_first).contains("the first sample is taken one interval after"));
}

#[test]
fn the_charts_are_accessible_images_with_a_text_alternative() {
    let h = history(
        "acme",
        vec![
            point(
                END - 20,
                31,
                Some(780),
                Some(4_750),
                &[("KeyNotFoundException", 1)],
            ),
            point(END - 10, 50, Some(800), Some(5_000), &[]),
            point(
                END,
                5,
                Some(1_200),
                Some(2_000),
                &[("ThrottlingException", 2), ("KeyNotFoundException", 3)],
            ),
        ],
    );
    let html = store_charts(&h);
    let svgs: Vec<&str> = elements(&html, "svg")
        .into_iter()
        .filter(|s| s.contains("role=\"img\""))
        .collect();
    assert_eq!(svgs.len(), 3, "{html}");
    for svg in &svgs {
        assert!(svg.contains("viewBox=\"0 0 720 220\"") && svg.contains("width=\"100%\""));
        let id = svg
            .split("id=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("id");
        assert!(svg.contains(&format!("aria-labelledby=\"{id}-title {id}-desc\"")));
        assert!(svg.contains(&format!("<title id=\"{id}-title\">")));
        assert!(svg.contains(&format!("<desc id=\"{id}-desc\">")));
        assert!(svg.contains("time (UTC)"), "x axis label");
    }
    assert!(svgs[0].contains(">requests/s</text>"));
    assert!(
        svgs[1].contains(">latency (ms)</text>") && svgs[1].contains("stroke-dasharray=\"6 4\"")
    );
    assert!(svgs[2].contains(">refused/interval</text>"));
    assert_eq!(
        html.matches("<figcaption>").count(),
        3,
        "a visible caption each"
    );
    // No inline style: the console's CSP allows style sheets from itself only.
    assert!(!html.contains("style="));
    for whole in 0..=5 {
        assert!(
            svgs[2].contains(&format!(">{whole}</text>")),
            "whole counts on the axis"
        );
    }
    assert!(!svgs[2].contains(">1.25</text>"));
    assert!(
        svgs[2].contains("KeyNotFoundException, ThrottlingException; 6 in all"),
        "{}",
        svgs[2]
    );
    // The latest values in words, and every interval in a table, newest first.
    assert!(
        html.contains(
            "Last 60 minutes on node node-1: 86 requests, 6 refused. Latest interval with requests \
         (ending 00:53:20 UTC): 0.5 requests/s, p50 1.2 ms, p99 2 ms, refused: \
         KeyNotFoundException 3, ThrottlingException 2."
        ),
        "{html}"
    );
    let rows = elements(&html, "tr");
    assert_eq!(rows.len(), 4, "a header and three intervals");
    assert!(rows[1].contains(&format!("data-at=\"{END}\"")));
    assert!(
        rows[3].contains("<td>780 µs</td><td>4.75 ms</td><td>KeyNotFoundException 1</td>"),
        "{}",
        rows[3]
    );
    assert!(html.contains("<th scope=\"col\">"));
    // No script of any kind: no script element, no event handler attribute.
    let lower = html.to_lowercase();
    assert!(!lower.contains("<script") && !lower.contains("javascript:"));
    for attr in lower.split(['<', ' ']).filter(|w| w.contains('=')) {
        assert!(!attr.starts_with("on"), "event handler {attr}");
    }
}

#[test]
fn values_scale_to_a_round_maximum_and_times_to_the_window() {
    assert_eq!(nice_max(0.0), 1.0);
    assert_eq!(nice_max(0.3), 0.5);
    assert_eq!(nice_max(1.0), 1.0);
    assert_eq!(nice_max(3.1), 5.0);
    assert_eq!(nice_max(7.0), 10.0);
    assert_eq!(nice_max(120.0), 200.0);
    assert_eq!(nice_max(f64::NAN), 1.0);
    for (max, steps) in [
        (1.0, 5),
        (2.0, 4),
        (0.2, 4),
        (5.0, 5),
        (50.0, 5),
        (200.0, 4),
    ] {
        assert_eq!(grid_steps(max), steps, "{max}");
    }
    let s = Scale::new(END - 3600, 3600, 10.0);
    assert_eq!(s.x(END - 3600), LEFT);
    assert_eq!(s.x(END), W - RIGHT);
    assert_eq!(s.x(END + 100), W - RIGHT, "clamped");
    assert_eq!(s.y(0.0), H - BOTTOM);
    assert_eq!(s.y(10.0), TOP);
    assert_eq!(s.y(5.0), (H - BOTTOM + TOP) / 2.0);
    assert_eq!(s.y(50.0), TOP, "clamped");
    // The peak reaches the top grid line, labelled with the round maximum.
    let h = history("acme", vec![point(END, 31, Some(100), Some(900), &[])]);
    let html = store_charts(&h);
    let rps = elements(&html, "svg")
        .into_iter()
        .find(|s| s.contains("-rps\""))
        .expect("rps");
    assert!(rps.contains(">5</text>"), "3.1/s under a max of 5: {rps}");
    assert!(
        rps.contains(&format!(
            "L{:.1} {:.1}",
            W - RIGHT,
            TOP + (H - TOP - BOTTOM) * (1.0 - 3.1 / 5.0)
        )),
        "{rps}"
    );
    assert_eq!(num(3.10), "3.1");
    assert_eq!(num(2.0), "2");
    assert_eq!(latency(780), "780 µs");
    assert_eq!(latency(4_750), "4.75 ms");
    assert_eq!(latency(5_000_000), "5 s");
}

#[test]
fn gaps_drop_the_rate_to_zero_and_break_the_latency_lines() {
    let points = vec![
        point(END - 100, 10, Some(100), Some(200), &[]),
        point(END - 90, 10, None, None, &[]),
        point(END - 80, 10, Some(100), Some(200), &[]),
        point(END - 20, 10, Some(100), Some(200), &[]),
        point(END - 10, 10, Some(100), Some(200), &[]),
    ];
    let zeros = with_zeros(&points, 10);
    assert_eq!(zeros[0], (END - 110, 0.0));
    assert!(zeros.contains(&(END - 70, 0.0)) && zeros.contains(&(END - 30, 0.0)));
    let r = runs(&points, 10, |p| p.p50_us.map(|v| v as f64));
    let lens: Vec<usize> = r.iter().map(Vec::len).collect();
    assert_eq!(lens, vec![1, 1, 2], "a null and a gap break the line");
    let html = store_charts(&history("acme", points));
    assert!(html.contains("<circle"), "isolated values are dots");
}
