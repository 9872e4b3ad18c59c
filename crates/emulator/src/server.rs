//! The HTTP surface: the identity platform (token endpoint), the Bot Framework OpenID
//! metadata and keys, Graph's calls API under `/v1.0` and `/beta`, and the
//! emulator's control endpoints under `/_emulator`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, Form, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use signaling::{CallKind, CallState, Permission};
use tokio::sync::mpsc;

use crate::call::{self, Assigned, CallContext};
use crate::config::RegisteredApp;
use crate::driver::{CALLBACK_ISSUER, spawn_call};
use crate::faults::{Fault, take_matching};
use crate::media::MediaStatus;
use crate::state::{CallRecord, CallSummary, Command, Shared, Termination, bump, lock};
use crate::time::{now_rfc3339, unix_now};
use crate::{actions, incoming};

/// Audience of Graph access tokens.
pub const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
/// The scope a client-credentials token request must ask for.
pub const GRAPH_DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";
/// Graph's application id (the scope may also name it).
const GRAPH_APP_ID_SCOPE: &str = "00000003-0000-0000-c000-000000000000/.default";

/// `request-id` / `client-request-id` of the request being served.
#[derive(Debug, Clone)]
pub(crate) struct RequestIds {
    request_id: String,
    client_request_id: String,
}

impl RequestIds {
    /// Fresh ids, for a response made where the framing middleware's are missing.
    fn new() -> Self {
        RequestIds {
            request_id: uuid::Uuid::new_v4().to_string(),
            client_request_id: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// The Graph API version a route serves (`v1.0` or `beta`).
#[derive(Debug, Clone, Copy)]
struct ApiVersion(&'static str);

/// Claims of the access tokens the emulator issues (Entra v1 app-only shape).
#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    aud: String,
    iss: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    appid: String,
    appidacr: String,
    idtyp: String,
    oid: String,
    roles: Vec<String>,
    sub: String,
    tid: String,
    ver: String,
}

pub(crate) type AppState = Arc<Shared>;

/// Longest detail quoted from a request in an error message (serde errors can quote
/// values of any length).
pub(crate) const MAX_DETAIL_CHARS: usize = 240;

/// The whole router.
pub(crate) fn router(shared: AppState) -> Router {
    let graph = |version: &'static str| {
        Router::new()
            .route("/communications/calls", post(create_call::<false>))
            .route("/app/calls", post(create_call::<true>))
            .route(
                "/communications/calls/{id}",
                get(get_call).delete(delete_call),
            )
            .route("/app/calls/{id}", get(get_call).delete(delete_call))
            .route("/communications/calls/{id}/keepAlive", post(keep_alive))
            .route("/app/calls/{id}/keepAlive", post(keep_alive))
            .merge(actions::routes())
            .merge(crate::participants::routes())
            .layer(Extension(ApiVersion(version)))
    };
    let control = Router::new()
        .route(
            "/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/calls", get(list_calls))
        .route("/calls/incoming", post(incoming::ring_request))
        .route("/calls/{id}/hangup", post(hang_up))
        .route(
            "/calls/{id}/participants",
            get(crate::participants::roster_request),
        )
        .route(
            "/calls/{id}/speakers",
            post(crate::participants::speakers_request),
        )
        .route(
            "/calls/{id}/tones",
            post(crate::participants::tones_request),
        )
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            require_control_token,
        ));
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route(
            "/v1/.well-known/openidconfiguration",
            get(openid_configuration),
        )
        .route("/v1/.well-known/keys", get(keys))
        .nest("/v1.0", graph("v1.0"))
        .nest("/beta", graph("beta"))
        .nest("/_emulator", control)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(shared.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(shared.clone(), frame))
        .with_state(shared)
}

