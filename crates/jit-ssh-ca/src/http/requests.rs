//! `/v1/requests`: create, the pending list an approver may decide, read
//! (long poll), cancel, summary, and the MFA ceremony.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use jit_ssh_proto::api::{CreateRequest, PendingRequests, RequestCreated, RequestState};
use jit_ssh_proto::routes;
use serde::Deserialize;

use super::auth::RequestSecret;
use super::confirm;
use super::json::ApiJson;
use super::{blocking, ApiError, AppState};
use crate::service::SignedIn;
use crate::store::AccessRequest;

/// Longest a client may hold a poll open.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::REQUESTS, post(create).merge(get(pending)))
        .route(routes::REQUEST, get(read).merge(delete(cancel)))
        .merge(confirm::touch_routes::<AccessRequest>(
            routes::REQUEST_SUMMARY,
            routes::MFA_START,
            routes::MFA_FINISH,
        ))
}

async fn create(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<CreateRequest>,
) -> Result<(StatusCode, Json<RequestCreated>), ApiError> {
    let created = blocking(&state, move |ca| ca.create_request(body, client)).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn pending(
    State(state): State<AppState>,
    who: SignedIn,
) -> Result<Json<PendingRequests>, ApiError> {
    blocking(&state, move |ca| ca.pending_for(&who))
        .await
        .map(Json)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wait {
    wait: Option<u64>,
}

async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(wait): Query<Wait>,
    RequestSecret(secret): RequestSecret,
) -> Result<Json<RequestState>, ApiError> {
    let wait = Duration::from_secs(wait.wait.unwrap_or(0)).min(MAX_WAIT);
    let st = &state;
    let read = || {
        let (id, secret) = (id.clone(), secret.clone());
        blocking(st, move |ca| ca.request_state(&id, &secret))
    };
    let is_final = |s: &RequestState| s.status.is_final();
    state
        .waiters
        .wait_for(&id, wait, is_final, read)
        .await
        .map(Json)
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    RequestSecret(secret): RequestSecret,
) -> Result<Json<RequestState>, ApiError> {
    blocking(&state, move |ca| ca.cancel_request(&id, &secret, client))
        .await
        .map(Json)
}
