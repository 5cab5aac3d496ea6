//! The shim's socket protocol, spoken by the shim and by `Runtime` (start, attach).
//!
//! A client connects to `attach.sock` in the container's directory and sends one JSON line,
//! a [`Request`]; the shim answers one JSON line, a [`Reply`]. For `start` that is all. For
//! `attach` both sides then exchange frames: one byte of kind, four bytes of big-endian
//! length, the payload.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What a client asks of the shim.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(crate) enum Request {
    /// Run `runc start` and record the start time.
    Start,
    /// Stream the container's output; take its stdin if `stdin`.
    Attach { stdin: bool },
}

/// The shim's answer to a [`Request`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Reply {
    pub error: Option<String>,
    /// The container has a terminal (one output stream, resize applies).
    pub tty: bool,
}

/// The first line the shim prints on its standard output: `runc create` worked (the init
/// process id) or did not (runc's message).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Created {
    pub pid: Option<i32>,
    pub error: Option<String>,
}

/// Shim to client: container stdout.
pub(crate) const FRAME_STDOUT: u8 = 1;
/// Shim to client: container stderr.
pub(crate) const FRAME_STDERR: u8 = 2;
/// Client to shim: bytes for the container's stdin.
pub(crate) const FRAME_STDIN: u8 = 0;
/// Client to shim: this client's stdin ended.
pub(crate) const FRAME_CLOSE_STDIN: u8 = 3;
/// Client to shim: terminal size, width then height, each a big-endian u16.
pub(crate) const FRAME_RESIZE: u8 = 4;

/// The largest payload accepted, so a confused peer cannot make us allocate gigabytes.
const MAX_FRAME: u32 = 1 << 20;

pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(payload.len() + 5);
    frame.push(kind);
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    w.write_all(&frame).await
}

/// Reads one frame; `None` at a clean end of the stream.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await?;
    Ok(Some((head[0], payload)))
}

/// Reads one line (up to the newline, not past it), for the request and reply.
pub(crate) async fn read_line<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if r.read(&mut byte).await? == 0 || byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
        if line.len() > 64 * 1024 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "line too long",
            ));
        }
    }
    String::from_utf8(line).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
