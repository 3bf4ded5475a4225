//! The CA's HTTP interface. The router is built from one module per
//! resource; route paths come from `jit-ssh-proto`. `app(state)` is all a
//! test needs (`tower::ServiceExt::oneshot`).

mod audit;
mod auth;
mod ca_keys;
mod confirm;
mod deadline;
mod decisions;
mod enroll;
mod error;
mod error_shape;
mod health;
mod hosts;
mod json;
mod krl;
mod metrics;
mod pages;
mod reach;
mod recording_stream;
mod recordings;
mod requests;
mod revocations;
mod sessions;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;

pub use error::{ApiError, ErrorCode};
pub use metrics::metrics_app;

use crate::service::{Ca, ServiceError};

/// Bodies above this are refused: the largest legitimate one, a WebAuthn
/// registration, is a few kilobytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

pub type AppState = Arc<Ca>;

/// The whole router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(requests::routes())
        .merge(enroll::routes())
        .merge(ca_keys::routes())
        .merge(krl::routes())
        .merge(hosts::routes())
        .merge(reach::routes())
        .merge(revocations::routes())
        .merge(sessions::routes())
        .merge(recordings::routes())
        .merge(decisions::routes())
        .merge(audit::routes())
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(pages::routes())
        .fallback(|| async { ApiError::from(ServiceError::NotFound("route")) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            deadline::body_deadline,
        ))
        .layer(middleware::from_fn(error_shape::json_errors))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn(access_log))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::http::track,
        ))
        .with_state(state)
}

/// Runs a blocking CA operation (storage, fsync) off the async workers.
pub(crate) async fn blocking<T, F>(state: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Ca) -> Result<T, ServiceError> + Send + 'static,
{
    let ca = state.clone();
    tokio::task::spawn_blocking(move || f(&ca))
        .await
        .map_err(|e| ApiError::from(ServiceError::Internal(format!("worker failed: {e}"))))?
        .map_err(ApiError::from)
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

/// Logs method, route template, status and latency. Never the raw path or
/// query: they carry request ids and one-time enrollment tokens.
async fn access_log(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().clone();
    let start = Instant::now();
    let res = next.run(req).await;
    tracing::info!(%method, route, status = res.status().as_u16(), micros = start.elapsed().as_micros() as u64, "http");
    res
}
