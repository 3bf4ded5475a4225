//! One error type for every handler: status + stable code + message, as
//! `{"error": {"code", "message"}}`. Internal details stay in the log.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use jit_ssh_proto::error::{code, ErrorBody, ErrorDetail};

use crate::service::ServiceError;

/// The error code of an error response, for the metrics layer (which
/// sees the response, not its JSON).
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let status = match &e {
            ServiceError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
            ServiceError::Unauthorized | ServiceError::MfaFailed(_) => StatusCode::UNAUTHORIZED,
            ServiceError::NotEnrolled(_)
            | ServiceError::Forbidden(_)
            | ServiceError::UserBlocked(_) => StatusCode::FORBIDDEN,
            ServiceError::WrongState(_) => StatusCode::CONFLICT,
            ServiceError::InviteInvalid => StatusCode::GONE,
            ServiceError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ServiceError::Unavailable(_) | ServiceError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServiceError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
        };
        let message = match &e {
            // Say what failed in general terms; the log has the details.
            ServiceError::Internal(_) => {
                "internal error; nothing was issued (the CA's log has details)".to_owned()
            }
            other => other.to_string(),
        };
        Self {
            status,
            code: e.code(),
            message,
            retry_after: match e {
                ServiceError::RateLimited(s) => Some(s),
                // Long enough for a pool to find the database back.
                ServiceError::Unavailable(_) => Some(5),
                // The other changes are done within moments.
                ServiceError::Busy(_) => Some(1),
                // Room comes back when an operator frees it or retention
                // prunes: not within seconds.
                ServiceError::InsufficientStorage(_) => Some(60),
                _ => None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut res = (self.status, Json(body)).into_response();
        res.extensions_mut().insert(ErrorCode(self.code));
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of a body that came too slowly is never read: the
            // connection cannot carry another request.
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(s) = self
            .retry_after
            .and_then(|s| HeaderValue::from_str(&s.to_string()).ok())
        {
            res.headers_mut().insert(header::RETRY_AFTER, s);
        }
        res
    }
}

pub(crate) fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        code::UNAUTHORIZED,
        "missing or wrong request secret",
    )
}
