//! `/v1/sessions`: sign in with a WebAuthn touch to read the audit log or
//! decide requests, and sign out (end the token at the CA).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use jit_ssh_proto::api::{CreateSession, RequestCreated, SessionState};
use jit_ssh_proto::routes;

use super::auth::RequestSecret;
use super::confirm;
use super::json::ApiJson;
use super::{blocking, ApiError, AppState};
use crate::store::Session;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::SESSIONS, post(create))
        .route(routes::SESSION, delete(end))
        .merge(confirm::routes::<Session>(
            routes::SESSION,
            routes::SESSION_SUMMARY,
            routes::SESSION_MFA_START,
            routes::SESSION_MFA_FINISH,
        ))
}

async fn create(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<CreateSession>,
) -> Result<(StatusCode, Json<RequestCreated>), ApiError> {
    let created = blocking(&state, move |ca| ca.create_session(body, client)).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Sign-out: `Authorization: Bearer ID.SECRET`, the session token itself.
async fn end(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RequestSecret(token): RequestSecret,
) -> Result<Json<SessionState>, ApiError> {
    blocking(&state, move |ca| ca.sign_out(&id, &token))
        .await
        .map(Json)
}
