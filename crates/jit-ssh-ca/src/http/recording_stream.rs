//! A recording download sent as it is read: the JSON of
//! [`RecordingDownload`] with the bundle's base64 streamed into its last
//! field. A recording can be as large as a recorded session made it
//! (the host caps only what it has not uploaded), so the CA never holds
//! it: a small channel between a blocking reader and the response, as
//! the audit export does.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64ct::{Base64, Encoding};

use jit_ssh_proto::recordings::RecordingDownload;

use super::ApiError;
use crate::service::ServiceError;

/// Bundle bytes per base64 piece: a multiple of 3, so the pieces join
/// into one base64 text with padding only at its end.
const BLOCK: usize = 48 * 1024;

pub(super) fn respond(
    d: &RecordingDownload,
    bundle: Box<dyn Read + Send>,
) -> Result<Response, ApiError> {
    let internal = |why: String| ApiError::from(ServiceError::Internal(why));
    let mut head = serde_json::to_vec(d).map_err(|e| internal(e.to_string()))?;
    // `bundle` is the struct's last field and empty: cut `""}` back to
    // the opening quote.
    if !d.bundle.is_empty() || !head.ends_with(b"\"bundle\":\"\"}") {
        return Err(internal(
            "the download's JSON does not end with its bundle".into(),
        ));
    }
    head.truncate(head.len() - 2);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || pump(head, bundle, &tx));
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Sends `head`, the base64 of `bundle` piece by piece, and the JSON's
/// end; stops when the client is gone. A read error cuts the answer
/// short (the client sees a broken answer, never a shorter recording
/// passing as whole).
fn pump(
    head: Vec<u8>,
    mut bundle: Box<dyn Read + Send>,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    if tx.blocking_send(Ok(Bytes::from(head))).is_err() {
        return;
    }
    let mut buf = vec![0u8; BLOCK];
    loop {
        let n = match fill(&mut bundle, &mut buf) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "reading a recording for a download");
                drop(tx.blocking_send(Err(e)));
                return;
            }
        };
        if n > 0 {
            let piece = Base64::encode_string(&buf[..n]);
            if tx.blocking_send(Ok(Bytes::from(piece))).is_err() {
                return;
            }
        }
        if n < BLOCK {
            break;
        }
    }
    drop(tx.blocking_send(Ok(Bytes::from_static(b"\"}"))));
}

/// Reads until `buf` is full or the input ends.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use http_body_util::BodyExt;
    use jit_ssh_proto::recordings::RecordingSummary;

    use super::*;

    fn download(bundle: String) -> RecordingDownload {
        RecordingDownload {
            summary: RecordingSummary {
                session: "s-1".into(),
                user: "alice".into(),
                host: "db-1.dev".into(),
                account: "oncall".into(),
                grant: "g".into(),
                serial: 7,
                key_id: "k \"quoted\"".into(),
                record: "output".into(),
                started_at: "2026-11-30T10:00:00Z".into(),
                ended_at: None,
                reason: None,
                chunks: 3,
                stored_bytes: 9,
                output_bytes: None,
            },
            host_key: "ssh-ed25519 AAAA".into(),
            host_key_fingerprint: "SHA256:x".into(),
            final_hash: Some("ab".repeat(32)),
            session_ended_seq: Some(12),
            bundle,
        }
    }

    #[tokio::test]
    async fn the_streamed_answer_is_the_json_of_the_whole_download() {
        // Sizes around the block size and its padding.
        for len in [0, 1, 2, 3, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 2] {
            let bundle: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let whole = serde_json::to_vec(&download(Base64::encode_string(&bundle))).unwrap();
            let res = respond(
                &download(String::new()),
                Box::new(std::io::Cursor::new(bundle)),
            )
            .unwrap();
            let got = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(got, whole, "{len} bytes");
        }
    }

    #[tokio::test]
    async fn a_read_error_breaks_the_answer_instead_of_ending_it() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::other("disk error"));
                }
                let n = buf.len().min(self.0);
                self.0 -= n;
                Ok(n)
            }
        }
        let res = respond(&download(String::new()), Box::new(Failing(BLOCK * 2))).unwrap();
        assert!(res.into_body().collect().await.is_err());
    }
}
