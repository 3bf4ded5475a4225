//! `/v1/sessions`: sign in with a WebAuthn touch to read the audit log or
//! decide requests.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use jit_ssh_proto::api::{CreateSession, RequestCreated, SessionState};
use jit_ssh_proto::routes;

use super::error::unauthorized;
use super::json::ApiJson;
use super::requests::bearer;
use super::{blocking, ApiError, AppState};
use crate::service::SignedIn;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::SESSIONS, post(create))
        .route(routes::SESSION, get(read))
        .route(routes::SESSION_SUMMARY, get(summary))
        .route(routes::SESSION_MFA_START, post(mfa_start))
        .route(routes::SESSION_MFA_FINISH, post(mfa_finish))
}

/// The signed-in user behind `Authorization: Bearer ID.SECRET`.
pub(super) async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<SignedIn, ApiError> {
    let token = bearer(headers).ok_or_else(unauthorized)?;
    blocking(state, move |ca| ca.authenticate(&token)).await
}

async fn create(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<CreateSession>,
) -> Result<(StatusCode, Json<RequestCreated>), ApiError> {
    let created = blocking(&state, move |ca| ca.create_session(body, client)).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<SessionState>, ApiError> {
    let secret = bearer(&headers).ok_or_else(unauthorized)?;
    blocking(&state, move |ca| ca.session_state(&id, &secret))
        .await
        .map(Json)
}

async fn summary(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SessionState>, ApiError> {
    blocking(&state, move |ca| ca.session_summary(&id))
        .await
        .map(Json)
}

async fn mfa_start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
) -> Result<Json<RequestChallengeResponse>, ApiError> {
    blocking(&state, move |ca| ca.session_mfa_start(&id, client))
        .await
        .map(Json)
}

async fn mfa_finish(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(credential): ApiJson<PublicKeyCredential>,
) -> Result<Json<SessionState>, ApiError> {
    blocking(&state, move |ca| {
        ca.session_mfa_finish(&id, &credential, client)
    })
    .await
    .map(Json)
}
