//! `/v1/revocations`: ask to revoke, confirm with a WebAuthn touch, read.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use jit_ssh_proto::api::{CreateRevocation, RequestCreated, RevocationState};
use jit_ssh_proto::routes;

use super::error::unauthorized;
use super::json::ApiJson;
use super::requests::bearer;
use super::{blocking, ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::REVOCATIONS, post(create))
        .route(routes::REVOCATION, get(read))
        .route(routes::REVOCATION_SUMMARY, get(summary))
        .route(routes::REVOCATION_MFA_START, post(mfa_start))
        .route(routes::REVOCATION_MFA_FINISH, post(mfa_finish))
}

async fn create(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<CreateRevocation>,
) -> Result<(StatusCode, Json<RequestCreated>), ApiError> {
    let created = blocking(&state, move |ca| ca.create_revocation(body, client)).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<RevocationState>, ApiError> {
    let secret = bearer(&headers).ok_or_else(unauthorized)?;
    blocking(&state, move |ca| ca.revocation_state(&id, &secret))
        .await
        .map(Json)
}

async fn summary(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RevocationState>, ApiError> {
    blocking(&state, move |ca| ca.revocation_summary(&id))
        .await
        .map(Json)
}

async fn mfa_start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
) -> Result<Json<RequestChallengeResponse>, ApiError> {
    blocking(&state, move |ca| ca.revocation_mfa_start(&id, client))
        .await
        .map(Json)
}

async fn mfa_finish(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(credential): ApiJson<PublicKeyCredential>,
) -> Result<Json<RevocationState>, ApiError> {
    blocking(&state, move |ca| {
        ca.revocation_mfa_finish(&id, &credential, client)
    })
    .await
    .map(Json)
}
