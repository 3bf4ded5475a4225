//! Approvers' side of `/v1/requests`: list what they may decide, approve
//! or deny (`/v1/requests/{id}/decisions`), and confirm the decision with
//! a WebAuthn touch (`/v1/decisions/{id}/…`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use jit_ssh_proto::api::{CreateDecision, PendingRequests, RequestCreated};
use jit_ssh_proto::routes;

use super::confirm;
use super::json::ApiJson;
use super::{blocking, ApiError, AppState};
use crate::service::SignedIn;
use crate::store::PendingDecision;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::REQUESTS, get(pending))
        .route(routes::DECISIONS, post(create))
        .merge(confirm::routes::<PendingDecision>(
            routes::DECISION,
            routes::DECISION_SUMMARY,
            routes::DECISION_MFA_START,
            routes::DECISION_MFA_FINISH,
        ))
}

async fn pending(
    State(state): State<AppState>,
    who: SignedIn,
) -> Result<Json<PendingRequests>, ApiError> {
    blocking(&state, move |ca| ca.pending_for(&who))
        .await
        .map(Json)
}

async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<CreateDecision>,
) -> Result<(StatusCode, Json<RequestCreated>), ApiError> {
    let created = blocking(&state, move |ca| ca.create_decision(&id, body, client)).await?;
    Ok((StatusCode::CREATED, Json(created)))
}
