//! Waiting for a person to confirm something in the browser (a sign-in,
//! a revocation): poll until the CA says it is done, with a spinner, a
//! deadline and Ctrl-C.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::ClientError;
use crate::progress::Progress;

/// Calls `poll` every half second until it returns `Some`, the deadline
/// passes (`TimedOut(on_timeout)`), or the user presses Ctrl-C.
pub async fn until_confirmed<T, F, Fut>(
    timeout: Duration,
    waiting: &str,
    on_timeout: &str,
    mut poll: F,
) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, ClientError>>,
{
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| ClientError::Other(e.into()))?;
    let deadline = Instant::now() + timeout;
    let mut progress = Progress::new(false);
    loop {
        let answer = tokio::select! {
            a = poll() => a,
            _ = interrupt.recv() => Err(ClientError::Cancelled),
        };
        match answer {
            Ok(None) => {}
            other => {
                progress.done();
                return other.and_then(|v| v.ok_or(ClientError::Cancelled));
            }
        }
        if Instant::now() >= deadline {
            progress.done();
            return Err(ClientError::TimedOut(on_timeout.to_owned()));
        }
        progress.update(waiting);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {},
            _ = interrupt.recv() => {
                progress.done();
                return Err(ClientError::Cancelled);
            }
        }
    }
}
