//! The admin API reference (`docs/admin-api.md`) is generated from the OpenAPI
//! document (`core/openapi.json`); this test fails when it is stale.
//! Regenerate with `KEYHOLD_REGENERATE_DOCS=1 cargo test -p keyhold-tests --test api_docs`.

use std::{fmt::Write as _, path::PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn schema_text(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("[`{name}`](#schema-{})", name.to_lowercase());
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("array") => format!(
            "array of {}",
            schema_text(schema.get("items").unwrap_or(&Value::Null))
        ),
        Some(t) => t.to_string(),
        None => "object".to_string(),
    }
}

fn body_schema(op: &Value) -> Option<&Value> {
    op.pointer("/requestBody/content/application~1json/schema")
}

/// Renders the reference: one section per route, then the schemas.
fn render(doc: &Value) -> String {
    let mut out = String::new();
    let title = doc
        .pointer("/info/title")
        .and_then(Value::as_str)
        .unwrap_or("keyhold admin API");
    let version = doc
        .pointer("/info/version")
        .and_then(Value::as_str)
        .unwrap_or("");
    let _ = writeln!(out, "# {title} reference ({version})\n");
    out.push_str(
        "Generated from `core/openapi.json` (served at `GET /api/v1/openapi.json`) by \
         `tests/tests/api_docs.rs`; do not edit by hand. Every route except login and \
         this document needs `Authorization: Bearer kh_...` (from `POST /api/v1/login` \
         or `POST /api/v1/tokens`). Every refusal is `{\"error\": {\"code\", \"message\"}}`.\n\n",
    );
    out.push_str("| method | path | summary |\n|---|---|---|\n");
    let empty = serde_json::Map::new();
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut routes: Vec<(&String, &String, &Value)> = Vec::new();
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap_or(&empty) {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                routes.push((path, method, op));
            }
        }
    }
    for (path, method, op) in &routes {
        let summary = op.get("summary").and_then(Value::as_str).unwrap_or("");
        let _ = writeln!(out, "| {} | `{path}` | {summary} |", method.to_uppercase());
    }
    out.push('\n');
    for (path, method, op) in &routes {
        let _ = writeln!(out, "## {} `{path}`\n", method.to_uppercase());
        if let Some(s) = op.get("summary").and_then(Value::as_str) {
            let _ = writeln!(out, "{s}\n");
        }
        if let Some(d) = op.get("description").and_then(Value::as_str) {
            let _ = writeln!(out, "{d}\n");
        }
        if op
            .get("security")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            out.push_str("No authentication.\n\n");
        }
        if let Some(params) = op.get("parameters").and_then(Value::as_array) {
            out.push_str("Parameters:\n\n");
            for p in params {
                let _ = writeln!(
                    out,
                    "- `{}` ({}{}){}",
                    p.get("name").and_then(Value::as_str).unwrap_or("?"),
                    p.get("in").and_then(Value::as_str).unwrap_or("?"),
                    if p.get("required").and_then(Value::as_bool) == Some(true) {
                        ", required"
                    } else {
                        ""
                    },
                    p.get("description")
                        .and_then(Value::as_str)
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                );
            }
            out.push('\n');
        }
        if let Some(schema) = body_schema(op) {
            let _ = writeln!(out, "Request body: {}\n", schema_text(schema));
        }
        if let Some(responses) = op.get("responses").and_then(Value::as_object) {
            out.push_str("Responses:\n\n");
            let mut codes: Vec<_> = responses.iter().collect();
            codes.sort_by(|a, b| a.0.cmp(b.0));
            for (code, r) in codes {
                let _ = writeln!(
                    out,
                    "- `{code}`: {}",
                    r.get("description").and_then(Value::as_str).unwrap_or("")
                );
            }
            out.push('\n');
        }
    }
    out.push_str("## Schemas\n\n");
    if let Some(schemas) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        for (name, schema) in schemas {
            let _ = writeln!(out, "### {name} {{#schema-{}}}\n", name.to_lowercase());
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                out.push_str("| field | type | required | notes |\n|---|---|---|---|\n");
                for (field, p) in props {
                    let mut notes = p
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    if let Some(e) = p
                        .get("enum")
                        .or_else(|| p.pointer("/items/enum"))
                        .and_then(Value::as_array)
                    {
                        let values: Vec<String> = e
                            .iter()
                            .filter_map(Value::as_str)
                            .map(|v| format!("`{v}`"))
                            .collect();
                        if !notes.is_empty() {
                            notes.push_str("; ");
                        }
                        notes.push_str(&format!("one of {}", values.join(", ")));
                    }
                    let _ = writeln!(
                        out,
                        "| `{field}` | {} | {} | {notes} |",
                        schema_text(p),
                        if required.contains(&field.as_str()) {
                            "yes"
                        } else {
                            ""
                        }
                    );
                }
                out.push('\n');
            } else {
                let _ = writeln!(out, "{}\n", schema_text(schema));
            }
        }
    }
    out
}

#[test]
fn admin_api_reference_is_generated_from_the_openapi_document() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("core/openapi.json")).expect("core/openapi.json"),
    )
    .expect("openapi.json parses");
    assert!(
        doc.get("openapi")
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with("3.")),
        "an OpenAPI 3 document"
    );
    let rendered = render(&doc);
    let path = root().join("docs/admin-api.md");
    if std::env::var_os("KEYHOLD_REGENERATE_DOCS").is_some() {
        std::fs::create_dir_all(root().join("docs")).expect("docs dir");
        std::fs::write(&path, &rendered).expect("write docs/admin-api.md");
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == rendered,
        "docs/admin-api.md is stale: run KEYHOLD_REGENERATE_DOCS=1 cargo test -p keyhold-tests --test api_docs"
    );
    // Every route of the document is in the reference.
    for path in doc
        .get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(p, _)| p)
    {
        assert!(rendered.contains(&format!("`{path}`")), "{path}");
    }
}
