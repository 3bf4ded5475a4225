//! `/v1/reach`: what the signed-in user may reach (`jit-ssh hosts`).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use jit_ssh_proto::reach::{ReachList, ReachParams};
use jit_ssh_proto::routes;

use super::json::ApiQuery;
use super::{blocking, ApiError, AppState};
use crate::service::SignedIn;

pub fn routes() -> Router<AppState> {
    Router::new().route(routes::REACH, get(reach))
}

async fn reach(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ReachParams>,
    who: SignedIn,
) -> Result<Json<ReachList>, ApiError> {
    blocking(&state, move |ca| ca.reach(&who, &params))
        .await
        .map(Json)
}
