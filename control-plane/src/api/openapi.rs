//! The API's contract: `GET /api/openapi.json` (no session), an OpenAPI
//! 3.1 document generated from the handlers.
//!
//! Each handler carries `#[utoipa::path]` (path, parameters, body, the
//! statuses it answers itself); [`super::routes`] registers handlers with
//! `utoipa_axum::routes!`, so a route cannot be served without being
//! documented. [`Contract`] then adds what every handler shares, in one
//! place: 401 for an operation that needs a session, 400/413/415/422 for
//! one that takes a JSON body (the `ApiJson` rejections), 403/415 for a
//! change (the forgery checks), and 500 for any `/api` operation (a store
//! failure). Every error is [`ErrorBody`].
//!
//! `control-plane/tests/openapi.rs` snapshots the document (a contract
//! change is a diff in review) and checks that every route is in it;
//! `tests/e2e/contract.rs` runs schemathesis against a live stack.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::Modify;
use utoipa::openapi::Required;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{AdditionalProperties, Schema};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

use sdp_api::rules;
pub use sdp_api::{ErrorBody, ErrorDetail};

/// Security scheme names, as operations refer to them.
pub const BEARER: &str = "bearer";
pub const COOKIE: &str = "session_cookie";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "SDP control plane",
        description = "REST API of the Sandbox Deployment Platform. Every `/api` path but \
                       `POST /api/login` and `GET /api/openapi.json` needs a session: the \
                       `sdp_session` cookie that login sets, or `Authorization: Bearer <token>` \
                       with the token login returns. Errors are `{\"error\": {\"code\", \
                       \"message\"}}` with a 4xx/5xx status.",
        license(name = "MIT", identifier = "MIT"),
    ),
    security(("bearer" = []), ("session_cookie" = [])),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&Contract),
    tags(
        (name = "session", description = "Log in and out"),
        (name = "agents", description = "Agents and the repos they hold"),
        (name = "templates", description = "Templates and the environments they run with"),
        (name = "sandboxes", description = "Sandboxes and their routes"),
        (name = "deployments", description = "Deployments, their logs and live events"),
        (name = "test-runs", description = "Test runs against a sandbox (their logs and live events are the deployment ones of their id)"),
        (name = "hooks", description = "Push webhooks from Bitbucket (no session: signed with the webhook secret)"),
        (name = "audit", description = "The audit trail of every change (append-only)"),
        (name = "notifications", description = "Build statuses in Bitbucket and outgoing webhooks: what was sent, and the webhooks of templates and environments"),
        (name = "ops", description = "Health, readiness, metrics, this document (no session)"),
    )
)]
pub struct ApiDoc;

/// The security schemes and the responses every operation shares (see the
/// module doc). Runs on the base document, so it only adds the schemes;
/// [`finish`] adds the shared responses once the paths are in.
struct Contract;

impl Modify for Contract {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The `token` that `POST /api/login` returns."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::cookie::COOKIE,
                "Set by `POST /api/login` (HttpOnly, SameSite=Strict).",
            ))),
        );
    }
}

/// Links from a created resource to what can be done with it (OpenAPI
/// `links`; schemathesis follows them in its stateful phase): the
/// creating operation, its status, the parameter and where its value is
/// in the response, and the operations that take it.
const LINKS: &[(&str, &str, &str, &str, &[&str])] = &[
    (
        "/api/environments",
        "201",
        "name",
        "$response.body#/name",
        &[
            "show_environment",
            "update_environment",
            "delete_environment",
        ],
    ),
    (
        "/api/templates",
        "201",
        "name",
        "$response.body#/name",
        &["show_template", "update_template", "delete_template"],
    ),
    (
        "/api/sandboxes",
        "201",
        "name",
        "$response.body#/name",
        &[
            "show_sandbox",
            "update_sandbox",
            "delete_sandbox",
            "list_routes",
            "deploy_template",
            "create_deployment",
            "sandbox_staleness",
            "probe_routes",
            "wake_sandbox",
        ],
    ),
    (
        "/api/sandboxes/{name}/deployments",
        "202",
        "id",
        "$response.body#/id",
        &[
            "show_deployment",
            "cancel_deployment",
            "deployment_logs",
            "redeploy_deployment",
        ],
    ),
];

/// The path parameters named alike across the API, and what the server
/// takes for each: a sandbox, environment or template `name`
/// (`validate::resource_name`), a `repo` or `service` (`validate::repo`).
const PATH_PATTERNS: &[(&str, &str, usize)] = &[
    ("name", rules::RESOURCE_NAME, 63),
    ("repo", rules::REPO_NAME, 63),
    ("service", rules::REPO_NAME, 63),
    ("resource", rules::RESOURCE_NAME, 63),
];