/// Every request: count it, assign ids, serve injected faults, set the id headers.
async fn frame(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    bump(&s.counters.requests);
    let client_request_id = req
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let ids = RequestIds {
        request_id: uuid::Uuid::new_v4().to_string(),
        client_request_id,
    };
    let path = req.uri().path().to_owned();
    let fault = if path.starts_with("/_emulator/") {
        None
    } else {
        take_matching(&mut lock(&s.faults), req.method().as_str(), &path)
    };
    let mut resp = match fault {
        Some(f) => {
            bump(&s.counters.faults_served);
            fault_response(&f, &ids)
        }
        None => {
            req.extensions_mut().insert(ids.clone());
            next.run(req).await
        }
    };
    let headers = resp.headers_mut();
    for (name, value) in [
        ("request-id", &ids.request_id),
        ("client-request-id", &ids.client_request_id),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    resp
}

/// Graph's error body: `{"error":{"code","message","innerError":{...}}}`.
pub(crate) fn graph_error(
    status: StatusCode,
    code: &str,
    message: &str,
    ids: &RequestIds,
) -> Response {
    graph_error_with(status, code, message, ids, None)
}

/// Graph's `400` for a body with problems: the messages joined, and one detail per
/// problem (`message`, `target` = the property's path).
pub(crate) fn invalid_request(
    problems: impl Iterator<Item = (String, String)>,
    ids: &RequestIds,
) -> Response {
    let (messages, details): (Vec<String>, Vec<Value>) = problems
        .map(|(message, path)| {
            let detail = json!({"code": "InvalidRequest", "message": message, "target": path});
            (message, detail)
        })
        .unzip();
    graph_error_with(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &messages.join(" "),
        ids,
        Some(Value::Array(details)),
    )
}

/// Graph's `403` naming the permissions `granted` lacks to `what`.
pub(crate) fn not_authorized(
    what: &str,
    required: &signaling::RequiredPermissions,
    granted: &[Permission],
    ids: &RequestIds,
) -> Response {
    let missing = required
        .missing(granted)
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    graph_error(
        StatusCode::FORBIDDEN,
        "Forbidden",
        &format!("Application is not authorized to {what}; it needs {missing}."),
        ids,
    )
}

pub(crate) fn graph_error_with(
    status: StatusCode,
    code: &str,
    message: &str,
    ids: &RequestIds,
    details: Option<Value>,
) -> Response {
    let mut error = Map::new();
    error.insert("code".into(), code.into());
    error.insert("message".into(), message.into());
    if let Some(d) = details {
        error.insert("details".into(), d);
    }
    error.insert(
        "innerError".into(),
        json!({
            "request-id": ids.request_id,
            "client-request-id": ids.client_request_id,
            "date": now_rfc3339(),
        }),
    );
    (status, Json(json!({ "error": Value::Object(error) }))).into_response()
}

fn fault_response(f: &Fault, ids: &RequestIds) -> Response {
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let message = format!(
        "Injected fault: {} {}; retry after {} s.",
        f.status,
        status.canonical_reason().unwrap_or(""),
        f.retry_after_seconds
    );
    let mut resp = graph_error(status, f.error_code(), &message, ids);
    if let Ok(v) = HeaderValue::from_str(&f.retry_after_seconds.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

// ---------------------------------------------------------------------------
// Identity platform

/// An Entra ID (AAD) OAuth error response.
fn oauth_error(
    status: StatusCode,
    error: &str,
    aadsts: u32,
    description: &str,
    ids: &RequestIds,
) -> Response {
    let now = now_rfc3339();
    let timestamp = now.replace('T', " ");
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{aadsts}: {description} Trace ID: {} Correlation ID: {} Timestamp: {timestamp}",
            ids.request_id, ids.client_request_id
        ),
        "error_codes": [aadsts],
        "timestamp": timestamp,
        "trace_id": ids.request_id,
        "correlation_id": ids.client_request_id,
    });
    (status, Json(body)).into_response()
}

