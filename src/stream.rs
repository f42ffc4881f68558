//! The byte stream of one client connection: plain TCP, or TLS from the first byte (the
//! implicit-TLS listeners), or plain TCP upgraded by CAP STARTTLS.
//!
//! A plain stream watches the first bytes the client sends: a TLS client pointed at a plaintext
//! port starts with a handshake record (content type 22, RFC 8446 §5.1), which no CAP or CIP
//! command line does (0x16 is a control character). Reading it fails with
//! [`TLS_ON_PLAINTEXT`], and the connection answers one readable line and closes instead of
//! feeding binary to the command parser.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;

/// A client connection: [`PlainStream`] or TLS.
pub type ClientStream = Either<PlainStream, Box<TlsStream<TcpStream>>>;

/// The message of the read error raised when a plaintext connection starts with a TLS record.
pub const TLS_ON_PLAINTEXT: &str = "TLS handshake on a plaintext port";

/// Whether a read error is the [`TLS_ON_PLAINTEXT`] one.
pub fn is_tls_on_plaintext(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData && e.to_string() == TLS_ON_PLAINTEXT
}

/// Plain TCP that rejects a TLS handshake as its first bytes.
#[derive(Debug)]
pub struct PlainStream {
    inner: TcpStream,
    /// True until the first bytes have been read and checked.
    first: bool,
}

impl PlainStream {
    /// Wraps an accepted socket.
    pub fn new(inner: TcpStream) -> PlainStream {
        PlainStream { inner, first: true }
    }

    /// The socket, for a STARTTLS upgrade.
    pub fn into_inner(self) -> TcpStream {
        self.inner
    }
}

impl AsyncRead for PlainStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.first
            && let Poll::Ready(Ok(())) = &poll
            && buf.filled().len() > before
        {
            this.first = false;
            // A TLS record starts with content type 22 (handshake) and version major 3.
            let new = &buf.filled()[before..];
            if new[0] == 0x16 && new.get(1).is_none_or(|v| *v == 0x03) {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    TLS_ON_PLAINTEXT,
                )));
            }
        }
        poll
    }
}

impl AsyncWrite for PlainStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (TcpStream, PlainStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, PlainStream::new(server))
    }

    #[tokio::test]
    async fn a_client_hello_is_refused() {
        let (mut client, mut server) = pair().await;
        client
            .write_all(&[0x16, 0x03, 0x01, 0x00, 0xa5, 0x01])
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let e = server.read(&mut buf).await.unwrap_err();
        assert!(is_tls_on_plaintext(&e), "{e}");
    }

    #[tokio::test]
    async fn command_lines_pass() {
        let (mut client, mut server) = pair().await;
        client.write_all(b"NOOP\r\n\x16\x03").await.unwrap();
        let mut buf = [0u8; 8];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(
            &buf, b"NOOP\r\n\x16\x03",
            "only the first bytes are checked"
        );
    }
}
