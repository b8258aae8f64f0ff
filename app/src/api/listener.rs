//! The API's listening socket. A slow client (one that opens connections and sends its
//! headers a byte at a time, or not at all) must not hold the server's connections: a
//! connection on which nothing moved for `CAMPUS_IDLE_TIMEOUT` is closed (even in the middle
//! of a request's headers, which the HTTP server's own idle timer waits for), and one client
//! address may hold at most `CAMPUS_MAX_CONNECTIONS_PER_CLIENT` connections at once (further
//! ones are closed as soon as they are accepted). Trusted proxies are not capped: every
//! client behind them shares their address.

use crate::web::limits::TrustedProxies;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

type OpenCounts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// An acceptor that caps the connections each client address holds open.
pub struct CappedAcceptor<A> {
    inner: A,
    per_client: usize,
    idle: Duration,
    proxies: TrustedProxies,
    open: OpenCounts,
}

impl<A> CappedAcceptor<A> {
    pub fn new(inner: A, per_client: usize, idle: Duration, proxies: TrustedProxies) -> Self {
        CappedAcceptor {
            inner,
            per_client: per_client.max(1),
            idle,
            proxies,
            open: Arc::default(),
        }
    }
}

impl<A: Acceptor> Acceptor for CappedAcceptor<A> {
    type Io = Counted<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(
        &mut self,
    ) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, poem::http::uri::Scheme)> {
        loop {
            let (io, local, remote, scheme) = self.inner.accept().await?;
            let client = remote
                .as_socket_addr()
                .map(|a| a.ip())
                .filter(|ip| !self.proxies.trusts(ip));
            if let Some(ip) = client {
                let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
                let n = open.entry(ip).or_insert(0);
                if *n >= self.per_client {
                    tracing::warn!(client = %ip, limit = self.per_client, "connection refused: too many open connections from one client");
                    continue; // `io` is dropped: the connection closes.
                }
                *n += 1;
            }
            let io = Counted {
                io,
                client: client.map(|ip| (ip, self.open.clone())),
                idle: self.idle,
                deadline: Box::pin(tokio::time::sleep(self.idle)),
            };
            return Ok((io, local, remote, scheme));
        }
    }
}

/// A connection that fails once nothing moved on it for `idle`, and gives its slot back
/// when it closes.
pub struct Counted<T> {
    io: T,
    client: Option<(IpAddr, OpenCounts)>,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<T> Counted<T> {
    fn moved(&mut self) {
        let next = Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }
}

impl<T> Drop for Counted<T> {
    fn drop(&mut self) {
        if let Some((ip, open)) = &self.client {
            let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = open.get_mut(ip) {
                *n -= 1;
                if *n == 0 {
                    open.remove(ip);
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "nothing moved on the connection for CAMPUS_IDLE_TIMEOUT",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
