use super::*;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use jit_ssh_recording::{ChunkPolicy, Encoder, EndReason, Header, RecordMode, SessionId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A stand-in CA on 127.0.0.1: answers each upload with the next canned
/// `(status, body)` (the last one again when they run out) and keeps the
/// bodies it was sent.
struct FakeCa {
    url: Url,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

fn error(code: &str, message: &str) -> String {
    serde_json::json!({"error": {"code": code, "message": message}}).to_string()
}

async fn fake_ca(answers: Vec<(u16, String)>) -> FakeCa {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
    let seen = bodies.clone();
    tokio::spawn(async move {
        'accept: loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut piece = vec![0u8; 64 * 1024];
            let body = loop {
                let n = conn.read(&mut piece).await.unwrap_or(0);
                if n == 0 {
                    // Closed before a whole request: not one.
                    continue 'accept;
                }
                buf.extend_from_slice(&piece[..n]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if buf.len() >= end + 4 + len {
                    break buf[end + 4..end + 4 + len].to_vec();
                }
            };
            seen.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap());
            let (status, text) = {
                let mut a = answers.lock().unwrap();
                if a.len() > 1 {
                    a.pop_front().unwrap()
                } else {
                    a.front().unwrap().clone()
                }
            };
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
            conn.write_all(reply.as_bytes()).await.unwrap();
            let _ = conn.shutdown().await;
        }
    });
    FakeCa { url, bodies }
}

impl FakeCa {
    fn requests(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }

    /// The index of the first chunk of request `i`.
    fn first_chunk(&self, i: usize) -> u64 {
        let b = self.bodies.lock().unwrap()[i]["chunks"][0]
            .as_str()
            .unwrap()
            .to_owned();
        let bytes = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
        jit_ssh_recording::Chunk::from_bytes(&bytes)
            .unwrap()
            .body()
            .index
    }
}

/// A spooled session of `n` chunks and its end chunk.
fn spooled(spool: &Spool, id: &str, n: u64) -> PathBuf {
    let header = Header {
        width: 80,
        height: 24,
        timestamp: 1_790_000_000,
        env: Default::default(),
        session: jit_ssh_recording::SessionInfo {
            session_id: SessionId::try_from(id).unwrap(),
            key_id: "jit-ssh:alice:g:1".into(),
            serial: "1".into(),
            grant_id: "g".into(),
            user: "alice".into(),
            host: "web1".into(),
            account: "deploy".into(),
            record: RecordMode::Output,
        },
    };
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let mut enc = Encoder::new(&header, key, ChunkPolicy::default()).unwrap();
    let mut s = spool
        .create(&header.session.session_id, enc.header_line())
        .unwrap();
    for i in 0..n {
        enc.push_output(Duration::from_millis(i), format!("line {i}\r\n").as_bytes())
            .unwrap();
        s.append(&[enc.flush().unwrap().unwrap()]).unwrap();
    }
    let done = enc.finish(Duration::from_secs(1), EndReason::Exit).unwrap();
    s.append(&done.chunks).unwrap();
    s.mark_ended().unwrap();
    spool.dir().join(id)
}

fn uploader(spool: &Spool, ca: &FakeCa) -> Uploader {
    Uploader {
        spool: spool.clone(),
        urls: vec![ca.url.clone()],
        ca_cert: None,
        backoff: HashMap::new(),
        restarted: HashMap::new(),
    }
}

/// Before: a session the CA would never take (here, its grant at its
/// session cap) was sent again every minute for ever, a log line each
/// time, and nothing told an operator which sessions were stuck or why.
#[tokio::test]
async fn a_session_the_ca_refuses_for_good_is_kept_marked_and_not_sent_again() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(&tmp.path().join("spool")).unwrap();
    let dir = spooled(&spool, "s-capped", 3);
    let chunks = std::fs::read(dir.join("chunks")).unwrap();
    let said = "grant g already has 3 recorded sessions, the most [recordings] max_sessions_per_grant (3) allows";
    let ca = fake_ca(vec![(403, error("forbidden", said))]).await;
    let mut up = uploader(&spool, &ca);
    up.pass().await;
    assert_eq!(ca.requests(), 1);
    let m = refused::read(&dir).expect("the session is marked refused");
    assert_eq!(
        (m.status, m.code.as_str(), m.message.as_str(), m.chunk),
        (403, "forbidden", said, 0)
    );
    // Kept whole; no retry, however long the recorder runs.
    assert_eq!(std::fs::read(dir.join("chunks")).unwrap(), chunks);
    assert!(!up.backoff.contains_key(&dir));
    for _ in 0..3 {
        up.backoff.clear();
        up.pass().await;
    }
    assert_eq!(
        ca.requests(),
        1,
        "a session refused for good was sent again"
    );
    // `jit-ssh-host recordings --retry` clears the mark: sent again.
    assert!(refused::clear(&dir).unwrap());
    up.pass().await;
    assert_eq!(ca.requests(), 2);
}