async fn token(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    Extension(ids): Extension<RequestIds>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let refuse = |status, error, code, description: &str| {
        bump(&s.counters.tokens_rejected);
        oauth_error(status, error, code, description, &ids)
    };
    let Ok(Form(form)) = form else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must be application/x-www-form-urlencoded with grant_type, client_id, client_secret and scope.",
        );
    };
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if field("grant_type") != "client_credentials" {
        return refuse(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!(
                "The app requested an unsupported grant type '{}'; use client_credentials.",
                field("grant_type")
            ),
        );
    }
    let client_id = field("client_id");
    let Some(app) = s.config.apps.iter().find(|a| a.client_id == client_id) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory."),
        );
    };
    if !tenant.eq_ignore_ascii_case(&app.tenant_id) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found, or application '{client_id}' is not registered in it."
            ),
        );
    }
    if form.contains_key("client_assertion") || form.contains_key("client_assertion_type") {
        if field("client_assertion_type") != crate::assertion::ASSERTION_TYPE {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                50027,
                &format!(
                    "client_assertion_type must be '{}'.",
                    crate::assertion::ASSERTION_TYPE
                ),
            );
        }
        let token_url = format!("{}/{tenant}/oauth2/v2.0/token", s.base_url);
        if let Err((code, description)) = crate::assertion::verify(
            app,
            field("client_assertion"),
            &token_url,
            unix_now(),
            &s.assertion_jtis,
        ) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                code,
                &description,
            );
        }
    } else if field("client_secret") != app.client_secret {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            &format!("Invalid client secret provided for app '{client_id}'."),
        );
    }
    let scope = field("scope");
    if scope != GRAPH_DEFAULT_SCOPE && scope != GRAPH_APP_ID_SCOPE {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope '{scope}' is not valid; use {GRAPH_DEFAULT_SCOPE}."
            ),
        );
    }
    let lifetime = s.config.token_lifetime.as_secs().max(1);
    let now = unix_now();
    let claims = AccessClaims {
        aud: GRAPH_AUDIENCE.into(),
        iss: format!("https://sts.windows.net/{}/", app.tenant_id),
        iat: now,
        nbf: now,
        exp: now + lifetime,
        appid: app.client_id.clone(),
        appidacr: "1".into(),
        idtyp: "app".into(),
        oid: app.client_id.clone(),
        roles: app
            .permissions
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        sub: app.client_id.clone(),
        tid: app.tenant_id.clone(),
        ver: "1.0".into(),
    };
    match s.key.sign(&claims) {
        Ok(access_token) => {
            bump(&s.counters.tokens_issued);
            Json(json!({
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": access_token,
            }))
            .into_response()
        }
        Err(e) => oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            50000,
            &format!("Could not sign the token: {e}"),
            &ids,
        ),
    }
}

async fn openid_configuration(State(s): State<AppState>) -> Response {
    Json(json!({
        "issuer": CALLBACK_ISSUER,
        "authorization_endpoint": format!("{}/v1/.well-known/authorize", s.base_url),
        "jwks_uri": format!("{}/v1/.well-known/keys", s.base_url),
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
    }))
    .into_response()
}

async fn keys(State(s): State<AppState>) -> Response {
    Json(json!({ "keys": [s.key.jwk()] })).into_response()
}

// ---------------------------------------------------------------------------
// Graph calls API

/// Graph's 401 for a missing or invalid bearer token.
pub(crate) fn unauthorized(message: &str, ids: &RequestIds) -> Response {
    graph_error(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        message,
        ids,
    )
}

/// The app a request's bearer token authenticates and its granted permissions, or
/// why not (the message of Graph's 401).
pub(crate) fn authenticate(
    s: &Shared,
    headers: &HeaderMap,
) -> Result<(RegisteredApp, Vec<Permission>), String> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err("Access token is empty.".into());
    };
    let Some(token) = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Err("Access token is empty or not a Bearer token.".into());
    };
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[GRAPH_AUDIENCE]);
    validation.leeway = 0;
    let claims: AccessClaims = match s.key.verify(token, &validation) {
        Ok(c) => c,
        Err(e) => {
            let why = match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    "Lifetime validation failed, the token is expired.".to_owned()
                }
                jsonwebtoken::errors::ErrorKind::InvalidAudience => "Invalid audience.".to_owned(),
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    "Invalid signature.".to_owned()
                }
                other => format!("{other:?}."),
            };
            return Err(format!("Access token validation failure. {why}"));
        }
    };
    let Some(app) = s
        .config
        .apps
        .iter()
        .find(|a| a.client_id == claims.appid && a.tenant_id == claims.tid)
    else {
        return Err("Access token validation failure. Unknown application.".into());
    };
    let granted = claims
        .roles
        .iter()
        .filter_map(|r| r.parse::<Permission>().ok())
        .collect();
    Ok((app.clone(), granted))
}

/// `POST …/calls`; `LEGACY` for the old `/app/calls` path.
async fn create_call<const LEGACY: bool>(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Extension(ids): Extension<RequestIds>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    create_counted(&s, version, LEGACY, &ids, &headers, body).await
}

/// [`create`], counting every refusal in `calls_rejected`.
async fn create_counted(
    s: &AppState,
    version: ApiVersion,
    legacy: bool,
    ids: &RequestIds,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let resp = create(s, version, legacy, ids, headers, body).await;
    if resp.status() != StatusCode::CREATED {
        bump(&s.counters.calls_rejected);
    }
    resp
}

