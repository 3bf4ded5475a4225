//! `/v1/sessions`: sign in with a WebAuthn touch to read the audit log or
//! decide requests.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use jit_ssh_proto::api::{ConfirmKind, CreateSession, RequestCreated, SessionState};
use jit_ssh_proto::routes;

use super::confirm::{self, summary, Confirmed, ReadWithSecret};
use super::error::unauthorized;
use super::json::ApiJson;
use super::requests::bearer;
use super::{blocking, ApiError, AppState};
use crate::service::{Ca, ServiceError, SignedIn};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::SESSIONS, post(create))
        .merge(confirm::routes::<Sessions>(
            routes::SESSION,
            routes::SESSION_SUMMARY,
            routes::SESSION_MFA_START,
            routes::SESSION_MFA_FINISH,
        ))
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

pub(super) struct Sessions;

impl ReadWithSecret for Sessions {
    fn state(ca: &Ca, id: &str, secret: &str) -> Result<SessionState, ServiceError> {
        ca.session_state(id, secret)
    }
}

impl Confirmed for Sessions {
    type View = SessionState;
    const KIND: ConfirmKind = ConfirmKind::SignIn;
    fn match_code(s: &SessionState) -> String {
        crate::match_code::sign_in(&s.id, &s.user)
    }
    fn public(s: SessionState) -> SessionState {
        summary::sign_in(s)
    }
    fn summary(ca: &Ca, id: &str) -> Result<SessionState, ServiceError> {
        ca.session_summary(id)
    }
    fn start(
        ca: &Ca,
        id: &str,
        client: SocketAddr,
    ) -> Result<RequestChallengeResponse, ServiceError> {
        ca.session_mfa_start(id, client)
    }
    fn finish(
        ca: &Ca,
        id: &str,
        credential: &PublicKeyCredential,
        client: SocketAddr,
    ) -> Result<SessionState, ServiceError> {
        ca.session_mfa_finish(id, credential, client)
    }
}
