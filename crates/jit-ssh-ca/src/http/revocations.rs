//! `/v1/revocations`: ask to revoke, confirm with a WebAuthn touch, read.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use jit_ssh_proto::api::{ConfirmKind, CreateRevocation, RequestCreated, RevocationState};
use jit_ssh_proto::routes;

use super::confirm::{self, summary, Confirmed, ReadWithSecret};
use super::json::ApiJson;
use super::{blocking, ApiError, AppState};
use crate::service::{Ca, ServiceError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::REVOCATIONS, post(create))
        .merge(confirm::routes::<Revocations>(
            routes::REVOCATION,
            routes::REVOCATION_SUMMARY,
            routes::REVOCATION_MFA_START,
            routes::REVOCATION_MFA_FINISH,
        ))
}

async fn create(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<CreateRevocation>,
) -> Result<(StatusCode, Json<RequestCreated>), ApiError> {
    let created = blocking(&state, move |ca| ca.create_revocation(body, client)).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub(super) struct Revocations;

impl ReadWithSecret for Revocations {
    fn state(ca: &Ca, id: &str, secret: &str) -> Result<RevocationState, ServiceError> {
        ca.revocation_state(id, secret)
            .and_then(|r| with_owner(ca, r))
    }
}

impl Confirmed for Revocations {
    type View = RevocationState;
    const KIND: ConfirmKind = ConfirmKind::Revocation;
    fn match_code(r: &RevocationState) -> String {
        crate::match_code::revocation(&r.id, &r.user, &r.target)
    }
    fn public(r: RevocationState) -> RevocationState {
        summary::revocation(r)
    }
    fn summary(ca: &Ca, id: &str) -> Result<RevocationState, ServiceError> {
        ca.revocation_summary(id).and_then(|r| with_owner(ca, r))
    }
    fn start(
        ca: &Ca,
        id: &str,
        client: SocketAddr,
    ) -> Result<RequestChallengeResponse, ServiceError> {
        ca.revocation_mfa_start(id, client)
    }
    fn finish(
        ca: &Ca,
        id: &str,
        credential: &PublicKeyCredential,
        client: SocketAddr,
    ) -> Result<RevocationState, ServiceError> {
        ca.revocation_mfa_finish(id, credential, client)
            .and_then(|r| with_owner(ca, r))
    }
}

/// The revocation with whose certificate it takes away, for the page.
fn with_owner(ca: &Ca, mut r: RevocationState) -> Result<RevocationState, ServiceError> {
    r.certificate = ca.certificate_owner(&r.target)?;
    Ok(r)
}
