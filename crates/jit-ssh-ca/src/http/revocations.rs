//! `/v1/revocations`: ask to revoke, confirm with a WebAuthn touch, read.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use jit_ssh_proto::api::{CreateRevocation, RequestCreated};
use jit_ssh_proto::routes;

use super::confirm;
use super::json::ApiJson;
use super::{blocking, ApiError, AppState};
use crate::store::PendingRevocation;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::REVOCATIONS, post(create))
        .merge(confirm::routes::<PendingRevocation>(
            routes::REVOCATION,
            routes::REVOCATION_SUMMARY,
            routes::REVOCATION_MFA_START,
            routes::REVOCATION_MFA_FINISH,
        ))
}

async fn create(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<CreateRevocation>,
) -> Result<(StatusCode, Json<RequestCreated>), ApiError> {
    let created = blocking(&state, move |ca| ca.create_revocation(body, client)).await?;
    Ok((StatusCode::CREATED, Json(created)))
}
