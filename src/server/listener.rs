//! The accept loop behind [`serve`]: what a slow, idle or greedy client may cost.
//!
//! `axum::serve` has no knob for it, so this loop accepts connections itself and drives
//! each with hyper's HTTP/1 connection: a semaphore caps open connections (a slot taken
//! before `accept`, given back when the connection closes, as mini-redis's
//! `MAX_CONNECTIONS`); each connection's [`Activity`] (its reads and its requests) decides
//! when its request head is late or it has been idle too long, and then it is closed. Each
//! request carries its peer address (`ConnectInfo<SocketAddr>`) and the body-read timeout
//! that `server::read` applies. On shutdown, no connection is accepted any more, idle ones
//! close, busy ones close after their answer, and [`serve`] returns when all are closed.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep_until, Instant};
use tower_service::Service;

use crate::config::HttpLimits;

/// The first pause after a failed `accept` (usually out of file descriptors: pausing lets
/// connections close); each next failure doubles it, up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The largest request head (a larger one gets a 431), and the most a connection buffers
/// (hyper's default is about 400 KiB): with the connection cap, a bound on memory.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// "Every connection slot is taken" is logged at most this often.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(60);

/// The body-read timeout of the listener a request came in on, for `server::read`.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyReadTimeout(pub(super) Duration);

/// Serves `router` on `listener` under `limits` until `shutdown` completes; then accepts
/// no more connections, lets in-flight requests finish, and returns once every connection
/// is closed.
///
/// At most `limits.max_connections` connections are open at once: a slot is taken before
/// `accept` and given back when the connection closes, so the next clients wait in the
/// kernel's backlog. A connection is closed when its request head is not whole
/// `header_read_timeout` after its first byte, or when no request is under way and no byte
/// came for `keep_alive_idle`; a body slower than `body_read_timeout` gets a 408
/// (`server::read`). Handlers see the peer as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closing_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = ACCEPT_BACKOFF;
    let mut warned_full: Option<Instant> = None;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if warned_full.is_none_or(|at| at.elapsed() >= FULL_WARNING_EVERY) {
                    warned_full = Some(Instant::now());
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "every connection slot is taken; new connections wait until one closes"
                    );
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    slot = slots.clone().acquire_owned() => {
                        slot.expect("the connection semaphore is never closed")
                    }
                }
            }
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // The client gave up before we accepted: nothing to wait for.
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!(cause = %e, pause_ms = backoff.as_millis() as u64, "accept failed; pausing");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            },
        };
        backoff = ACCEPT_BACKOFF;
        tokio::spawn(connection(
            stream,
            peer,
            router.clone(),
            limits,
            slot,
            closing_rx.clone(),
        ));
    }
    drop(listener);
    drop(closing_rx);
    let _ = closing.send(true);
    // Every connection holds a receiver: this resolves once the last one has closed.
    closing.closed().await;
    Ok(())
}

/// Errors of one connection that `accept` reports: the listener itself is fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Serves one connection until it closes, the client is too slow or idle, or the server
/// shuts down. `_slot` is its place under the connection cap, given back on return.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: HttpLimits,
    _slot: OwnedSemaphorePermit,
    mut closing: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            activity.request_started();
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut()
                .insert(BodyReadTimeout(limits.body_read_timeout));
            let answer = router.clone().call(req);
            let activity = activity.clone();
            async move {
                let response = answer.await;
                activity.response_ready();
                response
            }
        })
    };
    // hyper's own header timer would also run while idle; ours (below) tells the two apart.
    let conn = http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(None::<Duration>)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut closing_down = false;
    loop {
        let deadline = activity.deadline(&limits);
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(cause = %e, "connection ended with an error");
                }
                return;
            }
            () = activity.changed.notified() => {}
            _ = closing.changed(), if !closing_down => {
                if activity.never_used() {
                    return;
                }
                // hyper closes an idle connection now, a busy one after its answer.
                conn.as_mut().graceful_shutdown();
                closing_down = true;
            }
            () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                match activity.expired(&limits) {
                    Some(Expired::Head) => {
                        tracing::debug!("request head not received in time; closing the connection");
                        return;
                    }
                    Some(Expired::Idle) if closing_down => return,
                    Some(Expired::Idle) => {
                        // Closed by hyper at once, or after the answer it is still writing:
                        // that gets one more idle period, then the connection is dropped.
                        conn.as_mut().graceful_shutdown();
                        closing_down = true;
                        activity.rest();
                    }
                    None => {}
                }
            }
        }
    }
}

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No request under way since `since` (`fresh`: none ever was).
    Idle { since: Instant, fresh: bool },
    /// A request head began to arrive at this instant.
    Head(Instant),
    /// This many requests are being answered.
    Busy(usize),
}

