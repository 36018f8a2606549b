use std::collections::BTreeSet;

use super::*;

#[test]
fn the_router_serves_exactly_the_route_table() {
    let served: BTreeSet<_> = served_routes().into_iter().collect();
    let table: BTreeSet<_> = ROUTES.iter().copied().collect();
    assert_eq!(table.len(), ROUTES.len(), "no duplicate routes in ROUTES");
    assert_eq!(served, table);
}

#[test]
fn the_openapi_document_lists_exactly_the_route_table() {
    let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "an OpenAPI 3 document"
    );
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                assert!(
                    op["responses"].is_object(),
                    "{method} {path} documents its responses"
                );
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let table: BTreeSet<_> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = table.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "routes missing from openapi.json: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "openapi.json documents unserved routes: {extra:?}"
    );
}
