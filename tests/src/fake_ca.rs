//! A scriptable stand-in for the CA's public endpoints (`/v1/ca-keys`,
//! `/v1/krl`, `/v1/krl.sig`) on 127.0.0.1:0, so host sync can be shown
//! tampered, truncated, wrongly signed or rolled-back answers.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

type Routes = Arc<Mutex<HashMap<String, Vec<u8>>>>;

pub struct FakeCa {
    pub url: String,
    routes: Routes,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
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
                    let body = routes.lock().unwrap().get(&path).cloned();
                    let head = match &body {
                        Some(b) => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nx-jit-ssh-krl-version: 1\r\nConnection: close\r\n\r\n", b.len()),
                        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
                    };
                    let _ = s.write_all(head.as_bytes());
                    if let Some(b) = body {
                        let _ = s.write_all(&b);
                    }
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
        self.routes
            .lock()
            .unwrap()
            .insert(path.to_owned(), body.into());
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
