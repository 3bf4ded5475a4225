//! `/v1/enroll/{token}`: what an invite is for, and registering a credential.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use webauthn_rs::prelude::{CreationChallengeResponse, RegisterPublicKeyCredential};

use jit_ssh_proto::api::{Enrolled, InviteSummary};
use jit_ssh_proto::routes;

use super::json::ApiJson;
use super::{blocking, ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::INVITE, get(invite))
        .route(routes::ENROLL_START, post(start))
        .route(routes::ENROLL_FINISH, post(finish))
}

async fn invite(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<InviteSummary>, ApiError> {
    blocking(&state, move |ca| ca.invite_summary(&token))
        .await
        .map(Json)
}

async fn start(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
) -> Result<Json<CreationChallengeResponse>, ApiError> {
    blocking(&state, move |ca| ca.enroll_start(&token, client))
        .await
        .map(Json)
}

async fn finish(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(reg): ApiJson<RegisterPublicKeyCredential>,
) -> Result<Json<Enrolled>, ApiError> {
    blocking(&state, move |ca| ca.enroll_finish(&token, &reg, client))
        .await
        .map(Json)
}
