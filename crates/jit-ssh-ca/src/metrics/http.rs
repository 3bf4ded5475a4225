//! Counting at the HTTP layer, where every outcome is visible without
//! touching the service: requests by route template and status, WebAuthn
//! ceremonies by result, and rate-limit refusals. Route templates
//! (`/v1/requests/{id}`), never paths: paths hold ids and tokens.

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use jit_ssh_proto::routes;

use super::{CEREMONIES, HTTP_REQUESTS, RATE_LIMITED};
use crate::http::{AppState, ErrorCode};

/// The routes that finish a WebAuthn ceremony, and what each confirms.
pub const CEREMONIES_BY_ROUTE: &[(&str, &str)] = &[
    (routes::MFA_FINISH, "access_request"),
    (routes::DECISION_MFA_FINISH, "decision"),
    (routes::REVOCATION_MFA_FINISH, "revocation"),
    (routes::SESSION_MFA_FINISH, "sign_in"),
    (routes::ENROLL_FINISH, "enrollment"),
];

pub async fn track(State(ca): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let res = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", |r| r.as_str());
    let status = res.status();
    let m = &ca.metrics;
    m.counter(
        HTTP_REQUESTS,
        &[("route", route), ("status", status.as_str())],
    )
    .increment(1);
    if status == StatusCode::TOO_MANY_REQUESTS {
        m.counter(RATE_LIMITED, &[("route", route)]).increment(1);
    }
    if let Some((_, ceremony)) = CEREMONIES_BY_ROUTE.iter().find(|(r, _)| *r == route) {
        let result = if status.is_success() {
            "ok"
        } else {
            res.extensions().get::<ErrorCode>().map_or("error", |c| c.0)
        };
        m.counter(CEREMONIES, &[("ceremony", ceremony), ("result", result)])
            .increment(1);
    }
    res
}
