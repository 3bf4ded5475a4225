//! Every error response in the API's one shape. Handlers and our own
//! extractors already answer `{"error":{"code","message"}}`; this catches
//! what the router and axum's extractors answer themselves — 404 and 405
//! from routing, path and query rejections, 413 from the body limit — in
//! plain text or with no body at all.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use jit_ssh_proto::error::code;

use super::ApiError;

/// Longest plain-text message carried over from axum's rejection.
const MAX_MESSAGE: usize = 300;

pub(super) async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) || !is_plain(&res) {
        return res;
    }
    let (parts, body) = res.into_parts();
    // Rejection texts are short; a body that is not is not one of them.
    let text = match axum::body::to_bytes(body, 4096).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_owned(),
        Err(_) => String::new(),
    };
    let (code, default) = code_for(status);
    let message = if text.is_empty() {
        default.to_owned()
    } else {
        text.chars().take(MAX_MESSAGE).collect()
    };
    // axum answers 422 for JSON of the wrong shape; the API says 400.
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    let mut fixed = ApiError::new(status, code, message).into_response();
    // Keep what the original said beyond its body (Allow on a 405,
    // Retry-After, Connection: close), but not its length or type.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().append(name.clone(), value.clone());
        }
    }
    fixed
}

/// Bodies we rewrite: none, or plain text (what axum's own rejections
/// send). JSON is ours already; HTML pages are left to the pages.
fn is_plain(res: &Response<Body>) -> bool {
    match res.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(v) => v
            .to_str()
            .map(|s| {
                s.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/plain")
            })
            .unwrap_or(true),
    }
}

fn code_for(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::NOT_FOUND => (code::NOT_FOUND, "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => (
            code::METHOD_NOT_ALLOWED,
            "this method is not allowed here (see the Allow header)",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (code::PAYLOAD_TOO_LARGE, "the body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            code::UNSUPPORTED_MEDIA_TYPE,
            "send Content-Type: application/json",
        ),
        StatusCode::REQUEST_TIMEOUT => {
            (code::REQUEST_TIMEOUT, "the request took too long to arrive")
        }
        StatusCode::TOO_MANY_REQUESTS => (code::RATE_LIMITED, "too many requests"),
        s if s.is_server_error() => (
            code::INTERNAL,
            "internal error; nothing was issued (the CA's log has details)",
        ),
        StatusCode::UNAUTHORIZED => (code::UNAUTHORIZED, "unauthorized"),
        StatusCode::FORBIDDEN => (code::FORBIDDEN, "forbidden"),
        _ => (code::INVALID_REQUEST, "the request is not valid"),
    }
}
