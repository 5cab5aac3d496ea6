//! The buffers between a connection's tasks and the streams handed out.
//!
//! `Pipe` carries bytes the client sent on one stream from the connection's
//! reader task to whoever reads the stream; it is bounded, so a stream nobody
//! reads stops the reader task, and with it the TCP window: kubectl's SPDY
//! ignores flow control, so that is the only back-pressure there is.
//! `Budget` bounds the bytes queued for the writer task across a connection,
//! so a fast producer (a command printing without pause) waits for the
//! socket instead of filling memory.

use std::collections::VecDeque;
use std::io;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use tokio::io::ReadBuf;

/// How many bytes a pipe holds before its producer waits.
const PIPE_LIMIT: usize = 256 * 1024;
/// How many bytes of data may wait for the writer task.
const BUDGET_LIMIT: usize = 512 * 1024;

/// How a stream's inbound half ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The client finished the stream, or the connection ended cleanly.
    Eof,
    /// The stream or the connection was torn down: reads fail.
    Aborted,
}

/// What became of bytes handed to [`Pipe::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued for the reader.
    Queued,
    /// Dropped: nobody will read them (the reader is gone or the stream
    /// ended); the count lets SPDY still credit the flow-control window.
    Discarded(usize),
}

#[derive(Default)]
struct PipeState {
    chunks: VecDeque<Bytes>,
    buffered: usize,
    end: Option<End>,
    /// Set when the reader is gone: data is dropped on arrival.
    discard: bool,
    reader: Option<Waker>,
    producer: Option<Waker>,
}

/// One stream's inbound bytes.
#[derive(Default)]
pub(crate) struct Pipe {
    state: Mutex<PipeState>,
}

impl Pipe {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Queues `data`, first waiting while the pipe is full.
    pub(crate) async fn push(&self, mut data: Bytes) -> Pushed {
        std::future::poll_fn(|cx| {
            let mut s = self.state.lock().unwrap();
            if s.discard || s.end.is_some() {
                return Poll::Ready(Pushed::Discarded(data.len()));
            }
            if s.buffered >= PIPE_LIMIT {
                s.producer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if !data.is_empty() {
                s.buffered += data.len();
                s.chunks.push_back(std::mem::take(&mut data));
                if let Some(w) = s.reader.take() {
                    w.wake();
                }
            }
            Poll::Ready(Pushed::Queued)
        })
        .await
    }

    /// Ends the stream: readers get the buffered bytes, then `end`. The
    /// first end wins.
    pub(crate) fn finish(&self, end: End) {
        let mut s = self.state.lock().unwrap();
        if s.end.is_none() {
            s.end = Some(end);
        }
        if end == End::Aborted {
            s.chunks.clear();
            s.buffered = 0;
        }
        if let Some(w) = s.reader.take() {
            w.wake();
        }
        if let Some(w) = s.producer.take() {
            w.wake();
        }
    }

    /// The reader is gone (or will read no more): drop what is buffered and
    /// whatever arrives later. Returns the bytes dropped.
    pub(crate) fn discard(&self) -> usize {
        let mut s = self.state.lock().unwrap();
        s.discard = true;
        let dropped = s.buffered;
        s.chunks.clear();
        s.buffered = 0;
        if let Some(w) = s.producer.take() {
            w.wake();
        }
        dropped
    }

    /// Reads into `buf`; `Ready(Ok(n))` with the bytes read, 0 at the end.
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        let mut s = self.state.lock().unwrap();
        if s.chunks.is_empty() {
            return match s.end {
                Some(End::Eof) => Poll::Ready(Ok(0)),
                Some(End::Aborted) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "stream aborted",
                ))),
                None if s.discard => Poll::Ready(Ok(0)),
                None => {
                    s.reader = Some(cx.waker().clone());
                    Poll::Pending
                }
            };
        }
        let mut read = 0;
        while buf.remaining() > 0 {
            let Some(chunk) = s.chunks.front_mut() else {
                break;
            };
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            chunk.advance(n);
            read += n;
            if chunk.is_empty() {
                s.chunks.pop_front();
            }
        }
        s.buffered -= read;
        if s.buffered < PIPE_LIMIT
            && let Some(w) = s.producer.take()
        {
            w.wake();
        }
        Poll::Ready(Ok(read))
    }
}

