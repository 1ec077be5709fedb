//! Operator endpoints: liveness, readiness, metrics, and the public heartbeat.
//! Handlers stay thin: they read state, they never block.

use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use std::sync::atomic::Ordering;

/// `GET /healthz`: the process is alive and its runtime answers.
pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when the service accepts new work; 503 while draining, while
/// the store cannot be reached (`store-unreachable`) or cannot be written, naming
/// why (`"store": "disk-full"`, …).
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let body = if state.draining.load(Ordering::Relaxed) {
        serde_json::json!({ "status": "draining" })
    } else if state.documents.bus_connected() == Some(false) {
        serde_json::json!({ "status": "bus-unreachable" })
    } else if state.store_unreachable.load(Ordering::Relaxed) {
        serde_json::json!({ "status": "store-unreachable", "store": "store-unavailable" })
    } else if let Some(condition) = state.documents.store_failing() {
        serde_json::json!({ "status": "store-unwritable", "store": condition.code() })
    } else {
        return (
            StatusCode::OK,
            Json(serde_json::json!({ "status": "ready" })),
        );
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(body))
}

/// `GET /v1/heartbeat`: a plain `OK` under the public path, so an operator can
/// check that the route browsers take through a proxy reaches the service (like
/// Synchrony's `/synchrony/heartbeat`). Never cached: a cached answer would prove
/// nothing about the route.
pub async fn heartbeat() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        "OK",
    )
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
}