/// Internally tagged enums whose variants take no other field (serde's
/// `deny_unknown_fields`): utoipa closes structs' objects, not these.
const CLOSED_ONE_OFS: &[&str] = &["ResourceSeed"];

fn close_one_ofs(openapi: &mut OpenApi) {
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    for name in CLOSED_ONE_OFS {
        if let Some(RefOr::T(Schema::OneOf(one_of))) = components.schemas.get_mut(*name) {
            for variant in &mut one_of.items {
                if let RefOr::T(Schema::Object(object)) = variant {
                    object.additional_properties =
                        Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
            }
        }
    }
}

/// States each named path parameter's pattern and length.
fn constrain_path_parameters(operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        if parameter.parameter_in != ParameterIn::Path {
            continue;
        }
        let Some((_, pattern, max)) = PATH_PATTERNS
            .iter()
            .find(|(name, _, _)| *name == parameter.name)
        else {
            continue;
        };
        if let Some(RefOr::T(Schema::Object(object))) = parameter.schema.as_mut() {
            object.pattern = Some((*pattern).to_owned());
            object.max_length = Some(*max);
        }
    }
}

/// Adds the shared responses to every operation of the routed document,
/// and the links.
pub fn finish(mut openapi: OpenApi) -> OpenApi {
    close_one_ofs(&mut openapi);
    for (path, status, parameter, value, targets) in LINKS {
        let Some(operation) = openapi
            .paths
            .paths
            .get_mut(*path)
            .and_then(|item| item.post.as_mut())
        else {
            continue;
        };
        let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) else {
            continue;
        };
        for target in *targets {
            // utoipa 5's `Link` writes its `operation_id` field as is, not
            // as `operationId`; the key goes in through the flattened
            // extensions instead.
            let operation_id = Extensions::from_iter([("operationId", *target)]);
            response.links.insert(
                (*target).to_owned(),
                RefOr::T(
                    LinkBuilder::new()
                        .parameter(*parameter, *value)
                        .extensions(Some(operation_id))
                        .build(),
                ),
            );
        }
    }
    for (path, item) in openapi.paths.paths.iter_mut() {
        let operations = [
            (&mut item.get, false),
            (&mut item.put, true),
            (&mut item.post, true),
            (&mut item.delete, true),
            (&mut item.patch, true),
        ];
        for (operation, changes) in operations {
            if let Some(operation) = operation {
                add_shared_responses(path, operation, changes);
                constrain_path_parameters(operation);
                // An empty body deploys the template as it is.
                if operation.operation_id.as_deref() == Some("deploy_template")
                    && let Some(body) = operation.request_body.as_mut()
                {
                    body.required = Some(Required::False);
                }
            }
        }
    }
    openapi
}

fn add_shared_responses(path: &str, operation: &mut Operation, changes: bool) {
    let anonymous = operation
        .security
        .as_ref()
        .is_some_and(|s| s.iter().all(|r| *r == Default::default()));
    // The forgery checks in front of every route (`api/forgery.rs`).
    if changes && path.starts_with("/api/") {
        if !anonymous {
            add_error(
                operation,
                403,
                "Sent with the session cookie from another origin than the dashboard's \
                 (`forbidden_origin`).",
            );
        }
        add_error(
            operation,
            415,
            "A body or `Content-Type` that is not `application/json` \
             (`unsupported_media_type`).",
        );
    }
    if path.starts_with("/api/") && !anonymous {
        add_error(
            operation,
            401,
            "No session, or it expired (`unauthorized`); a deploy also needs the \
             credential of a login since the control plane started (`credential_expired`).",
        );
    }
    let takes_json = operation
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.contains_key("application/json"));
    if takes_json {
        add_error(
            operation,
            400,
            "The request is malformed: bad JSON or an invalid value (`bad_request`).",
        );
        add_error(
            operation,
            413,
            "The body is over 64 KiB (`payload_too_large`).",
        );
        add_error(
            operation,
            415,
            "The body is not `Content-Type: application/json` (`unsupported_media_type`).",
        );
        add_error(
            operation,
            422,
            "The JSON does not fit the body's schema: a missing, unknown or mistyped field \
             (`bad_request`).",
        );
    }
    if path.starts_with("/api/") {
        add_error(
            operation,
            500,
            "An internal failure (`internal`); the control plane's log has the details.",
        );
    }
}

/// Adds an error response for `status`, unless the handler documents it.
fn add_error(operation: &mut Operation, status: u16, description: &str) {
    let status = status.to_string();
    if operation.responses.responses.contains_key(&status) {
        return;
    }
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    operation
        .responses
        .responses
        .insert(status, response.into());
}

/// The document as served, rendered once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    super::document()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned())
});

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "ops",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API",
               content_type = "application/json", body = Object)),
)]
pub async fn document_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}
