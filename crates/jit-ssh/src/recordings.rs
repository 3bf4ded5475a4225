//! `jit-ssh audit sessions` and `audit play`: list the session
//! recordings the CA holds, and play one (or write it as a plain
//! asciicast v2 file) only after checking every chunk's host signature,
//! the hash chain, and that it stops at the final hash the CA's
//! `session_ended` audit record names. A tampered recording is refused,
//! naming the chunk.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};
use ssh_key::PublicKey;

use jit_ssh_proto::recordings::{RecordingDownload, RecordingList, RecordingParams};
use jit_ssh_proto::text::escape_for_terminal;
use jit_ssh_recording::{bundle, verify, ChainHash, EventKind, PlayOptions, Verified};

use crate::ca_client::CaClient;
use crate::error::ClientError;
use crate::play_filter::PlayFilter;
use crate::session::{signed_in, SignIn};
use crate::settings::Settings;

/// Every page of the listing, each printed as it comes.
pub async fn list(
    settings: &Settings,
    how: &SignIn,
    mut params: RecordingParams,
    json: bool,
) -> Result<(), ClientError> {
    params.limit = params.limit.or(Some(crate::recordings_pages::PAGE));
    let client = CaClient::new(settings)?;
    let (token, first) = signed_in(&client, settings, how, |token| {
        let (client, params) = (&client, params.clone());
        async move {
            let first = client.recordings(&token, &params).await?;
            Ok((token, first))
        }
    })
    .await?;
    print_heading(json);
    crate::recordings_pages::each_page(
        &params,
        first,
        |p| {
            let (client, token) = (&client, token.clone());
            async move { client.recordings(&token, &p).await }
        },
        |page| print(page, json),
    )
    .await
}

pub async fn fetch(
    settings: &Settings,
    how: &SignIn,
    session: &str,
) -> Result<RecordingDownload, ClientError> {
    let client = CaClient::new(settings)?;
    signed_in(&client, settings, how, |token| {
        let client = &client;
        async move { client.recording(&token, session).await }
    })
    .await
}

/// The table's heading (JSON lines have none).
fn print_heading(json: bool) {
    if !json {
        println!(
            "{:<24} {:<12} {:<20} {:<10} {:<20} {:<20} {:>10}  GRANT / SERIAL",
            "SESSION", "USER", "HOST", "ACCOUNT", "STARTED", "ENDED", "BYTES"
        );
    }
}

/// One page's rows.
pub fn print(list: &RecordingList, json: bool) -> Result<(), ClientError> {
    if json {
        for r in &list.recordings {
            println!(
                "{}",
                serde_json::to_string(r).map_err(|e| ClientError::Other(e.into()))?
            );
        }
        return Ok(());
    }
    for r in &list.recordings {
        let ended = match (&r.ended_at, &r.reason) {
            (Some(at), Some(why)) => format!("{at} ({why})"),
            _ => "open".to_owned(),
        };
        let line = format!(
            "{:<24} {:<12} {:<20} {:<10} {:<20} {:<20} {:>10}  {} / {}",
            r.session,
            r.user,
            r.host,
            r.account,
            r.started_at,
            ended,
            r.output_bytes.unwrap_or(r.stored_bytes),
            r.grant,
            r.serial
        );
        println!("{}", escape_for_terminal(&line));
    }
    Ok(())
}

/// Checks a downloaded recording: bundle, host signatures, chain, and the
/// final hash from the audit record (an open session has none: then only
/// what was uploaded so far is checked, and the caller is told).
pub fn check(d: &RecordingDownload) -> Result<Verified, ClientError> {
    let failed = |m: String| ClientError::VerifyFailed(m);
    // An ended session checked without its final hash would not notice
    // a cut-off tail: the CA's listing says it ended, so the audit record
    // that vouches for its end must be there.
    if d.summary.ended_at.is_some() && d.final_hash.is_none() {
        return Err(failed(format!(
            "session {} ended, but the CA found no session_ended audit record to check it against",
            d.summary.session
        )));
    }
    let bytes = Base64::decode_vec(&d.bundle)
        .map_err(|e| failed(format!("the recording: not base64 ({e})")))?;
    let (header, chunks) = bundle::read(&bytes[..]).map_err(|e| failed(e.to_string()))?;
    let key =
        PublicKey::from_openssh(&d.host_key).map_err(|e| failed(format!("the host key: {e}")))?;
    let fingerprint = key.fingerprint(ssh_key::HashAlg::Sha256).to_string();
    if fingerprint != d.host_key_fingerprint {
        return Err(failed(format!(
            "the host key: {fingerprint} is not the key the session_started audit record names ({:?})",
            d.host_key_fingerprint
        )));
    }
    let expected = d
        .final_hash
        .as_deref()
        .map(|h| h.parse::<ChainHash>())
        .transpose()
        .map_err(|e| failed(format!("the audit record's final hash: {e}")))?;
    verify(&header, chunks, &key, expected.as_ref()).map_err(|e| failed(e.to_string()))
}

