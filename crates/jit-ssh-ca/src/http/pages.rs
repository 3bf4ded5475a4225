//! The pages people see — the landing page at `/`, enrolling a key, confirming a request, a
//! revocation, a decision or a sign-in — and their script. Pages hold no
//! data: the script reads the id or token from the path and talks to the
//! API, writing only with `textContent`.
//!
//! Each confirmation page is bound to one kind of thing: it is served only
//! for the id of such a thing ([`confirm::page`]), and its script refuses
//! any other path segment and any summary of another kind.

use axum::extract::Path;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use jit_ssh_proto::routes;

use super::confirm;
use super::AppState;
use crate::store::{AccessRequest, PendingDecision, PendingRevocation, Session};

const HOME: &str = include_str!("assets/landing.html");
const ENROLL: &str = include_str!("assets/enroll.html");
const MFA: &str = include_str!("assets/mfa.html");
const REVOKE: &str = include_str!("assets/revoke.html");
const SIGNIN: &str = include_str!("assets/signin.html");
const APPROVE: &str = include_str!("assets/approve.html");
const DECIDE: &str = include_str!("assets/decide.html");
const SCRIPT: &str = include_str!("assets/jit-ssh.js");
const UI_SCRIPT: &str = include_str!("assets/jit-ssh-ui.js");
const STYLE: &str = include_str!("assets/jit-ssh.css");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::HOME_PAGE, get(|| async { Html(HOME) }))
        .route(routes::ENROLL_PAGE, get(enroll_page))
        .route(routes::MFA_PAGE, confirm::page::<AccessRequest>(MFA))
        .route(
            routes::APPROVE_PAGE,
            confirm::page::<AccessRequest>(APPROVE),
        )
        .route(
            routes::REVOKE_PAGE,
            confirm::page::<PendingRevocation>(REVOKE),
        )
        .route(routes::SIGNIN_PAGE, confirm::page::<Session>(SIGNIN))
        .route(
            routes::DECIDE_PAGE,
            confirm::page::<PendingDecision>(DECIDE),
        )
        .route(routes::SCRIPT, get(|| async { script(SCRIPT) }))
        .route(routes::UI_SCRIPT, get(|| async { script(UI_SCRIPT) }))
        .route(
            "/static/jit-ssh.css",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
            }),
        )
}

fn script(text: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        text,
    )
        .into_response()
}

/// Served for anything shaped like an invite token (64 hex digits); the
/// page itself says when an invite is used up or expired.
async fn enroll_page(Path(token): Path<String>) -> Response {
    if token.len() == 64
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        Html(ENROLL).into_response()
    } else {
        confirm::not_found()
    }
}
