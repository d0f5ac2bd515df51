//! A lingering close. When the server closes a connection whose client is still sending (a
//! body refused for its size or its slowness is not read to its end), closing the socket
//! with unread bytes makes the kernel reset the connection, and a reset destroys whatever
//! the client has not read yet: the very answer that says why. So the shutdown that ends a
//! connection closes the writing half first (the answer is out, and then the end of it) and
//! reads and drops what still arrives until the client closes its half, for a bounded time
//! and number of bytes, as web servers have long done (nginx's `lingering_close`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How long a closing connection keeps reading what its client still sends.
const LINGER: Duration = Duration::from_secs(2);
/// At most this much is read and dropped while lingering (more than the largest body a
/// client sends to a refusal in that time over a local network would be a flood).
const LINGER_BYTES_MAX: usize = 32 << 20;

/// A connection's byte stream whose `poll_shutdown` lingers (see the module doc). Reading and
/// writing pass through untouched.
pub(crate) struct Lingering<I> {
    inner: I,
    shutdown: Shutdown,
    linger: Duration,
    bytes_max: usize,
}

enum Shutdown {
    Open,
    /// The writing half is closed; reading and dropping until the deadline.
    Lingering {
        deadline: Pin<Box<Sleep>>,
        dropped: usize,
    },
    Done,
}

impl<I> Lingering<I> {
    pub(crate) fn new(inner: I) -> Lingering<I> {
        Lingering::with_bounds(inner, LINGER, LINGER_BYTES_MAX)
    }

    fn with_bounds(inner: I, linger: Duration, bytes_max: usize) -> Lingering<I> {
        Lingering {
            inner,
            shutdown: Shutdown::Open,
            linger,
            bytes_max,
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> Lingering<I> {
    /// Reads and drops until the client closes, an error, the deadline or the byte bound.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Shutdown::Lingering { deadline, dropped } = &mut self.shutdown else {
            return Poll::Ready(());
        };
        let mut scratch = [0u8; 8192];
        loop {
            if deadline.as_mut().poll(cx).is_ready() || *dropped > self.bytes_max {
                return Poll::Ready(());
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut self.inner).poll_read(cx, &mut buf)) {
                Ok(()) if !buf.filled().is_empty() => *dropped += buf.filled().len(),
                // The client closed its half (or the connection broke): nothing to wait for.
                Ok(()) | Err(_) => return Poll::Ready(()),
            }
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Lingering<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Shutdown::Open = this.shutdown {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.shutdown = Shutdown::Lingering {
                deadline: Box::pin(tokio::time::sleep(this.linger)),
                dropped: 0,
            };
        }
        ready!(this.poll_linger(cx));
        this.shutdown = Shutdown::Done;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn shutdown_waits_for_the_client_to_close_and_drops_what_it_sends() {
        let (server, mut client) = tokio::io::duplex(1024);
        let mut server = Lingering::new(server);
        server.write_all(b"413").await.unwrap();
        let closing = tokio::spawn(async move {
            server.shutdown().await.unwrap();
        });
        // The client still sends (more than the pipe holds: the server must be reading),
        // then reads the answer and its end, then closes.
        client.write_all(&[b'x'; 64 << 10]).await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"413");
        assert!(!closing.is_finished());
        drop(client);
        tokio::time::timeout(Duration::from_secs(1), closing)
            .await
            .expect("shut down once the client closed")
            .unwrap();
    }

    #[tokio::test]
    async fn a_client_that_never_closes_is_left_after_the_linger_time() {
        let (server, client) = tokio::io::duplex(1024);
        let linger = Duration::from_millis(100);
        let mut server = Lingering::with_bounds(server, linger, usize::MAX);
        let started = std::time::Instant::now();
        server.shutdown().await.unwrap();
        assert!(started.elapsed() >= linger);
        drop(client);
    }

    #[tokio::test]
    async fn a_client_that_floods_is_left_past_the_byte_bound() {
        let (server, mut client) = tokio::io::duplex(1024);
        let mut server = Lingering::with_bounds(server, Duration::from_secs(3600), 10_000);
        let flood = tokio::spawn(async move {
            // Ends when the server side is dropped.
            while client.write_all(&[b'x'; 1024]).await.is_ok() {}
        });
        tokio::time::timeout(Duration::from_secs(5), server.shutdown())
            .await
            .expect("left after the byte bound, long before the linger time")
            .unwrap();
        drop(server);
        flood.await.unwrap();
    }
}
