//! SPDY/3.1 frames as they are laid out on the wire.
//!
//! Every frame starts with 8 bytes. A control frame: a 1 bit, the version
//! (15 bits, 3), the type (16 bits), then flags (8 bits) and the payload
//! length (24 bits). A data frame: a 0 bit, the stream id (31 bits), flags
//! and length. Decoding and encoding are pure apart from the header
//! compression contexts, which the caller owns because they span the
//! connection.

use bytes::{BufMut, Bytes, BytesMut};

use super::headers::{HeaderDeflater, HeaderInflater, Headers};

/// The only protocol version spoken.
pub(crate) const VERSION: u16 = 3;
/// Length of the fixed part that starts every frame.
pub(crate) const HEAD_LEN: usize = 8;
/// The largest payload a 24-bit length can describe.
pub(crate) const MAX_PAYLOAD: usize = (1 << 24) - 1;

/// FLAG_FIN on data, SYN_STREAM, SYN_REPLY and HEADERS frames: the sender
/// will send nothing more on the stream.
pub(crate) const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL on SYN_STREAM: the recipient may not send.
pub(crate) const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// FLAG_SETTINGS_CLEAR_SETTINGS on SETTINGS.
pub(crate) const FLAG_CLEAR_SETTINGS: u8 = 0x01;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// SETTINGS id of the initial flow-control window of new streams.
pub(crate) const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;

/// RST_STREAM status codes.
pub(crate) mod rst {
    /// The stream broke the protocol.
    pub(crate) const PROTOCOL_ERROR: u32 = 1;
    /// A frame arrived for a stream that is not open.
    pub(crate) const INVALID_STREAM: u32 = 2;
    /// The stream was refused before any processing.
    pub(crate) const REFUSED_STREAM: u32 = 3;
    /// The stream is no longer needed.
    #[cfg(test)]
    pub(crate) const CANCEL: u32 = 5;
}

/// GOAWAY status codes.
pub(crate) mod goaway {
    /// A normal end of the session.
    pub(crate) const OK: u32 = 0;
    /// The peer broke the protocol.
    pub(crate) const PROTOCOL_ERROR: u32 = 1;
}

/// Why bytes could not be read as, or a frame could not be written as, SPDY.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A control frame of another SPDY version.
    #[error("unsupported spdy version {0}")]
    UnsupportedVersion(u16),
    /// A control frame whose length does not fit its type.
    #[error("{kind} frame with a {length}-byte payload")]
    BadLength {
        /// The frame type.
        kind: &'static str,
        /// The payload length it claimed.
        length: usize,
    },
    /// A frame that needs a stream named stream 0.
    #[error("{0} frame for stream 0")]
    ZeroStreamId(&'static str),
    /// A field outside its allowed range.
    #[error("{0}")]
    Invalid(String),
    /// A header block that decompressed but does not parse.
    #[error("header block: {0}")]
    HeaderBlock(String),
    /// A header block zlib could not decompress (or compress).
    #[error("header compression: {0}")]
    Compression(String),
    /// A payload too long for a 24-bit length.
    #[error("frame payload of {0} bytes is over spdy's limit")]
    TooLarge(usize),
}

/// One SETTINGS entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Setting {
    /// FLAG_SETTINGS_PERSIST_VALUE (1) and FLAG_SETTINGS_PERSISTED (2).
    pub(crate) flags: u8,
    /// The setting's id (24 bits).
    pub(crate) id: u32,
    /// Its value.
    pub(crate) value: u32,
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Bytes of a stream.
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
    /// The peer opens a stream.
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        slot: u8,
        fin: bool,
        unidirectional: bool,
        headers: Headers,
    },
    /// The answer to a SYN_STREAM: the stream is accepted.
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    /// Abnormal end of a stream.
    RstStream { stream_id: u32, status: u32 },
    /// Connection parameters.
    Settings { clear: bool, entries: Vec<Setting> },
    /// Liveness check; the receiver of a peer-initiated ping echoes it.
    Ping { id: u32 },
    /// The sender will open no more streams; streams above the id were not
    /// processed.
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    /// The sender may send `delta` more bytes on the stream (0: the session).
    WindowUpdate { stream_id: u32, delta: u32 },
    /// A control frame type SPDY/3.1 does not define; the spec says to
    /// ignore it.
    Unknown { kind: u16 },
}

