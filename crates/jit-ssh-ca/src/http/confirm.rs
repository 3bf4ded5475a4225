//! The routes every confirmed action shares (access requests,
//! revocations, sign-ins, approvers' decisions): the page's summary, the
//! WebAuthn touch (start, finish), and — except for access requests,
//! whose read is a long poll — reading it with the secret. Each resource says which service
//! calls answer them; the handlers are written once.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use super::error::unauthorized;
use super::json::ApiJson;
use super::requests::bearer;
use super::{blocking, ApiError, AppState};
use crate::service::{Ca, ServiceError};

/// Something confirmed with a WebAuthn touch on its page (access
/// requests too).
pub(super) trait Confirmed: 'static {
    /// What the page reads and what the touch answers (nothing secret).
    type View: Serialize + Send + 'static;
    fn summary(ca: &Ca, id: &str) -> Result<Self::View, ServiceError>;
    fn start(
        ca: &Ca,
        id: &str,
        client: SocketAddr,
    ) -> Result<RequestChallengeResponse, ServiceError>;
    fn finish(
        ca: &Ca,
        id: &str,
        credential: &PublicKeyCredential,
        client: SocketAddr,
    ) -> Result<Self::View, ServiceError>;
}

/// A confirmed action its requester reads with the secret they were given.
pub(super) trait ReadWithSecret: Confirmed {
    fn state(ca: &Ca, id: &str, secret: &str) -> Result<Self::View, ServiceError>;
}

/// `GET summary`, `POST start`, `POST finish`.
pub(super) fn touch_routes<C: Confirmed>(
    summary: &'static str,
    start: &'static str,
    finish: &'static str,
) -> Router<AppState> {
    Router::new()
        .route(summary, get(read_summary::<C>))
        .route(start, post(mfa_start::<C>))
        .route(finish, post(mfa_finish::<C>))
}

/// `GET item` (Bearer secret), and the [`touch_routes`].
pub(super) fn routes<C: ReadWithSecret>(
    item: &'static str,
    summary: &'static str,
    start: &'static str,
    finish: &'static str,
) -> Router<AppState> {
    touch_routes::<C>(summary, start, finish).route(item, get(read::<C>))
}

async fn read<C: ReadWithSecret>(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<C::View>, ApiError> {
    let secret = bearer(&headers).ok_or_else(unauthorized)?;
    blocking(&state, move |ca| C::state(ca, &id, &secret))
        .await
        .map(Json)
}

async fn read_summary<C: Confirmed>(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<C::View>, ApiError> {
    blocking(&state, move |ca| C::summary(ca, &id))
        .await
        .map(Json)
}

async fn mfa_start<C: Confirmed>(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
) -> Result<Json<RequestChallengeResponse>, ApiError> {
    blocking(&state, move |ca| C::start(ca, &id, client))
        .await
        .map(Json)
}

async fn mfa_finish<C: Confirmed>(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(credential): ApiJson<PublicKeyCredential>,
) -> Result<Json<C::View>, ApiError> {
    blocking(&state, move |ca| C::finish(ca, &id, &credential, client))
        .await
        .map(Json)
}
