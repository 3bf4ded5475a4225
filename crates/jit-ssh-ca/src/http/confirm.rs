//! The routes every confirmed action shares (access requests,
//! revocations, sign-ins, approvers' decisions): the page, the page's
//! summary, the WebAuthn touch (start, finish), and — except for access
//! requests, whose read is a long poll — reading it with the secret. The
//! handlers are written once, over the service's
//! [`Confirmable`](crate::service::Confirmable) kinds.
//!
//! A page serves only ids of its own kind (anything else is a 404), and
//! every summary and touch answer names its kind, so a link to one kind
//! of thing cannot be shown as another.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use jit_ssh_proto::api::Confirmation;

use super::auth::RequestSecret;
use super::json::ApiJson;
use super::{blocking, ApiError, AppState};
use crate::service::{is_id, Confirmable};

/// `GET summary`, `POST start`, `POST finish`.
pub(super) fn touch_routes<C: Confirmable>(
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
pub(super) fn routes<C: Confirmable>(
    item: &'static str,
    summary: &'static str,
    start: &'static str,
    finish: &'static str,
) -> Router<AppState> {
    touch_routes::<C>(summary, start, finish).route(item, get(read::<C>))
}

async fn read<C: Confirmable>(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RequestSecret(secret): RequestSecret,
) -> Result<Json<C::View>, ApiError> {
    blocking(&state, move |ca| ca.confirmable_state::<C>(&id, &secret))
        .await
        .map(Json)
}

async fn read_summary<C: Confirmable>(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Confirmation<C::View>>, ApiError> {
    blocking(&state, move |ca| ca.confirmation::<C>(&id))
        .await
        .map(Json)
}

/// `GET` of the page for one thing of kind `C`: served only for the id of
/// such a thing, so `..%2F`, encoded slashes or another kind's id get a
/// 404 rather than a page whose script might be led elsewhere.
pub(super) fn page<C: Confirmable>(html: &'static str) -> MethodRouter<AppState> {
    get(
        move |State(state): State<AppState>, Path(id): Path<String>| async move {
            if !is_id(&id) {
                return not_found();
            }
            match blocking(&state, move |ca| ca.confirmation::<C>(&id).map(drop)).await {
                Ok(()) => Html(html).into_response(),
                Err(e) if e.status == StatusCode::NOT_FOUND => not_found(),
                Err(e) => e.into_response(),
            }
        },
    )
}

/// What a person sees for a link that names nothing of the page's kind.
pub(super) fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Html(NOT_FOUND_PAGE)).into_response()
}

const NOT_FOUND_PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>jit-ssh — no such link</title><link rel=\"stylesheet\" href=\"/static/jit-ssh.css\"></head>\n<body><main><h1>No such link</h1><p>This link names nothing this page can confirm. Use the link your terminal printed, unchanged.</p></main></body></html>\n";

async fn mfa_start<C: Confirmable>(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
) -> Result<Json<RequestChallengeResponse>, ApiError> {
    blocking(&state, move |ca| ca.confirm_start::<C>(&id, client))
        .await
        .map(Json)
}

/// After the owner's own touch: the whole view.
async fn mfa_finish<C: Confirmable>(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(credential): ApiJson<PublicKeyCredential>,
) -> Result<Json<Confirmation<C::View>>, ApiError> {
    blocking(&state, move |ca| {
        ca.confirm_finish::<C>(&id, &credential, client)
    })
    .await
    .map(Json)
}
