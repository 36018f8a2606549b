//! Which CLI command drives each admin API route: `(method, path template, command
//! words)`, e.g. `("PATCH", "/api/v1/connections/hsm/{name}", "connection hsm update")`.
//!
//! Kept in step with the OpenAPI document (`GET /api/v1/openapi.json`) by
//! tests/tests/cli_routes.rs: a route without an entry, an entry without a route, or
//! words whose `keyhold <words> --help` fails make it fail. This file is plain data
//! (no `use`), so that test includes it as it is.

/// `(method, path template, command words)` for every admin API route.
#[rustfmt::skip]
pub const ROUTES: &[(&str, &str, &str)] = &[
    // Session and the API itself.
    ("POST", "/api/v1/login", "login"),
    ("POST", "/api/v1/logout", "logout"),
    ("GET", "/api/v1/openapi.json", "openapi"),
    // API tokens and users.
    ("GET", "/api/v1/tokens", "token list"),
    ("POST", "/api/v1/tokens", "token create"),
    ("DELETE", "/api/v1/tokens/{id}", "token revoke"),
    ("GET", "/api/v1/users", "user list"),
    ("POST", "/api/v1/users", "user create"),
    ("GET", "/api/v1/users/{name}", "user get"),
    ("DELETE", "/api/v1/users/{name}", "user delete"),
    ("PUT", "/api/v1/users/{name}/password", "user passwd"),
    // AWS accounts.
    ("GET", "/api/v1/accounts", "account list"),
    ("POST", "/api/v1/accounts", "account create"),
    ("GET", "/api/v1/accounts/{id}", "account get"),
    ("PUT", "/api/v1/accounts/{id}", "account update"),
    ("DELETE", "/api/v1/accounts/{id}", "account delete"),
    ("POST", "/api/v1/accounts/{id}/refresh", "account refresh"),
    // Connections.
    ("GET", "/api/v1/connections/aws", "connection aws list"),
    ("POST", "/api/v1/connections/aws", "connection aws create"),
    ("GET", "/api/v1/connections/aws/{name}", "connection aws get"),
    ("DELETE", "/api/v1/connections/aws/{name}", "connection aws delete"),
    ("POST", "/api/v1/connections/aws/{name}/test", "connection aws test"),
    ("GET", "/api/v1/connections/hsm", "connection hsm list"),
    ("POST", "/api/v1/connections/hsm", "connection hsm create"),
    ("GET", "/api/v1/connections/hsm/{name}", "connection hsm get"),
    ("PATCH", "/api/v1/connections/hsm/{name}", "connection hsm update"),
    ("DELETE", "/api/v1/connections/hsm/{name}", "connection hsm delete"),
    ("POST", "/api/v1/connections/hsm/{name}/test", "connection hsm test"),
    // Key sources and their keys.
    ("GET", "/api/v1/sources", "source list"),
    ("POST", "/api/v1/sources", "source create"),
    ("GET", "/api/v1/sources/{name}", "source get"),
    ("DELETE", "/api/v1/sources/{name}", "source delete"),
    ("POST", "/api/v1/sources/{name}/reopen", "source reopen"),
    ("GET", "/api/v1/sources/{name}/keys", "source-key list"),
    ("POST", "/api/v1/sources/{name}/keys", "source-key create"),
    ("GET", "/api/v1/sources/{name}/keys/{key}", "source-key get"),
    // Key stores.
    ("GET", "/api/v1/stores", "keystore list"),
    ("POST", "/api/v1/stores", "keystore create"),
    ("GET", "/api/v1/stores/{id}", "keystore get"),
    ("PATCH", "/api/v1/stores/{id}", "keystore update"),
    ("DELETE", "/api/v1/stores/{id}", "keystore delete"),
    ("POST", "/api/v1/stores/{id}/block", "keystore block"),
    ("POST", "/api/v1/stores/{id}/unblock", "keystore unblock"),
    ("POST", "/api/v1/stores/{id}/link", "keystore link"),
    ("POST", "/api/v1/stores/{id}/link/review", "keystore link --review"),
    ("POST", "/api/v1/stores/{id}/connect", "keystore connect"),
    ("POST", "/api/v1/stores/{id}/disconnect", "keystore disconnect"),
    ("GET", "/api/v1/stores/{id}/schedule", "keystore schedule show"),
    ("PUT", "/api/v1/stores/{id}/schedule", "keystore schedule assign"),
    ("DELETE", "/api/v1/stores/{id}/schedule", "keystore schedule unassign"),
    ("GET", "/api/v1/stores/{id}/metrics", "keystore metrics"),
    // Credentials of a key store.
    ("GET", "/api/v1/stores/{id}/credentials", "credential list"),
    ("POST", "/api/v1/stores/{id}/credentials", "credential add"),
    ("DELETE", "/api/v1/stores/{id}/credentials/{akid}", "credential delete"),
    // HYOK keys.
    ("GET", "/api/v1/stores/{id}/keys", "key list"),
    ("POST", "/api/v1/stores/{id}/keys", "key create"),
    ("GET", "/api/v1/stores/{id}/keys/{ext}", "key get"),
    ("DELETE", "/api/v1/stores/{id}/keys/{ext}", "key delete"),
    ("POST", "/api/v1/stores/{id}/keys/{ext}/block", "key block"),
    ("POST", "/api/v1/stores/{id}/keys/{ext}/unblock", "key unblock"),
    ("POST", "/api/v1/stores/{id}/keys/{ext}/link", "key link"),
    // Rotation schedules, jobs, nodes.
    ("GET", "/api/v1/schedules", "schedule list"),
    ("POST", "/api/v1/schedules", "schedule create"),
    ("GET", "/api/v1/schedules/{name}", "schedule show"),
    ("DELETE", "/api/v1/schedules/{name}", "schedule delete"),
    ("GET", "/api/v1/jobs", "job list"),
    ("GET", "/api/v1/jobs/{id}", "job show"),
    ("POST", "/api/v1/jobs/{id}/cancel", "job cancel"),
    ("GET", "/api/v1/nodes", "node list"),
    // The audit log.
    ("GET", "/api/v1/audit", "audit list"),
    ("GET", "/api/v1/audit/status", "audit status"),
];
