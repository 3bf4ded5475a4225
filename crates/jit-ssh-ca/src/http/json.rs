//! Body and query extractors whose refusals use the API's error body.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use jit_ssh_proto::error::code;

use super::deadline::BodyTimedOut;
use super::ApiError;

pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(unsupported_media_type());
        }
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(refusal(rejection)),
        }
    }
}

/// Exactly `application/json`, with optional parameters (`; charset=utf-8`).
/// axum also takes `application/*+json`; the API promises 415 for those.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        code::UNSUPPORTED_MEDIA_TYPE,
        "send Content-Type: application/json",
    )
}

/// Whether reading the body failed because it came too slowly.
fn timed_out(r: &JsonRejection) -> Option<&BodyTimedOut> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(r);
    while let Some(e) = source {
        if let Some(t) = e.downcast_ref::<BodyTimedOut>() {
            return Some(t);
        }
        source = e.source();
    }
    None
}

fn refusal(r: JsonRejection) -> ApiError {
    if let Some(t) = timed_out(&r) {
        return ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            code::REQUEST_TIMEOUT,
            t.to_string(),
        );
    }
    match r {
        JsonRejection::JsonDataError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            e.body_text(),
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            format!("malformed JSON: {}", e.body_text()),
        ),
        JsonRejection::MissingJsonContentType(_) => unsupported_media_type(),
        JsonRejection::BytesRejection(_) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::PAYLOAD_TOO_LARGE,
            format!(
                "body too large or unreadable (limit {} bytes)",
                super::MAX_BODY_BYTES
            ),
        ),
        other => ApiError::new(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            other.body_text(),
        ),
    }
}

/// A query-string extractor whose refusals use the API's error body.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(r) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                code::INVALID_REQUEST,
                r.body_text(),
            )),
        }
    }
}
