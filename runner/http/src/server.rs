//! The axum router and [`run`]. Backend calls may block (journal reads), so each runs
//! on tokio's blocking pool.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use subtle::ConstantTimeEq;

use crate::HttpError;
use crate::metrics::{METRICS_CONTENT_TYPE, render_metrics};
use crate::model::{Backend, ControlError, ControlRequest};
use crate::page::{
    render_dashboards_page, render_execution_page, render_not_found, render_status_page,
};

/// Our own pages carry no script and load nothing: forbid both, so an escaping bug
/// cannot run code. (Dashboards come from serve as they are, without this policy.)
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

struct App {
    backend: Arc<dyn Backend>,
    token: Option<String>,
}

type Shared = State<Arc<App>>;

/// Serves until `shutdown` completes, then finishes in-flight requests and returns.
/// `token` guards the control endpoints; `None` disables them (403). The caller has
/// bound `listener` (after [`crate::check_listen`]).
pub async fn run(
    listener: tokio::net::TcpListener,
    backend: Arc<dyn Backend>,
    token: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, control = token.is_some(), "HTTP listening");
    }
    let app = Arc::new(App { backend, token });
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(HttpError::Serve)
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/executions/{id}", get(execution))
        .route("/executions/{id}/report", get(report))
        .route("/dashboards", get(dashboards))
        .route("/dashboards/{name}", get(dashboard))
        .route(
            "/pause",
            post(|s: Shared, h: HeaderMap, b: Bytes| control(s, h, b, Action::Pause)),
        )
        .route(
            "/resume",
            post(|s: Shared, h: HeaderMap, b: Bytes| control(s, h, b, Action::Resume)),
        )
        .route(
            "/trigger",
            post(|s: Shared, h: HeaderMap, b: Bytes| control(s, h, b, Action::Trigger)),
        )
        .fallback(|| async { not_found("No such page.") })
        .with_state(app)
}

/// Runs a backend call on the blocking pool; a panic in it becomes a 500.
async fn blocking<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&dyn Backend) -> T + Send + 'static,
) -> Result<T, Response> {
    let backend = app.backend.clone();
    tokio::task::spawn_blocking(move || f(backend.as_ref()))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "HTTP backend call failed");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "http.internal",
                "the server failed to answer",
            )
        })
}

fn html(body: String, csp: bool) -> Response {
    let mut resp = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response();
    if csp {
        resp.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        );
    }
    resp
}

fn not_found(what: &str) -> Response {
    let mut resp = html(render_not_found(what), true);
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    json(
        status,
        &serde_json::json!({"error": {"code": code, "message": message}}),
    )
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{value}\n"),
    )
        .into_response()
}

async fn status_page(State(app): Shared) -> Response {
    match blocking(&app, |b| render_status_page(&b.status())).await {
        Ok(page) => html(page, true),
        Err(resp) => resp,
    }
}

async fn metrics(State(app): Shared) -> Response {
    match blocking(&app, |b| render_metrics(&b.status())).await {
        Ok(text) => ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response(),
        Err(resp) => resp,
    }
}

async fn execution(State(app): Shared, Path(id): Path<String>) -> Response {
    let lookup = id.clone();
    match blocking(&app, move |b| b.execution(&lookup)).await {
        Ok(Some(page)) => html(render_execution_page(&page), true),
        Ok(None) => not_found(&format!("No execution {id} in the journal.")),
        Err(resp) => resp,
    }
}

async fn report(State(app): Shared, Path(id): Path<String>) -> Response {
    let lookup = id.clone();
    match blocking(&app, move |b| b.execution(&lookup)).await {
        Ok(Some(page)) => match page.report_html {
            Some(report) => html(report, true),
            None => not_found(&format!("Execution {id} has no game-day report.")),
        },
        Ok(None) => not_found(&format!("No execution {id} in the journal.")),
        Err(resp) => resp,
    }
}

async fn dashboards(State(app): Shared) -> Response {
    match blocking(&app, |b| b.dashboards()).await {
        Ok(names) => html(render_dashboards_page(&names), true),
        Err(resp) => resp,
    }
}

async fn dashboard(State(app): Shared, Path(name): Path<String>) -> Response {
    let lookup = name.clone();
    match blocking(&app, move |b| b.dashboard(&lookup)).await {
        Ok(Some(doc)) => html(doc, false),
        Ok(None) => not_found(&format!("No dashboard {name}.")),
        Err(resp) => resp,
    }
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Pause,
    Resume,
    Trigger,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Trigger => "trigger",
        }
    }
}

/// Checks `Authorization: Bearer TOKEN` against the configured token in constant time;
/// `Some` is the refusal to send.
fn refusal(app: &App, headers: &HeaderMap) -> Option<Response> {
    let Some(expected) = &app.token else {
        return Some(json_error(
            StatusCode::FORBIDDEN,
            "http.control_disabled",
            "control endpoints are disabled: no token is configured; set Http.TokenFile to a file \
             (mode 0600) holding the bearer token",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    let ok = presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.as_bytes())));
    if ok {
        return None;
    }
    let mut resp = json_error(
        StatusCode::UNAUTHORIZED,
        "http.unauthorized",
        "missing or wrong bearer token (Authorization: Bearer TOKEN, the token in Http.TokenFile)",
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"runbook\""),
    );
    Some(resp)
}

/// The request in the body (empty = all defaults), or why it is not one.
fn parse_request(body: &[u8]) -> Result<ControlRequest, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ControlRequest::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| format!("body must be JSON {{\"target\": .., \"reason\": ..}} or empty: {e}"))
}

async fn control(State(app): Shared, headers: HeaderMap, body: Bytes, action: Action) -> Response {
    if let Some(resp) = refusal(&app, &headers) {
        tracing::warn!(action = action.name(), "HTTP control request refused");
        return resp;
    }
    let request = match parse_request(&body) {
        Ok(r) => r,
        Err(message) => {
            return json_error(StatusCode::BAD_REQUEST, "http.bad_request", &message);
        }
    };
    if matches!(action, Action::Trigger) && request.target.is_none() {
        return json_error(
            StatusCode::BAD_REQUEST,
            "http.bad_request",
            "trigger needs a target: the name of the schedule to fire",
        );
    }
    let target = request.target.clone();
    let result = blocking(&app, move |b| match action {
        Action::Pause => b.pause(request),
        Action::Resume => b.resume(request),
        Action::Trigger => b.trigger(request),
    })
    .await;
    match result {
        Ok(Ok(value)) => {
            tracing::info!(action = action.name(), target = ?target, "HTTP control action done");
            json(StatusCode::OK, &value)
        }
        Ok(Err(e)) => {
            tracing::warn!(action = action.name(), target = ?target, error = %e, "HTTP control action refused");
            json_error(status_of(&e), e.code(), &e.to_string())
        }
        Err(resp) => resp,
    }
}

fn status_of(e: &ControlError) -> StatusCode {
    StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
