//! `/metrics` for Prometheus. On the main listener only with a bearer
//! token (`[metrics] token_file`) and only when metrics have no listener
//! of their own (`[metrics] listen`); on their own listener, the token is
//! asked for when one is set. A missing or wrong token is 401; metrics not
//! served here are 404, like any unknown route.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use jit_ssh_proto::error::code;
use jit_ssh_proto::routes;

use super::{blocking, ApiError, AppState};
use crate::service::ServiceError;

/// The Prometheus text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn routes() -> Router<AppState> {
    Router::new().route(routes::METRICS, get(main_listener))
}

/// The router of the separate metrics listener: `/metrics`, `/livez`,
/// `/readyz`, nothing else.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route(routes::METRICS, get(own_listener))
        .merge(super::health::routes())
        .fallback(|| async { ApiError::from(ServiceError::NotFound("route")) })
        .with_state(state)
}

async fn main_listener(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.config.metrics.listen.is_some() {
        return ApiError::from(ServiceError::NotFound("route")).into_response();
    }
    match state.metrics.token_ok(authorization(&headers)) {
        Some(true) => render(state).await,
        Some(false) => unauthorized(),
        None => ApiError::from(ServiceError::NotFound("route")).into_response(),
    }
}

async fn own_listener(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match state.metrics.token_ok(authorization(&headers)) {
        Some(false) => unauthorized(),
        Some(true) | None => render(state).await,
    }
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

fn unauthorized() -> Response {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        code::UNAUTHORIZED,
        "send the metrics bearer token ([metrics] token_file)",
    )
    .into_response()
}

async fn render(state: AppState) -> Response {
    match blocking(&state, |ca| Ok(ca.metrics.render(ca))).await {
        Ok(text) => {
            let mut res = text.into_response();
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            res
        }
        Err(e) => e.into_response(),
    }
}
