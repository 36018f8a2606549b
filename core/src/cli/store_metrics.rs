//! `keyhold keystore metrics <store>`: a key store's XKS traffic over the last hour on
//! the answering node (requests per second, p50/p99 latency, refusals by XKS error
//! name), one line per sampling interval with requests.

use serde_json::Value;

use super::{
    Result,
    context::Ctx,
    output::{self, out, print_json},
    stores,
};

/// Prints store `store`'s traffic history (the API's JSON with `--output json`).
pub async fn run(ctx: &Ctx, store: &str) -> Result<()> {
    let path = format!("{}/metrics", stores::path(ctx, store).await?);
    let v = ctx.get(&path).await?;
    if ctx.json() {
        print_json(&v);
    } else {
        out!("{}", render(&v));
    }
    Ok(())
}

/// A latency in microseconds, readably: `780µs`, `1.75ms`, `1.20s`; `-` for none.
fn latency(v: &Value) -> String {
    match v.as_u64() {
        None => "-".into(),
        Some(us) if us < 1_000 => format!("{us}µs"),
        Some(us) if us < 1_000_000 => format!("{:.2}ms", us as f64 / 1e3),
        Some(us) => format!("{:.2}s", us as f64 / 1e6),
    }
}

/// The history as a heading and a table.
pub fn render(v: &Value) -> String {
    let when = |field: &str, t: &Value| output::cell(&format!("{field}_at"), t);
    let mut text = format!(
        "Key store {} ({}) on node {}: one line per {} s with requests, the last {} s (sampled {})\n",
        output::cell("name", &v["name"]),
        output::cell("store", &v["store"]),
        output::cell("node", &v["node"]),
        output::cell("interval_seconds", &v["interval_seconds"]),
        output::cell("window_seconds", &v["window_seconds"]),
        match &v["sampled_at"] {
            Value::Null => "not yet".to_string(),
            t => when("sampled", t),
        },
    );
    let points = v["points"].as_array().map_or(&[][..], Vec::as_slice);
    if points.is_empty() {
        text += "No XKS requests on this node in that time.\n";
        return text;
    }
    let rows: Vec<Vec<String>> = points
        .iter()
        .map(|p| {
            vec![
                when("point", &p["at"]),
                output::cell("requests", &p["requests"]),
                output::cell("requests_per_second", &p["requests_per_second"]),
                latency(&p["p50_us"]),
                latency(&p["p99_us"]),
                output::cell("errors", &p["errors"]),
            ]
        })
        .collect();
    text + &output::table(&["at", "requests", "req/s", "p50", "p99", "errors"], &rows)
}

#[cfg(test)]
mod tests;
