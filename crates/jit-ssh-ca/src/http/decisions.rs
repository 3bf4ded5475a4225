//! Approvers' side of `/v1/requests`: approve or deny
//! (`/v1/requests/{id}/decisions`), and confirm the decision with a
//! WebAuthn touch (`/v1/decisions/{id}/…`). The list of what they may
//! decide is `GET /v1/requests` (`requests.rs`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use jit_ssh_proto::api::{ConfirmKind, CreateDecision, DecisionState, RequestCreated};
use jit_ssh_proto::routes;

use super::confirm::{self, summary, Confirmed, ReadWithSecret};
use super::json::ApiJson;
use super::{blocking, ApiError, AppState};
use crate::service::{Ca, ServiceError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::DECISIONS, post(create))
        .merge(confirm::routes::<Decisions>(
            routes::DECISION,
            routes::DECISION_SUMMARY,
            routes::DECISION_MFA_START,
            routes::DECISION_MFA_FINISH,
        ))
}

async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<CreateDecision>,
) -> Result<(StatusCode, Json<RequestCreated>), ApiError> {
    let created = blocking(&state, move |ca| ca.create_decision(&id, body, client)).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub(super) struct Decisions;

impl ReadWithSecret for Decisions {
    fn state(ca: &Ca, id: &str, secret: &str) -> Result<DecisionState, ServiceError> {
        ca.decision_state(id, secret)
    }
}

impl Confirmed for Decisions {
    type View = DecisionState;
    const KIND: ConfirmKind = ConfirmKind::Decision;
    fn match_code(d: &DecisionState) -> String {
        crate::match_code::decision(&d.id, &d.request, &d.user, d.verdict)
    }
    fn public(d: DecisionState) -> DecisionState {
        summary::decision(d)
    }
    fn summary(ca: &Ca, id: &str) -> Result<DecisionState, ServiceError> {
        ca.decision_summary(id)
    }
    fn start(
        ca: &Ca,
        id: &str,
        client: SocketAddr,
    ) -> Result<RequestChallengeResponse, ServiceError> {
        ca.decision_mfa_start(id, client)
    }
    fn finish(
        ca: &Ca,
        id: &str,
        credential: &PublicKeyCredential,
        client: SocketAddr,
    ) -> Result<DecisionState, ServiceError> {
        ca.decision_mfa_finish(id, credential, client)
    }
}
