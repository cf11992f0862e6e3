//! The daemon's HTTP endpoints: `/healthz`, `/readyz`, `/metrics`, `/status`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Shared;

/// The endpoints' router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(shared)
}

async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let readiness = shared.status.lock().expect("status lock").readiness();
    match readiness {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            shared
                .env
                .redact(&format!("not ready: {reason}\n"))
                .into_owned(),
        )
            .into_response(),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.env.redact(&shared.metrics.render()).into_owned(),
    )
        .into_response()
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let body = {
        let status = shared.status.lock().expect("status lock");
        serde_json::to_string_pretty(&*status).unwrap_or_else(|_| "{}".to_owned())
    };
    let body = shared.env.redact(&body).into_owned();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
