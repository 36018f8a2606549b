//! The admin API reference (`docs/admin-api.md`) is generated from the OpenAPI
//! document, itself derived from the handlers and the `keyhold::api` types
//! (`keyhold::admin::openapi_json`, served at `GET /api/v1/openapi.json`); this test
//! fails when the reference is stale.
//! Regenerate with `KEYHOLD_REGENERATE_DOCS=1 cargo test -p keyhold-tests --test api_docs`.

use std::{fmt::Write as _, path::PathBuf};

use serde_json::{Map, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn link(reference: &str) -> String {
    let name = reference.rsplit('/').next().unwrap_or(reference);
    format!("[`{name}`](#schema-{})", name.to_lowercase())
}

/// A schema in a few words: a link to a named schema, `array of ...`, `string or
/// null`, `one of ...`.
fn schema_text(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return link(r);
    }
    for (key, joiner) in [("oneOf", " or "), ("anyOf", " or "), ("allOf", " and ")] {
        if let Some(parts) = schema.get(key).and_then(Value::as_array) {
            return parts
                .iter()
                .map(schema_text)
                .collect::<Vec<_>>()
                .join(joiner);
        }
    }
    let one = |t: &str| match t {
        "array" => format!(
            "array of {}",
            schema_text(schema.get("items").unwrap_or(&Value::Null))
        ),
        "object" if schema.get("additionalProperties").is_some() => {
            format!("map of {}", schema_text(&schema["additionalProperties"]))
        }
        t => t.to_string(),
    };
    match schema.get("type") {
        Some(Value::String(t)) => one(t),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(one)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "object".to_string(),
    }
}

fn enum_note(schema: &Value) -> Option<String> {
    let values = schema
        .get("enum")
        .or_else(|| schema.pointer("/items/enum"))
        .and_then(Value::as_array)?;
    let values: Vec<String> = values
        .iter()
        .filter_map(Value::as_str)
        .map(|v| format!("`{v}`"))
        .collect();
    Some(format!("one of {}", values.join(", ")))
}

/// The field table of an object schema.
fn render_properties(out: &mut String, schema: &Value) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str("| field | type | required | notes |\n|---|---|---|---|\n");
    for (field, p) in props {
        let notes: Vec<String> = [
            Some(text(p, "description").replace('\n', " ")),
            enum_note(p),
        ]
        .into_iter()
        .flatten()
        .filter(|n| !n.is_empty())
        .collect();
        let _ = writeln!(
            out,
            "| `{field}` | {} | {} | {} |",
            schema_text(p),
            if required.contains(&field.as_str()) {
                "yes"
            } else {
                ""
            },
            notes.join("; ")
        );
    }
    out.push('\n');
}

/// One named schema: its description, then its fields (or its alternatives).
fn render_schema(out: &mut String, name: &str, schema: &Value) {
    let _ = writeln!(out, "### {name} {{#schema-{}}}\n", name.to_lowercase());
    let description = text(schema, "description");
    if !description.is_empty() {
        let _ = writeln!(out, "{}\n", description.replace('\n', " "));
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            match part.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    let _ = writeln!(out, "Every field of {}, and:\n", link(r));
                }
                None => render_properties(out, part),
            }
        }
    } else if let Some(parts) = schema.get("oneOf").and_then(Value::as_array) {
        out.push_str("One of:\n\n");
        for part in parts {
            let _ = writeln!(
                out,
                "- {}: {}",
                text(part, "description").replace('\n', " "),
                part.get("properties")
                    .and_then(Value::as_object)
                    .map(|p| {
                        p.iter()
                            .map(|(k, v)| match enum_note(v) {
                                Some(e) => format!("`{k}` ({e})"),
                                None => format!("`{k}`"),
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_else(|| schema_text(part))
            );
        }
        out.push('\n');
    } else if schema.get("properties").is_some() {
        render_properties(out, schema);
    } else {
        let note = enum_note(schema)
            .map(|e| format!(", {e}"))
            .unwrap_or_default();
        let _ = writeln!(out, "{}{note}\n", schema_text(schema));
    }
}

/// Renders the reference: one section per route, then the schemas.
fn render(doc: &Value) -> String {
    let mut out = String::new();
    let info = doc.get("info").unwrap_or(&Value::Null);
    let title = Some(text(info, "title"))
        .filter(|t| !t.is_empty())
        .unwrap_or("keyhold admin API");
    let _ = writeln!(out, "# {title} reference ({})\n", text(info, "version"));
    out.push_str(
        "Generated from the OpenAPI document that the server derives from its handlers and \
         the `keyhold::api` types (served at `GET /api/v1/openapi.json`) by \
         `tests/tests/api_docs.rs`; do not edit by hand. Every route except login and \
         this document needs `Authorization: Bearer kh_...` (from `POST /api/v1/login` \
         or `POST /api/v1/tokens`). Every refusal is `{\"error\": {\"code\", \"message\"}}`; \
         while the store cannot be reached (etcd down), requests that need it are refused \
         with 503 `store_unavailable`, and a change too large for one etcd transaction \
         with 422 `store_transaction_too_large`.\n\n",
    );
    out.push_str("| method | path | summary |\n|---|---|---|\n");
    let empty = Map::new();
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
        let _ = writeln!(
            out,
            "| {} | `{path}` | {} |",
            method.to_uppercase(),
            text(op, "summary")
        );
    }
    out.push('\n');
    for (path, method, op) in &routes {
        let _ = writeln!(out, "## {} `{path}`\n", method.to_uppercase());
        for key in ["summary", "description"] {
            let t = text(op, key);
            if !t.is_empty() {
                let _ = writeln!(out, "{t}\n");
            }
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
                let description = text(p, "description");
                let _ = writeln!(
                    out,
                    "- `{}` ({}{}){}",
                    text(p, "name"),
                    text(p, "in"),
                    if p.get("required").and_then(Value::as_bool) == Some(true) {
                        ", required"
                    } else {
                        ""
                    },
                    if description.is_empty() {
                        String::new()
                    } else {
                        format!(": {description}")
                    }
                );
            }
            out.push('\n');
        }
        if let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") {
            let _ = writeln!(out, "Request body: {}\n", schema_text(schema));
        }
        if let Some(responses) = op.get("responses").and_then(Value::as_object) {
            out.push_str("Responses:\n\n");
            for (code, r) in responses {
                let body = r
                    .pointer("/content/application~1json/schema")
                    .map(|s| format!(" ({})", schema_text(s)))
                    .unwrap_or_default();
                let _ = writeln!(out, "- `{code}`: {}{body}", text(r, "description"));
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
            render_schema(&mut out, name, schema);
        }
    }
    out
}

#[test]
fn admin_api_reference_is_generated_from_the_openapi_document() {
    let doc: Value =
        serde_json::from_str(keyhold::admin::openapi_json()).expect("the document parses");
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
    // Every route of the document is in the reference, and so is every named schema.
    let names = |pointer: &str| -> Vec<String> {
        doc.pointer(pointer)
            .and_then(Value::as_object)
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    for path in names("/paths") {
        assert!(rendered.contains(&format!("`{path}`")), "{path}");
    }
    for name in names("/components/schemas") {
        let anchor = format!("{{#schema-{}}}", name.to_lowercase());
        assert!(rendered.contains(&anchor), "{name}");
    }
}
