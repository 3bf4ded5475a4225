//! `/livez` (the process answers), `/readyz` (the CA can issue: 200, or
//! 503 with the failed checks named) and `/healthz` (kept as it always
//! was: liveness, an alias of `/livez`; in `ca_keys.rs`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use jit_ssh_proto::routes;

use super::{blocking, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::LIVEZ, get(|| async { "ok\n" }))
        .route(routes::READYZ, get(readyz))
}

pub(crate) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match blocking(&state, |ca| Ok(ca.readiness())).await {
        Ok(r) => {
            let status = if r.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, Json(r)).into_response()
        }
        Err(e) => e.into_response(),
    }
}
