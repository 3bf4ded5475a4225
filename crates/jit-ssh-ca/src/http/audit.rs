//! `/v1/audit`: pages of records for signed-in users, and the export
//! stream (JSON lines ending in a checkpoint signed for it).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use jit_ssh_proto::api::{AuditPage, AuditParams};
use jit_ssh_proto::routes;

use super::json::ApiQuery;
use super::{blocking, ApiError, AppState};
use crate::service::SignedIn;

/// Records are sent in chunks of about this many bytes.
const CHUNK: usize = 256 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::AUDIT, get(page))
        .route(routes::AUDIT_EXPORT, get(export))
}

async fn page(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<AuditParams>,
    who: SignedIn,
) -> Result<Json<AuditPage>, ApiError> {
    blocking(&state, move |ca| ca.audit_page(&who, &params))
        .await
        .map(Json)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportParams {
    since: Option<String>,
}

async fn export(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ExportParams>,
    who: SignedIn,
) -> Result<Response, ApiError> {
    let (from, to) = blocking(&state, move |ca| {
        ca.export_range(&who, params.since.as_deref())
    })
    .await?;
    // A blocking reader feeds the response through a small channel, so a
    // slow client holds back the reader instead of filling memory.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let ca = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut buf = Vec::with_capacity(CHUNK + 4096);
        let mut sink = |rec: &[u8]| {
            buf.extend_from_slice(rec);
            buf.push(b'\n');
            if buf.len() >= CHUNK {
                let chunk = Bytes::from(std::mem::replace(
                    &mut buf,
                    Vec::with_capacity(CHUNK + 4096),
                ));
                return tx.blocking_send(Ok(chunk)).is_ok();
            }
            true
        };
        match ca.export_records(from, to, &mut sink) {
            Ok(_) if !buf.is_empty() => drop(tx.blocking_send(Ok(Bytes::from(buf)))),
            Ok(_) => {}
            // Cut the stream short: the export then fails verification
            // instead of passing for complete.
            Err(e) => drop(tx.blocking_send(Err(std::io::Error::other(e.to_string())))),
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}