async fn create(
    s: &AppState,
    ApiVersion(version): ApiVersion,
    legacy: bool,
    ids: &RequestIds,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let bad = |message: &str| graph_error(StatusCode::BAD_REQUEST, "BadRequest", message, ids);
    let (app, granted) = match authenticate(s, headers) {
        Ok(a) => a,
        Err(why) => return unauthorized(&why, ids),
    };
    let bytes = match axum::body::to_bytes(body, s.config.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return graph_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!(
                    "The request body exceeds the limit of {} bytes.",
                    s.config.max_body_bytes
                ),
                ids,
            );
        }
    };
    // Strict: a repeated key is refused, as Graph does. Errors quote the body only as
    // bounded, escaped excerpts.
    let value = match signaling::json::from_slice_strict(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return bad(&format!(
                "Unable to read JSON request payload: {}.",
                media_blob::bounded(&e.to_string(), MAX_DETAIL_CHARS)
            ));
        }
    };
    let Some(req) = value.as_object() else {
        return bad("The request body must be a JSON object (a call).");
    };
    let call: signaling::Call = match serde_json::from_value(value.clone()) {
        Ok(c) => c,
        Err(e) => {
            return bad(&format!(
                "Invalid call in the request payload: {}.",
                media_blob::bounded(&e.to_string(), MAX_DETAIL_CHARS)
            ));
        }
    };
    let problems = signaling::create_call_problems(&call);
    if !problems.is_empty() {
        let listed = problems.iter().map(|p| (p.to_string(), p.path()));
        return invalid_request(listed, ids);
    }
    let required = call.required_permissions();
    if !required.is_satisfied_by(&granted) {
        return not_authorized("create this call", &required, &granted, ids);
    }
    let media = if call.is_app_hosted() {
        match media_blob::MediaSessionConfig::from_value(&req["mediaConfig"]["blob"]) {
            Ok(m) => Some(m),
            Err(e) => return bad(&format!("mediaConfig.blob: {e}")),
        }
    } else {
        None
    };
    if s.shutting_down() {
        return graph_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The emulator is shutting down.",
            ids,
        );
    }

    let id = uuid::Uuid::new_v4().to_string();
    let collection = if legacy {
        "app/calls"
    } else {
        "communications/calls"
    };
    let assigned = Assigned {
        id: id.clone(),
        my_participant_id: uuid::Uuid::new_v4().to_string(),
        tenant_id: app.tenant_id.clone(),
        odata_context: format!("{}/{version}/$metadata#{collection}/$entity", s.base_url),
    };
    let resource = call::call_resource(req, &app, &assigned);
    let kind = CallKind::of(&call);
    let callback_uri = call.callback_uri.value().cloned().unwrap_or_default();
    let ctx = CallContext {
        id: id.clone(),
        callback_uri: callback_uri.clone(),
        app_id: app.client_id.clone(),
        tenant_id: app.tenant_id.clone(),
        kind,
        content_sharing: call
            .call_options
            .value()
            .and_then(|o| o.is_content_sharing_notification_enabled.value())
            .copied()
            .unwrap_or(false),
        media: media.clone(),
        my_participant_id: assigned.my_participant_id.clone(),
        bot_identity: call::bot_identity(req, &app),
        other_identity: call::other_identity(req),
        other_participant_id: uuid::Uuid::new_v4().to_string(),
        chat_info: req.get("chatInfo").cloned().unwrap_or(Value::Null),
        meeting_info: req.get("meetingInfo").cloned().unwrap_or(Value::Null),
        content_session_id: call::new_content_session_id(),
        incoming: false,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let record = CallRecord::new(
        resource.clone(),
        CallSummary {
            id: id.clone(),
            state: CallState::Establishing,
            kind,
            app_id: app.client_id.clone(),
            tenant_id: app.tenant_id.clone(),
            callback_uri,
            media: if media.is_some() {
                MediaStatus::AwaitingEstablished
            } else {
                MediaStatus::ServiceHosted
            },
            termination: None,
            notifications: Vec::new(),
        },
        tx,
    );
    lock(&s.calls).insert(id.clone(), record);
    spawn_call(s, ctx, rx);
    bump(&s.counters.calls_created);
    tracing::info!(call = %id, kind = kind.as_str(), "call created");

    let location = format!("{}/{version}/communications/calls/{id}", s.base_url);
    let mut resp = (StatusCode::CREATED, Json(resource)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// The live call `id` owned by the caller's app, or Graph's 404.
pub(crate) fn not_found_call(id: &str, ids: &RequestIds) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "itemNotFound",
        &format!("Call '{id}' was not found; it ended or never existed."),
        ids,
    )
}

