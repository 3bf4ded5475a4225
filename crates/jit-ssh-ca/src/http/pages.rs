//! The pages people see — enrolling a key, confirming a request, a
//! revocation or a sign-in — and their script. Pages hold no data: the script reads the id or token from
//! the path and talks to the API, writing only with `textContent`.

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

use jit_ssh_proto::routes;

use super::AppState;

const ENROLL: &str = include_str!("assets/enroll.html");
const MFA: &str = include_str!("assets/mfa.html");
const REVOKE: &str = include_str!("assets/revoke.html");
const SIGNIN: &str = include_str!("assets/signin.html");
const APPROVE: &str = include_str!("assets/approve.html");
const DECIDE: &str = include_str!("assets/decide.html");
const SCRIPT: &str = include_str!("assets/jit-ssh.js");
const STYLE: &str = include_str!("assets/jit-ssh.css");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::ENROLL_PAGE, get(|| async { Html(ENROLL) }))
        .route(routes::MFA_PAGE, get(|| async { Html(MFA) }))
        .route(routes::REVOKE_PAGE, get(|| async { Html(REVOKE) }))
        .route(routes::SIGNIN_PAGE, get(|| async { Html(SIGNIN) }))
        .route(routes::APPROVE_PAGE, get(|| async { Html(APPROVE) }))
        .route(routes::DECIDE_PAGE, get(|| async { Html(DECIDE) }))
        .route(
            routes::SCRIPT,
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    SCRIPT,
                )
                    .into_response()
            }),
        )
        .route(
            "/static/jit-ssh.css",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
            }),
        )
}
