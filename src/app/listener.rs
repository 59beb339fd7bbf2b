//! The accept loop: hyper connections with the timers `axum::serve` leaves off (a client must
//! send its request head within `http_header_timeout_secs`, which also ends idle keep-alive
//! connections), a cap on connections per client address, TCP_NODELAY, and graceful shutdown.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How connections are accepted and timed.
pub(crate) struct ListenerSettings {
    pub header_timeout: Duration,
    /// Most open connections (WebSockets included) from one address; 0 means no cap.
    pub max_per_address: usize,
}

/// Open connections per client address. A connection's share is given back when its socket
/// closes, also after a WebSocket upgrade (the guard travels with the socket).
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

struct AddressShare {
    counts: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddressShare> {
        let mut counts = self.0.lock();
        let open = counts.entry(ip).or_insert(0);
        if max > 0 && *open >= max {
            return None;
        }
        *open += 1;
        Some(AddressShare {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for AddressShare {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock();
        if let Some(open) = counts.get_mut(&self.ip) {
            *open -= 1;
            if *open == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// A TCP stream that holds its address's share for as long as it lives.
struct CountedStream {
    stream: TcpStream,
    _share: AddressShare,
}

impl AsyncRead for CountedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Listens on `addr` with room for `backlog` connections not yet accepted. Tokio's
/// `TcpListener::bind` asks for 1024: a storm of thousands of clients connecting at once (every
/// app reconnecting after a restart) overflows that while the accept loop catches up, and the
/// kernel then drops handshakes, which clients see as refusals and multi-second retries.
pub(crate) fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As std's bind does on Unix: a restarted server can bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Serves `app` on `listener` until `stop`; then stops accepting and waits for the HTTP
/// connections in flight to finish their requests (upgraded WebSockets are the realtime
/// service's to close).
pub(crate) async fn serve<S>(listener: TcpListener, app: S, settings: ListenerSettings, stop: CancellationToken)
where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    let per_address = Arc::new(PerAddress::default());
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Some(settings.header_timeout));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(settings.header_timeout));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors or a connection reset before accept: wait a
                    // little rather than spin (as axum::serve does).
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let Some(share) = per_address.take(peer.ip(), settings.max_per_address) else {
            metrics::counter!("causerie_connections_refused_total", "reason" => "per_address").increment(1);
            drop(stream);
            continue;
        };
        // Chat frames are small and latency-bound: without TCP_NODELAY, Nagle's algorithm holds
        // an ack back until the client's delayed ACK for the previous frame arrives (~40 ms).
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        let io = TokioIo::new(CountedStream { stream, _share: share });
        let service = connection_service(app.clone(), peer);
        let connection = builder.serve_connection_with_upgrades(io, service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::trace!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The app as hyper calls it for one connection, with the peer's address available to the
/// `ConnectInfo` extractor.
fn connection_service<S>(
    app: S,
    peer: SocketAddr,
) -> TowerToHyperService<
    impl tower::Service<Request<hyper::body::Incoming>, Response = Response, Error = Infallible, Future: Send> + Clone,
>
where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    TowerToHyperService::new(app.map_request(move |req: Request<hyper::body::Incoming>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    }))
}