/// The fixed 8 bytes at the start of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameHead {
    /// A control frame.
    Control {
        version: u16,
        kind: u16,
        flags: u8,
        length: usize,
    },
    /// A data frame.
    Data {
        stream_id: u32,
        flags: u8,
        length: usize,
    },
}

impl FrameHead {
    pub(crate) fn parse(b: &[u8; HEAD_LEN]) -> Self {
        let first = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let flags = b[4];
        let length = u32::from_be_bytes([0, b[5], b[6], b[7]]) as usize;
        if first & 0x8000_0000 != 0 {
            FrameHead::Control {
                version: ((first >> 16) & 0x7fff) as u16,
                kind: (first & 0xffff) as u16,
                flags,
                length,
            }
        } else {
            FrameHead::Data {
                stream_id: first,
                flags,
                length,
            }
        }
    }

    /// The payload length that follows.
    pub(crate) fn length(&self) -> usize {
        match *self {
            FrameHead::Control { length, .. } | FrameHead::Data { length, .. } => length,
        }
    }
}

fn u32_at(p: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

fn stream_id_at(p: &[u8], at: usize) -> u32 {
    u32_at(p, at) & 0x7fff_ffff
}

/// Decodes the frame `head` announced from its `payload` (exactly
/// `head.length()` bytes). Header blocks go through `inflater`.
pub(crate) fn decode(
    head: FrameHead,
    payload: Bytes,
    inflater: &mut HeaderInflater,
) -> Result<Frame, FrameError> {
    let (version, kind, flags) = match head {
        FrameHead::Data {
            stream_id, flags, ..
        } => {
            if stream_id == 0 {
                return Err(FrameError::ZeroStreamId("data"));
            }
            return Ok(Frame::Data {
                stream_id,
                fin: flags & FLAG_FIN != 0,
                data: payload,
            });
        }
        FrameHead::Control {
            version,
            kind,
            flags,
            ..
        } => (version, kind, flags),
    };
    if version != VERSION {
        return Err(FrameError::UnsupportedVersion(version));
    }
    let p = &payload[..];
    let len = p.len();
    let need = |kind: &'static str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(FrameError::BadLength { kind, length: len })
        }
    };
    let nonzero = |kind: &'static str, id: u32| {
        if id == 0 {
            Err(FrameError::ZeroStreamId(kind))
        } else {
            Ok(id)
        }
    };
    let fin = flags & FLAG_FIN != 0;
    Ok(match kind {
        TYPE_SYN_STREAM => {
            need("SYN_STREAM", len >= 10)?;
            // Decompress before checking the ids: the block belongs to the
            // connection's zlib stream whatever happens to the frame.
            let headers = Headers::decode(&inflater.decompress(&p[10..])?)?;
            Frame::SynStream {
                stream_id: nonzero("SYN_STREAM", stream_id_at(p, 0))?,
                associated_to: stream_id_at(p, 4),
                priority: p[8] >> 5,
                slot: p[9],
                fin,
                unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                headers,
            }
        }
        TYPE_SYN_REPLY | TYPE_HEADERS => {
            let name = if kind == TYPE_SYN_REPLY {
                "SYN_REPLY"
            } else {
                "HEADERS"
            };
            need(name, len >= 4)?;
            let headers = Headers::decode(&inflater.decompress(&p[4..])?)?;
            let stream_id = nonzero(name, stream_id_at(p, 0))?;
            if kind == TYPE_SYN_REPLY {
                Frame::SynReply {
                    stream_id,
                    fin,
                    headers,
                }
            } else {
                Frame::Headers {
                    stream_id,
                    fin,
                    headers,
                }
            }
        }
        TYPE_RST_STREAM => {
            need("RST_STREAM", len == 8)?;
            Frame::RstStream {
                stream_id: nonzero("RST_STREAM", stream_id_at(p, 0))?,
                status: u32_at(p, 4),
            }
        }
        TYPE_SETTINGS => {
            need("SETTINGS", len >= 4)?;
            let count = u32_at(p, 0) as usize;
            need(
                "SETTINGS",
                count.checked_mul(8).and_then(|n| n.checked_add(4)) == Some(len),
            )?;
            let entries = (0..count)
                .map(|i| {
                    let at = 4 + i * 8;
                    let word = u32_at(p, at);
                    Setting {
                        flags: (word >> 24) as u8,
                        id: word & 0x00ff_ffff,
                        value: u32_at(p, at + 4),
                    }
                })
                .collect();
            Frame::Settings {
                clear: flags & FLAG_CLEAR_SETTINGS != 0,
                entries,
            }
        }
        TYPE_PING => {
            need("PING", len == 4)?;
            Frame::Ping { id: u32_at(p, 0) }
        }
        TYPE_GOAWAY => {
            need("GOAWAY", len == 8)?;
            Frame::GoAway {
                last_good_stream_id: stream_id_at(p, 0),
                status: u32_at(p, 4),
            }
        }
        TYPE_WINDOW_UPDATE => {
            need("WINDOW_UPDATE", len == 8)?;
            let delta = u32_at(p, 4) & 0x7fff_ffff;
            if delta == 0 {
                return Err(FrameError::Invalid(
                    "WINDOW_UPDATE with a delta of 0".into(),
                ));
            }
            Frame::WindowUpdate {
                stream_id: stream_id_at(p, 0),
                delta,
            }
        }
        kind => Frame::Unknown { kind },
    })
}

