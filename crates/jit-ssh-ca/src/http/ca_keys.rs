//! `/v1/ca-keys`: the lines hosts put in TrustedUserCAKeys; `/healthz`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use jit_ssh_proto::api::CaKeys;
use jit_ssh_proto::routes;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::CA_KEYS, get(ca_keys))
        .route(routes::HEALTH, get(|| async { "ok\n" }))
}

async fn ca_keys(State(state): State<AppState>) -> Json<CaKeys> {
    Json(state.ca_keys())
}
