//! The routes every confirmed action shares (access requests,
//! revocations, sign-ins, approvers' decisions): the page, the page's
//! summary, the WebAuthn touch (start, finish), and — except for access
//! requests, whose read is a long poll — reading it with the secret. Each
//! resource says which service calls answer them and which kind it is;
//! the handlers are written once.
//!
//! A page serves only ids of its own kind (anything else is a 404), and
//! every summary and touch answer names its kind, so a link to one kind
//! of thing cannot be shown as another.

pub(super) mod summary;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use serde::Serialize;
use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use jit_ssh_proto::api::{ConfirmKind, Confirmation};

use super::error::unauthorized;
use super::json::ApiJson;
use super::requests::bearer;
use super::{blocking, ApiError, AppState};
use crate::service::{is_id, Ca, ServiceError};

/// Something confirmed with a WebAuthn touch on its page (access
/// requests too).
pub(super) trait Confirmed: 'static {
    /// What the page reads and what the touch answers (nothing secret).
    type View: Serialize + Send + 'static;
    /// The one kind its page and summary are about.
    const KIND: ConfirmKind;
    /// The code its creator was given (see [`crate::match_code`]).
    fn match_code(view: &Self::View) -> String;
    /// What someone holding only the link may see: enough to recognise
    /// it, nothing the secret or the touch should be needed for (see
    /// [`summary`]).
    fn public(view: Self::View) -> Self::View;
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

/// The view with its kind and match code beside it.
fn labelled<C: Confirmed>(view: C::View, show: fn(C::View) -> C::View) -> Confirmation<C::View> {
    Confirmation {
        kind: C::KIND,
        match_code: C::match_code(&view),
        item: show(view),
    }
}

async fn read_summary<C: Confirmed>(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Confirmation<C::View>>, ApiError> {
    let view = blocking(&state, move |ca| C::summary(ca, &id)).await?;
    Ok(Json(labelled::<C>(view, C::public)))
}

/// `GET` of the page for one thing of kind `C`: served only for the id of
/// such a thing, so `..%2F`, encoded slashes or another kind's id get a
/// 404 rather than a page whose script might be led elsewhere.
pub(super) fn page<C: Confirmed>(html: &'static str) -> MethodRouter<AppState> {
    get(
        move |State(state): State<AppState>, Path(id): Path<String>| async move {
            if !is_id(&id) {
                return not_found();
            }
            match blocking(&state, move |ca| C::summary(ca, &id).map(drop)).await {
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
) -> Result<Json<Confirmation<C::View>>, ApiError> {
    // After the owner's own touch: the whole view.
    let view = blocking(&state, move |ca| C::finish(ca, &id, &credential, client)).await?;
    Ok(Json(labelled::<C>(view, |v| v)))
}
