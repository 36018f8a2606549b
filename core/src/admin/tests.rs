//! Unit tests of the generated OpenAPI document: every route documents its
//! parameters, responses and refusals.

use std::collections::BTreeSet;

use serde_json::Value;

use super::*;

fn document() -> Value {
    serde_json::from_str(openapi_json()).expect("the document is JSON")
}

/// (method, path, operation) of every documented route.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            out.push((method.to_uppercase(), path.clone(), op.clone()));
        }
    }
    out
}

#[test]
fn the_document_is_openapi_3_with_the_bearer_scheme() {
    let doc = document();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    assert_eq!(doc["info"]["title"], "keyhold admin API");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"][0]["bearer"], serde_json::json!([]));
    assert!(doc["components"]["schemas"]["Error"].is_object());
}

#[test]
fn every_route_documents_its_parameters_and_responses() {
    let doc = document();
    let ops = operations(&doc);
    assert_eq!(ops.len(), 71, "the admin API's 71 routes");
    let mut ids = BTreeSet::new();
    for (method, path, op) in &ops {
        assert!(
            ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()),
            "{method} {path}"
        );
        let id = op["operationId"].as_str().expect("operationId");
        assert!(ids.insert(id.to_string()), "{id} is unique");
        assert!(op["summary"].as_str().is_some(), "{method} {path} summary");
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        let template: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(declared, template, "{method} {path} path parameters");
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|c| c.starts_with('2')),
            "{method} {path} documents its success"
        );
        for (code, r) in responses {
            if code.starts_with('4') || code.starts_with('5') {
                assert_eq!(
                    r["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{method} {path} {code} is an API error"
                );
            }
        }
        let open = op["security"].as_array().is_some_and(Vec::is_empty);
        assert_eq!(
            responses.contains_key("401"),
            !open || path == "/api/v1/login",
            "{method} {path}: authenticated routes document 401"
        );
    }
    for open in ["/api/v1/login", "/api/v1/openapi.json"] {
        assert!(
            ops.iter()
                .any(|(_, p, op)| p == open && op["security"] == serde_json::json!([])),
            "{open} needs no token"
        );
    }
}

#[test]
fn operation_ids_name_the_handlers() {
    assert_eq!(
        openapi::operation_id(&Method::POST, "/api/v1/users"),
        Some("create_user")
    );
    assert_eq!(
        openapi::operation_id(&Method::DELETE, "/api/v1/connections/hsm/{name}"),
        Some("delete_hsm_connection")
    );
    assert_eq!(openapi::operation_id(&Method::PUT, "/api/v1/users"), None);
}
