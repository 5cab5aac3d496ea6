//! Attaching to a running container's stdio, through its shim's socket.

use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::Runtime;
use crate::error::{Result, RuntimeError};
use crate::logs::Stream;
use crate::protocol::{self, Request};

/// A session on a container's stdio: its output from now on (every session gets all of
/// it) and, if asked for, its stdin. It ends when the container exits.
#[derive(Debug)]
pub struct AttachStream {
    tty: bool,
    output: AttachOutput,
    input: AttachInput,
}

/// The output side of an [`AttachStream`].
#[derive(Debug)]
pub struct AttachOutput {
    id: String,
    read: OwnedReadHalf,
}

/// The input side of an [`AttachStream`]: stdin and terminal size.
#[derive(Debug)]
pub struct AttachInput {
    id: String,
    write: OwnedWriteHalf,
}

impl AttachStream {
    /// Whether the container has a terminal (then all output is `Stdout`, and resize applies).
    pub fn tty(&self) -> bool {
        self.tty
    }

    /// Splits the session so output and input can be driven by different tasks.
    pub fn split(self) -> (AttachOutput, AttachInput) {
        (self.output, self.input)
    }
}

fn broken(id: &str, e: std::io::Error) -> RuntimeError {
    RuntimeError::Shim {
        id: id.to_owned(),
        message: format!("attach session: {e}"),
    }
}

impl AttachOutput {
    /// The next piece of output and its stream; `None` once the container has exited and
    /// its output is drained.
    pub async fn next(&mut self) -> Result<Option<(Stream, Vec<u8>)>> {
        loop {
            match protocol::read_frame(&mut self.read)
                .await
                .map_err(|e| broken(&self.id, e))?
            {
                None => return Ok(None),
                Some((protocol::FRAME_STDOUT, data)) => return Ok(Some((Stream::Stdout, data))),
                Some((protocol::FRAME_STDERR, data)) => return Ok(Some((Stream::Stderr, data))),
                Some(_) => continue,
            }
        }
    }
}

impl AttachInput {
    /// Writes to the container's stdin (ignored unless the container and the session
    /// both have stdin).
    pub async fn write_stdin(&mut self, data: &[u8]) -> Result<()> {
        for chunk in data.chunks(64 * 1024) {
            protocol::write_frame(&mut self.write, protocol::FRAME_STDIN, chunk)
                .await
                .map_err(|e| broken(&self.id, e))?;
        }
        Ok(())
    }

    /// Ends this session's stdin. With `stdin_once` (and no terminal) that closes the
    /// container's stdin, so it reads end of file.
    pub async fn close_stdin(&mut self) -> Result<()> {
        protocol::write_frame(&mut self.write, protocol::FRAME_CLOSE_STDIN, &[])
            .await
            .map_err(|e| broken(&self.id, e))
    }

    /// Sets the container's terminal size in columns and rows (nothing without a tty).
    pub async fn resize(&mut self, width: u16, height: u16) -> Result<()> {
        let mut payload = Vec::with_capacity(4);
        payload.extend_from_slice(&width.to_be_bytes());
        payload.extend_from_slice(&height.to_be_bytes());
        protocol::write_frame(&mut self.write, protocol::FRAME_RESIZE, &payload)
            .await
            .map_err(|e| broken(&self.id, e))
    }
}

impl Runtime {
    /// Attaches to a running (or created) container's stdio through its shim. With
    /// `stdin` the session may write to the container's stdin (if it has one); ending such
    /// a session closes the container's stdin when it has `stdin_once`.
    pub async fn attach(&self, id: &str, stdin: bool) -> Result<AttachStream> {
        let (conn, reply) = self.connect_shim(id, &Request::Attach { stdin }).await?;
        if let Some(message) = reply.error {
            return Err(RuntimeError::Shim {
                id: id.to_owned(),
                message,
            });
        }
        let (read, write) = conn.into_split();
        Ok(AttachStream {
            tty: reply.tty,
            output: AttachOutput {
                id: id.to_owned(),
                read,
            },
            input: AttachInput {
                id: id.to_owned(),
                write,
            },
        })
    }
}
