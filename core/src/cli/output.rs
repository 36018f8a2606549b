//! What the CLI prints: aligned tables for lists, `field  value` lines for objects, or
//! the API's JSON; stdout writes that ignore a closed pipe (e.g. `| head`).

use serde_json::Value;

/// `write!` to stdout, ignoring errors (a closed pipe is not a panic).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($t)*);
    }};
}
/// `writeln!` to stdout, ignoring errors (a closed pipe is not a panic).
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}
pub(crate) use {out, outln};

/// Prints JSON, pretty.
pub fn print_json(v: &Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// One cell: strings as they are, `-` for null, lists joined with commas, Unix times
/// (`*_at` fields) as UTC dates.
pub fn cell(field: &str, v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Number(n) if field.ends_with("_at") => n
            .as_i64()
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| n.to_string()),
        Value::Number(n) => n.to_string(),
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Array(items) => items
            .iter()
            .map(|i| cell(field, i))
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(o) if field == "location" => match o.get("type").and_then(Value::as_str) {
            Some("unset") | None => "unset".into(),
            Some(t) => format!(
                "{t} {}",
                o.get("endpoint").and_then(Value::as_str).unwrap_or("")
            ),
        },
        Value::Object(o) if o.is_empty() => "-".into(),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}={}", cell(k, v)))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Renders rows under headers, columns aligned (two spaces apart).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out += c;
            } else {
                out += &format!("{c:<w$}  ", w = widths[i]);
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        out += &line(row.clone());
    }
    out
}

/// A JSON array of objects as a table of `columns` (field names).
pub fn list(items: &Value, columns: &[&str]) -> String {
    let rows: Vec<Vec<String>> = items
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|item| columns.iter().map(|c| cell(c, &item[*c])).collect())
        .collect();
    if rows.is_empty() {
        return "(none)\n".into();
    }
    table(columns, &rows)
}

/// A JSON object as aligned `field  value` lines (every field, in the API's order,
/// `skip` left out).
pub fn object(obj: &Value, skip: &[&str]) -> String {
    let Some(map) = obj.as_object() else {
        return format!("{}\n", cell("", obj));
    };
    let width = map.keys().map(|k| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in map {
        if skip.contains(&k.as_str()) {
            continue;
        }
        out += &format!("{k:<width$}  {}\n", cell(k, v));
    }
    out
}

#[cfg(test)]
mod tests;
