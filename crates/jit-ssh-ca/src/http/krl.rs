//! `/v1/krl.manifest`, `/v1/krl` and `/v1/krl.sig`: what `jit-ssh host sync`
//! fetches (the signed manifest, then the KRL it names), and the detached
//! signature for people checking a KRL with `ssh-keygen -Y verify`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use jit_ssh_proto::routes;

use super::{blocking, ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::KRL, get(krl))
        .route(routes::KRL_SIG, get(signature))
        .route(routes::KRL_MANIFEST, get(manifest))
}

async fn manifest(State(state): State<AppState>) -> Result<Response, ApiError> {
    let (_, signed) = blocking(&state, |ca| ca.krl_manifest()).await?;
    let mut res = Json(signed).into_response();
    // Each answer carries its own signing time: never serve a cached one.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

fn etag(version: u64) -> String {
    format!("\"v{version}\"")
}

async fn krl(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let published = blocking(&state, |ca| ca.krl()).await?;
    let tag = etag(published.version);
    let mut res = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let body: Vec<u8> = published.bytes.as_ref().clone();
        ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        routes::KRL_VERSION_HEADER,
        HeaderValue::from(published.version),
    );
    Ok(res)
}

async fn signature(State(state): State<AppState>) -> Result<Response, ApiError> {
    let published = blocking(&state, |ca| ca.krl()).await?;
    let mut res = (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        published.signature.as_ref().clone(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&etag(published.version)) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res.headers_mut().insert(
        routes::KRL_VERSION_HEADER,
        HeaderValue::from(published.version),
    );
    Ok(res)
}
