//! `/v1/sessions`: sign in with a WebAuthn touch to read the audit log or
//! decide requests.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use jit_ssh_proto::api::{CreateSession, RequestCreated};
use jit_ssh_proto::routes;

use super::confirm;
use super::json::ApiJson;
use super::{blocking, ApiError, AppState};
use crate::store::Session;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::SESSIONS, post(create))
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
