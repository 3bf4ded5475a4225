//! `/v1/requests`: create, the pending list an approver may decide, read
//! (long poll), cancel, summary, and the MFA ceremony.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use jit_ssh_proto::api::{
    ConfirmKind, CreateRequest, PendingRequests, RequestCreated, RequestState, RequestSummary,
};
use jit_ssh_proto::routes;

use super::confirm::{self, summary, Confirmed};
use super::error::unauthorized;
use super::json::ApiJson;
use super::sessions::signed_in;
use super::{blocking, ApiError, AppState};
use crate::service::{Ca, ServiceError};

/// Longest a client may hold a poll open.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::REQUESTS, post(create).merge(get(pending)))
        .route(routes::REQUEST, get(read).merge(delete(cancel)))
        .merge(confirm::touch_routes::<AccessRequests>(
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
    headers: HeaderMap,
) -> Result<Json<PendingRequests>, ApiError> {
    let who = signed_in(&state, &headers).await?;
    blocking(&state, move |ca| ca.pending_for(&who))
        .await
        .map(Json)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wait {
    wait: Option<u64>,
}

/// The request or revocation secret from `Authorization: Bearer SECRET`.
pub(super) fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(|s| s.trim().to_owned())
}

async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(wait): Query<Wait>,
    headers: HeaderMap,
) -> Result<Json<RequestState>, ApiError> {
    let secret = bearer(&headers).ok_or_else(unauthorized)?;
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(wait.wait.unwrap_or(0)).min(MAX_WAIT);
    let notify = state.waiters.get(&id);
    let mut woken = false;
    let result = loop {
        // Register interest before reading, so a change in between wakes us.
        let changed = notify.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let (id2, secret2) = (id.clone(), secret.clone());
        let current = match blocking(&state, move |ca| ca.request_state(&id2, &secret2)).await {
            Ok(s) => s,
            Err(e) => break Err(e),
        };
        if current.status.is_final() || woken || tokio::time::Instant::now() >= deadline {
            break Ok(Json(current));
        }
        // Any change (an approval, too) answers the poll, so the waiting
        // engineer sees it at once.
        woken = tokio::time::timeout_at(deadline, changed).await.is_ok();
    };
    state.waiters.release(&id, notify);
    result
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<RequestState>, ApiError> {
    let secret = bearer(&headers).ok_or_else(unauthorized)?;
    blocking(&state, move |ca| ca.cancel_request(&id, &secret, client))
        .await
        .map(Json)
}

/// Access requests: confirmed on `/mfa/{id}` by the requester, decided on
/// `/approve/{id}` by approvers.
pub(super) struct AccessRequests;

impl Confirmed for AccessRequests {
    type View = RequestSummary;
    const KIND: ConfirmKind = ConfirmKind::AccessRequest;
    fn match_code(r: &RequestSummary) -> String {
        crate::match_code::access_request(&r.id, &r.user, &r.host, &r.account, &r.key_fingerprint)
    }
    fn public(r: RequestSummary) -> RequestSummary {
        summary::access_request(r)
    }
    fn summary(ca: &Ca, id: &str) -> Result<RequestSummary, ServiceError> {
        ca.summary(id)
    }
    fn start(
        ca: &Ca,
        id: &str,
        client: SocketAddr,
    ) -> Result<RequestChallengeResponse, ServiceError> {
        ca.mfa_start(id, client)
    }
    fn finish(
        ca: &Ca,
        id: &str,
        credential: &PublicKeyCredential,
        client: SocketAddr,
    ) -> Result<RequestSummary, ServiceError> {
        ca.mfa_finish(id, credential, client)
    }
}
