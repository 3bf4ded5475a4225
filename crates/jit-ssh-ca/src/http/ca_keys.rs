//! `/v1/ca-keys`: the lines hosts put in TrustedUserCAKeys, with the same
//! keys as a signed key set (what `jit-ssh host sync` installs); `/healthz`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use jit_ssh_proto::api::CaKeys;
use jit_ssh_proto::routes;

use super::{blocking, ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::CA_KEYS, get(ca_keys))
        .route(routes::HEALTH, get(|| async { "ok\n" }))
}

async fn ca_keys(State(state): State<AppState>) -> Result<Json<CaKeys>, ApiError> {
    Ok(Json(blocking(&state, |ca| ca.ca_keys()).await?))
}
