//! A scriptable stand-in for the CA's public endpoints (`/v1/ca-keys`,
//! `/v1/krl.manifest`, `/v1/krl`) on 127.0.0.1:0, so host sync can be shown
//! forged, tampered, replayed, redirected or endless answers.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What a path answers.
#[derive(Clone)]
pub enum Answer {
    Body(Vec<u8>),
    /// 302 to this absolute URL.
    Redirect(String),
    /// `bytes` of zeros, announced with a Content-Length (`true`) or
    /// streamed until the client hangs up (`false`).
    Endless {
        bytes: u64,
        announced: bool,
    },
    /// Nothing at all for this long (or until the client hangs up).
    Stall(std::time::Duration),
    /// This status with a CA-shaped JSON error body, e.g. 503 as a replica
    /// whose database is down answers.
    Status(u16),
}

/// The route every path without its own answer gets (404 if unset).
pub const ANY_PATH: &str = "*";

type Routes = Arc<Mutex<HashMap<String, Answer>>>;

pub struct FakeCa {
    pub url: String,
    routes: Routes,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn respond(s: &mut std::net::TcpStream, answer: Option<Answer>, stop: &AtomicBool) {
    let _ = match answer {
        Some(Answer::Stall(d)) => {
            let until = std::time::Instant::now() + d;
            let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
            let mut b = [0u8; 1];
            while std::time::Instant::now() < until && !stop.load(Ordering::SeqCst) {
                // A read of 0 bytes: the client hung up.
                if matches!(s.read(&mut b), Ok(0)) {
                    break;
                }
            }
            Ok(())
        }
        Some(Answer::Body(b)) => s
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    b.len()
                )
                .as_bytes(),
            )
            .and_then(|()| s.write_all(&b)),
        Some(Answer::Status(code)) => {
            let body = r#"{"error":{"code":"unavailable","message":"stand-in replica"}}"#;
            s.write_all(
                format!(
                    "HTTP/1.1 {code} Stand-in\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
        }
        Some(Answer::Redirect(to)) => s.write_all(
            format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        ),
        Some(Answer::Endless { bytes, announced }) => {
            let head = if announced {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {bytes}\r\nConnection: close\r\n\r\n")
            } else {
                "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_owned()
            };
            let zeros = vec![0u8; 1 << 20];
            let mut sent = 0u64;
            let mut r = s.write_all(head.as_bytes());
            // Stops when the client hangs up (a write error).
            while r.is_ok() && sent < bytes {
                r = s.write_all(&zeros);
                sent += zeros.len() as u64;
            }
            r
        }
        None => s.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ),
    };
}

impl FakeCa {
    pub fn start() -> FakeCa {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://localhost:{}", listener.local_addr().unwrap().port());
        listener.set_nonblocking(true).unwrap();
        let routes: Routes = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (routes, stop) = (routes.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok((mut s, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
                    let mut req = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&req)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let answer = {
                        let routes = routes.lock().unwrap();
                        routes.get(&path).or_else(|| routes.get(ANY_PATH)).cloned()
                    };
                    respond(&mut s, answer, &stop);
                }
            })
        };
        FakeCa {
            url,
            routes,
            stop,
            thread: Some(thread),
        }
    }

    pub fn serve(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.answer(path, Answer::Body(body.into()));
    }

    pub fn answer(&self, path: &str, answer: Answer) {
        self.routes.lock().unwrap().insert(path.to_owned(), answer);
    }
}

impl Drop for FakeCa {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