/// Which timeout ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    Head,
    Idle,
}

/// A connection's phase, moved by its reads ([`Watched`]) and its requests (the service),
/// read by [`connection`]'s timers. `changed` wakes them when a deadline moves earlier.
struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            phase: Mutex::new(Phase::Idle {
                since: Instant::now(),
                fresh: true,
            }),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes came in: on an idle connection, a request head begins.
    fn bytes_read(&self) {
        let mut phase = self.phase();
        if let Phase::Idle { .. } = *phase {
            *phase = Phase::Head(Instant::now());
            drop(phase);
            self.changed.notify_one();
        }
    }

    fn request_started(&self) {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        };
    }

    fn response_ready(&self) {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle {
                since: Instant::now(),
                fresh: false,
            },
        };
        drop(phase);
        self.changed.notify_one();
    }

    /// Starts a new idle period.
    fn rest(&self) {
        *self.phase() = Phase::Idle {
            since: Instant::now(),
            fresh: false,
        };
    }

    fn never_used(&self) -> bool {
        matches!(*self.phase(), Phase::Idle { fresh: true, .. })
    }

    fn deadline(&self, limits: &HttpLimits) -> Option<Instant> {
        match *self.phase() {
            Phase::Idle { since, .. } => Some(since + limits.keep_alive_idle),
            Phase::Head(since) => Some(since + limits.header_read_timeout),
            Phase::Busy(_) => None,
        }
    }

    fn expired(&self, limits: &HttpLimits) -> Option<Expired> {
        let now = Instant::now();
        match *self.phase() {
            Phase::Idle { since, .. } if now >= since + limits.keep_alive_idle => {
                Some(Expired::Idle)
            }
            Phase::Head(since) if now >= since + limits.header_read_timeout => Some(Expired::Head),
            _ => None,
        }
    }
}

/// A connection's socket that tells its [`Activity`] when bytes come in.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.bytes_read();
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn each_phase_of_a_connection_has_its_own_deadline() {
        let limits = HttpLimits {
            header_read_timeout: Duration::from_secs(1),
            keep_alive_idle: Duration::from_secs(5),
            ..HttpLimits::default()
        };
        let second = Duration::from_secs(1);
        let a = Activity::new();
        let opened = Instant::now();
        // New: idle, never used.
        assert!(a.never_used());
        assert_eq!(a.deadline(&limits), Some(opened + 5 * second));
        // The first byte of a head: the header timeout counts from it; more bytes of the
        // same head do not move it.
        tokio::time::advance(2 * second).await;
        a.bytes_read();
        tokio::time::advance(second / 2).await;
        a.bytes_read();
        assert_eq!(a.deadline(&limits), Some(opened + 3 * second));
        assert_eq!(a.expired(&limits), None);
        tokio::time::advance(second / 2).await;
        assert_eq!(a.expired(&limits), Some(Expired::Head));
        // A request under way has no deadline (its body has its own, in `server::read`).
        a.request_started();
        a.bytes_read();
        assert_eq!(a.deadline(&limits), None);
        tokio::time::advance(60 * second).await;
        assert_eq!(a.expired(&limits), None);
        // Answered: idle again, from now.
        a.response_ready();
        assert!(!a.never_used());
        let answered = Instant::now();
        assert_eq!(a.deadline(&limits), Some(answered + 5 * second));
        tokio::time::advance(5 * second).await;
        assert_eq!(a.expired(&limits), Some(Expired::Idle));
        a.rest();
        assert_eq!(a.expired(&limits), None);
    }
}