/// Writes the plain asciicast v2 file (`-` for stdout) stock
/// `asciinema cat` / `asciinema play` read.
pub fn write_cast(v: &Verified, to: &Path) -> Result<(), ClientError> {
    let err = |e: jit_ssh_recording::play::PlayError| {
        ClientError::Other(anyhow::anyhow!("writing {}: {e}", to.display()))
    };
    if to == Path::new("-") {
        return v.to_asciicast(std::io::stdout().lock()).map_err(err);
    }
    let f = std::fs::File::create(to)
        .map_err(|e| ClientError::Other(anyhow::anyhow!("creating {}: {e}", to.display())))?;
    v.to_asciicast(std::io::BufWriter::new(f)).map_err(err)
}

/// Plays the output events to this terminal in real time (scaled).
pub fn play(v: &Verified, options: PlayOptions) -> Result<(), ClientError> {
    play_to(v, options, std::io::stdout().lock())
}

/// Plays the output events to `out` in real time (scaled), through
/// [`PlayFilter`]: what the session drew, not what would talk to the
/// auditor's terminal.
pub fn play_to(v: &Verified, options: PlayOptions, mut out: impl Write) -> Result<(), ClientError> {
    let err = |e: jit_ssh_recording::play::PlayError| ClientError::Usage(e.to_string());
    let start = Instant::now();
    let mut shown = PlayFilter::new();
    for frame in v.play(options).map_err(err)? {
        let frame = frame.map_err(|e| ClientError::VerifyFailed(e.to_string()))?;
        if frame.event.kind != EventKind::Output {
            continue;
        }
        if let Some(wait) = frame.at.checked_sub(start.elapsed()) {
            std::thread::sleep(wait.min(Duration::from_secs(3600)));
        }
        out.write_all(shown.filter(&frame.event.data).as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| ClientError::Other(e.into()))?;
    }
    out.write_all(shown.finish().as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| ClientError::Other(e.into()))
}

pub fn sessions_command(
    flags: &crate::settings::Overrides,
    how: &SignIn,
    params: RecordingParams,
    json: bool,
) -> Result<(), ClientError> {
    let settings = Settings::resolve(flags)?;
    crate::commands::runtime()?.block_on(list(&settings, how, params, json))
}