#[derive(Default)]
struct BudgetState {
    queued: usize,
    closed: bool,
    waiting: Vec<Waker>,
}

/// The bytes a connection's writers may queue ahead of its writer task.
#[derive(Default)]
pub(crate) struct Budget {
    state: Mutex<BudgetState>,
}

impl Budget {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// `Ready(true)` when a writer may queue more, `Ready(false)` once the
    /// connection is gone.
    pub(crate) fn poll_room(&self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut s = self.state.lock().unwrap();
        if s.closed {
            return Poll::Ready(false);
        }
        if s.queued < BUDGET_LIMIT {
            return Poll::Ready(true);
        }
        s.waiting.push(cx.waker().clone());
        Poll::Pending
    }

    /// Counts `n` bytes queued.
    pub(crate) fn take(&self, n: usize) {
        self.state.lock().unwrap().queued += n;
    }

    /// Counts `n` bytes written out, waking writers once there is room.
    pub(crate) fn give_back(&self, n: usize) {
        let mut s = self.state.lock().unwrap();
        s.queued = s.queued.saturating_sub(n);
        if s.queued < BUDGET_LIMIT / 2 {
            for w in s.waiting.drain(..) {
                w.wake();
            }
        }
    }

    /// The writer task is gone: wake every writer to fail.
    pub(crate) fn close(&self) {
        let mut s = self.state.lock().unwrap();
        s.closed = true;
        for w in s.waiting.drain(..) {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncRead, AsyncReadExt};

    use super::*;

    struct Reader(Arc<Pipe>);

    impl AsyncRead for Reader {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            self.0.poll_read(cx, buf).map_ok(|_| ())
        }
    }

    #[tokio::test]
    async fn bytes_then_eof() {
        let pipe = Arc::new(Pipe::new());
        assert_eq!(
            pipe.push(Bytes::from_static(b"hello ")).await,
            Pushed::Queued
        );
        assert_eq!(
            pipe.push(Bytes::from_static(b"world")).await,
            Pushed::Queued
        );
        pipe.finish(End::Eof);
        let mut out = String::new();
        Reader(pipe.clone()).read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
        assert_eq!(
            pipe.push(Bytes::from_static(b"late")).await,
            Pushed::Discarded(4)
        );
    }

    #[tokio::test]
    async fn a_full_pipe_holds_its_producer() {
        let pipe = Arc::new(Pipe::new());
        let producer = {
            let pipe = pipe.clone();
            tokio::spawn(async move {
                for _ in 0..8 {
                    pipe.push(Bytes::from(vec![7u8; 64 * 1024])).await;
                }
                pipe.finish(End::Eof);
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !producer.is_finished(),
            "the producer must wait for the reader"
        );
        let mut all = vec![];
        Reader(pipe).read_to_end(&mut all).await.unwrap();
        assert_eq!(all.len(), 8 * 64 * 1024);
        producer.await.unwrap();
    }

    #[tokio::test]
    async fn aborted_streams_fail_reads_and_discarding_frees_producers() {
        let pipe = Arc::new(Pipe::new());
        pipe.push(Bytes::from_static(b"x")).await;
        pipe.finish(End::Aborted);
        let err = Reader(pipe).read_to_end(&mut vec![]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);

        let pipe = Arc::new(Pipe::new());
        for _ in 0..4 {
            pipe.push(Bytes::from(vec![0u8; 64 * 1024])).await;
        }
        assert_eq!(pipe.discard(), 256 * 1024);
        assert_eq!(
            pipe.push(Bytes::from_static(b"abc")).await,
            Pushed::Discarded(3)
        );
    }
}