fn owned_live(s: &Shared, id: &str, app: &RegisteredApp) -> bool {
    lock(&s.calls)
        .get(id)
        .is_some_and(|r| r.is_live() && r.summary.app_id == app.client_id)
}

async fn get_call(
    State(s): State<AppState>,
    Extension(ids): Extension<RequestIds>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (app, _) = match authenticate(&s, &headers) {
        Ok(a) => a,
        Err(why) => return unauthorized(&why, &ids),
    };
    let resource = lock(&s.calls)
        .get(&id)
        .filter(|r| r.is_live() && r.summary.app_id == app.client_id)
        .map(|r| r.resource.clone());
    match resource {
        Some(r) => Json(r).into_response(),
        None => not_found_call(&id, &ids),
    }
}

async fn delete_call(
    State(s): State<AppState>,
    Extension(ids): Extension<RequestIds>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (app, _) = match authenticate(&s, &headers) {
        Ok(a) => a,
        Err(why) => return unauthorized(&why, &ids),
    };
    if s.end_call(&id, Some(&app.client_id), Termination::deleted_by_app()) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found_call(&id, &ids)
    }
}

async fn keep_alive(
    State(s): State<AppState>,
    Extension(ids): Extension<RequestIds>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (app, _) = match authenticate(&s, &headers) {
        Ok(a) => a,
        Err(why) => return unauthorized(&why, &ids),
    };
    if owned_live(&s, &id, &app) && s.command(&id, Command::KeepAlive) {
        bump(&s.counters.keep_alives);
        StatusCode::OK.into_response()
    } else {
        not_found_call(&id, &ids)
    }
}

async fn not_found(req: Request) -> Response {
    let ids = req
        .extensions()
        .get::<RequestIds>()
        .cloned()
        .unwrap_or_else(RequestIds::new);
    graph_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!(
            "Resource not found for {} {}.",
            req.method(),
            req.uri().path()
        ),
        &ids,
    )
}

// ---------------------------------------------------------------------------
// Control endpoints

/// The control endpoints answer only a request carrying the control token
/// (`Authorization: Bearer <token>`); others get 401 and are counted as refused.
async fn require_control_token(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), s.control_token.as_bytes()) {
        return next.run(req).await;
    }
    let ids = req
        .extensions()
        .get::<RequestIds>()
        .cloned()
        .unwrap_or_else(RequestIds::new);
    tracing::warn!(
        path = req.uri().path(),
        "control request without the control token refused"
    );
    graph_error(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "The emulator's control endpoints need Authorization: Bearer <control token> \
         (EmulatorHandle::control_token, or --control-token of the emulator command).",
        &ids,
    )
}

/// Equality of two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn list_faults(State(s): State<AppState>) -> Response {
    Json(lock(&s.faults).clone()).into_response()
}

async fn add_fault(
    State(s): State<AppState>,
    Extension(ids): Extension<RequestIds>,
    body: Result<Json<Fault>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let fault = match body {
        Ok(Json(f)) => f,
        Err(e) => {
            return graph_error(StatusCode::BAD_REQUEST, "BadRequest", &e.body_text(), &ids);
        }
    };
    if let Some(problem) = fault.problem() {
        return graph_error(StatusCode::BAD_REQUEST, "BadRequest", &problem, &ids);
    }
    let mut faults = lock(&s.faults);
    faults.push(fault);
    (StatusCode::CREATED, Json(faults.clone())).into_response()
}

async fn clear_faults(State(s): State<AppState>) -> Response {
    lock(&s.faults).clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn list_calls(State(s): State<AppState>) -> Response {
    let calls: Vec<Value> = s
        .summaries()
        .into_iter()
        .map(|c| {
            json!({
                "id": c.id,
                "state": c.state.as_str(),
                "kind": c.kind.as_str(),
                "appId": c.app_id,
                "tenantId": c.tenant_id,
                "callbackUri": c.callback_uri,
                "media": format!("{:?}", c.media),
                "notifications": c.notifications.len(),
                "terminationReason": c.termination.map(|t| t.reason),
            })
        })
        .collect();
    Json(json!({ "calls": calls, "counters": s.counters.snapshot() })).into_response()
}

async fn hang_up(
    State(s): State<AppState>,
    Extension(ids): Extension<RequestIds>,
    Path(id): Path<String>,
) -> Response {
    if s.end_call(&id, None, Termination::remote_hang_up()) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found_call(&id, &ids)
    }
}
