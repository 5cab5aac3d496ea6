//! The graceful close both transports share.
//!
//! Closing right after the last frame lets the kernel reset the connection
//! as soon as the client's next frame arrives, and a reset throws away
//! whatever the client had not read yet. So a connection closes in steps:
//! its writer sends what is queued and the protocol's goodbye (GOAWAY, a
//! close frame), then shuts its half; its reader keeps reading until the
//! client closes. `LINGER` bounds the whole, for a client that never does.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// How long a graceful close may take: enough for a slow client to drain
/// what the socket buffers hold.
pub(crate) const LINGER: Duration = Duration::from_secs(120);

/// Runs `fut` until it completes (`Some`) or the close deadline, once one is
/// set on `closing`, passes (`None`). `fut` is kept across changes of the
/// deadline, so it need not be cancel-safe.
pub(crate) async fn before_deadline<F: Future>(
    closing: &mut watch::Receiver<Option<Instant>>,
    fut: F,
) -> Option<F::Output> {
    tokio::pin!(fut);
    loop {
        let deadline = *closing.borrow_and_update();
        tokio::select! {
            out = &mut fut => return Some(out),
            _ = sleep_until(deadline) => return None,
            changed = closing.changed() => {
                if changed.is_err() {
                    return Some(fut.await);
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Sets the close deadline unless one is set already.
pub(crate) fn start(closing: &watch::Sender<Option<Instant>>) {
    closing.send_if_modified(|c| {
        if c.is_none() {
            *c = Some(Instant::now() + LINGER);
            true
        } else {
            false
        }
    });
}
