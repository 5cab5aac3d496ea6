//! A scripted SPDY client for tests: frames in, frames out, nothing hidden.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};

use super::frame::{self, Frame, FrameHead, HEAD_LEN};
use super::headers::{HeaderDeflater, HeaderInflater, Headers};

/// The client end of an in-memory connection.
pub(crate) struct TestClient {
    r: Box<dyn AsyncRead + Send + Unpin>,
    w: Box<dyn AsyncWrite + Send + Unpin>,
    deflater: HeaderDeflater,
    inflater: HeaderInflater,
}

impl TestClient {
    /// A connected pair: the client, and the server's end of the socket.
    pub(crate) fn pair() -> (Self, DuplexStream) {
        let (client, server) = tokio::io::duplex(1 << 20);
        (Self::over(client), server)
    }

    /// A client speaking over `io`.
    pub(crate) fn over<IO: AsyncRead + AsyncWrite + Send + 'static>(io: IO) -> Self {
        let (r, w) = tokio::io::split(io);
        Self {
            r: Box::new(r),
            w: Box::new(w),
            deflater: HeaderDeflater::new(),
            inflater: HeaderInflater::new(),
        }
    }

    pub(crate) async fn send(&mut self, f: Frame) {
        let mut buf = BytesMut::new();
        frame::encode(&f, &mut self.deflater, &mut buf).unwrap();
        self.w.write_all(&buf).await.unwrap();
        self.w.flush().await.unwrap();
    }

    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).await.unwrap();
        self.w.flush().await.unwrap();
    }

    /// Opens stream `id` with these headers.
    pub(crate) async fn open(&mut self, id: u32, headers: &[(&str, &str)]) {
        let mut h = Headers::new();
        for (k, v) in headers {
            h = h.with(k, v);
        }
        self.send(Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: false,
            headers: h,
        })
        .await;
    }

    pub(crate) async fn data(&mut self, id: u32, data: &[u8], fin: bool) {
        self.send(Frame::Data {
            stream_id: id,
            fin,
            data: Bytes::copy_from_slice(data),
        })
        .await;
    }

    /// The next frame; `None` when the server closed the connection.
    pub(crate) async fn recv(&mut self) -> Option<Frame> {
        tokio::time::timeout(Duration::from_secs(60), self.recv_now())
            .await
            .expect("no frame from the server in 60 s")
    }

    async fn recv_now(&mut self) -> Option<Frame> {
        let mut head = [0u8; HEAD_LEN];
        if self.r.read_exact(&mut head).await.is_err() {
            return None;
        }
        let head = FrameHead::parse(&head);
        let mut payload = BytesMut::zeroed(head.length());
        self.r.read_exact(&mut payload).await.unwrap();
        Some(frame::decode(head, payload.freeze(), &mut self.inflater).unwrap())
    }

    /// The next frame that is not a WINDOW_UPDATE.
    pub(crate) async fn recv_skipping_updates(&mut self) -> Option<Frame> {
        loop {
            match self.recv().await {
                Some(Frame::WindowUpdate { .. }) => continue,
                other => return other,
            }
        }
    }

    /// Whether a frame arrives within `wait`.
    pub(crate) async fn quiet_for(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.recv_now()).await.is_err()
    }

    /// Closes the client's sending side.
    pub(crate) async fn shutdown(&mut self) {
        self.w.shutdown().await.unwrap();
    }
}