pub fn play_command(
    flags: &crate::settings::Overrides,
    how: &SignIn,
    session: &str,
    speed: f64,
    idle_limit: Option<f64>,
    to: Option<&Path>,
) -> Result<(), ClientError> {
    let idle_limit = idle_limit
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    ClientError::Usage("--idle-limit: a positive number of seconds".into())
                })
        })
        .transpose()?;
    let settings = Settings::resolve(flags)?;
    let d = crate::commands::runtime()?.block_on(fetch(&settings, how, session))?;
    let v = check(&d)?;
    if d.final_hash.is_none() {
        eprintln!(
            "jit-ssh: session {session} has not ended: checked the {} chunks uploaded so far",
            v.chunks().len()
        );
    }
    match to {
        Some(to) => write_cast(&v, to),
        None => play(&v, PlayOptions { speed, idle_limit }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use jit_ssh_proto::recordings::RecordingSummary;
    use jit_ssh_recording::{
        ChunkPolicy, Encoder, EndReason, Header, RecordMode, SessionId, SessionInfo,
    };
    use ssh_key::{Algorithm, PrivateKey};

    use super::*;

    fn download(tamper: Option<usize>) -> (RecordingDownload, String) {
        let key = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519).unwrap();
        let header = Header {
            width: 80,
            height: 24,
            timestamp: 1,
            env: Default::default(),
            session: SessionInfo {
                session_id: SessionId::try_from("s-1").unwrap(),
                key_id: "k".into(),
                serial: "7".into(),
                grant_id: "g".into(),
                user: "alice".into(),
                host: "db-1.dev".into(),
                account: "oncall".into(),
                record: RecordMode::Output,
            },
        };
        let policy = ChunkPolicy {
            max_raw_bytes: 1024,
            ..ChunkPolicy::default()
        };
        let mut enc = Encoder::new(&header, key.clone(), policy).unwrap();
        let mut chunks = Vec::new();
        for i in 0..10u64 {
            let line = format!("$ echo {i}\r\n{}\r\n", "y".repeat(600));
            chunks.extend(
                enc.push_output(Duration::from_millis(50 * i), line.as_bytes())
                    .unwrap(),
            );
        }
        let line = enc.header_line().to_owned();
        let done = enc.finish(Duration::from_secs(1), EndReason::Exit).unwrap();
        chunks.extend(done.chunks);
        if let Some(i) = tamper {
            // Another chunk from a different recording at position i.
            chunks.swap(i, i + 1);
        }
        let mut b = Vec::new();
        bundle::write(&mut b, &line, &chunks).unwrap();
        let d = RecordingDownload {
            summary: RecordingSummary {
                session: "s-1".into(),
                user: "alice".into(),
                host: "db-1.dev".into(),
                account: "oncall".into(),
                grant: "g".into(),
                serial: 7,
                key_id: "k".into(),
                record: "output".into(),
                started_at: String::new(),
                ended_at: None,
                reason: None,
                chunks: chunks.len() as u64,
                stored_bytes: 0,
                output_bytes: None,
            },
            host_key: key.public_key().to_openssh().unwrap(),
            host_key_fingerprint: key
                .public_key()
                .fingerprint(ssh_key::HashAlg::Sha256)
                .to_string(),
            final_hash: Some(done.final_hash.to_string()),
            session_ended_seq: Some(9),
            bundle: Base64::encode_string(&b),
        };
        (d, line)
    }

    #[test]
    fn a_checked_recording_writes_a_plain_asciicast_and_a_reordered_one_is_refused_naming_the_chunk(
    ) {
        let (d, line) = download(None);
        let v = check(&d).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s.cast");
        write_cast(&v, &path).unwrap();
        let cast = std::fs::read_to_string(&path).unwrap();
        let mut lines = cast.lines();
        assert_eq!(lines.next(), Some(&*line));
        let first: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(first[1], "o");
        assert!(first[2].as_str().unwrap().starts_with("$ echo 0\r\n"));
        assert!(cast.contains("$ echo 9\\r\\n"));
        // Stock asciinema reads it (run under script: it opens /dev/tty).
        if Path::new("/usr/bin/asciinema").exists() {
            let out = std::process::Command::new("script")
                .args([
                    "-qec",
                    &format!("asciinema cat {}", path.display()),
                    "/dev/null",
                ])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success() && text.contains("$ echo 9"), "{text}");
        }

        let (bad, _) = download(Some(2));
        let e = check(&bad).unwrap_err().to_string();
        assert!(e.contains("chunk 2: expected index 2, found 3"), "{e}");

        // A host key other than the audit's: refused.
        let (mut other, _) = download(None);
        other.host_key_fingerprint = "SHA256:x".into();
        let e = check(&other).unwrap_err().to_string();
        assert!(e.contains("session_started"), "{e}");

        // The audit's final hash is another one: refused.
        let (mut other, _) = download(None);
        other.final_hash = Some("00".repeat(32));
        let e = check(&other).unwrap_err().to_string();
        assert!(e.contains("final chain hash"), "{e}");

        // Ended, but no session_ended record came with it: refused, not
        // checked as if it were still open.
        let (mut other, _) = download(None);
        other.summary.ended_at = Some("2026-11-29T12:00:00Z".into());
        other.final_hash = None;
        let e = check(&other).unwrap_err().to_string();
        assert!(e.contains("no session_ended audit record"), "{e}");
    }
}

#[cfg(test)]
#[path = "play_tests.rs"]
mod play_tests;