/// Appends `frame` to `out`. Header blocks go through `deflater`, so frames
/// must be encoded in the order they are sent.
pub(crate) fn encode(
    frame: &Frame,
    deflater: &mut HeaderDeflater,
    out: &mut BytesMut,
) -> Result<(), FrameError> {
    fn control(out: &mut BytesMut, kind: u16, flags: u8, payload: &[u8]) -> Result<(), FrameError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(payload.len()));
        }
        out.reserve(HEAD_LEN + payload.len());
        out.put_u16(0x8000 | VERSION);
        out.put_u16(kind);
        out.put_u32((u32::from(flags) << 24) | payload.len() as u32);
        out.put_slice(payload);
        Ok(())
    }
    let fin_flag = |fin: bool| if fin { FLAG_FIN } else { 0 };
    match frame {
        Frame::Data {
            stream_id,
            fin,
            data,
        } => {
            if data.len() > MAX_PAYLOAD {
                return Err(FrameError::TooLarge(data.len()));
            }
            out.reserve(HEAD_LEN + data.len());
            out.put_u32(stream_id & 0x7fff_ffff);
            out.put_u32((u32::from(fin_flag(*fin)) << 24) | data.len() as u32);
            out.put_slice(data);
            Ok(())
        }
        Frame::SynStream {
            stream_id,
            associated_to,
            priority,
            slot,
            fin,
            unidirectional,
            headers,
        } => {
            let block = deflater.compress(&headers.encode())?;
            let mut p = Vec::with_capacity(10 + block.len());
            p.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
            p.extend_from_slice(&(associated_to & 0x7fff_ffff).to_be_bytes());
            p.push((priority & 0x07) << 5);
            p.push(*slot);
            p.extend_from_slice(&block);
            let flags = fin_flag(*fin)
                | if *unidirectional {
                    FLAG_UNIDIRECTIONAL
                } else {
                    0
                };
            control(out, TYPE_SYN_STREAM, flags, &p)
        }
        Frame::SynReply {
            stream_id,
            fin,
            headers,
        }
        | Frame::Headers {
            stream_id,
            fin,
            headers,
        } => {
            let kind = if matches!(frame, Frame::SynReply { .. }) {
                TYPE_SYN_REPLY
            } else {
                TYPE_HEADERS
            };
            let block = deflater.compress(&headers.encode())?;
            let mut p = Vec::with_capacity(4 + block.len());
            p.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
            p.extend_from_slice(&block);
            control(out, kind, fin_flag(*fin), &p)
        }
        Frame::RstStream { stream_id, status } => {
            let mut p = [0u8; 8];
            p[..4].copy_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
            p[4..].copy_from_slice(&status.to_be_bytes());
            control(out, TYPE_RST_STREAM, 0, &p)
        }
        Frame::Settings { clear, entries } => {
            let mut p = Vec::with_capacity(4 + 8 * entries.len());
            p.extend_from_slice(&(entries.len() as u32).to_be_bytes());
            for e in entries {
                p.extend_from_slice(
                    &((u32::from(e.flags) << 24) | (e.id & 0x00ff_ffff)).to_be_bytes(),
                );
                p.extend_from_slice(&e.value.to_be_bytes());
            }
            let flags = if *clear { FLAG_CLEAR_SETTINGS } else { 0 };
            control(out, TYPE_SETTINGS, flags, &p)
        }
        Frame::Ping { id } => control(out, TYPE_PING, 0, &id.to_be_bytes()),
        Frame::GoAway {
            last_good_stream_id,
            status,
        } => {
            let mut p = [0u8; 8];
            p[..4].copy_from_slice(&(last_good_stream_id & 0x7fff_ffff).to_be_bytes());
            p[4..].copy_from_slice(&status.to_be_bytes());
            control(out, TYPE_GOAWAY, 0, &p)
        }
        Frame::WindowUpdate { stream_id, delta } => {
            let mut p = [0u8; 8];
            p[..4].copy_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
            p[4..].copy_from_slice(&(delta & 0x7fff_ffff).to_be_bytes());
            control(out, TYPE_WINDOW_UPDATE, 0, &p)
        }
        Frame::Unknown { kind } => control(out, *kind, 0, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes with a fresh deflater and decodes with a fresh inflater.
    fn round_trip(frame: &Frame) -> (Vec<u8>, Frame) {
        let mut out = BytesMut::new();
        encode(frame, &mut HeaderDeflater::new(), &mut out).unwrap();
        let wire = out.to_vec();
        (
            wire.clone(),
            parse(&wire, &mut HeaderInflater::new()).unwrap(),
        )
    }

    fn parse(wire: &[u8], inflater: &mut HeaderInflater) -> Result<Frame, FrameError> {
        let head = FrameHead::parse(wire[..HEAD_LEN].try_into().unwrap());
        assert_eq!(head.length(), wire.len() - HEAD_LEN, "length field");
        decode(head, Bytes::copy_from_slice(&wire[HEAD_LEN..]), inflater)
    }

    /// What kubectl 1.32 sent at the start of a SPDY exec without stdin (and
    /// its resets at the end), captured from a real run: three SYN_STREAMs
    /// whose header blocks share one zlib stream, then two RST_STREAMs.
    const KUBECTL_EXEC_OPENING: &[&str] = &[
        "80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392",
        "a2d4c45c6851c29a0a0a6800000000ffff800300010000001900000003000000",
        "000000c22ac5565c92925f5a02000000ffff8003000100000015000000050000",
        "00000000c229975a5404000000ffff8003000300000008000000010000000580",
        "030003000000080000000300000005",
    ];

    #[test]
    fn kubectls_frames_decode() {
        let wire: Vec<u8> = KUBECTL_EXEC_OPENING
            .concat()
            .as_bytes()
            .chunks(2)
            .map(|h| u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap())
            .collect();
        let mut inflater = HeaderInflater::new();
        let mut rest = &wire[..];
        let mut frames = vec![];
        while !rest.is_empty() {
            let head = FrameHead::parse(rest[..HEAD_LEN].try_into().unwrap());
            let end = HEAD_LEN + head.length();
            let payload = Bytes::copy_from_slice(&rest[HEAD_LEN..end]);
            frames.push(decode(head, payload, &mut inflater).unwrap());
            rest = &rest[end..];
        }
        let opened: Vec<(u32, String)> = frames
            .iter()
            .filter_map(|f| match f {
                Frame::SynStream {
                    stream_id,
                    headers,
                    fin: false,
                    unidirectional: false,
                    ..
                } => Some((*stream_id, headers.get("streamtype")?.to_owned())),
                _ => None,
            })
            .collect();
        assert_eq!(
            opened,
            [
                (1, "error".to_owned()),
                (3, "stdout".to_owned()),
                (5, "stderr".to_owned())
            ]
        );
        assert_eq!(
            frames[3..],
            [
                Frame::RstStream {
                    stream_id: 1,
                    status: rst::CANCEL
                },
                Frame::RstStream {
                    stream_id: 3,
                    status: rst::CANCEL
                },
            ]
        );
    }

    #[test]
    fn fixed_frames_have_the_spec_layout() {
        let cases: Vec<(Frame, &[u8])> =
            vec![
            (Frame::Ping { id: 1 }, b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01"),
            (
                Frame::RstStream {
                    stream_id: 5,
                    status: rst::CANCEL,
                },
                b"\x80\x03\x00\x03\x00\x00\x00\x08\x00\x00\x00\x05\x00\x00\x00\x05",
            ),
            (
                Frame::GoAway {
                    last_good_stream_id: 7,
                    status: goaway::OK,
                },
                b"\x80\x03\x00\x07\x00\x00\x00\x08\x00\x00\x00\x07\x00\x00\x00\x00",
            ),
            (
                Frame::WindowUpdate {
                    stream_id: 3,
                    delta: 0x8000,
                },
                b"\x80\x03\x00\x09\x00\x00\x00\x08\x00\x00\x00\x03\x00\x00\x80\x00",
            ),
            (
                Frame::Settings {
                    clear: false,
                    entries: vec![Setting {
                        flags: 0,
                        id: SETTINGS_INITIAL_WINDOW_SIZE,
                        value: 0x10000,
                    }],
                },
                b"\x80\x03\x00\x04\x00\x00\x00\x0c\x00\x00\x00\x01\x00\x00\x00\x07\x00\x01\x00\x00",
            ),
            (
                Frame::Data {
                    stream_id: 1,
                    fin: false,
                    data: Bytes::from_static(b"hi"),
                },
                b"\x00\x00\x00\x01\x00\x00\x00\x02hi",
            ),
            (
                Frame::Data {
                    stream_id: 0x7fff_ffff,
                    fin: true,
                    data: Bytes::new(),
                },
                b"\x7f\xff\xff\xff\x01\x00\x00\x00",
            ),
        ];
        for (frame, bytes) in cases {
            let (wire, back) = round_trip(&frame);
            assert_eq!(wire, bytes, "{frame:?}");
            assert_eq!(back, frame);
        }
    }

    #[test]
    fn header_frames_round_trip() {
        let headers = Headers::new()
            .with("streamtype", "error")
            .with("port", "80");
        for frame in [
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                slot: 0,
                fin: false,
                unidirectional: false,
                headers: headers.clone(),
            },
            Frame::SynStream {
                stream_id: 3,
                associated_to: 1,
                priority: 7,
                slot: 2,
                fin: true,
                unidirectional: true,
                headers: headers.clone(),
            },
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: Headers::new(),
            },
            Frame::Headers {
                stream_id: 9,
                fin: true,
                headers: headers.clone(),
            },
        ] {
            let (wire, back) = round_trip(&frame);
            assert_eq!(back, frame);
            assert_eq!(wire[0], 0x80);
            assert_eq!(wire[1], 0x03);
        }
    }

    #[test]
    fn a_syn_reply_of_ours_has_the_expected_bytes() {
        let (wire, _) = round_trip(&Frame::SynReply {
            stream_id: 1,
            fin: false,
            headers: Headers::new(),
        });
        assert_eq!(&wire[..4], b"\x80\x03\x00\x02");
        assert_eq!(wire[4], 0, "flags");
        assert_eq!(&wire[8..12], b"\x00\x00\x00\x01", "stream id");
        // A zlib header naming SPDY's dictionary starts the block.
        assert_eq!(&wire[14..18], &[0xe3, 0xc6, 0xa7, 0xc2]);
    }

    #[test]
    fn unknown_control_types_are_kept_apart() {
        let wire = b"\x80\x03\x00\x0a\x00\x00\x00\x02ab";
        assert_eq!(
            parse(wire, &mut HeaderInflater::new()).unwrap(),
            Frame::Unknown { kind: 10 }
        );
    }

    #[test]
    fn malformed_control_frames_are_errors() {
        let mut inflater = HeaderInflater::new();
        let cases: &[(&[u8], FrameError)] = &[
            (
                b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01",
                FrameError::UnsupportedVersion(2),
            ),
            (
                b"\x80\x03\x00\x06\x00\x00\x00\x03\x00\x00\x01",
                FrameError::BadLength {
                    kind: "PING",
                    length: 3,
                },
            ),
            (
                b"\x80\x03\x00\x03\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x01",
                FrameError::ZeroStreamId("RST_STREAM"),
            ),
            (
                b"\x80\x03\x00\x04\x00\x00\x00\x08\x00\x00\x00\x02\x00\x00\x00\x07",
                FrameError::BadLength {
                    kind: "SETTINGS",
                    length: 8,
                },
            ),
            (
                b"\x80\x03\x00\x07\x00\x00\x00\x04\x00\x00\x00\x01",
                FrameError::BadLength {
                    kind: "GOAWAY",
                    length: 4,
                },
            ),
            (
                b"\x80\x03\x00\x01\x00\x00\x00\x04\x00\x00\x00\x01",
                FrameError::BadLength {
                    kind: "SYN_STREAM",
                    length: 4,
                },
            ),
            (
                b"\x00\x00\x00\x00\x00\x00\x00\x00",
                FrameError::ZeroStreamId("data"),
            ),
        ];
        for (wire, want) in cases {
            assert_eq!(parse(wire, &mut inflater).as_ref(), Err(want), "{wire:x?}");
        }
        // A SYN_STREAM whose block is not zlib at all.
        let wire = b"\x80\x03\x00\x01\x00\x00\x00\x0e\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00junk";
        assert!(matches!(
            parse(wire, &mut HeaderInflater::new()),
            Err(FrameError::Compression(_))
        ));
    }

    #[test]
    fn oversized_payloads_are_refused_on_encode() {
        let frame = Frame::Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from(vec![0u8; MAX_PAYLOAD + 1]),
        };
        assert_eq!(
            encode(&frame, &mut HeaderDeflater::new(), &mut BytesMut::new()),
            Err(FrameError::TooLarge(MAX_PAYLOAD + 1))
        );
    }

    #[test]
    fn frames_share_one_compression_context() {
        let mut deflater = HeaderDeflater::new();
        let mut inflater = HeaderInflater::new();
        let mut out = BytesMut::new();
        let frames: Vec<Frame> = (0..20u32)
            .map(|i| Frame::SynStream {
                stream_id: 2 * i + 1,
                associated_to: 0,
                priority: 0,
                slot: 0,
                fin: false,
                unidirectional: false,
                headers: Headers::new()
                    .with("streamtype", "data")
                    .with("port", "8080")
                    .with("requestid", &i.to_string()),
            })
            .collect();
        let mut offsets = vec![];
        for f in &frames {
            offsets.push(out.len());
            encode(f, &mut deflater, &mut out).unwrap();
        }
        offsets.push(out.len());
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(
                &parse(&out[offsets[i]..offsets[i + 1]], &mut inflater).unwrap(),
                f
            );
        }
        // Decoding a later frame with a fresh context fails: the contexts
        // really are shared.
        assert!(parse(&out[offsets[5]..offsets[6]], &mut HeaderInflater::new()).is_err());
    }
}
