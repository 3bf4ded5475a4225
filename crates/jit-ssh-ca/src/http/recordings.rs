//! `/v1/recordings`: hosts upload session recordings (authenticated by
//! the chunks' host signatures); auditors list and download them.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};

use jit_ssh_proto::recordings::{
    RecordingList, RecordingParams, RecordingUpload, RecordingUploaded, MAX_UPLOAD_BYTES,
};
use jit_ssh_proto::routes;

use super::json::{ApiJson, ApiQuery};
use super::{blocking, recording_stream, ApiError, AppState};
use crate::service::SignedIn;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::RECORDINGS, get(list))
        .route(routes::RECORDING, get(download).post(upload))
        // The one route above the global limit: an upload carries chunks
        // of up to 64 KiB of events each, compressed, several at a time.
        // This inner layer overrides the router-wide one.
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
}

async fn upload(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(session): Path<String>,
    body: Result<ApiJson<RecordingUpload>, ApiError>,
) -> Result<Json<RecordingUploaded>, ApiError> {
    // The shared refusal names the global limit; this route has its own.
    let ApiJson(body) = body.map_err(|mut e| {
        if e.status == StatusCode::PAYLOAD_TOO_LARGE {
            e.message = format!(
                "body too large or unreadable (limit {MAX_UPLOAD_BYTES} bytes for an upload; send fewer chunks at a time)"
            );
        }
        e
    })?;
    Ok(Json(
        blocking(&state, move |ca| {
            ca.upload_recording(&session, &body, client)
        })
        .await?,
    ))
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<RecordingParams>,
    who: SignedIn,
) -> Result<Json<RecordingList>, ApiError> {
    Ok(Json(
        blocking(&state, move |ca| ca.recording_list(&who, &params)).await?,
    ))
}

async fn download(
    State(state): State<AppState>,
    Path(session): Path<String>,
    who: SignedIn,
) -> Result<Response, ApiError> {
    let (d, bundle) = blocking(&state, move |ca| ca.recording_download(&who, &session)).await?;
    recording_stream::respond(&d, bundle)
}