#[tokio::test]
async fn a_ca_that_cannot_take_it_now_is_asked_again_with_capped_backoff() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(&tmp.path().join("spool")).unwrap();
    let dir = spooled(&spool, "s-later", 2);
    let mut answers = vec![
        (
            503,
            error("unavailable", "the CA's database cannot be reached"),
        ),
        (507, error("insufficient_storage", "below its floor")),
        (
            429,
            error("rate_limited", "too many requests; retry in 3 s"),
        ),
        (502, "<html>bad gateway</html>".to_owned()),
        (403, "<html>a proxy's page</html>".to_owned()),
    ];
    answers.extend(std::iter::repeat_n((503, error("unavailable", "x")), 5));
    let all = super::super::spool::read_pending(&dir)
        .unwrap()
        .chunks
        .len();
    answers.push((200, format!(r#"{{"next_index": {all}, "ended": true}}"#)));
    let ca = fake_ca(answers).await;
    let mut up = uploader(&spool, &ca);
    for i in 1..=10u32 {
        up.pass().await;
        assert!(!refused::is_marked(&dir), "answer {i} marked the session");
        let (failures, next) = up.backoff[&dir];
        assert_eq!(failures, i);
        let wait = next.saturating_duration_since(Instant::now());
        assert!(wait <= MAX_BACKOFF, "{wait:?} after {i} failures");
        if i >= 6 {
            assert!(wait > MAX_BACKOFF - Duration::from_secs(5), "{wait:?}");
        }
        // Not asked again before its time.
        up.pass().await;
        assert_eq!(ca.requests(), i as usize);
        up.backoff.get_mut(&dir).unwrap().1 = Instant::now();
    }
    up.pass().await;
    assert_eq!(ca.requests(), 11);
    assert!(!dir.exists(), "the session acknowledged to its end stays");
}

/// A CA that holds fewer chunks than it acknowledged (a replica without
/// the session, a CA restored from a backup) answers 409 to the next
/// chunk: the session is sent again from chunk 0 before any 409 counts
/// as the CA's word on it.
#[tokio::test]
async fn a_409_past_chunk_0_sends_the_session_again_from_the_start_first() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(&tmp.path().join("spool")).unwrap();
    let dir = spooled(&spool, "s-gap", 4);
    set_sent(&dir, 3).unwrap();
    let ca = fake_ca(vec![
        (
            409,
            error(
                "wrong_state",
                "expected chunk index 0, found 3 (a gap or a reordering)",
            ),
        ),
        (
            409,
            error("wrong_state", "session s-gap was recorded before"),
        ),
    ])
    .await;
    let mut up = uploader(&spool, &ca);
    up.pass().await;
    assert_eq!(ca.first_chunk(0), 3);
    assert!(!refused::is_marked(&dir));
    assert_eq!(read_unsent(&dir, 1).unwrap().first, 0);
    up.backoff.clear();
    up.pass().await;
    assert_eq!(ca.first_chunk(1), 0);
    let m = refused::read(&dir).expect("a 409 from chunk 0 is the CA's word");
    assert_eq!((m.status, m.chunk), (409, 0));
    up.backoff.clear();
    up.pass().await;
    assert_eq!(ca.requests(), 2);
}
