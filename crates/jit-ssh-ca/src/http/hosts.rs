//! `/v1/hosts/enroll`: a host with an enrollment token proves its host key
//! and gets a host certificate; `/v1/hosts/checkin`: an enrolled host
//! reports what it holds and renews its certificate; `/v1/hosts`: the
//! inventory; `/v1/host-ca-keys`: the signed host CA key set clients put
//! in known_hosts.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use jit_ssh_proto::host_checkin::{HostCheckedIn, HostCheckin, HostCheckinStart};
use jit_ssh_proto::hosts::{HostEnrollChallenge, HostEnrollFinish, HostEnrollStart, HostEnrolled};
use jit_ssh_proto::routes;
use jit_ssh_proto::signed::SignedDocument;

use super::json::ApiJson;
use super::{blocking, ApiError, AppState};
use crate::service::SignedIn;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::HOSTS_ENROLL, post(start))
        .route(routes::HOST_ENROLL_FINISH, post(finish))
        .route(routes::HOST_CA_KEYS, get(host_ca_keys))
        .route(routes::HOSTS, get(list))
        .route(routes::HOSTS_CHECKIN, post(checkin_start))
        .route(routes::HOST_CHECKIN_FINISH, post(checkin_finish))
}

async fn list(
    State(state): State<AppState>,
    who: SignedIn,
) -> Result<Json<jit_ssh_proto::hosts::HostList>, ApiError> {
    Ok(Json(blocking(&state, move |ca| ca.host_list(&who)).await?))
}

async fn start(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<HostEnrollStart>,
) -> Result<(StatusCode, Json<HostEnrollChallenge>), ApiError> {
    let challenge = blocking(&state, move |ca| ca.host_enroll_start(&body, client)).await?;
    Ok((StatusCode::CREATED, Json(challenge)))
}

async fn finish(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<HostEnrollFinish>,
) -> Result<Json<HostEnrolled>, ApiError> {
    Ok(Json(
        blocking(&state, move |ca| ca.host_enroll_finish(&id, &body, client)).await?,
    ))
}

async fn host_ca_keys(State(state): State<AppState>) -> Result<Json<SignedDocument>, ApiError> {
    Ok(Json(blocking(&state, |ca| ca.host_ca_keys()).await?))
}

async fn checkin_start(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<HostCheckinStart>,
) -> Result<(StatusCode, Json<HostEnrollChallenge>), ApiError> {
    let challenge = blocking(&state, move |ca| ca.host_checkin_start(&body, client)).await?;
    Ok((StatusCode::CREATED, Json(challenge)))
}

async fn checkin_finish(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<HostCheckin>,
) -> Result<Json<HostCheckedIn>, ApiError> {
    Ok(Json(
        blocking(&state, move |ca| ca.host_checkin_finish(&id, &body, client)).await?,
    ))
}
