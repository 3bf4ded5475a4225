//! Approvers' side of `/v1/requests`: list what they may decide, approve
//! or deny (`/v1/requests/{id}/decisions`), and confirm the decision with
//! a WebAuthn touch (`/v1/decisions/{id}/…`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use jit_ssh_proto::api::{CreateDecision, DecisionState, PendingRequests, RequestCreated};
use jit_ssh_proto::routes;

use super::error::unauthorized;
use super::json::ApiJson;
use super::requests::bearer;
use super::sessions::signed_in;
use super::{blocking, ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::REQUESTS, get(pending))
        .route(routes::DECISIONS, post(create))
        .route(routes::DECISION, get(read))
        .route(routes::DECISION_SUMMARY, get(summary))
        .route(routes::DECISION_MFA_START, post(mfa_start))
        .route(routes::DECISION_MFA_FINISH, post(mfa_finish))
}

async fn pending(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<PendingRequests>, ApiError> {
    let who = signed_in(&state, &headers).await?;
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

async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<DecisionState>, ApiError> {
    let secret = bearer(&headers).ok_or_else(unauthorized)?;
    blocking(&state, move |ca| ca.decision_state(&id, &secret))
        .await
        .map(Json)
}

async fn summary(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DecisionState>, ApiError> {
    blocking(&state, move |ca| ca.decision_summary(&id))
        .await
        .map(Json)
}

async fn mfa_start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
) -> Result<Json<RequestChallengeResponse>, ApiError> {
    blocking(&state, move |ca| ca.decision_mfa_start(&id, client))
        .await
        .map(Json)
}

async fn mfa_finish(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(credential): ApiJson<PublicKeyCredential>,
) -> Result<Json<DecisionState>, ApiError> {
    blocking(&state, move |ca| {
        ca.decision_mfa_finish(&id, &credential, client)
    })
    .await
    .map(Json)
}
