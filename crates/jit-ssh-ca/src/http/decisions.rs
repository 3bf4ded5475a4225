//! Approvers' side of `/v1/requests`: approve or deny
//! (`/v1/requests/{id}/decisions`), and confirm the decision with a
//! WebAuthn touch (`/v1/decisions/{id}/…`). The list of what they may
//! decide is `GET /v1/requests` (`requests.rs`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use jit_ssh_proto::api::{CreateDecision, RequestCreated};
use jit_ssh_proto::routes;

use super::confirm;
use super::json::ApiJson;
use super::{blocking, ApiError, AppState};
use crate::store::PendingDecision;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::DECISIONS, post(create))
        .merge(confirm::routes::<PendingDecision>(
            routes::DECISION,
            routes::DECISION_SUMMARY,
            routes::DECISION_MFA_START,
            routes::DECISION_MFA_FINISH,
        ))
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
