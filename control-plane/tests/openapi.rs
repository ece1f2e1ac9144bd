//! The API contract (`GET /api/openapi.json`) as a snapshot: a change to a
//! path, a body, a status or an error shape is a visible diff in review
//! (`cargo insta review`, or `INSTA_UPDATE=always` and read the diff).
//! Also: every route is documented. The router is built only from
//! `utoipa_axum::routes!`, which takes annotated handlers; this checks
//! nothing under `src/api/` routes around it, and that the paths of the
//! design (§6) are all there.

use std::collections::BTreeSet;

use serde_json::Value;

fn document() -> Value {
    serde_json::to_value(sdp_control_plane::api::document()).expect("document as JSON")
}

/// `(METHOD, path)` of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            if item.get(method).is_some() {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

#[test]
fn openapi_document_snapshot() {
    insta::assert_json_snapshot!("openapi", document());
}

#[test]
fn every_route_is_documented() {
    // Routes are added only through `routes!` (annotated handlers): no
    // plain axum routing anywhere in the HTTP layer.
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/api"
    ))];
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a directory of src/api") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for path in files {
        let text = std::fs::read_to_string(&path).expect("source");
        let text = text.replace("OpenApiRouter::new()", "");
        for needle in [
            ".route(",
            ".route_service(",
            ".nest_service(",
            "Router::new()",
            "axum::routing::",
        ] {
            assert!(
                !text.contains(needle),
                "{} uses `{needle}`: add routes with `routes!(handler)` and a \
                 #[utoipa::path] on the handler, so the OpenAPI document covers it",
                path.display()
            );
        }
    }

    let doc = document();
    let documented = operations(&doc);
    // The binding paths (README's REST list) as served today.
    let design = [
        ("POST", "/api/login"),
        ("POST", "/api/logout"),
        ("GET", "/api/me"),
        ("GET", "/api/agents"),
        ("GET", "/api/repos"),
        ("GET", "/api/repos/{repo}/branches"),
        ("GET", "/api/environments"),
        ("POST", "/api/environments"),
        ("GET", "/api/environments/{name}"),
        ("PUT", "/api/environments/{name}"),
        ("DELETE", "/api/environments/{name}"),
        ("GET", "/api/templates"),
        ("POST", "/api/templates"),
        ("GET", "/api/templates/{name}"),
        ("PUT", "/api/templates/{name}"),
        ("DELETE", "/api/templates/{name}"),
        ("GET", "/api/sandboxes"),
        ("POST", "/api/sandboxes"),
        ("GET", "/api/sandboxes/{name}"),
        ("PATCH", "/api/sandboxes/{name}"),
        ("DELETE", "/api/sandboxes/{name}"),
        ("POST", "/api/sandboxes/{name}/deployments"),
        ("POST", "/api/sandboxes/{name}/deploy"),
        ("GET", "/api/sandboxes/{name}/routes"),
        ("PUT", "/api/sandboxes/{name}/routes/{service}"),
        ("DELETE", "/api/sandboxes/{name}/routes/{service}"),
        ("GET", "/api/sandboxes/{name}/staleness"),
        ("POST", "/api/sandboxes/{name}/probe"),
        ("GET", "/api/deployments"),
        ("GET", "/api/deployments/{id}"),
        ("POST", "/api/deployments/{id}/cancel"),
        ("GET", "/api/deployments/{id}/logs"),
        ("GET", "/api/openapi.json"),
        ("POST", "/api/hooks/bitbucket"),
        ("PUT", "/api/sandboxes/{name}/services/{repo}"),
        ("GET", "/ws/deployments/{id}"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
    ];
    for (method, path) in design {
        assert!(
            documented.contains(&(method.to_owned(), path.to_owned())),
            "{method} {path} is not in the OpenAPI document"
        );
    }

    // Every operation states its statuses, and every error is the shared
    // shape; operation ids are unique (clients name methods after them).
    let mut ids = BTreeSet::new();
    for (method, path) in &documented {
        let id = doc["paths"][path][method.to_lowercase()]["operationId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            !id.is_empty() && ids.insert(id.clone()),
            "{method} {path}: operationId {id:?} is missing or not unique"
        );
        let operation = &doc["paths"][path][method.to_lowercase()];
        let responses = operation["responses"].as_object().expect("responses");
        assert!(!responses.is_empty(), "{method} {path}: no responses");
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                if path == "/readyz" {
                    continue;
                }
                assert_eq!(
                    schema, "#/components/schemas/ErrorBody",
                    "{method} {path} {status}: errors are {{\"error\": {{code, message}}}}"
                );
            }
        }
        let anonymous = ["/api/login", "/api/openapi.json"].contains(&path.as_str())
            || !path.starts_with("/api/");
        if !anonymous {
            assert!(
                responses.contains_key("401"),
                "{method} {path}: needs a session, so it answers 401"
            );
        }
    }
}
