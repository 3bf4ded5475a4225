//! Who a call comes from, as extractors: a handler that needs a secret or
//! a signed-in user says so in its signature, and a call without one is
//! refused (401) before the handler runs.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::error::unauthorized;
use super::{blocking, ApiError, AppState};
use crate::service::SignedIn;

/// The secret a creator was given (a request's, revocation's, decision's
/// or sign-in's), from `Authorization: Bearer SECRET`.
pub(super) struct RequestSecret(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestSecret {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        bearer(parts).map(Self).ok_or_else(unauthorized)
    }
}

fn bearer(parts: &Parts) -> Option<String> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(|s| s.trim().to_owned())
}

/// The signed-in user behind `Authorization: Bearer ID.SECRET` (an active
/// session, of a user not blocked), with the roles it carries.
impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(unauthorized)?;
        blocking(state, move |ca| ca.authenticate(&token)).await
    }
}
